"""Enforce the budget: fit the worst case under the cap, or say why it can't be done.

Per workflow (the entry one against `--budget` or its `budget`, a called one against its own):
- worst case <= budget: nothing to do;
- otherwise move the least important work to its cheapest qualified model until it fits: low
  priority first, tasks off the critical path before those on it, the biggest saving first; pinned
  tasks, cascades and named consensus participants stay as written;
- a caller's budget covers the tasks of the workflows it calls (`covered_tasks`): a call is
  not moved itself, but its callee's tasks are candidates like the caller's own, each saving
  multiplied by how often the call runs (`for each ... = wf(...)`: its fan-out); a callee moved
  for its caller's budget moves for every call of it (one subplan per workflow);
- if even the cheapest qualified plan's *expected* cost exceeds the budget: BMAD-E210 at the
  budget clause, naming that cost (rounded up: a budget of that amount fits) and the tasks that
  dominate it (a callee's as `workflow.task` via the call task);
- if the expected cost fits but the worst case still doesn't: BMAD-W210, the runtime stops at the
  cap. Token budgets likewise (BMAD-E211 / BMAD-W214); the critical path against a time budget
  (BMAD-W213). Unknown prices make the dollar budget unverifiable (BMAD-W215): for the run's
  budget, any model `bmad run` may call without a price (`run_models`, the runtime's own list:
  it refuses to start, BMAD-E307), and the worst case is then unknown, never "fits".
A budget the run sets (`--budget`, `PassContext.budget`) is named `--budget` in these messages,
which point at the workflow's name instead of its `budget` clause (`_budget_at`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bmad.compiler import ir
from bmad.compiler.diagnostics import Related, error, warning
from bmad.compiler.money import format_usd
from bmad.compiler.passes.chain_fallbacks import chained
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, TaskDraft, WorkflowDraft, revise
from bmad.compiler.passes.estimate_cost import (estimate_call, estimate_task, fan_size, rounded, total_workflow,
                                                worst_options)
from bmad.compiler.passes.route_models import TaskRouter
from bmad.compiler.plan import PlanBudget, format_latency, format_seconds

PRIORITY_ORDER = {"low": 0, "medium": 1, None: 1, "high": 2, "critical": 3}
DOMINANT_SHARE = 0.8  # name the tasks that make up this share of the cheapest expected cost


def workflow_budget(workflow: ir.Workflow, context: PassContext, is_entry: bool) -> PlanBudget:
    declared = workflow.budget or ir.Budget()
    override = context.budget if is_entry and context.budget is not None else ir.Budget()
    return PlanBudget(
        usd=override.usd if override.usd is not None else declared.usd,
        tokens=override.tokens if override.tokens is not None else declared.tokens,
        time_s=override.time_s if override.time_s is not None else declared.time_s,
    )


def budget_from_run(context: PassContext, is_entry: bool) -> frozenset[str]:
    """The kinds of the entry workflow's budget the run's `--budget` (`PassContext.budget`) sets."""
    if not is_entry or context.budget is None:
        return frozenset()
    return frozenset(k for k in ("usd", "tokens", "time_s") if getattr(context.budget, k) is not None)


def _budget_span(workflow: ir.Workflow) -> ir.Span:
    if workflow.budget is not None and workflow.budget.span != ir.NO_SPAN:
        return workflow.budget.span
    return _header_span(workflow)


def _header_span(workflow: ir.Workflow) -> ir.Span:
    return workflow.name_span if workflow.name_span != ir.NO_SPAN else workflow.span


def _budget_at(wd: WorkflowDraft, kind: str) -> tuple[ir.Span, bool]:
    """Where a diagnostic about `wd`'s budget of `kind` points, and whether the run's `--budget`
    set it: then the message names `--budget` and points at the workflow's name, since no line of
    the file shows that amount (its `budget` clause, if any, shows another); else the clause."""
    if kind in wd.budget_from_run:
        return _header_span(wd.workflow), True
    return _budget_span(wd.workflow), False


def movable(td: TaskDraft) -> bool:
    task = td.task
    if td.plan.kind == "call" or td.pinned or td.routed_by_fallback:
        return False
    if task.route is not None and task.route.strategy == "cascade":
        return False
    return not (task.consensus is not None and task.consensus.participants)


@dataclass(slots=True)
class CoveredTask:
    """A task whose cost a workflow's budget covers: its own, or one of a (transitively) called
    workflow's, run `times` times per run of the budgeted workflow (the product of the `for each`
    fan-outs of the calls on the way, summed over every call site)."""

    wd: WorkflowDraft  # the workflow that declares the task
    td: TaskDraft
    times: float
    via: str | None  # the budgeted workflow's call task through which it runs first (None: its own)
    critical: bool  # on its workflow's critical path, through calls that are on theirs

    @property
    def label(self) -> str:
        return self.td.id if self.via is None else f"{self.wd.name}.{self.td.id}"

    def expected(self, plan=None) -> float:
        return ((plan or self.td.plan).estimate.cost_usd_expected or 0.0) * self.times

    def worst(self, plan=None) -> float:
        return ((plan or self.td.plan).estimate.cost_usd_worst or 0.0) * self.times


def covered_tasks(wd: WorkflowDraft, draft: Draft) -> list[CoveredTask]:
    """The prompt tasks `wd`'s budget pays for: its own, then its callees' (each task once)."""
    found: dict[tuple[str, str], CoveredTask] = {}

    def visit(workflow: WorkflowDraft, times: float, via: str | None, critical: bool, trail: tuple) -> None:
        on_path = set(workflow.critical_path)
        for td in workflow.tasks.values():
            here_critical = critical and td.id in on_path
            if td.plan.kind == "call":
                callee = draft.workflows.get(td.plan.subworkflow or "")
                if callee is not None and callee.name not in trail:  # cycles are reported by expand
                    visit(callee, times * fan_size(td.plan), via or td.id, here_critical,
                          trail + (callee.name,))
                continue
            key = (workflow.name, td.id)
            if key in found:
                found[key].times += times
                found[key].critical = found[key].critical or here_critical
            else:
                found[key] = CoveredTask(workflow, td, times, via, here_critical)

    visit(wd, 1.0, None, True, (wd.name,))
    return list(found.values())


def _cheaper_plans(covered: list[CoveredTask], draft: Draft, context: PassContext) -> dict[tuple[str, str], object]:
    routers: dict[str, TaskRouter] = {}
    cheaper = {}
    for item in covered:
        td, wd = item.td, item.wd
        if not movable(td):
            continue
        router = routers.get(wd.name) or routers.setdefault(wd.name, TaskRouter(draft, wd, context))
        plan, _diags = router.route(td, objective="cost", budget_move=True)
        # chained before it is priced: its fallbacks (and an escalation's cascade) are part of
        # what it may cost, so a task moved for the budget falls back on the cheapest too
        plan = chained(td, "cost", context, plan)
        plan = revise(plan, estimate=rounded(estimate_task(td, plan, context.catalog, context.history,
                                                           **worst_options(wd, draft, context))))
        current = td.plan.estimate
        if plan.estimate.cost_usd_expected is None or current.cost_usd_expected is None:
            continue
        if (plan.model, plan.participants) != (td.plan.model, td.plan.participants):
            cheaper[(wd.name, td.id)] = plan
    return cheaper


def _refresh_calls(draft: Draft, context: PassContext) -> None:
    """After callee tasks moved: every call's estimate from its callee's new totals, callees first."""
    for wd in draft.workflows.values():
        calls = [td for td in wd.tasks.values() if td.plan.kind == "call"]
        for td in calls:
            td.plan = revise(td.plan, estimate=rounded(estimate_call(td, draft, context.catalog)))
        total_workflow(wd)


def run_models(draft: Draft) -> dict[str, list[str]]:
    """Every model the run may call, with the tasks that may call them, as `bmad run` counts them
    before it starts (`Interpreter.models_used`, which refuses a dollar budget over a model
    without a price: BMAD-E307): each task's chain (the routed and pinned models, the cascade,
    the fallbacks, the written `fallback [...]`), its participants (the plan's; else the named
    ones), its judge (the plan's, the consensus's or the quality gate's), through every workflow
    it calls (a callee's tasks as `call/task`, each workflow once)."""
    seen: set[str] = set()

    def visit(name: str) -> dict[str, list[str]]:
        wd = draft.workflows.get(name)
        if wd is None or name in seen:
            return {}
        seen.add(name)
        used: dict[str, list[str]] = {}
        for td in wd.tasks.values():
            plan, task = td.plan, td.task
            consensus = task.consensus
            chain = [plan.model, task.model.name if task.model else None, *plan.cascade, *plan.fallbacks,
                     *(f.name for f in task.fallback)]
            participants = list(plan.participants) or \
                ([p.name for p in consensus.participants] if consensus is not None else [])
            judge = plan.judge or (consensus.judge.name if consensus and consensus.judge else None) \
                or (task.quality.judge.name if task.quality and task.quality.judge else None)
            for model in dict.fromkeys(m for m in (*chain, *participants, judge) if m):
                used.setdefault(model, []).append(td.id)
            if plan.kind == "call" and plan.subworkflow:
                for model, tasks in visit(plan.subworkflow).items():
                    used.setdefault(model, []).extend(f"{td.id}/{t}" for t in tasks)
        return used

    return visit(draft.entry)


def _refused_run(wd: WorkflowDraft, draft: Draft, context: PassContext) -> bool:
    """BMAD-W215 when `bmad run` will refuse the run's dollar budget (BMAD-E307): a model it may
    call has no price (`run_models`). The worst case is then unknown, never "fits"."""
    unpriced = {}
    for model, tasks in run_models(draft).items():
        entry = context.catalog.get(model)
        if entry is not None and not entry.priced:
            unpriced[model] = tasks
    if not unpriced:
        return False
    names = sorted(unpriced)
    tasks = sorted({t for m in names for t in unpriced[m]})
    listed = ", ".join(f"`{m}`" for m in names[:5]) + (" ..." if len(names) > 5 else "")
    used_by = ", ".join(tasks[:5]) + (" ..." if len(tasks) > 5 else "")
    span, cli = _budget_at(wd, "usd")
    draft.report(warning(
        "BMAD-W215", span,
        f"{'--budget' if cli else 'the budget'} {format_usd(wd.budget.usd)} can't be checked: no price "
        f"for {listed} (used by {used_by}), so `bmad run` refuses to start (BMAD-E307)",
        "declare `price input $X output $Y per 1M` for these models, or leave them out of the plan "
        "(model, fallback, participants, judge), or run without a dollar budget"))
    wd.totals = replace(wd.totals, cost_usd_worst=None)  # the verdict: unknown, not "fits"
    return True


def _enforce_dollars(wd: WorkflowDraft, draft: Draft, context: PassContext) -> None:
    if wd.name == draft.entry:  # the run's budget: checked once the plan's models are final
        if wd.totals.cost_usd_worst is not None and wd.totals.cost_usd_expected is not None:
            _fit_dollars(wd, draft, context)
        if _refused_run(wd, draft, context):
            return
    if wd.totals.cost_usd_worst is None or wd.totals.cost_usd_expected is None:
        # a called workflow's own budget: the runtime refuses a model without a price there (a
        # task routed to one fails, one that may fall back on one stops there)
        span, cli = _budget_at(wd, "usd")
        draft.report(warning("BMAD-W215", span,
                             f"{'--budget' if cli else 'the budget'} {format_usd(wd.budget.usd)} can't be "
                             f"checked: some models have no price",
                             "declare prices for every model the plan uses"))
        return
    if wd.name != draft.entry:
        _fit_dollars(wd, draft, context)


def _fit_dollars(wd: WorkflowDraft, draft: Draft, context: PassContext) -> None:
    """Fit the worst case under the dollar budget by moving work to cheaper models, or say why
    it can't be done (the module docstring)."""
    limit = wd.budget.usd
    totals = wd.totals
    span, cli = _budget_at(wd, "usd")
    called = "--budget" if cli else "the budget"
    if totals.cost_usd_worst <= limit:
        return
    covered = covered_tasks(wd, draft)
    cheaper = _cheaper_plans(covered, draft, context)

    def key(item: CoveredTask) -> tuple[str, str]:
        return (item.wd.name, item.td.id)

    def cheapest_expected(item: CoveredTask) -> float:
        options = [item.expected()]
        if key(item) in cheaper:
            options.append(item.expected(cheaper[key(item)]))
        return min(options)

    # summed estimates carry float noise (each has 6 decimals): a budget written as the floor fits
    floor_cost = round(sum(cheapest_expected(item) for item in covered), 9)
    if floor_cost > limit:
        shares = sorted(((cheapest_expected(item), item.label, i) for i, item in enumerate(covered)), reverse=True)
        named, running = [], 0.0
        for cost, _label, i in shares:
            if (running >= DOMINANT_SHARE * floor_cost and named) or len(named) == 3 or cost <= 0:
                break
            named.append((covered[i], cost))
            running += cost
        listed = ", ".join(f"`{item.label}`" + (f" via `{item.via}`" if item.via else "") + f" ({format_usd(c)})"
                           for item, c in named)
        draft.report(error(
            "BMAD-E210", span,
            (f"--budget {format_usd(limit)}" if cli else f"budget {format_usd(limit)} per run")
            + " can't be met: the cheapest qualified plan is expected to "
            f"cost {format_usd(floor_cost, up=True)}" + (f", mostly {listed}" if listed else ""),
            f"raise {called} to at least {format_usd(floor_cost, up=True)}, or lower the quality floors / "
            f"max_tokens of the tasks named here",
            [Related(item.td.task.name_span if item.td.task.name_span != ir.NO_SPAN else item.td.task.span,
                     f"task `{item.label}` is expected to cost {format_usd(c)}"
                     + (f" per run of `{wd.name}` ({item.times:g} runs via `{item.via}`)" if item.via else ""))
             for item, c in named]))
        return

    def saving(item: CoveredTask) -> float:
        return item.worst() - item.worst(cheaper[key(item)])

    order = sorted(
        (item for item in covered if key(item) in cheaper),
        key=lambda item: (PRIORITY_ORDER.get(item.td.task.priority, 1), item.critical, -saving(item),
                          item.via is not None, item.label))
    worst = totals.cost_usd_worst
    moved = []
    moved_callee = False
    for item in order:
        if worst <= limit:
            break
        td, new = item.td, cheaper[key(item)]
        cut = saving(item)
        if cut <= 0:
            continue
        moved.append(f"`{item.label}` {td.plan.model} -> {new.model}")
        td.plan = revise(new, downgraded_from=td.plan.model)  # chained (from its new model) and priced
        moved_callee = moved_callee or item.via is not None
        worst -= cut
    if moved_callee:  # the callees' totals changed, and with them the cost of every call
        for callee in {item.wd.name: item.wd for item in covered if item.via is not None}.values():
            total_workflow(callee)
        _refresh_calls(draft, context)
    total_workflow(wd)
    if moved:
        draft.report(warning("BMAD-W211", span,
                             f"to fit {called} {format_usd(limit)}, moved {len(moved)} task(s) to cheaper "
                             f"qualified models: {'; '.join(moved[:5])}" + (" ..." if len(moved) > 5 else ""),
                             "raise the budget or pin the models you want to keep"))
    if wd.totals.cost_usd_worst is not None and wd.totals.cost_usd_worst > limit:
        draft.report(warning(
            "BMAD-W210", span,
            f"the worst case {format_usd(wd.totals.cost_usd_worst)} exceeds {called} {format_usd(limit)} "
            f"(expected {format_usd(wd.totals.cost_usd_expected)}): the run stops at the cap if it gets there",
            "raise the budget, lower max_tokens, retries or refine rounds"))


def _enforce_tokens(wd: WorkflowDraft, draft: Draft) -> None:
    limit, totals = wd.budget.tokens, wd.totals
    span, cli = _budget_at(wd, "tokens")
    if totals.tokens_expected > limit:
        top = sorted(wd.tasks.values(), key=lambda td: -td.plan.estimate.tokens_expected)[:3]
        draft.report(error(
            "BMAD-E211", span,
            (f"--budget {limit:,} tokens" if cli else f"token budget {limit:,}")
            + f" can't be met: the plan is expected to use {totals.tokens_expected:,} "
            f"tokens, mostly {', '.join(f'`{td.id}`' for td in top)}",
            "raise the token budget or lower max_tokens / fan-out sizes"))
    elif totals.tokens_worst > limit:
        draft.report(warning(
            "BMAD-W214", span,
            f"the worst case uses {totals.tokens_worst:,} tokens, over "
            + (f"--budget {limit:,} tokens" if cli else f"the budget of {limit:,}")
            + f" (expected {totals.tokens_expected:,}): the run stops at the cap if it gets there",
            "raise the token budget or lower max_tokens"))


def enforce_budget(draft: Draft, context: PassContext) -> Draft:
    for name, wd in draft.workflows.items():
        calls = [td for td in wd.tasks.values() if td.plan.kind == "call"]
        if calls:  # a callee may have moved work to fit its own budget: refresh its call sites
            for td in calls:
                td.plan = revise(td.plan, estimate=rounded(estimate_call(td, draft, context.catalog)))
            total_workflow(wd)
        wd.budget = workflow_budget(wd.workflow, context, name == draft.entry)
        wd.budget_from_run = budget_from_run(context, name == draft.entry)
        wd.budget_span, time_cli = _budget_at(wd, "time_s")
        if wd.budget.usd is not None:
            _enforce_dollars(wd, draft, context)
        if wd.budget.tokens is not None:
            _enforce_tokens(wd, draft)
        if wd.budget.time_s is not None and wd.totals.latency_s > wd.budget.time_s:
            path = ("the critical path (the whole run: `strategy sequential` runs one task at a time)"
                    if wd.sequential else "the critical path")
            draft.report(warning(
                "BMAD-W213", wd.budget_span,
                f"{path} is expected to take {format_latency(wd.totals.latency_s)}, over "
                + (f"--budget {format_seconds(wd.budget.time_s)}" if time_cli
                   else f"the time budget of {format_seconds(wd.budget.time_s)}")
                + ": the run stops at the cap if it gets there",
                "raise the time budget or optimize for latency"))
    return draft
