"""Chain fallbacks: an ordered list of models to try when a task's model fails, and the cascade.

The chain starts with the task's own `fallback [...]` models that are available, then adds the
next-best qualified available candidates (by the workflow's objective), models of another provider
than the routed one first, up to `MAX_AUTOMATIC_FALLBACKS`. `else escalate` without a
`route cascade` escalates along the routed model followed by the chain in order of cost. Either
cascade leaves out the members history shows doing worse than a cheaper one (`cascade_order`),
except models the task names in `fallback [...]`. A member left out is not brought back as an
automatic fallback (the chain is also what escalation walks); for `else escalate` the next-best
candidate takes its place, and is weighed the same way, so the chain keeps its length.
`fallback none` leaves the chain empty; `fallback only [...]` leaves it at the written models that
are available (a closed group: no automatic fallback, so an `else escalate` cascade climbs only
through them too).
"""

from __future__ import annotations

from typing import Collection

from bmad.compiler.passes.cascade_order import describe_skipped, learn_cascade
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, TaskDraft, revise
from bmad.compiler.passes.route_models import _cost_key, rank_candidates
from bmad.compiler.plan import TaskPlan

MAX_AUTOMATIC_FALLBACKS = 2


def chain_for(td: TaskDraft, objective: str, context: PassContext,
              plan: TaskPlan | None = None, leave_out: Collection[str] = ()) -> tuple[str, ...]:
    """The fallback chain of `td` routed as `plan` (default: its current plan); `leave_out`:
    models its escalation cascade skips, besides those route_models' own cascade skipped."""
    plan, task = plan or td.plan, td.task
    if task.no_fallback and not task.fallback:  # `fallback none`
        return ()
    used = {plan.model, *plan.participants}
    chain: list[str] = []
    for name in (n.name for n in task.fallback):
        entry = context.catalog.get(name)
        if entry is not None and entry.available and name not in used and name not in chain:
            chain.append(name)
    if task.fallback_only:  # a closed group: exactly the written models
        return tuple(chain)
    routed = context.catalog.get(plan.model) if plan.model else None
    routed_provider = routed.provider if routed else None
    spare = [c for c in plan.candidates if c.available and c.qualified and c.model not in used
             and c.model not in chain and c.model not in td.cascade_skipped
             and c.model not in leave_out]
    ranked = rank_candidates(spare, objective)
    ranked.sort(key=lambda c: c.provider == routed_provider)  # stable: another provider first
    chain += [c.model for c in ranked[:MAX_AUTOMATIC_FALLBACKS]]
    return tuple(chain)


def chained(td: TaskDraft, objective: str, context: PassContext,
            plan: TaskPlan | None = None) -> TaskPlan:
    """`plan` (default: `td`'s current one) with its fallback chain, and for `else escalate` its
    cascade; enforce_budget chains the cheaper plans it weighs the same way."""
    plan = plan or td.plan
    if not escalates(td) or plan.route_rule == "route:cascade":  # that cascade is route_models'
        return revise(plan, fallbacks=chain_for(td, objective, context, plan))
    costs = {c.model: c for c in plan.candidates}
    written = {n.name for n in td.task.fallback}
    skipped: dict[str, str] = {}
    while True:  # each round skips at least one more candidate, so this ends
        fallbacks = chain_for(td, objective, context, plan, leave_out=skipped)
        upward = sorted((m for m in fallbacks if m in costs), key=lambda m: _cost_key(costs[m]))
        cascade, newly = learn_cascade((plan.model, *upward), td.needs, context.history,
                                       keep=written)
        if not newly:
            break
        skipped.update(newly)
    reason = plan.route_reason + describe_skipped(skipped) if plan.route_reason else ""
    return revise(plan, fallbacks=fallbacks, cascade=cascade, route_reason=reason)


def escalates(td: TaskDraft) -> bool:
    """`quality ... else escalate`: the task's chain is also its escalation cascade."""
    return td.task.quality is not None and td.task.quality.otherwise == "escalate"


def chain_fallbacks(draft: Draft, context: PassContext) -> Draft:
    for wd in draft.workflows.values():
        for td in wd.tasks.values():
            if td.plan.kind == "call" or td.plan.model is None:
                continue
            td.plan = chained(td, wd.objective, context)
    return draft
