"""Parse the planner's reasoning text into problems and plans per group.

The text marks six sections with start/end tokens (prompts.SECTION_TOKENS). Upstream does not
enforce the format (docs/upstream-compatibility.md#reasoning-text), so the parser is tolerant: a section may be missing, may
lack its end token (it then ends at the next marker or at the end of the text), and text
outside any section is kept as `other`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from .prompts import RETOUCH_TOKENS, SECTION_TOKENS, VERA_ADDED_TOKENS

_ANY_MARKER = re.compile("|".join(re.escape(tok) for tok in sorted(VERA_ADDED_TOKENS, key=len, reverse=True)))


@dataclass
class Plan:
    problem_light: str | None = None
    problem_global_color: str | None = None
    problem_specific_color: str | None = None
    plan_light: str | None = None
    plan_global_color: str | None = None
    plan_specific_color: str | None = None
    other: str = ""
    retouch_tokens: list[str] = field(default_factory=list)  # in the order they appear

    def to_dict(self) -> dict:
        return asdict(self)


def parse_plan(raw_text: str) -> Plan:
    """Split raw generated text (special tokens kept) into the plan's sections."""
    plan = Plan()
    starts = {start: name for name, (start, _) in SECTION_TOKENS.items()}
    current: str | None = None
    other: list[str] = []
    position = 0
    for match in [*_ANY_MARKER.finditer(raw_text), None]:
        piece = raw_text[position: match.start() if match else len(raw_text)]
        if current is not None:
            setattr(plan, current, ((getattr(plan, current) or "") + piece).strip())
        elif piece.strip():
            other.append(piece.strip())
        if match is None:
            break
        marker = match.group(0)
        position = match.end()
        current = starts.get(marker)  # a start opens its section; any other marker closes the open one
        if current is not None and getattr(plan, current) is None:
            setattr(plan, current, "")
        if marker in RETOUCH_TOKENS:
            plan.retouch_tokens.append(marker)
    plan.other = "\n".join(other)
    return plan
