"""`vera-mobile prompt`: print the exact chat-formatted prompt the planner sees (and, with --model, its token ids)."""

from __future__ import annotations

import argparse
import json
import sys

from ..builtin import resolve_model
from ..prompts import PLANNER_MODES, Request
from .inputs import read_params


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("prompt", help="print the exact chat-formatted prompt the planner sees")
    p.add_argument("--mode", choices=PLANNER_MODES, default="auto")
    p.add_argument("--prompt", help="style mode: the text instruction")
    p.add_argument("--params", help="param mode: JSON file of slider values")
    p.add_argument("--model", help="also print the token ids this model's tokenizer gives the prompt "
                                   "(built-in name such as nano, or a checkpoint directory)")
    return p


def run(args: argparse.Namespace) -> int:
    request = Request(mode=args.mode, prompt=args.prompt, params=read_params(args.params))
    sys.stdout.write(request.full_prompt() + "\n")
    if args.model:
        from ..prompts import IMAGE_TOKEN_INDEX
        from ..tokenizer import Tokenizer

        ids = Tokenizer.from_dir(resolve_model(args.model)).encode_prompt(request.full_prompt())
        print(f"token ids ({len(ids)}; {IMAGE_TOKEN_INDEX} marks where the image embeddings go):")
        print(json.dumps(ids))
    return 0
