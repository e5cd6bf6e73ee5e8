"""Does the model leave alone clean photos it was trained on, and clean photos it has never seen?

For each data set, the first `--records` clean auto records (nothing applied; the right answer is
"no problem") are retouched in auto mode and the problem sections read back: how often the model
says there is no problem, and how often it names an exposure problem or a colour cast that is not
there. A model that says "no problem" on its training photos and invents problems on held-out ones
recognises photos instead of judging them.

    python benchmarks/clean_recall.py --model data/nano3c --data data/heldout data/train6 data/train4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vera_mobile.photo_io import load_photo  # noqa: E402
from vera_mobile.prompts import Request  # noqa: E402
from vera_mobile.runtime.retoucher import Retoucher  # noqa: E402
from vera_mobile.training.synthesis import read_directions, read_records, says_no_problem  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nano", help="a checkpoint folder or built-in model (runs on torch)")
    parser.add_argument("--data", nargs="+", type=Path, required=True, help="synthesized data sets (vera-mobile synthesize)")
    parser.add_argument("--records", type=int, default=37, help="clean records per data set")
    args = parser.parse_args()

    retoucher = Retoucher.load(args.model)
    print("| model | data | clean records | says no problem | names an exposure problem | names a cast |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for data in args.data:
        clean = [row for row in read_records(data) if row["mode"] == "auto" and not row["kinds"]][:args.records]
        no_problem = exposure = cast = 0
        for row in clean:
            text = retoucher.retouch(load_photo(row["input"]), Request(mode="auto")).reasoning.raw_text
            directions = read_directions(text)
            no_problem += says_no_problem(text)
            exposure += directions["exposure"] is not None
            cast += directions["cast"] is not None
        print(f"| {args.model} | {data} | {len(clean)} | {no_problem} | {exposure} | {cast} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
