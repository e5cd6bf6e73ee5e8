"""The reasoning texts: problem sentences from the applied degradation, plan sentences from the
inverse, the upstream section format, and reading the directions back out of a model's text."""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from ...develop.engine import BANDS
from ...plan import parse_plan
from ...prompts import RETOUCH_TOKENS, SECTION_TOKENS, SLIDER_GROUPS, SLIDER_LIMIT, SLIDER_NAMES, validate_params
from .kinds import CASTS

_GROUP_KEYS = ("light", "global_color", "specific_color")
_GROUP_OF_SLIDER = {name: key for key, names in zip(_GROUP_KEYS, SLIDER_GROUPS.values()) for name in names}
_EXPOSURE_STOPS = 5.0  # Exposure2012 ±100 = ±5 stops (engine.EXPOSURE_STOPS)
NO_PROBLEM = {  # the problem sentence of a group with nothing wrong
    "light": "Exposure and contrast are well balanced.",
    "global_color": "White balance and overall saturation look natural.",
    "specific_color": "Individual colours look natural.",
}

# --- Reasoning text ------------------------------------------------------------------------------

_BAND_WORD = {b: b.lower() + "s" for b in BANDS}
_BAND_WORD["Aqua"] = "aquas"
_PHRASES = {
    "Contrast2012": ("add contrast", "reduce contrast"),
    "Highlights2012": ("lift the highlights", "recover the highlights"),
    "Shadows2012": ("open up the shadows", "deepen the shadows"),
    "Whites2012": ("push the whites up", "pull the whites down"),
    "Blacks2012": ("lift the blacks", "deepen the blacks"),
    "ParametricShadows": ("brighten the deepest shadows", "darken the deepest shadows"),
    "ParametricDarks": ("brighten the darks", "darken the darks"),
    "ParametricLights": ("brighten the lights", "darken the lights"),
    "ParametricHighlights": ("brighten the brightest highlights", "tone down the brightest highlights"),
    "IncrementalTemperature": ("warm the white balance", "cool the white balance"),
    "IncrementalTint": ("move the tint towards magenta", "move the tint towards green"),
    "Vibrance": ("add vibrance", "reduce vibrance"),
    "Saturation": ("increase saturation", "decrease saturation"),
}


def _slider_phrase(name: str, value: float) -> str:
    positive = value > 0
    if name == "Exposure2012":
        stops = abs(value) * _EXPOSURE_STOPS / SLIDER_LIMIT
        return f"{'raise' if positive else 'lower'} exposure by about {stops:.1f} stops"
    if name in _PHRASES:
        return _PHRASES[name][0 if positive else 1]
    kind, band = re.fullmatch(r"(Hue|Saturation|Luminance)Adjustment(\w+)", name).groups()
    word = _BAND_WORD[band]
    if kind == "Hue":
        i = BANDS.index(band)
        towards = BANDS[(i + 1) % len(BANDS)] if positive else BANDS[i - 1]
        return f"shift the {word} towards {towards.lower()}"
    if kind == "Saturation":
        return f"{'saturate' if positive else 'desaturate'} the {word}"
    return f"{'brighten' if positive else 'darken'} the {word}"


def _join(phrases: Sequence[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


_NO_CHANGE = {
    "light": "No lighting change is needed.",
    "global_color": "No global colour change is needed.",
    "specific_color": "No specific colour change is needed.",
}


def plan_sentences(sliders: Mapping[str, float]) -> dict[str, str]:
    """One plan sentence per group ('light', 'global_color', 'specific_color') naming the sliders."""
    clean = validate_params(sliders)
    out = {}
    for key in _GROUP_KEYS:
        items = [(n, v) for n, v in clean.items() if _GROUP_OF_SLIDER[n] == key and abs(v) >= 0.5]
        items.sort(key=lambda item: SLIDER_NAMES.index(item[0]))
        if not items:
            out[key] = _NO_CHANGE[key]
            continue
        phrases = _join([_slider_phrase(n, v) for n, v in items])
        values = ", ".join(f"{n} {v:+.0f}" for n, v in items)
        out[key] = f"{phrases[0].upper()}{phrases[1:]} ({values})."
    return out


def _strength(value: float) -> str:
    value = abs(value)
    return "slight" if value < 50 else "noticeable" if value < 70 else "strong"


_CAST_WORDS = {"warm": "warm (yellow-orange)", "cool": "cool (blue)", "magenta": "magenta", "green": "green"}


def problem_sentences(kinds: Sequence[str], degradation: Mapping[str, float], band: str | None) -> dict[str, str]:
    """One factual problem sentence per group from the degradation that was applied."""
    light, colour, specific = [], [], []
    for kind in kinds:
        if kind in ("underexposed", "overexposed"):
            stops = abs(degradation["Exposure2012"]) * _EXPOSURE_STOPS / SLIDER_LIMIT
            light.append(f"The photo is {kind} by about {stops:.1f} stops: "
                         + ("midtones and shadows are too dark." if kind == "underexposed"
                            else "bright areas are washed out and lose detail."))
        elif kind == "flat":
            light.append("Contrast is flat" + (" and the blacks are lifted" if "Blacks2012" in degradation else "")
                         + ", so the image looks grey and lacks depth.")
        elif kind == "harsh":
            light.append("Contrast is too harsh" + (" and the shadows are too deep" if "Shadows2012" in degradation else "")
                         + ", so tones look heavy and abrupt.")
        elif kind in CASTS:
            value = degradation["IncrementalTemperature" if kind in ("warm", "cool") else "IncrementalTint"]
            colour.append(f"There is a {_strength(value)} {_CAST_WORDS[kind]} colour cast.")
        elif kind == "dull":
            colour.append("Colours are dull and undersaturated.")
        elif kind == "oversaturated":
            colour.append("Colours are oversaturated and look garish.")
        elif kind == "off_hue":
            hue = degradation[f"HueAdjustment{band}"]
            i = BANDS.index(band)
            towards = BANDS[(i + 1) % len(BANDS)] if hue > 0 else BANDS[i - 1]
            sentence = f"The {_BAND_WORD[band]} are shifted towards {towards.lower()}"
            sat = degradation.get(f"SaturationAdjustment{band}")
            if sat:
                sentence += f" and look too {'intense' if sat > 0 else 'muted'}"
            specific.append(sentence + ".")
    parts = {"light": light, "global_color": colour, "specific_color": specific}
    return {key: " ".join(parts[key]) or NO_PROBLEM[key] for key in _GROUP_KEYS}


def format_reasoning(plans: Mapping[str, str], problems: Mapping[str, str] | None = None) -> str:
    """The upstream section format: problem sections (auto only), plan sections, then the retouch tokens."""
    parts = []
    if problems is not None:
        for key, field_name in zip(_GROUP_KEYS, ("problem_light", "problem_global_color", "problem_specific_color")):
            start, end = SECTION_TOKENS[field_name]
            parts.append(f"{start}{problems[key]}{end}")
    for key, field_name in zip(_GROUP_KEYS, ("plan_light", "plan_global_color", "plan_specific_color")):
        start, end = SECTION_TOKENS[field_name]
        parts.append(f"{start}{plans[key]}{end}")
    return "\n".join(parts) + "\n" + "".join(RETOUCH_TOKENS)


_CAST_PATTERN = re.compile(r"\b(warm|cool|magenta|green)\b[^.]{0,30}?colou?r cast")


def read_directions(text: str) -> dict[str, str | None]:
    """The exposure and colour-cast directions a reasoning text names (for scoring a model's text).

    Reads the problem sentences only (the plan sentences name the fix, not the problem): in the
    light problem, "underexposed" / "overexposed" give exposure "under" / "over"; in the global
    colour problem, "<warm|cool|magenta|green> ... colour cast" gives the cast. A text without
    problem sections names no direction.
    """
    plan = parse_plan(text)
    light = (plan.problem_light or "").lower()
    colour = (plan.problem_global_color or "").lower()
    exposure = "under" if "underexposed" in light else "over" if "overexposed" in light else None
    match = _CAST_PATTERN.search(colour)
    return {"exposure": exposure, "cast": match.group(1) if match else None}


def says_no_problem(text: str) -> bool:
    """True when every problem section of `text` is the synthesizer's "nothing wrong" sentence."""
    plan = parse_plan(text)
    found = (plan.problem_light, plan.problem_global_color, plan.problem_specific_color)
    return all(f is not None and f.strip() == want for f, want in zip(found, NO_PROBLEM.values()))


def true_directions(kinds: Sequence[str]) -> dict[str, str | None]:
    exposure = "under" if "underexposed" in kinds else "over" if "overexposed" in kinds else None
    cast = next((k for k in kinds if k in CASTS), None)
    return {"exposure": exposure, "cast": cast}
