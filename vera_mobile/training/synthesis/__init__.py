"""Inverse-degradation data: degrade well-exposed photos with the develop engine and learn to undo it.

Three kinds of record, one per planner mode (the nano model trains on all three). The package:
`kinds` (degradation kinds and their sampling), `inverse` (the fitted inverse), `reasoning` (the
texts, and reading directions back out of a model's text), `records` (records and the seeded
generator), `dataset` (the on-disk layout).

* **auto** -- sample a plausible *degradation* slider set (kinds below), apply it to a good
  photo: input = the degraded photo, target = the original. `sliders` is the *inverse*: the
  slider set that takes the degraded photo back towards the original. It starts from the
  analytic inverse (exact for exposure and for (band) saturation's chroma factor, negation for
  the rest) and is then **fitted** by `FIT_STEPS` Adam steps through the differentiable engine
  on a small thumbnail (MSE in sRGB), over the degradation's own sliders only; the fit is kept
  only where it lowers the error. It is an approximation wherever the degradation clipped
  (over-exposure, white balance or exposure pushing a channel past 1) -- the clipped detail is
  gone -- and `inverse_fit` reports the thumbnail error before and after. `text` is a short,
  factual reasoning in the upstream section format: a problem and a plan per group (lighting,
  global colour, specific colour), naming the true exposure direction ("underexposed" /
  "overexposed") and colour-cast direction ("warm", "cool", "green", "magenta" colour cast),
  then the three retouch tokens.
* **style** -- input = the original, target = `develop(original, STYLES[name].sliders)`;
  `prompt` is one of the style's instructions, `text` the plan sections only.
* **param** -- input = the original, target = `develop(original, sliders)` for a random sparse
  slider set; `text` the plan sections only.

Degradation kinds (`KINDS`), sampled per group (light, global colour, specific colour; a record
may combine one or two kinds per group; amounts are slider values, ±100 scale):

| kind | sliders |
| --- | --- |
| underexposed / overexposed | Exposure2012 -12..-36 (-0.6..-1.8 stops) / +8..+20 (+0.4..+1 stop) |
| flat / harsh | Contrast2012 -45..-85, maybe Blacks2012 +15..+40 / Contrast2012 +45..+85, maybe Shadows2012 -20..-50 |
| warm / cool | IncrementalTemperature +60..+100 / -60..-100 (`CAST_RANGE`, never mild) |
| magenta / green | IncrementalTint +60..+100 / -60..-100 (+ tint assumes greener light, so the photo turns magenta) |
| dull / oversaturated | Saturation -20..-50 or Vibrance -40..-80 / Saturation +25..+60 or Vibrance +50..+90 |
| off_hue | HueAdjustment{band} ±50..±100, maybe SaturationAdjustment{band} ±30..±60, on a band that covers ≥ 8 % of the photo |

Sampling (`sample_kinds`): light p = 0.85 (an exposure kind p = 0.7, two thirds under; a contrast
kind p = 0.4; at least one), global colour p = 0.85 (a cast p = 0.75, a saturation kind p = 0.35,
at least one; no saturation kind on a near-monochrome photo), specific colour p = 0.35 where a band
qualifies. The problem text states the degradation that was applied; the plan text states the
fitted inverse, whose values can differ from the negated degradation where kinds interact.

Amounts are *mixed strengths*: each amount is drawn from its kind's range above, or, with
probability `MILD_SHARE` (0.3), from a mild range (half the low end up to the low end). Casts are
the exception: a weaker cast than `CAST_RANGE` is within the photos' own colour spread, so the
problem sentence naming it could not be read from the photo. A share
`CLEAN_SHARE` (recipe.py) of auto records is *clean*: input = target = the photo, no sliders, and the
text says there is no problem and no change is needed -- the model must learn to leave a good
photo alone. With `wb_jitter` (off by default) each record's original first gets a random white
balance below the weakest cast, and that version is the record's natural photo and target.

Everything is deterministic by seed (record i uses `numpy.random.default_rng([seed, i])`) and
streaming: `synthesize` is a generator, `write_dataset` writes as records arrive. Photos are
resized to a working size (long side `size`, default 512) before anything else.

Data set layout written by `write_dataset` (and `vera-mobile synthesize`):

    DIR/records.jsonl    one JSON object per record (fields below), written last-to-first-safe
    DIR/originals/*.png  each source photo once (once per white balance, with wb_jitter), at the working size (8-bit sRGB PNG)
    DIR/images/*.png     each record's edited photo: degraded (auto) or developed (style, param)
    DIR/dataset.json     how it was made: seed, count, size, modes, photo manifest, split, counts

Record fields: id, mode, input and target (paths relative to DIR), photo ("source/file"),
source, split, size ([width, height]), sliders (input -> target; ±100 scale, param-mode names),
text, prompt (style instruction, else null), style (name or null), kinds, degradation (auto
only), directions ({"exposure": "under"|"over"|null, "cast": "warm"|"cool"|"green"|"magenta"|null}),
inverse_fit (auto only: method, steps, mse_degraded, mse_start, mse_fitted on the thumbnail), seed,
wb_jitter (null, or the original's IncrementalTemperature / IncrementalTint).
"""

from .dataset import read_records, write_dataset
from .inverse import FIT_SIZE, FIT_STEPS, analytic_inverse, fit_inverse
from .kinds import (CAST_PROBES, CAST_RANGE, CASTS, DEFAULT_SIZE, GLOBAL_KINDS, KINDS, LIGHT_KINDS, SPECIFIC_KINDS, band_coverage,
                    degradation_for, develop_uint8, load_working_photo, pick_band, sample_kind, sample_kinds)
from .reasoning import (NO_PROBLEM, format_reasoning, plan_sentences, problem_sentences, read_directions,
                        says_no_problem, true_directions)
from .records import (CLEAN_SHARE, DEFAULT_MODE_WEIGHTS, MODES, Record, make_auto_record, make_clean_record,
                      make_param_record, make_style_record, sample_param_sliders, synthesize)

__all__ = [
    "CAST_PROBES", "CAST_RANGE", "CASTS", "CLEAN_SHARE", "DEFAULT_MODE_WEIGHTS", "DEFAULT_SIZE", "FIT_SIZE", "FIT_STEPS", "GLOBAL_KINDS", "KINDS", "LIGHT_KINDS",
    "MODES", "NO_PROBLEM", "Record", "SPECIFIC_KINDS", "analytic_inverse", "band_coverage", "degradation_for", "develop_uint8",
    "fit_inverse", "format_reasoning", "load_working_photo", "make_auto_record", "make_clean_record", "make_param_record",
    "make_style_record", "pick_band", "plan_sentences", "problem_sentences", "read_directions", "read_records",
    "sample_kind", "sample_kinds", "sample_param_sliders", "says_no_problem", "synthesize", "true_directions", "write_dataset",
]
