"""Is a wrongly named colour cast a decoding artefact or the model's belief?

Greedy decoding decides "cast or no cast" at the first word of the global-colour problem sentence,
where every cast sentence starts with the same words ("There is a ..."): four casts' probabilities
add up against the one "no problem" sentence. If that were why the model names casts on photos that
have none, picking the most likely *sentence class* would fix it. For each auto record this
retouches the photo greedily, then, after the model's own text up to the global-colour problem
section, scores every candidate sentence by its full log-probability (teacher-forced): the
"no problem" sentence, and each cast at the strengths `CAST_RANGE` produces. A class's score sums
its sentences' probabilities. Counts are printed for records with and without a cast.

    python benchmarks/cast_decision.py --model data/nano3b --data data/heldout --records 40
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vera_mobile.prompts import SECTION_TOKENS, Request  # noqa: E402
from vera_mobile.runtime.retoucher import Retoucher  # noqa: E402
from vera_mobile.training.synthesis import CAST_PROBES, CASTS, problem_sentences, read_directions, read_records  # noqa: E402
from vera_mobile.training.synthesis.kinds import CAST_RANGE  # noqa: E402

def candidate_sentences() -> dict[str, set[str]]:
    """Each class's global-colour problem sentences, as the synthesizer writes them."""
    out = {"none": {problem_sentences([], {}, None)["global_color"]}}
    for cast in CASTS:
        ((slider, probe),) = CAST_PROBES[cast].items()  # the cast's slider and its sign
        sign = 1 if probe > 0 else -1
        out[cast] = {problem_sentences([cast], {slider: sign * amount}, None)["global_color"]
                     for amount in range(CAST_RANGE[0], CAST_RANGE[1] + 1)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nano", help="a checkpoint folder or built-in model (runs on torch)")
    parser.add_argument("--data", required=True, type=Path, help="synthesized held-out records (vera-mobile synthesize)")
    parser.add_argument("--records", type=int, default=40, help="auto records per group (with / without a cast)")
    args = parser.parse_args()

    retoucher = Retoucher.load(args.model)
    planner, tokenizer = retoucher.planner, retoucher.tokenizer
    prompts: list[np.ndarray] = []
    decode = planner.decode

    def remember_prompt(embeds: np.ndarray):  # the first decode call of a retouch is the whole prompt
        prompts.append(embeds.copy())
        return decode(embeds)

    planner.decode = remember_prompt
    start, end = SECTION_TOKENS["problem_global_color"]
    (start_id,) = tokenizer.encode(start)
    classes = {name: [tokenizer.encode(s + end) for s in sentences] for name, sentences in candidate_sentences().items()}

    @torch.no_grad()
    def log_probability(prefix: np.ndarray, ids: list[int]) -> float:
        embeds = torch.from_numpy(np.concatenate([prefix, planner.embed(np.array(ids))]))[None]
        logits, _, _ = planner.model.decode(embeds, torch.arange(embeds.shape[1])[None], None)
        steps = torch.log_softmax(logits[0, len(prefix) - 1 : -1].float(), -1)
        return float(steps[torch.arange(len(ids)), torch.tensor(ids)].sum())

    auto = [r for r in read_records(args.data) if r["mode"] == "auto"]
    groups = {"without a cast": [r for r in auto if not set(r["kinds"]) & set(CASTS)][: args.records],
              "with a cast": [r for r in auto if set(r["kinds"]) & set(CASTS)][: args.records]}
    print("| records | n | greedy: right | greedy: says none | best class: right | best class: says none |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, records in groups.items():
        count = Counter()
        for record in records:
            truth = next((k for k in record["kinds"] if k in CASTS), "none")
            prompts.clear()
            text = retoucher.retouch(record["input"], Request("auto")).raw_text
            greedy = read_directions(text)["cast"] or "none"
            ids = tokenizer.encode(text)
            prefix = np.concatenate([prompts[0], planner.embed(np.array(ids[: ids.index(start_id) + 1]))])
            scores = {c: np.logaddexp.reduce([log_probability(prefix, s) for s in sentences])
                      for c, sentences in classes.items()}
            best = max(scores, key=scores.get)
            count.update({"greedy right": greedy == truth, "greedy none": greedy == "none",
                          "best right": best == truth, "best none": best == "none"})
        n = len(records)
        print(f"| {name} | {n} | {count['greedy right']} | {count['greedy none']} | {count['best right']} | "
              f"{count['best none']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
