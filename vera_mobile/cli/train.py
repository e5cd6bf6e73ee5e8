"""`vera-mobile train`: train VeraRetouch-Nano on synthesized data (CPU; resumable from --work)."""

from __future__ import annotations

import argparse

from ..training.recipe import COLOUR_WEIGHT, DIAGNOSIS_WEIGHT, LEARNING_RATE, PLANNER_BATCH, PLANNER_STEPS, REFERENCE_STEPS
from .outputs import add_overwrite_option, check_new_folder


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("train", help="train VeraRetouch-Nano on synthesized data (CPU; resumable)")
    p.add_argument("--data", required=True, nargs="+", help="synthesized data set folder(s) (vera-mobile synthesize)")
    p.add_argument("--out", required=True, help="where the trained checkpoint directory is written")
    p.add_argument("--work", required=True, help="checkpoints and loss log; rerun with the same --work to resume")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference-steps", type=int, help=f"stage 1, reference encoder + renderer (default {REFERENCE_STEPS})")
    p.add_argument("--planner-steps", type=int, help=f"stage 2, planner end to end (default {PLANNER_STEPS})")
    p.add_argument("--planner-batch", type=int, help=f"examples per planner step (default {PLANNER_BATCH})")
    p.add_argument("--diagnosis-weight", type=float,
                   help=f"cross-entropy weight of the problem sections' tokens (default {DIAGNOSIS_WEIGHT:g}; "
                        "1 = plain cross-entropy)")
    p.add_argument("--colour-weight", type=float,
                   help=f"weight of the auxiliary loss that makes the image embeddings carry the view's colour "
                        f"statistics (default {COLOUR_WEIGHT:g}; 0 = off)")
    p.add_argument("--augment-views", action="store_true", default=None,
                   help="show the planner each photo as random crops and mirror images, so it cannot recognise "
                        "a training photo by its exact view (default off)")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {LEARNING_RATE:g})")
    p.add_argument("--init", help="fine-tune this trained nano model folder instead of training from scratch: "
                                  "its reference model and tokenizer are kept, only the planner stage runs")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: all cores)")
    add_overwrite_option(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..training.train import TrainOptions, train

    chosen = {name: getattr(args, name) for name in
              ("reference_steps", "planner_steps", "planner_batch", "diagnosis_weight", "colour_weight", "augment_views", "lr",
               "init", "threads")
              if getattr(args, name) is not None}
    check_new_folder(args.out, args.overwrite)
    options = TrainOptions(data=list(args.data), out=args.out, work=args.work, seed=args.seed, **chosen)
    out = train(options)
    if out is None:
        print(f"stopped at the time limit with progress saved in {args.work}; run the same command again to continue")
        return 0
    print(f"wrote {out} (config.json, tokenizer.json, model.safetensors, encoder_renderer.safetensors, training.json)")
    return 0
