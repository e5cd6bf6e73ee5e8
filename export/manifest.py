"""The manifest's constant sections, taken from the one place each fact lives in the SDK.

Nothing here restates a prompt, token or preprocessing constant: every value is read from
vera_mobile.prompts / views / lut / runtime, so the apps (which read only the manifest) can
never drift from the Python runtime.
"""

from __future__ import annotations

from typing import Any

from vera_mobile import prompts, views
from vera_mobile.lut import DEFAULT_LUT_SIZE
from vera_mobile.render import DEFAULT_TILE


def prompt_section() -> dict[str, Any]:
    param_example = {"Exposure2012": 30, "IncrementalTemperature": -40, "Saturation": 30}
    return {
        "chat_template": prompts.CHAT_TEMPLATE,  # "{user}" is replaced by the mode's message
        "modes": {
            "auto": prompts.AUTO_TEMPLATE,
            "style": prompts.STYLE_TEMPLATE,  # "{prompt}" = the user's instruction
            "param": prompts.PARAM_TEMPLATE,  # "{params}" = Python str() of the grouped slider dict
        },
        "image_token": prompts.IMAGE_TOKEN,
        "image_token_index": prompts.IMAGE_TOKEN_INDEX,
        "retouch_tokens": list(prompts.RETOUCH_TOKENS),
        "added_tokens": list(prompts.VERA_ADDED_TOKENS),  # every VeraRetouch token: each one closes a plan section
        "section_tokens": {name: list(pair) for name, pair in prompts.SECTION_TOKENS.items()},
        "slider_groups": {group: list(names) for group, names in prompts.SLIDER_GROUPS.items()},
        "slider_group_order": list(prompts.SLIDER_GROUPS),  # JSON objects have no order in some parsers (Swift)
        "param_rules": {
            "limit": prompts.SLIDER_LIMIT,
            "scale": "value / 100 rounded to 3 decimals; every slider listed, absent ones 0.0",
            "format": "Python str() of {group: {slider: float}} in slider_groups order (single quotes, repr floats)",
            "mask_epsilon": prompts.MASK_EPSILON,
            "example": {"params": param_example, "prompt": prompts.Request("param", params=param_example).full_prompt()},
        },
        "masks": {
            "auto": [1.0, 1.0, 1.0],
            "style": [1.0, 1.0, 1.0],
            "reference": [1.0, 1.0, 1.0],
            "param": "per group: 0 if every scaled value in the group has |v| <= mask_epsilon, else 1",
        },
        "latent_rule": "final-norm hidden state at the position before the first occurrence of each retouch token; "
        "missing retouch tokens are appended in order at the end and gathered by the same rule",
    }


def preprocessing_section(image_size: int) -> dict[str, Any]:
    return {
        "planner": {
            "short_side": views.PLANNER_SHORT_SIDE,
            "short_side_resample": "lanczos",
            "long_side": "int(long * short_side / short)",
            "max_long_side": views.PLANNER_MAX_LONG_SIDE,
            "above_max_long_side": "scale both sides by max_long_side / long_side, round half even, at least 1",
            "pad": "centre on a black square of side max(w, h); offset (long - short) // 2",
            "size": image_size,
            "resize_resample": "bicubic",
            "scale": "pixels / 255, CHW, RGB, no mean/std",
        },
        "renderer": {"input": "(pixels / max_value - 0.5) * 2, RGB", "output": "round_half_even(clip(y, 0, 1) * max_value)"},
        "reference": {"channel_order": "BGR", "size": views.REFERENCE_SIZE, "resample": "bilinear (aspect ratio not kept)",
                      "scale": "pixels / 255 * 2 - 1"},
        "orientation": "apply EXIF orientation once, before every view",
        "colour": "convert embedded ICC profiles to sRGB before every view",
    }


def renderer_section(bias_size: int, latent_dim: int) -> dict[str, Any]:
    return {"tile": DEFAULT_TILE, "lut_size": DEFAULT_LUT_SIZE, "bias_size": bias_size, "latent_dim": latent_dim,
            "lut_order": "red fastest, then green, then blue (.cube order)"}
