"""Enforce the budget: fit the worst case under the cap, or say why it can't be done.

Per workflow (the entry one against `--budget` or its `budget`, a called one against its own):
- worst case <= budget: nothing to do;
- otherwise move the least important work to its cheapest qualified model until it fits: low
  priority first, tasks off the critical path before those on it, the biggest saving first; pinned
  tasks, cascades, named consensus participants and subworkflow calls stay as written;
- if even the cheapest qualified plan's *expected* cost exceeds the budget: BMAD-E210 at the
  budget clause, naming that cost and the tasks that dominate it;
- if the expected cost fits but the worst case still doesn't: BMAD-W210, the runtime stops at the
  cap. Token budgets likewise (BMAD-E211 / BMAD-W214); the critical path against a time budget
  (BMAD-W213). Unknown prices make the dollar budget unverifiable (BMAD-W215).
"""

from __future__ import annotations

from dataclasses import replace

from bmad.compiler import ir
from bmad.compiler.diagnostics import Related, error, warning
from bmad.compiler.passes.chain_fallbacks import chain_for
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, TaskDraft, WorkflowDraft
from bmad.compiler.passes.estimate_cost import estimate_call, estimate_task, rounded, total_workflow
from bmad.compiler.passes.route_models import TaskRouter
from bmad.compiler.plan import PlanBudget

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


def _budget_span(workflow: ir.Workflow) -> ir.Span:
    if workflow.budget is not None and workflow.budget.span != ir.NO_SPAN:
        return workflow.budget.span
    return workflow.name_span if workflow.name_span != ir.NO_SPAN else workflow.span


def movable(td: TaskDraft) -> bool:
    task = td.task
    if td.plan.kind == "call" or td.pinned or td.routed_by_fallback:
        return False
    if task.route is not None and task.route.strategy == "cascade":
        return False
    return not (task.consensus is not None and task.consensus.participants)


def _money(value: float | None) -> str:
    if value is None:
        return "unknown"
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.6f}".rstrip("0")


def _cheaper_plans(wd: WorkflowDraft, draft: Draft, context: PassContext) -> dict[str, object]:
    router = TaskRouter(draft, wd, context)
    cheaper = {}
    for td in wd.tasks.values():
        if not movable(td):
            continue
        plan, _diags = router.route(td, objective="cost", budget_move=True)
        plan = replace(plan, estimate=rounded(estimate_task(td, plan, context.catalog, context.history)))
        current = td.plan.estimate
        if plan.estimate.cost_usd_expected is None or current.cost_usd_expected is None:
            continue
        if (plan.model, plan.participants) != (td.plan.model, td.plan.participants):
            cheaper[td.id] = plan
    return cheaper


def _enforce_dollars(wd: WorkflowDraft, draft: Draft, context: PassContext) -> None:
    limit = wd.budget.usd
    totals = wd.totals
    span = _budget_span(wd.workflow)
    if totals.cost_usd_worst is None:
        draft.report(warning("BMAD-W215", span,
                             f"the budget {_money(limit)} can't be checked: some models have no price",
                             "declare prices for every model the plan uses"))
        return
    if totals.cost_usd_worst <= limit:
        return
    cheaper = _cheaper_plans(wd, draft, context)

    def cheapest_expected(td: TaskDraft) -> float:
        options = [td.plan.estimate.cost_usd_expected or 0.0]
        if td.id in cheaper:
            options.append(cheaper[td.id].estimate.cost_usd_expected or 0.0)
        return min(options)

    floor_cost = sum(cheapest_expected(td) for td in wd.tasks.values())
    if floor_cost > limit:
        shares = sorted(((cheapest_expected(td), td.id) for td in wd.tasks.values()), reverse=True)
        named, running = [], 0.0
        for cost, name in shares:
            if running >= DOMINANT_SHARE * floor_cost or len(named) == 3:
                break
            named.append((name, cost))
            running += cost
        listed = ", ".join(f"`{n}` ({_money(c)})" for n, c in named)
        draft.report(error(
            "BMAD-E210", span,
            f"budget {_money(limit)} per run can't be met: the cheapest qualified plan is expected to "
            f"cost {_money(floor_cost)}, mostly {listed}",
            f"raise the budget to at least {_money(floor_cost)}, or lower the quality floors / "
            f"max_tokens of the tasks named here",
            [Related(wd.tasks[n].task.name_span if wd.tasks[n].task.name_span != ir.NO_SPAN
                     else wd.tasks[n].task.span, f"task `{n}` is expected to cost {_money(c)}")
             for n, c in named]))
        return
    critical = set(wd.critical_path)
    order = sorted(
        (td for td in wd.tasks.values() if td.id in cheaper),
        key=lambda td: (PRIORITY_ORDER.get(td.task.priority, 1), td.id in critical,
                        -((td.plan.estimate.cost_usd_worst or 0.0)
                          - (cheaper[td.id].estimate.cost_usd_worst or 0.0)), td.id))
    worst = totals.cost_usd_worst
    moved = []
    for td in order:
        if worst <= limit:
            break
        new = cheaper[td.id]
        saving = (td.plan.estimate.cost_usd_worst or 0.0) - (new.estimate.cost_usd_worst or 0.0)
        if saving <= 0:
            continue
        moved.append(f"`{td.id}` {td.plan.model} -> {new.model}")
        td.plan = replace(new, downgraded_from=td.plan.model)
        td.plan = replace(td.plan, fallbacks=chain_for(td, wd.objective, context))
        worst -= saving
    total_workflow(wd)
    if moved:
        draft.report(warning("BMAD-W211", span,
                             f"to fit the budget {_money(limit)}, moved {len(moved)} task(s) to cheaper "
                             f"qualified models: {'; '.join(moved[:5])}" + (" ..." if len(moved) > 5 else ""),
                             "raise the budget or pin the models you want to keep"))
    if wd.totals.cost_usd_worst is not None and wd.totals.cost_usd_worst > limit:
        draft.report(warning(
            "BMAD-W210", span,
            f"the worst case {_money(wd.totals.cost_usd_worst)} exceeds the budget {_money(limit)} "
            f"(expected {_money(wd.totals.cost_usd_expected)}): the run stops at the cap if it gets there",
            "raise the budget, lower max_tokens, retries or refine rounds"))


def _enforce_tokens(wd: WorkflowDraft, draft: Draft) -> None:
    limit, totals, span = wd.budget.tokens, wd.totals, _budget_span(wd.workflow)
    if totals.tokens_expected > limit:
        top = sorted(wd.tasks.values(), key=lambda td: -td.plan.estimate.tokens_expected)[:3]
        draft.report(error(
            "BMAD-E211", span,
            f"token budget {limit:,} can't be met: the plan is expected to use {totals.tokens_expected:,} "
            f"tokens, mostly {', '.join(f'`{td.id}`' for td in top)}",
            "raise the token budget or lower max_tokens / fan-out sizes"))
    elif totals.tokens_worst > limit:
        draft.report(warning(
            "BMAD-W214", span,
            f"the worst case uses {totals.tokens_worst:,} tokens, over the budget of {limit:,} "
            f"(expected {totals.tokens_expected:,}): the run stops at the cap if it gets there",
            "raise the token budget or lower max_tokens"))


def enforce_budget(draft: Draft, context: PassContext) -> Draft:
    for name, wd in draft.workflows.items():
        calls = [td for td in wd.tasks.values() if td.plan.kind == "call"]
        if calls:  # a callee may have moved work to fit its own budget: refresh its call sites
            for td in calls:
                td.plan = replace(td.plan, estimate=rounded(estimate_call(td, draft)))
            total_workflow(wd)
        wd.budget = workflow_budget(wd.workflow, context, name == draft.entry)
        wd.budget_span = _budget_span(wd.workflow)
        if wd.budget.usd is not None:
            _enforce_dollars(wd, draft, context)
        if wd.budget.tokens is not None:
            _enforce_tokens(wd, draft)
        if wd.budget.time_s is not None and wd.totals.latency_s > wd.budget.time_s:
            draft.report(warning(
                "BMAD-W213", wd.budget_span,
                f"the critical path is expected to take {wd.totals.latency_s:.0f}s, over the time budget "
                f"of {wd.budget.time_s:.0f}s: the run stops at the cap if it gets there",
                "raise the time budget or optimize for latency"))
    return draft
