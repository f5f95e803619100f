"""What `strategy adaptive` may do when money runs short, in one place for the runtime that does it
(runtime/interpreter.py `_adapt`) and the planner that bounds it (estimate_cost.adaptive_fronts):
which models it may move in front of the one about to answer. The compiler never imports the
runtime, so the rule lives here."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence


def cheaper_candidates(candidates: Iterable[Any], chain: Sequence[str], head: str,
                       task_expected_usd: float | None, closed: bool) -> list[Any]:
    """The candidates (a TaskPlan's rows) cheaper than `head`, the model about to answer: qualified,
    available and priced, under `head`'s expected cost (its row's, else the task's; unknown: any
    priced model; a free model: none, as nothing is under $0). A task whose chain is closed
    (`fallback none`, `fallback only [...]`) must not reach a model outside it: only its own."""
    candidates = list(candidates)
    now = next((c.cost_usd_expected for c in candidates if c.model == head), task_expected_usd)
    ceiling = math.inf if now is None else now
    return [c for c in candidates
            if c.qualified and c.available and c.cost_usd_expected is not None
            and c.model != head and c.cost_usd_expected < ceiling
            and (c.model in chain or not closed)]
