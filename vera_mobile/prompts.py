"""Prompts, special tokens, slider names and retouch masks: the single source of truth.

Every string here is a data format the upstream VeraRetouch checkpoint was trained on
(docs/upstream-compatibility.md) and must stay byte-identical. The export toolchain copies these
values into the bundle manifest, so the Android and iOS apps never re-type them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Mapping

from .errors import InputError

# --- Special tokens -------------------------------------------------------------------------------

IMAGE_TOKEN = "<image>"
IMAGE_TOKEN_INDEX = -200  # placeholder id spliced out for the 256 image features

RETOUCH_LIGHT = "<retouch_light>"
RETOUCH_COLORTEMP = "<retouch_color&temp>"
RETOUCH_COLORMIXER = "<retouch_colormixer>"
# The three control tokens in latent order: light, global colour, specific colour.
RETOUCH_TOKENS = (RETOUCH_LIGHT, RETOUCH_COLORTEMP, RETOUCH_COLORMIXER)

TASK_AUTO = "<Auto_Retouch_Task>"
TASK_STYLE = "<Style_Retouch_Task>"
TASK_PROFESSIONAL = "<Professional_Retouch_Task>"

# (start, end) markers of the six reasoning sections, keyed by plan field name.
SECTION_TOKENS = {
    "problem_light": ("<problem_light_start>", "<problem_light_end>"),
    "problem_global_color": ("<problem_globalcolor_start>", "<problem_globalcolor_end>"),
    "problem_specific_color": ("<problem_specificcolor_start>", "<problem_specificcolor_end>"),
    "plan_light": ("<plan_light_start>", "<plan_light_end>"),
    "plan_global_color": ("<plan_globalcolor_start>", "<plan_globalcolor_end>"),
    "plan_specific_color": ("<plan_specificcolor_start>", "<plan_specificcolor_end>"),
}

# The 21 tokens VeraRetouch adds to the Qwen2 tokenizer, in upstream's constants.py order.
VERA_ADDED_TOKENS = (
    "<retouch_start>",
    "<retouch_end>",
    "<retouch_occ>",
    *RETOUCH_TOKENS,
    *(tok for pair in SECTION_TOKENS.values() for tok in pair),
    TASK_AUTO,
    TASK_STYLE,
    TASK_PROFESSIONAL,
)

# --- Chat template (conv_templates["qwen_2"]) ----------------------------------------------------

SYSTEM_PROMPT = "<|im_start|>system\nYou are a helpful assistant."
CHAT_TEMPLATE = (
    SYSTEM_PROMPT + "<|im_end|>\n" + "<|im_start|>user\n" + "{user}" + "<|im_end|>\n" + "<|im_start|>assistant\n"
)

# --- User messages per mode --------------------------------------------------------------------

AUTO_TEMPLATE = (
    IMAGE_TOKEN + "\n" + TASK_AUTO + "\nNow, you are acting as a Retouch Agent. When I provide an image, "
    "please state the problems found in the image (from 3 aspects: lighting, global_color, specific color), "
    "and give the solution and retouch tokens."
)
STYLE_TEMPLATE = (
    IMAGE_TOKEN + "\n" + TASK_STYLE + "\nNow, you are acting as a Retouch Agent. I will provide an image and an "
    "instruction, please give me a retouch plan and retouch tokens.\n Instruction: {prompt}"
)
# Param mode has no <image>: upstream's LLM sees text only in this mode.
PARAM_TEMPLATE = (
    TASK_PROFESSIONAL + "\nNow, you are acting as a Retouch Agent. I will provide an image and an professional "
    "instruction (plain text description or retouch operator parameters range from -1.0 to 1.0), please give "
    "me a retouch plan and retouch tokens.\n Instruction: {params}"
)

# Strings in user text that the tokenizer would turn into control tokens: the chat markers
# (<|im_start|>, <|im_end|>, <|endoftext|>, ...), the image placeholder and VeraRetouch's own tokens.
# A style prompt holding one could end the user's turn, inject retouch tokens or add an image slot,
# so it is refused (the app cores instead tokenize the user's text as plain text).
CONTROL_TEXT = re.compile(r"<\|[^<>|]*\|>|" + "|".join(re.escape(t) for t in (IMAGE_TOKEN, *VERA_ADDED_TOKENS)))

MODES = ("auto", "style", "param", "reference")
PLANNER_MODES = ("auto", "style", "param")

# --- The 38 sliders in their three groups -------------------------------------------------------

_COLOR_BANDS = ("Red", "Orange", "Yellow", "Green", "Aqua", "Blue", "Purple", "Magenta")

SLIDER_GROUPS: dict[str, tuple[str, ...]] = {
    "Light Adjustment": (
        "Exposure2012", "Contrast2012", "Highlights2012", "Shadows2012", "Whites2012", "Blacks2012",
        "ParametricShadows", "ParametricDarks", "ParametricLights", "ParametricHighlights",
    ),
    "Color and Temperature Adjustment": ("IncrementalTemperature", "IncrementalTint", "Vibrance", "Saturation"),
    "Specific Color Adjustment": tuple(
        f"{kind}Adjustment{band}" for kind in ("Hue", "Saturation", "Luminance") for band in _COLOR_BANDS
    ),
}
SLIDER_NAMES: tuple[str, ...] = tuple(name for group in SLIDER_GROUPS.values() for name in group)
SLIDER_LIMIT = 100.0  # sliders are given on a ±100 scale and divided by 100 for the prompt
MASK_EPSILON = 0.0001  # a group is "off" when every scaled value has |v| <= this (upstream rule)


def validate_params(params: Mapping[str, object]) -> dict[str, float]:
    """Check a slider set and return it as {name: float} on the ±100 scale.

    Accepts either plain numbers or upstream's param.json shape ``{"Exposure2012": {"value": 30}}``.
    Unknown names, non-numbers, NaN/inf and values beyond ±100 are errors (upstream silently
    drops unknown names, which hides typos).
    """
    if not isinstance(params, Mapping):
        raise InputError(f"params must be a mapping of slider name to value, got {type(params).__name__}")
    unknown = sorted(name for name in params if name not in SLIDER_NAMES)
    if unknown:
        raise InputError(
            f"unknown slider name(s): {', '.join(map(str, unknown))}. Valid sliders are: {', '.join(SLIDER_NAMES)}"
        )
    clean: dict[str, float] = {}
    for name, raw in params.items():
        value = raw.get("value") if isinstance(raw, Mapping) else raw
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"slider {name}: value must be a number, got {value!r}")
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            raise InputError(f"slider {name}: value must be finite, got {value}")
        if abs(value) > SLIDER_LIMIT:
            raise InputError(f"slider {name}: value {value:g} is outside the range -100 .. 100")
        clean[name] = value
    return clean


def organize_params(params: Mapping[str, object]) -> dict[str, dict[str, float]]:
    """Group validated sliders as upstream does: every slider present, value/100 rounded to 3 places."""
    clean = validate_params(params)
    return {
        group: {name: round(clean.get(name, 0.0) / 100.0, 3) for name in names}
        for group, names in SLIDER_GROUPS.items()
    }


def params_mask(params: Mapping[str, object]) -> tuple[float, float, float]:
    """Retouch mask for param mode: a group is 0 when all its scaled values are ~0 (upstream's rule)."""
    organized = organize_params(params)
    return tuple(
        0.0 if all(abs(v) <= MASK_EPSILON for v in group.values()) else 1.0 for group in organized.values()
    )  # type: ignore[return-value]


def check_user_text(text: object) -> None:
    """Refuse a style prompt that is not text, is not valid Unicode, or holds a control token."""
    if not isinstance(text, str):
        raise InputError(f"the prompt must be text, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # e.g. bytes of another encoding passed on a UTF-8 command line
        raise InputError("the prompt is not valid UTF-8 text; check your terminal's encoding") from None
    found = CONTROL_TEXT.search(text)
    if found:
        raise InputError(
            f"the prompt contains {found.group()!r}, which is one of the model's control tokens; "
            "remove it (user text may not contain control tokens)"
        )


@dataclass(frozen=True)
class Request:
    """One retouch request: the mode plus whatever that mode needs."""

    mode: str
    prompt: str | None = None
    params: Mapping[str, object] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.mode == "style" and not (self.prompt and self.prompt.strip()):
            raise InputError("style mode needs a text instruction (prompt), e.g. 'I want a warm film look.'")
        if self.prompt is not None:
            check_user_text(self.prompt)
        if self.mode == "param":
            if self.params is None:
                raise InputError("param mode needs a slider set (params), e.g. {'Exposure2012': 30}")
            validate_params(self.params)

    @property
    def uses_image_tokens(self) -> bool:
        """Whether the planner prompt contains the <image> placeholder (not in param mode)."""
        return self.mode in ("auto", "style")

    def user_message(self) -> str:
        if self.mode == "auto":
            return AUTO_TEMPLATE
        if self.mode == "style":
            return STYLE_TEMPLATE.format(prompt=self.prompt)
        if self.mode == "param":
            # str() of the nested dict, exactly as upstream formats it (single quotes, repr floats).
            return PARAM_TEMPLATE.format(params=str(organize_params(self.params or {})))
        raise InputError("reference mode has no planner prompt; it uses the reference encoder")

    def full_prompt(self) -> str:
        """The exact chat-formatted string the planner sees."""
        return CHAT_TEMPLATE.format(user=self.user_message())

    def mask(self) -> tuple[float, float, float]:
        """Which of the three control latents are kept (1) or zeroed (0)."""
        if self.mode == "param":
            return params_mask(self.params or {})
        return (1.0, 1.0, 1.0)
