"""Solo estimate: the router's view of one model doing a task alone, split in two steps.

`estimate_task(td, SoloAssignment(model, ...), solo=True)` redoes, for every declared model, work
that does not depend on the model: the fan-out and reduce tree, the gate's attempts, the retries,
the token counts, the named gate judge's cost and latency. `SoloEstimate(td, catalog, history)`
does that once per task; `cost_and_latency(entry)` then only multiplies the model's prices and
latency profile by the counts, in exactly the order `estimate_task` does, so every figure is the
same float (tests/compiler/passes/test_solo_estimate.py checks it on every spec, example and
fixture).
"""

from __future__ import annotations

import math

from bmad.compiler.catalog import CatalogEntry, ModelCatalog
from bmad.compiler.history import ModelHistory
from bmad.compiler.passes.draft import TaskDraft
from bmad.compiler.passes.estimate_cost import JUDGE_OUTPUT_TOKENS, fan_size, gate_attempts, gate_bar, out_of_reach
from bmad.compiler.passes.measure_prompts import reduce_levels, reduce_waves


class SoloEstimate:
    """The model-independent parts of one task's solo estimate (see the module docstring)."""

    __slots__ = ("needs", "history", "fan", "per_level", "reduced", "attempts_e", "attempts_short", "bar",
                 "calls_worst", "in_e", "out_e", "gated", "judge_named", "gate_in_e", "gate_judge",
                 "gate_judge_cost", "gate_judge_latency")

    def __init__(self, td: TaskDraft, catalog: ModelCatalog, history: ModelHistory | None):
        task, shape = td.task, td.shape
        self.needs, self.history = td.needs, history
        fan = fan_size(td.plan)
        self.reduced = task.reduce is not None
        per_level = reduce_levels(td.reduce_items, task.reduce.chunk_size) if self.reduced else (1,)
        if self.reduced:
            fan = sum(per_level)
        self.fan, self.per_level = fan, per_level
        self.attempts_e, attempts_w = gate_attempts(task.quality)
        # a model the gate's bar is out of reach of runs every round (`out_of_reach`); the bar
        # matters only when the rounds do (`else refine|retry`)
        self.attempts_short = gate_attempts(task.quality, 1.0)[0]
        self.bar = gate_bar(task.quality) if self.attempts_short != self.attempts_e else None
        retries_w = task.retry.attempts if task.retry and task.retry.attempts > 0 else 1
        self.calls_worst = attempts_w * retries_w * fan
        self.in_e, self.out_e = shape.input_expected, shape.output_expected
        self.gated = task.quality is not None
        self.gate_in_e = self.in_e + self.out_e
        # a named gate judge is the same for every candidate; else the candidate judges itself
        self.gate_judge: CatalogEntry | None = None
        self.gate_judge_cost: float | None = None
        self.gate_judge_latency = 0.0
        judge = task.quality.judge if self.gated else None
        self.judge_named = judge is not None
        if judge is not None:
            self.gate_judge = catalog.get(judge.name)
            if self.gate_judge is not None:
                self.gate_judge_cost = self.gate_judge.call_cost(self.gate_in_e, JUDGE_OUTPUT_TOKENS)
                self.gate_judge_latency = self.gate_judge.call_latency(JUDGE_OUTPUT_TOKENS, (), history)

    def attempts(self, entry: CatalogEntry) -> float:
        """The gate's expected attempts for `entry` answering: every round when its bar is out of
        the model's reach (as `estimate_task` counts them)."""
        if self.bar is not None and out_of_reach(entry.expected_quality(self.needs, self.history), self.bar):
            return self.attempts_short
        return self.attempts_e

    def cost_and_latency(self, entry: CatalogEntry) -> tuple[float | None, float]:
        """(expected cost in USD rounded to 6 places or None when unpriced, latency in s rounded
        to 3): `estimate_task`'s `cost_usd_expected` and `latency_s` for `entry` alone.

        `entry.call_cost` and, without a history, `entry.call_latency` are written out here (the
        same operations in the same order): this runs once per (task, model)."""
        history = self.history
        price_in, price_out = entry.price_input_per_m, entry.price_output_per_m
        priced = price_in is not None and price_out is not None
        if history:
            failure = history.failure_rate(entry.name, self.needs) or 0.0
            latency = entry.call_latency(self.out_e, self.needs, history)
        else:
            failure = 0.0
            latency = entry.latency_base_s + entry.latency_per_token_s * self.out_e
        attempts_e = self.attempts(entry) * (1 + failure)
        calls_e = attempts_e * self.fan
        cost: float | None = None
        if priced:
            cost = 0.0 + calls_e * ((self.in_e * price_in + self.out_e * price_out) / 1e6)
        if self.gated:
            if not self.judge_named:
                judge_cost = ((self.gate_in_e * price_in + JUDGE_OUTPUT_TOKENS * price_out) / 1e6
                              if priced else None)
                judge_latency = (entry.call_latency(JUDGE_OUTPUT_TOKENS, (), history) if history
                                 else entry.latency_base_s + entry.latency_per_token_s * JUDGE_OUTPUT_TOKENS)
                judge_priced = priced
            else:
                judge = self.gate_judge
                judge_cost, judge_latency = self.gate_judge_cost, self.gate_judge_latency
                judge_priced = judge is not None and judge.priced
            if cost is not None:
                cost = cost + calls_e * judge_cost if judge_priced else None
            per_item = (0 + latency + judge_latency) * attempts_e
        else:
            per_item = latency * attempts_e
        if self.reduced:
            total_latency = per_item * reduce_waves(self.per_level, entry.concurrency)
        else:
            total_latency = per_item * math.ceil(self.fan / max(1, entry.concurrency))
        return (None if cost is None else round(cost, 6)), round(total_latency, 3)

    def pool_costs(self, entries: list[CatalogEntry], profile: tuple | None = None
                   ) -> list[tuple[float | None, float]]:
        """`cost_and_latency` of each of `entries`, in order: the same floats (the same operations
        in the same order), with what no model changes worked out once for the pool. `profile`:
        `pool_profile(entries)`, when the caller keeps it for many tasks."""
        if self.history or self.bar is not None:
            return [self.cost_and_latency(entry) for entry in entries]
        attempts_e = self.attempts_e * (1 + 0.0)  # no history: no failure rate
        calls_e = attempts_e * self.fan
        in_e, out_e, gate_in_e = self.in_e, self.out_e, self.gate_in_e
        gated, judge_named, reduced, per_level, fan = self.gated, self.judge_named, self.reduced, self.per_level, self.fan
        if gated and judge_named:
            judge = self.gate_judge
            named_cost, named_latency = self.gate_judge_cost, self.gate_judge_latency
            named_priced = judge is not None and judge.priced
        ceil = math.ceil
        out: list[tuple[float | None, float]] = []
        for price_in, price_out, base, per_token, concurrency in profile or pool_profile(entries):
            priced = price_in is not None and price_out is not None
            latency = base + per_token * out_e
            cost: float | None = None
            if priced:
                cost = 0.0 + calls_e * ((in_e * price_in + out_e * price_out) / 1e6)
            if gated:
                if not judge_named:
                    judge_cost = (gate_in_e * price_in + JUDGE_OUTPUT_TOKENS * price_out) / 1e6 if priced else None
                    judge_latency = base + per_token * JUDGE_OUTPUT_TOKENS
                    judge_priced = priced
                else:
                    judge_cost, judge_latency, judge_priced = named_cost, named_latency, named_priced
                if cost is not None:
                    cost = cost + calls_e * judge_cost if judge_priced else None
                per_item = (0 + latency + judge_latency) * attempts_e
            else:
                per_item = latency * attempts_e
            if reduced:
                total_latency = per_item * reduce_waves(per_level, concurrency)
            else:
                total_latency = per_item * ceil(fan / concurrency)
            out.append(((None if cost is None else round(cost, 6)), round(total_latency, 3)))
        return out


def pool_profile(entries: list[CatalogEntry]) -> tuple[tuple, ...]:
    """What `SoloEstimate.pool_costs` reads of each model: prices per 1M tokens, the latency
    profile, and the concurrency (at least 1)."""
    return tuple((e.price_input_per_m, e.price_output_per_m, e.latency_base_s, e.latency_per_token_s,
                  max(1, e.concurrency)) for e in entries)
