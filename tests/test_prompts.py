"""Prompts must be byte-identical to upstream (docs/upstream-compatibility.md#prompt-bytes); bad params are clear errors."""

import json
import math

import pytest

from vera_mobile.errors import InputError
from vera_mobile.prompts import SLIDER_NAMES, VERA_ADDED_TOKENS, Request, organize_params, params_mask

HEAD = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
TAIL = "<|im_end|>\n<|im_start|>assistant\n"

# upstream data_samples/param.json, in its {"name": {"value": v}} shape
UPSTREAM_PARAM_JSON = {name: {"value": 0} for name in SLIDER_NAMES}
UPSTREAM_PARAM_JSON.update({"Exposure2012": {"value": 30}, "IncrementalTemperature": {"value": -40},
                            "Saturation": {"value": 30}})


def test_auto_prompt_bytes():
    expected = (
        HEAD + "<image>\n<Auto_Retouch_Task>\nNow, you are acting as a Retouch Agent. When I provide an image, "
        "please state the problems found in the image (from 3 aspects: lighting, global_color, specific color), "
        "and give the solution and retouch tokens." + TAIL
    )
    assert Request("auto").full_prompt() == expected


def test_style_prompt_bytes_keep_the_space_before_instruction():
    expected = (
        HEAD + "<image>\n<Style_Retouch_Task>\nNow, you are acting as a Retouch Agent. I will provide an image and "
        "an instruction, please give me a retouch plan and retouch tokens.\n Instruction: I want a {warm} look."
        + TAIL
    )
    assert Request("style", prompt="I want a {warm} look.").full_prompt() == expected


def test_param_prompt_bytes_match_upstream_dict_formatting():
    zeros = lambda names: ", ".join(f"'{n}': 0.0" for n in names)  # noqa: E731
    light = "'Exposure2012': 0.3, " + zeros(SLIDER_NAMES[1:10])
    color = "'IncrementalTemperature': -0.4, 'IncrementalTint': 0.0, 'Vibrance': 0.0, 'Saturation': 0.3"
    params_text = (
        "{'Light Adjustment': {" + light + "}, 'Color and Temperature Adjustment': {" + color + "}, "
        "'Specific Color Adjustment': {" + zeros(SLIDER_NAMES[14:]) + "}}"
    )
    expected = (
        HEAD + "<Professional_Retouch_Task>\nNow, you are acting as a Retouch Agent. I will provide an image and an "
        "professional instruction (plain text description or retouch operator parameters range from -1.0 to 1.0), "
        "please give me a retouch plan and retouch tokens.\n Instruction: " + params_text + TAIL
    )
    request = Request("param", params=UPSTREAM_PARAM_JSON)
    assert request.full_prompt() == expected
    assert "<image>" not in request.full_prompt()
    assert request.mask() == (1.0, 1.0, 0.0)  # upstream's verified mask for this file


def test_param_rounding_and_plain_numbers():
    organized = organize_params({"Exposure2012": 33.3333, "HueAdjustmentRed": -0.04})
    assert organized["Light Adjustment"]["Exposure2012"] == 0.333
    assert organized["Specific Color Adjustment"]["HueAdjustmentRed"] == -0.0  # rounds to zero
    assert params_mask({"HueAdjustmentRed": -0.04}) == (0.0, 0.0, 0.0)  # |v| <= 1e-4 after /100 and rounding
    assert params_mask({"HueAdjustmentRed": 0.05}) == (0.0, 0.0, 1.0)
    assert len(SLIDER_NAMES) == 38 and len(set(SLIDER_NAMES)) == 38


def test_vera_tokens_are_the_21_upstream_tokens():
    assert len(VERA_ADDED_TOKENS) == 21 and len(set(VERA_ADDED_TOKENS)) == 21
    assert {"<retouch_light>", "<retouch_color&temp>", "<retouch_colormixer>", "<Auto_Retouch_Task>",
            "<problem_globalcolor_start>", "<plan_specificcolor_end>", "<retouch_occ>"} <= set(VERA_ADDED_TOKENS)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"Exposure": 10}, "unknown slider name(s): Exposure. Valid sliders are: Exposure2012"),
        ({"Exposure2012": "bright"}, "must be a number"),
        ({"Exposure2012": True}, "must be a number"),
        ({"Exposure2012": math.nan}, "must be finite"),
        ({"Exposure2012": math.inf}, "must be finite"),
        ({"Exposure2012": 100.5}, "outside the range -100 .. 100"),
        ({"Saturation": {"value": -101}}, "outside the range"),
        ({"Saturation": {"val": 3}}, "must be a number"),
    ],
)
def test_bad_params_are_clear_errors(params, message):
    with pytest.raises(InputError, match=None) as err:
        Request("param", params=params)
    assert message in str(err.value)


def test_request_validation():
    with pytest.raises(InputError, match="unknown mode 'magic'"):
        Request("magic")
    with pytest.raises(InputError, match="style mode needs a text instruction"):
        Request("style", prompt="   ")
    with pytest.raises(InputError, match="param mode needs a slider set"):
        Request("param")
    with pytest.raises(InputError, match="reference mode has no planner prompt"):
        Request("reference").full_prompt()
    assert Request("reference").mask() == (1.0, 1.0, 1.0)


def test_cli_prompt_prints_exactly_the_prompt_and_one_newline(tmp_path, capsys):
    from vera_mobile.cli import main

    params_file = tmp_path / "param.json"
    params_file.write_text(json.dumps(UPSTREAM_PARAM_JSON))
    assert main(["prompt", "--mode", "param", "--params", str(params_file)]) == 0
    assert capsys.readouterr().out == Request("param", params=UPSTREAM_PARAM_JSON).full_prompt() + "\n"
    assert main(["prompt", "--mode", "style", "--prompt", "warm film"]) == 0
    assert capsys.readouterr().out == Request("style", prompt="warm film").full_prompt() + "\n"


def test_cli_prompt_bad_params_exit_2_with_message(tmp_path, capsys):
    from vera_mobile.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"Exposur2012": 5}')
    assert main(["prompt", "--mode", "param", "--params", str(bad)]) == 2
    assert "unknown slider name(s): Exposur2012" in capsys.readouterr().err
    assert main(["prompt", "--mode", "param", "--params", str(tmp_path / "none.json")]) == 2
    bad.write_text("{not json")
    assert main(["prompt", "--mode", "param", "--params", str(bad)]) == 2
