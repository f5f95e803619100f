"""Which members of an escalation cascade are worth asking, learned from the journal's history.

A cascade asks the cheapest model first and escalates while the quality gate rejects the answer
(FrugalGPT). Escalating to a model that history shows doing *worse* on the task's capabilities
than a cheaper member already asked only adds cost and latency: it is expected to fail the gate
more often, not less. So, walking the members cheapest first, a member is skipped when a cheaper
kept member measured better by more than the noise of the two figures (a one-sided test of two
proportions at 95%, on the samples behind each). A member without a measurement for every needed
capability is kept, and never used to skip another: a catalog prior is an estimate, not
evidence. Models a task names in `fallback [...]` are the program's own instruction and always
stay. The order stays cheapest first, which is the right order for a cascade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Sequence

from bmad.compiler.history import ANY_CAPABILITY, ModelHistory

Z_ONE_SIDED_95 = 1.645


@dataclass(frozen=True, slots=True)
class Measured:
    """A model's measured quality on a task's capabilities (the weakest one), and on how many samples."""

    quality: float
    samples: int

    def variance(self) -> float:
        # the mean of n scores in [0, 1] varies at most as a proportion's; add-one smoothing keeps
        # 0/n and n/n from claiming certainty
        n = max(1, self.samples)  # a history read with min_samples 0 may hold an empty figure
        p = (self.quality * n + 1) / (n + 2)
        return p * (1 - p) / n


def measured_quality(model: str, needs: Sequence[str], history: ModelHistory) -> Measured | None:
    """The weakest of the needed capabilities as history measured them; None if any is unmeasured."""
    weakest: Measured | None = None
    for capability in needs or (ANY_CAPABILITY,):
        obs = history.observation(model, capability)
        if obs is None or obs.quality is None:
            return None
        if weakest is None or obs.quality < weakest.quality:
            weakest = Measured(obs.quality, obs.quality_samples or obs.samples)
    return weakest


def outperforms(cheaper: Measured, dearer: Measured) -> bool:
    """`cheaper` measured better than `dearer` beyond what sampling noise explains."""
    gap = cheaper.quality - dearer.quality
    return gap > 0 and gap > Z_ONE_SIDED_95 * math.sqrt(cheaper.variance() + dearer.variance())


def learn_cascade(cheapest_first: Sequence[str], needs: Sequence[str], history: ModelHistory | None,
                  keep: Collection[str] = ()) -> tuple[tuple[str, ...], dict[str, str]]:
    """The members worth asking, still cheapest first, and {skipped member: why}. `keep`: members
    the program names itself (a task's `fallback [...]`), never skipped."""
    if history is None or len(cheapest_first) < 2:
        return tuple(cheapest_first), {}
    kept: list[str] = []
    skipped: dict[str, str] = {}
    best: tuple[str, Measured] | None = None  # the best measured member kept so far
    for model in cheapest_first:
        mine = measured_quality(model, needs, history)
        if mine is not None and best is not None and model not in keep and outperforms(best[1], mine):
            skipped[model] = (f"history {mine.quality:.2f} over {mine.samples} answers, below cheaper "
                              f"{best[0]}'s {best[1].quality:.2f} over {best[1].samples}")
            continue
        kept.append(model)
        if mine is not None and (best is None or mine.quality > best[1].quality):
            best = (model, mine)
    return tuple(kept), skipped


def describe_skipped(skipped: dict[str, str]) -> str:
    """The route reason's note on the members history took out of the cascade ("" for none)."""
    return "".join(f"; skips {model}: {why}" for model, why in skipped.items())
