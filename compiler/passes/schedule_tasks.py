"""Schedule tasks: parallel stages, the critical path, a rank for the runtime's ready queue.

Stages are the dependency graph's topological generations (one task per stage under `strategy
sequential`). The critical path is the longest path by estimated latency. The rank orders the
ready queue; the scheduling objective chooses how:
- `priority_first` (default): critical-path tasks first, then higher priority, then the longest
  remaining path;
- `latency_optimized`: the longest remaining path first (HEFT's upward rank);
- `cost_optimized`: higher priority first, then the cheapest (so a budget stop leaves most done);
- `balanced`: critical path first, then priority and remaining path weighted equally.
Per-provider concurrency comes from `limits { concurrent N }` (default 4). The pass also writes
the reviewer's risk notes: single points of failure, consensus within one provider, tasks whose
worst case dominates the budget, providers without declared limits.
"""

from __future__ import annotations

from bmad.compiler.money import format_usd
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, WorkflowDraft, revise
from bmad.compiler.passes.enforce_budget import PRIORITY_ORDER

DOMINATING_SHARE = 0.5  # a task whose worst case is over half the budget is a risk


def upward_latency(wd: WorkflowDraft) -> dict[str, float]:
    """Per task: its latency plus the longest latency path after it."""
    up: dict[str, float] = {}
    for name in reversed(wd.order):
        after = max((up[s] for s in wd.graph.successors(name)), default=0.0)
        up[name] = wd.tasks[name].plan.estimate.latency_s + after
    return up


def rank_key(scheduling: str, wd: WorkflowDraft, up: dict[str, float], critical: set[str]):
    position = {n: i for i, n in enumerate(wd.order)}
    longest = max(up.values(), default=0.0) or 1.0

    def key(name: str):
        td = wd.tasks[name]
        prio = PRIORITY_ORDER.get(td.task.priority, 1)
        if scheduling == "latency_optimized":
            return (-up[name], -prio, position[name])
        if scheduling == "cost_optimized":
            return (-prio, td.plan.estimate.cost_usd_expected or 0.0, position[name])
        if scheduling == "balanced":
            return (name not in critical, -(0.5 * prio / 3 + 0.5 * up[name] / longest), position[name])
        return (name not in critical, -prio, -up[name], position[name])

    return key


def _risks(wd: WorkflowDraft, draft: Draft, context: PassContext) -> None:
    catalog = context.catalog
    for td in wd.tasks.values():
        plan = td.plan
        if plan.kind == "call" or plan.model is None:
            continue
        chain = [plan.model, *plan.fallbacks]
        providers = {catalog.get(m).provider for m in chain if catalog.get(m)}
        if td.task.no_fallback:
            pass  # `fallback none`: the author chose it, so it is no risk to point out
        elif not plan.fallbacks:
            draft.note("BMAD-W230", "warning", f"`{td.id}` has no fallback: if {plan.model} fails, the task fails",
                       td.id, kind="risk")
        elif len(providers) == 1:
            draft.note("BMAD-W230", "warning",
                       f"`{td.id}` and all its fallbacks run on one provider ({next(iter(providers))})",
                       td.id, kind="risk")
        if len(plan.participants) > 1:
            owners = [catalog.get(m).provider for m in plan.participants if catalog.get(m)]
            if len(set(owners)) < len(owners):
                draft.note("BMAD-W231", "warning",
                           f"consensus of `{td.id}` has participants sharing a provider "
                           f"({', '.join(plan.participants)}): their errors may be correlated",
                           td.id, kind="risk")
        worst = plan.estimate.cost_usd_worst
        if wd.budget.usd and worst is not None and worst > DOMINATING_SHARE * wd.budget.usd:
            draft.note("BMAD-W232", "warning",
                       f"`{td.id}` alone may cost {format_usd(worst)}, over half the budget {format_usd(wd.budget.usd)}",
                       td.id, kind="risk")


def schedule_workflow(wd: WorkflowDraft, draft: Draft, context: PassContext) -> None:
    strategy = wd.workflow.strategy or "parallel"
    if strategy == "sequential":
        stages = [(name,) for name in wd.order]
    else:
        stages = [tuple(g) for g in wd.generations]
    stage_of = {name: i for i, stage in enumerate(stages) for name in stage}
    critical = set(wd.critical_path)
    up = upward_latency(wd)
    ranked = sorted(wd.order, key=rank_key(context.scheduling, wd, up, critical))
    rank_of = {name: i for i, name in enumerate(ranked)}
    for name, td in wd.tasks.items():
        td.plan = revise(td.plan, stage=stage_of.get(name, 0), rank=rank_of.get(name, 0),
                          on_critical_path=name in critical)
    wd.stages = tuple(stages)
    for td in wd.tasks.values():
        # sorted: the notes' order must not depend on string hashing (plans are byte-stable)
        for model in sorted({td.plan.model, *td.plan.participants, td.plan.judge} - {None}):
            entry = context.catalog.get(model)
            if entry is not None:
                draft.provider_concurrency[entry.provider] = entry.concurrency
                if not entry.limits_declared:
                    draft.note("BMAD-W233", "warning",
                               f"provider `{entry.provider}` declares no limits: the runtime assumes "
                               f"{entry.concurrency} concurrent calls and no rate limit", kind="risk")
    _risks(wd, draft, context)


def schedule_tasks(draft: Draft, context: PassContext) -> Draft:
    for wd in draft.workflows.values():
        schedule_workflow(wd, draft, context)
    return draft
