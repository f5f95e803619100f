"""Schedule tasks: parallel stages, the critical path, a rank for the runtime's ready queue.

Stages are the dependency graph's topological generations. Under `strategy sequential` (the
run's: the entry workflow's, or the context's override; the runtime runs every workflow of the
run one task at a time then) each stage is one task, in the order the run takes them: the ready
task of lowest rank first, as the runtime's ready queue does (`run_order`); the critical path is
then that whole order (its latency, `estimate_cost`'s, the sum of every task's). Otherwise the
critical path is the longest path by estimated latency; the plan shows one, but when several
paths are equally long the rank treats every task on any of them as critical
(`on_longest_paths`), so an explicit `priority` decides between them rather than which of them
the plan happened to show (under `sequential` too, where the rank reads the dependency graph's
longest path). The rank orders the ready queue; the scheduling objective chooses how:
- `priority_first` (default): critical tasks first, then higher priority, then the longest
  remaining path;
- `latency_optimized`: the longest remaining path first (HEFT's upward rank), then priority;
- `cost_optimized`: higher priority first, then the cheapest (so a budget stop leaves most done);
- `balanced`: critical tasks first, then priority and remaining path weighted equally.
Ties go to the task written first.
Per-provider concurrency comes from `limits { concurrent N }` (default 4; one for a provider that
runs its models in this process, `kind llama_cpp`: catalog.py). The pass also writes
the reviewer's risk notes: single points of failure, consensus within one provider, tasks whose
worst case dominates the budget, providers without declared limits.
"""

from __future__ import annotations

import heapq

from bmad.compiler.money import format_usd
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, WorkflowDraft, revise
from bmad.compiler.passes.enforce_budget import PRIORITY_ORDER
from bmad.compiler.passes.estimate_cost import critical_latency

DOMINATING_SHARE = 0.5  # a task whose worst case is over half the budget is a risk


def upward_latency(wd: WorkflowDraft) -> dict[str, float]:
    """Per task: its latency plus the longest latency path after it."""
    up: dict[str, float] = {}
    for name in reversed(wd.order):
        after = max((up[s] for s in wd.graph.successors(name)), default=0.0)
        up[name] = wd.tasks[name].plan.estimate.latency_s + after
    return up


def on_longest_paths(wd: WorkflowDraft, up: dict[str, float]) -> set[str]:
    """The tasks on a longest path by latency: every one of them when paths tie (the critical path
    the plan shows is one of them)."""
    before: dict[str, float] = {}  # the longest latency path that ends with the task
    latency = {name: wd.tasks[name].plan.estimate.latency_s for name in wd.order}
    for name in wd.order:
        preds = wd.graph.predecessors(name) if name in wd.graph else ()
        before[name] = max((before[p] for p in preds if p in before), default=0.0) + latency[name]
    longest = max(up.values(), default=0.0)
    tolerance = 1e-6 * max(1.0, longest)  # sums of rounded latencies, added in other orders
    return {name for name in wd.order if before[name] + up[name] - latency[name] >= longest - tolerance}


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


def run_order(wd: WorkflowDraft, rank_of: dict[str, int]) -> list[str]:
    """The order one worker runs the tasks in: always the ready task (every dependency done) of
    lowest rank, as the runtime's scheduler takes its ready queue."""
    waiting = {name: 0 for name in wd.order}
    for name in wd.order:
        for after in wd.graph.successors(name) if name in wd.graph else ():
            if after in waiting:
                waiting[after] += 1
    ready = [(rank_of[name], name) for name in wd.order if waiting[name] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for after in wd.graph.successors(name) if name in wd.graph else ():
            if after in waiting:
                waiting[after] -= 1
                if waiting[after] == 0:
                    heapq.heappush(ready, (rank_of[after], after))
    return order


def sharing_a_provider(participants: tuple[str, ...], catalog) -> str:
    """The participants that share a provider with another (or answer more than once), as
    `a, b on openai; c twice`; "" when every participant is on a provider of its own (BMAD-W231)."""
    by_provider: dict[str, list[str]] = {}
    for model in participants:
        entry = catalog.get(model)
        if entry is not None:
            by_provider.setdefault(entry.provider, []).append(model)
    groups = []
    for provider, models in by_provider.items():
        if len(models) < 2:
            continue
        distinct = list(dict.fromkeys(models))
        if len(distinct) == 1:  # one model asked more than once (BMAD-W220)
            groups.append(f"{distinct[0]} {_times(len(models))}")
        else:
            groups.append(", ".join(m if models.count(m) == 1 else f"{m} {_times(models.count(m))}"
                                    for m in distinct) + f" on {provider}")
    return "; ".join(groups)


def _times(n: int) -> str:
    return "twice" if n == 2 else f"{n} times"


def _risks(wd: WorkflowDraft, draft: Draft, context: PassContext) -> None:
    catalog = context.catalog
    for td in wd.tasks.values():
        plan = td.plan
        if plan.kind == "call" or plan.model is None:
            continue
        chain = [plan.model, *plan.fallbacks]
        providers = {catalog.get(m).provider for m in chain if catalog.get(m)}
        if td.task.fallback_only and not plan.fallbacks:
            other = " other" if plan.model in {n.name for n in td.task.fallback} else ""
            draft.note("BMAD-W230", "warning",
                       f"`{td.id}` has no fallback: no{other} model of its `fallback only [...]` is available "
                       f"here, so if {plan.model} fails, the task fails", td.id, kind="risk")
        elif td.task.no_fallback:
            # `fallback none`, or the models of `fallback only [...]`: the author chose the chain
            # (its providers too), so it is no risk to point out
            pass
        elif not plan.fallbacks:
            draft.note("BMAD-W230", "warning", f"`{td.id}` has no fallback: if {plan.model} fails, the task fails",
                       td.id, kind="risk")
        elif len(providers) == 1:
            draft.note("BMAD-W230", "warning",
                       f"`{td.id}` and all its fallbacks run on one provider ({next(iter(providers))})",
                       td.id, kind="risk")
        if len(plan.participants) > 1:
            sharing = sharing_a_provider(plan.participants, catalog)
            if sharing:
                draft.note("BMAD-W231", "warning",
                           f"consensus of `{td.id}` has participants sharing a provider "
                           f"({sharing}): their errors may be correlated",
                           td.id, kind="risk")
        worst = plan.estimate.cost_usd_worst
        if wd.budget.usd and worst is not None and worst > DOMINATING_SHARE * wd.budget.usd:
            draft.note("BMAD-W232", "warning",
                       f"`{td.id}` alone may cost {format_usd(worst)}, over half the budget {format_usd(wd.budget.usd)}",
                       td.id, kind="risk")


def run_strategy(draft: Draft) -> str:
    """The run's strategy (the context's override, else the entry workflow's, as `expand`
    recorded it), which the runtime applies to every workflow."""
    return draft.strategy


def schedule_workflow(wd: WorkflowDraft, draft: Draft, context: PassContext) -> None:
    sequential = run_strategy(draft) == "sequential"
    # the rank weighs the dependency graph's longest path, whatever the strategy (under
    # `sequential` the plan's critical path is the whole run, which ranks nothing)
    critical = set(critical_latency(wd)[1] if sequential else wd.critical_path)
    up = upward_latency(wd)
    # the critical path the plan shows, and every task on a path as long (ties)
    tied = on_longest_paths(wd, up) | critical
    ranked = sorted(wd.order, key=rank_key(context.scheduling, wd, up, tied))
    rank_of = {name: i for i, name in enumerate(ranked)}
    if sequential:
        # one task at a time: the stages, and the critical path, are the run's order
        order = run_order(wd, rank_of)
        stages = [(name,) for name in order]
        wd.critical_path = tuple(order)
        critical = set(order)
    else:
        stages = [tuple(g) for g in wd.generations]
    stage_of = {name: i for i, stage in enumerate(stages) for name in stage}
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
                if not entry.limits_declared and not entry.in_process:  # in-process: one at a time
                    draft.note("BMAD-W233", "warning",
                               f"provider `{entry.provider}` declares no limits: the runtime assumes "
                               f"{entry.concurrency} concurrent calls and no rate limit", kind="risk")
    _risks(wd, draft, context)


def schedule_tasks(draft: Draft, context: PassContext) -> Draft:
    for wd in draft.workflows.values():
        schedule_workflow(wd, draft, context)
    return draft
