"""Named styles for style mode: each is one slider set of the develop engine, defined in one table.

A style's look is exactly `develop(photo, STYLES[name].sliders)`, so style-mode output can be
scored against its definition. `prompts` are instructions a user might type for it (the first
is the canonical one); the synthesizer picks among them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ..errors import InputError
from ..prompts import validate_params


@dataclass(frozen=True)
class Style:
    name: str
    description: str
    prompts: tuple[str, ...]
    sliders: Mapping[str, float]


def _style(name: str, description: str, prompts: tuple[str, ...], **sliders: float) -> Style:
    return Style(name, description, prompts, MappingProxyType(validate_params(sliders)))


_TABLE = (
    _style("warm_film", "warm, slightly faded film stock with soft contrast and lifted blacks",
           ("I want a warm film look.", "Make it look like warm analogue film.", "Give it a vintage warm film feel."),
           IncrementalTemperature=30, IncrementalTint=5, Contrast2012=-15, Blacks2012=25, ParametricHighlights=-15,
           Saturation=-10, HueAdjustmentGreen=-25, SaturationAdjustmentBlue=-20, LuminanceAdjustmentOrange=10),
    _style("cool_moody", "cool, darker and desaturated with deep shadows",
           ("Make it cool and moody.", "I want a cold, moody atmosphere.", "Give it a dark, cool cinematic mood."),
           Exposure2012=-8, IncrementalTemperature=-35, Contrast2012=20, Shadows2012=-25, Highlights2012=-20,
           Saturation=-30, LuminanceAdjustmentBlue=-30, SaturationAdjustmentAqua=-20),
    _style("bright_airy", "bright, open shadows, soft contrast and clean light colours",
           ("Make it bright and airy.", "I want a light, airy look.", "Brighten it into a fresh, airy photo."),
           Exposure2012=12, Contrast2012=-20, Shadows2012=45, Highlights2012=-20, Whites2012=15,
           IncrementalTemperature=-5, Vibrance=15, Saturation=-5),
    _style("dreamy_pink", "soft, pastel, rosy look with a magenta tint and lifted blacks",
           ("Give it a dreamy pink look.", "I want a soft pastel pink mood.", "Make it rosy and dreamy."),
           Exposure2012=6, IncrementalTemperature=10, IncrementalTint=30, Contrast2012=-25, Blacks2012=30,
           SaturationAdjustmentMagenta=40, SaturationAdjustmentRed=20, HueAdjustmentRed=-30, LuminanceAdjustmentRed=15),
    _style("high_contrast_bw", "black and white with strong contrast, deep blacks and bright whites",
           ("Make it a high-contrast black and white photo.", "Convert to punchy black and white.",
            "I want dramatic monochrome."),
           Saturation=-100, Contrast2012=60, Whites2012=25, Blacks2012=-20, Shadows2012=-15),
    _style("vivid", "rich, punchy colour with extra contrast",
           ("Make the colours vivid.", "I want punchy, vibrant colours.", "Make it pop."),
           Vibrance=50, Saturation=15, Contrast2012=20, Blacks2012=-10, ParametricLights=10),
    _style("faded_matte", "flat matte finish: lifted blacks, low contrast, muted colour",
           ("Give it a faded matte look.", "I want a washed-out matte style.", "Make it look faded."),
           Blacks2012=40, Contrast2012=-35, Whites2012=-15, Saturation=-25, ParametricHighlights=-10),
    _style("golden_hour", "warm golden evening light with glowing oranges",
           ("Make it look like golden hour.", "I want warm sunset light.", "Give it a golden evening glow."),
           IncrementalTemperature=45, IncrementalTint=10, Vibrance=20, Highlights2012=-20, Shadows2012=15,
           SaturationAdjustmentOrange=25, LuminanceAdjustmentOrange=15, HueAdjustmentYellow=-20),
    _style("teal_orange", "cinematic teal shadows and cool tones against warm skin tones",
           ("Give it a teal and orange cinematic look.", "I want a blockbuster teal-orange grade.",
            "Make it cinematic with teal and orange."),
           Contrast2012=25, HueAdjustmentGreen=60, HueAdjustmentBlue=-40, HueAdjustmentAqua=-20,
           SaturationAdjustmentOrange=30, SaturationAdjustmentAqua=30, SaturationAdjustmentBlue=20,
           IncrementalTemperature=-10, Vibrance=10),
    _style("clean_natural", "neutral, clean and slightly brighter with gentle contrast",
           ("Make it look clean and natural.", "Give it a natural, true-to-life look.", "A subtle natural enhancement."),
           Exposure2012=4, Contrast2012=10, Shadows2012=15, Highlights2012=-15, Vibrance=15),
)

STYLES: Mapping[str, Style] = MappingProxyType({s.name: s for s in _TABLE})


def style_sliders(name: str) -> dict[str, float]:
    """The slider set of a named style (a fresh dict)."""
    try:
        return dict(STYLES[name].sliders)
    except KeyError:
        raise InputError(f"unknown style {name!r}; choose one of: {', '.join(STYLES)}") from None
