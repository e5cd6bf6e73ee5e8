"""Develop engine: the 38 param-mode sliders as exact, differentiable operators.

Images are float tensors of sRGB-encoded RGB in [0, 1], **channels last** ([..., 3]: one pixel,
[H, W, 3], [B, H, W, 3], or the [S**3, 3] LUT grid); the output has the same shape. Slider sets
use param mode's names and rules (`prompts.validate_params`); `a = value / 100` in [-1, 1].

Pipeline, in this order (each stage is skipped when all its sliders are 0):

1. decode sRGB → linear; white balance; exposure; clip to [0, 1]; encode sRGB
2. tone curves on each sRGB-encoded channel: contrast, the six region sliders, whites, blacks; clip
3. decode → OKLab; saturation, vibrance, per-band hue/saturation/luminance; → linear; clip; encode

| slider | formula (x: sRGB-encoded channel, lin: linear RGB, C/h: OKLab chroma/hue) | at ±100 |
| --- | --- | --- |
| Exposure2012 | lin · 2^(5a) | ±5 stops (Lightroom's range), so +20 = one stop = ×2 |
| IncrementalTemperature | assumed illuminant at 1e6/(153.75 − 75a) K on the Planckian locus (Krystek 1985, shifted so a = 0 is D65); Bradford von Kries to D65 in XYZ | 12 700 K (warmer photo) .. 4 370 K (cooler) |
| IncrementalTint | same illuminant moved 0.02a in Duv along the locus normal (+ = greener light, so a magenta photo) | ±0.02 Duv |
| Contrast2012 | x − 0.75a · sin(2πx)/2π (pivot 0.5, ends fixed) | mid slope 1 ± 0.75 |
| Highlights2012 / Shadows2012 | x + 0.75a · (2h/π) · cos²(π(x−c)/2h) on \\|x−c\\| < h; (c, h) = (0.7, 0.3) / (0.3, 0.3) | peak shift ±0.143 |
| ParametricShadows / Darks / Lights / Highlights | the same bump with (c, h) = (0.15, 0.15) / (0.375, 0.25) / (0.625, 0.25) / (0.85, 0.15) | peak ±0.072 / ±0.119 |
| Whites2012 | x + 0.2a · x⁴, then clip (blows or pulls down the white point) | white point 1 ± 0.2 |
| Blacks2012 | x + 0.2a · (1 − x)⁴, then clip (lifts or crushes the black point) | black point ±0.2 |
| Saturation | C · (1 + a) | ×2 .. grey |
| Vibrance | C · (1 + a · (1 − 0.5·w_Orange) / (1 + (C/0.1)²)): muted colours most, skin (Orange band) half | ×(1 ± 1) near grey, ×(1 ± 0.1) at C = 0.3 |
| HueAdjustment{band} | rotate (a, b) by a · Δh_band · w_band; Δh = 0.3 × the narrower gap to a neighbour band | ±7.1° (Red) .. ±15.7° (Aqua) |
| SaturationAdjustment{band} | C · (1 + a · w_band) | ×2 .. grey within the band |
| LuminanceAdjustment{band} | (L, a, b) · 2^(a · w_band / 3) | ±1 stop of linear light in the band |

Colour bands: centred on the OKLab hues of the sRGB colours red (1,0,0), orange (1,.5,0),
yellow (1,1,0), green (0,1,0), aqua (0,1,1), blue (0,0,1), purple (.5,0,1), magenta (1,0,1):
29.2°, 52.8°, 109.8°, 142.5°, 194.8°, 264.1°, 293.8°, 328.4°. Between two neighbouring centres the
weights are cos² and sin² of one linear ramp, so they sum to 1 everywhere, are C¹-smooth, and each
band reaches 0 at its neighbours' centres. Per-band edits (and vibrance's skin protection) use
w_band = weight(h) · C²/(C² + 0.04²): a near-grey colour's hue is unstable, so the edits fade in
with chroma and greys are untouched. Saturation factors multiply; all colour factors are
computed from the colour entering stage 3.

Why these choices: each tone curve is monotone with fixed end points for |a| <= 1 (only whites and
blacks move an end point), so any combination stays monotone; per-band hue shifts are small
enough that hue order never flips; scaling OKLab by k scales linear light by k³, so per-band
luminance is an exposure of that band that keeps its hue. Lightroom's Highlights / Shadows /
Whites / Blacks adapt to image content locally; these are global curves, so that every operator
here is a per-pixel colour function and every slider set bakes into a 3D LUT
(`bake_develop_lut`, same layout as `vera_mobile.lut`) without leaving anything out.
"""

from .engine import BANDS, develop, slider_tensor
from .photo import DEFAULT_RENDER, Developed, bake_develop_lut, develop_photo, develop_pixels

__all__ = [
    "BANDS", "DEFAULT_RENDER", "Developed", "bake_develop_lut", "develop", "develop_photo",
    "develop_pixels", "slider_tensor",
]
