"""Estimate cost: dollars, tokens and latency per task (expected and worst case) and per workflow.

A task's calls, from its clauses (all documented in docs/planning.md):
- one call per attempt by the routed model, or one per consensus participant (`vote`, `weighted`,
  `similarity`), plus one judge call (`consensus judge`, `best_of`), one synthesiser call
  (`ensemble`), or 2 x rounds more calls per participant (`peer_review`: review, then revise);
- a quality gate adds a judge call per attempt (the `judged by` model, else the task's own);
  `else refine max N` / `else retry N` re-run the task: worst 1 + N attempts, expected
  sum(p^k, k=0..N) with p = `GATE_FAILURE_PROBABILITY` (0.3); `else escalate` walks the cascade:
  worst every model once, expected model k weighted by p^k;
- `retry N` multiplies the worst case by N attempts; the expected case by 1 + the observed
  failure rate (history), else 1;
- `for each` multiplies by the fan-out size; `reduce ... in chunks of N` makes a tree of calls.
Latency: per call, the model's profile (history first) for the expected output; participants run
in parallel; fan-out items run `concurrency` at a time (the provider's `concurrent` limit).
Unknown prices make the cost None (never $0); `bmad plan` warns.
"""

from __future__ import annotations

import math
from dataclasses import replace

from bmad.compiler.catalog import DEFAULT_PROVIDER_CONCURRENCY, CatalogEntry, ModelCatalog
from bmad.compiler.diagnostics import warning
from bmad.compiler.history import ModelHistory
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, TaskDraft, WorkflowDraft, revise
from bmad.compiler.passes.measure_prompts import reduce_calls
from bmad.compiler.plan import Estimate, TaskPlan

GATE_FAILURE_PROBABILITY = 0.3
JUDGE_OUTPUT_TOKENS = 100
DEFAULT_PEER_REVIEW_ROUNDS = 1


class SoloAssignment:
    """The router's question: what if `model` did the task alone? (duck-types a TaskPlan)"""

    __slots__ = ("model", "fan_out")
    participants: tuple[str, ...] = ()
    cascade: tuple[str, ...] = ()
    judge = None

    def __init__(self, model: str, fan_out: int | None):
        self.model, self.fan_out = model, fan_out


class _Sum:
    """Accumulates calls of one task: cost stays None once an unpriced model is involved."""

    __slots__ = ("cost_exp", "cost_worst", "tokens_exp", "tokens_worst", "calls_exp", "calls_worst")

    def __init__(self) -> None:
        self.cost_exp: float | None = 0.0
        self.cost_worst: float | None = 0.0
        self.tokens_exp = 0.0
        self.tokens_worst = 0.0
        self.calls_exp = 0.0
        self.calls_worst = 0.0

    def add(self, entry: CatalogEntry | None, calls_exp: float, calls_worst: float,
            in_exp: float, in_worst: float, out_exp: float, out_worst: float) -> None:
        self.calls_exp += calls_exp
        self.calls_worst += calls_worst
        self.tokens_exp += calls_exp * (in_exp + out_exp)
        self.tokens_worst += calls_worst * (in_worst + out_worst)
        if entry is None or not entry.priced:
            self.cost_exp = self.cost_worst = None
            return
        if self.cost_exp is not None:
            self.cost_exp += calls_exp * entry.call_cost(in_exp, out_exp)
        if self.cost_worst is not None:
            self.cost_worst += calls_worst * entry.call_cost(in_worst, out_worst)


def gate_attempts(task_quality, failure_p: float = GATE_FAILURE_PROBABILITY) -> tuple[float, int]:
    """(expected, worst) attempts a quality gate allows (refine / retry rounds)."""
    if task_quality is None or task_quality.otherwise not in ("refine", "retry"):
        return 1.0, 1
    rounds = task_quality.rounds if task_quality.rounds is not None else 1
    expected = sum(failure_p ** k for k in range(rounds + 1))
    return expected, 1 + rounds


def estimate_task(td: TaskDraft, plan: TaskPlan, catalog: ModelCatalog,
                  history: ModelHistory | None, *, solo: bool = False) -> Estimate:
    """The estimate of `td` executed as `plan` says (model, participants, judge, cascade).

    `solo`: as if `plan.model` did the whole task alone (the router's view of one candidate).
    """
    task, shape = td.task, td.shape
    fan = plan.fan_out or 1
    if task.reduce is not None:
        fan, levels = reduce_calls(td.reduce_items, task.reduce.chunk_size)
    else:
        levels = 1
    in_e, in_w, out_e, out_w = shape.input_expected, shape.input_worst, shape.output_expected, shape.output_worst
    s = _Sum()
    entry = catalog.get(plan.model) if plan.model else None
    attempts_e, attempts_w = gate_attempts(task.quality)
    retries_w = task.retry.attempts if task.retry and task.retry.attempts > 0 else 1
    failure = (history.failure_rate(plan.model, td.needs) if history and plan.model else None) or 0.0
    attempts_e *= 1 + failure
    worst = attempts_w * retries_w

    consensus = None if solo else task.consensus
    participants = [catalog.get(m) for m in plan.participants] if (consensus and plan.participants) else [entry]
    cascade = [catalog.get(m) for m in plan.cascade] if (not solo and plan.cascade) else []
    call_latencies: list[float] = []

    if cascade and task.quality is not None and task.quality.otherwise == "escalate":
        # expected: each further model runs with the probability that every cheaper one failed
        for k, member in enumerate(cascade):
            s.add(member, GATE_FAILURE_PROBABILITY ** k * fan, retries_w * fan, in_e, in_w, out_e, out_w)
        call_latencies.append(_latency(cascade[0], out_e, td.needs, history))
        judge_rounds_e = sum(GATE_FAILURE_PROBABILITY ** k for k in range(len(cascade)))
        judge_rounds_w = len(cascade)
    else:
        for member in participants:
            s.add(member, attempts_e * fan, worst * fan, in_e, in_w, out_e, out_w)
        call_latencies.append(max(_latency(m, out_e, td.needs, history) for m in participants))
        judge_rounds_e, judge_rounds_w = attempts_e, attempts_w
        n = len(participants)
        if consensus is not None:
            method = consensus.method
            judge = catalog.get(plan.judge) if plan.judge else participants[0]
            if method in ("judge", "best_of"):
                s.add(judge, attempts_e * fan, worst * fan, in_e + n * out_e, in_w + n * out_w,
                      JUDGE_OUTPUT_TOKENS, JUDGE_OUTPUT_TOKENS)
                call_latencies.append(_latency(judge, JUDGE_OUTPUT_TOKENS, (), history))
            elif method == "ensemble":
                s.add(judge, attempts_e * fan, worst * fan, in_e + n * out_e, in_w + n * out_w, out_e, out_w)
                call_latencies.append(_latency(judge, out_e, (), history))
            elif method == "peer_review":
                rounds = consensus.rounds or DEFAULT_PEER_REVIEW_ROUNDS
                for member in participants:
                    s.add(member, 2 * rounds * attempts_e * fan, 2 * rounds * worst * fan,
                          in_e + 2 * out_e, in_w + 2 * out_w, out_e, out_w)
                call_latencies.extend([call_latencies[0]] * (2 * rounds))
    if task.quality is not None and not (consensus is not None and consensus.method in ("judge", "best_of")
                                         and task.quality.judge is None):
        judged_by_consensus = consensus is not None and consensus.method in ("judge", "ensemble", "best_of")
        if plan.judge and not judged_by_consensus:  # the router's judge (a substitute if unavailable)
            gate_judge = catalog.get(plan.judge)
        else:
            gate_judge = catalog.get(task.quality.judge.name) if task.quality.judge else entry
        s.add(gate_judge, judge_rounds_e * fan, judge_rounds_w * retries_w * fan, in_e + out_e, in_w + out_w,
              JUDGE_OUTPUT_TOKENS, JUDGE_OUTPUT_TOKENS)
        call_latencies.append(_latency(gate_judge, JUDGE_OUTPUT_TOKENS, (), history))

    per_item = sum(call_latencies) * (attempts_e if not cascade else 1.0)
    concurrency = entry.concurrency if entry else DEFAULT_PROVIDER_CONCURRENCY
    if task.reduce is not None:
        latency = per_item * levels
    else:
        latency = per_item * math.ceil(fan / max(1, concurrency))
    return Estimate(
        cost_usd_expected=None if s.cost_exp is None else round(s.cost_exp, 6),
        cost_usd_worst=None if s.cost_worst is None else round(s.cost_worst, 6),
        tokens_expected=round(s.tokens_exp), tokens_worst=round(s.tokens_worst),
        latency_s=round(latency, 3), calls_expected=round(s.calls_exp, 3), calls_worst=math.ceil(s.calls_worst),
    )


def _latency(entry: CatalogEntry | None, out_tokens: float, needs: tuple[str, ...],
             history: ModelHistory | None) -> float:
    if entry is None:
        return 0.0
    return entry.call_latency(out_tokens, needs, history)


def estimate_call(td: TaskDraft, draft: Draft) -> Estimate:
    """A subworkflow call: the callee's totals times the fan-out (items run 4 at a time)."""
    callee = draft.workflows.get(td.plan.subworkflow or "")
    if callee is None:
        return Estimate()
    fan = td.plan.fan_out or 1
    t = callee.totals
    return Estimate(
        cost_usd_expected=None if t.cost_usd_expected is None else t.cost_usd_expected * fan,
        cost_usd_worst=None if t.cost_usd_worst is None else t.cost_usd_worst * fan,
        tokens_expected=t.tokens_expected * fan, tokens_worst=t.tokens_worst * fan,
        latency_s=round(t.latency_s * math.ceil(fan / DEFAULT_PROVIDER_CONCURRENCY), 3),
        calls_expected=round(t.calls_expected * fan, 3), calls_worst=t.calls_worst * fan,
    )


def sum_estimates(estimates: list[Estimate], latency_s: float) -> Estimate:
    def total(values):
        return None if any(v is None for v in values) else round(sum(values), 6)

    return Estimate(
        cost_usd_expected=total([e.cost_usd_expected for e in estimates]),
        cost_usd_worst=total([e.cost_usd_worst for e in estimates]),
        tokens_expected=sum(e.tokens_expected for e in estimates),
        tokens_worst=sum(e.tokens_worst for e in estimates),
        latency_s=round(latency_s, 3),
        calls_expected=round(sum(e.calls_expected for e in estimates), 3),
        calls_worst=sum(e.calls_worst for e in estimates),
    )


def critical_latency(wd: WorkflowDraft) -> tuple[float, list[str]]:
    """The longest path through the DAG by task latency, and its tasks (linear in the graph)."""
    best: dict[str, float] = {}
    prev: dict[str, str | None] = {}
    for name in wd.order:
        td = wd.tasks[name]
        preds = td.plan.depends
        p = max(preds, key=lambda d: (best.get(d, 0.0), d), default=None)
        best[name] = (best[p] if p else 0.0) + td.plan.estimate.latency_s
        prev[name] = p
    if not best:
        return 0.0, []
    # the longest path; among equals, the one that ends first in dependency order
    end = max(enumerate(wd.order), key=lambda item: (best[item[1]], -item[0]))[1]
    path = []
    node: str | None = end
    while node is not None:
        path.append(node)
        node = prev[node]
    return best[end], path[::-1]


def total_workflow(wd: WorkflowDraft) -> None:
    latency, path = critical_latency(wd)
    wd.totals = sum_estimates([td.plan.estimate for td in wd.tasks.values()], latency)
    wd.critical_path = tuple(path)


def rounded(e: Estimate) -> Estimate:
    return replace(
        e,
        cost_usd_expected=None if e.cost_usd_expected is None else round(e.cost_usd_expected, 6),
        cost_usd_worst=None if e.cost_usd_worst is None else round(e.cost_usd_worst, 6),
    )


def estimate_workflow(wd: WorkflowDraft, draft: Draft, context: PassContext) -> None:
    for name in wd.order:
        td = wd.tasks[name]
        if td.plan.kind == "call":
            td.plan = revise(td.plan, estimate=rounded(estimate_call(td, draft)))
        elif td.plan.model is not None:
            td.plan = revise(td.plan, estimate=estimate_task(td, td.plan, context.catalog, context.history))
    total_workflow(wd)


def estimate_cost(draft: Draft, context: PassContext) -> Draft:
    unpriced: dict[str, list[str]] = {}
    for wd in draft.workflows.values():
        estimate_workflow(wd, draft, context)
        for td in wd.tasks.values():
            for model in {td.plan.model, *td.plan.participants, td.plan.judge} - {None}:
                entry = context.catalog.get(model)
                if entry is not None and not entry.priced:
                    unpriced.setdefault(model, []).append(td.id)
    for model, tasks in sorted(unpriced.items()):
        wd = draft.workflows[draft.entry] if draft.entry in draft.workflows else None
        span = wd.workflow.span if wd else None
        if span is None:
            continue
        draft.report(warning(
            "BMAD-W212", span,
            f"model `{model}` has no price, so the cost of {', '.join(sorted(set(tasks))[:5])} is unknown",
            f"declare `price input $X output $Y per 1M` in model `{model}`; unknown prices are never counted as $0"))
    return draft
