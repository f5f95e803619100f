"""The optimizer: an ordered tuple of passes that turns a checked Program into a sealed Plan.

In the style of sqlglot's optimizer: one pass per module, named after what it does; `PASSES` is the
order; `plan_program` runs them over one `Draft` with a typed `PassContext` and stops after a pass
that reported an error. `check_plan` is `bmad check`'s static feasibility test: plan with every
model treated as available and return the passes' diagnostics (e.g. an infeasible budget).
"""

from __future__ import annotations

from typing import Callable

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic, sort_diagnostics
from bmad.compiler.gc_pause import collection_paused
from bmad.compiler.passes.chain_fallbacks import chain_fallbacks
from bmad.compiler.passes.context import PassContext, make_context
from bmad.compiler.passes.draft import Draft
from bmad.compiler.passes.enforce_budget import enforce_budget
from bmad.compiler.passes.estimate_cost import estimate_cost
from bmad.compiler.passes.expand import expand
from bmad.compiler.passes.learn_bars import learn_bars
from bmad.compiler.passes.measure_prompts import measure_prompts
from bmad.compiler.passes.resolve_dependencies import resolve_dependencies
from bmad.compiler.passes.route_models import route_models, without_explanations
from bmad.compiler.passes.schedule_tasks import schedule_tasks
from bmad.compiler.passes.seal_plan import (compute_plan_hash, plan_hash_matches, seal_plan,
                                             verify_plan)
from bmad.compiler.plan import Plan

Pass = Callable[[Draft, PassContext], Draft]

PASSES: tuple[Pass, ...] = (
    expand,
    resolve_dependencies,
    measure_prompts,
    route_models,
    learn_bars,
    chain_fallbacks,
    estimate_cost,
    enforce_budget,
    schedule_tasks,
    seal_plan,
)


def describe_passes() -> list[tuple[str, str]]:
    """(name, first docstring line) of each pass, in order: what `bmad plan --passes` prints."""
    import sys

    out = []
    for p in PASSES:
        doc = (sys.modules[p.__module__].__doc__ or "").strip().splitlines()
        out.append((p.__name__, doc[0] if doc else ""))
    return out


def run_passes(program: ir.Program, context: PassContext, *, until: str | None = None,
               passes: tuple[Pass, ...] = PASSES) -> Draft:
    """Run the passes over `program` (all, or up to and including `until`); return the draft."""
    draft = Draft(program=program, entry=program.entry or (program.workflows[-1].name if program.workflows else ""))
    # The passes allocate much and free little: pausing the cycle collector keeps planning linear
    # on big programs (each collection would walk the whole IR and every task plan again).
    with collection_paused():
        for p in passes:
            draft = p(draft, context)
            draft.passes.append(p.__name__)
            if draft.failed or p.__name__ == until:
                break
    return draft


def plan_program(program: ir.Program, context: PassContext | None = None) -> tuple[Plan | None, list[Diagnostic]]:
    """Plan `program`: the sealed plan (None when a pass reported an error) and the diagnostics."""
    context = context or make_context(program)
    draft = run_passes(program, context)
    return (None if draft.failed else draft.plan), sort_diagnostics(draft.diagnostics)


# The passes `check_plan` runs: PASSES up to `enforce_budget`. (It once chained fallbacks only for
# escalating gates; every task's worst case now counts its fallback chain, so every task is
# chained, as in a plan.)
CHECK_PASSES: tuple[Pass, ...] = PASSES


# The last pass whose diagnostics `check_plan` needs: the ones after it (schedule_tasks, seal_plan)
# only add plan notes and the seal, never a diagnostic (tests/compiler/test_check_plan_feasibility.py
# compares both paths on every contract file, example and fixture).
FEASIBILITY_UNTIL = "enforce_budget"


def check_plan(program: ir.Program) -> list[Diagnostic]:
    """Static feasibility for `bmad check`: every model treated as available (simulated).

    Runs the passes up to `enforce_budget` (the budget's verdict) without scheduling or sealing a
    plan, routes without writing the explanations a plan shows (the ordered candidate table, the
    route reasons): the same diagnostics as `plan_program`, for less work. A file of declarations
    only (no workflow, like a models file) has nothing to plan: no problems.
    """
    if not program.workflows:
        return []
    context = make_context(program, environment={}, provider_mode="sim")
    with without_explanations():  # no plan is shown: skip the candidate tables and route reasons
        draft = run_passes(program, context, until=FEASIBILITY_UNTIL, passes=CHECK_PASSES)
    diagnostics = sort_diagnostics(draft.diagnostics)
    _release(draft)
    return diagnostics


def _release(draft: Draft) -> None:
    """Let reference counting free a finished draft now. Its task drafts, plans and candidates
    (~50 objects a task) hang off reference cycles (a pass's recursive closure holds the draft,
    networkx graphs cache views of themselves), so left alone they wait for the cyclic collector,
    which then walks every one of them after the pause (~10 ms at 1,000 tasks)."""
    for wd in draft.workflows.values():
        wd.graph.clear()
        wd.tasks.clear()
    draft.workflows.clear()
    draft.routing_cache.clear()


__all__ = ["PASSES", "CHECK_PASSES", "FEASIBILITY_UNTIL", "PassContext", "Draft", "make_context", "plan_program", "check_plan", "run_passes",
           "describe_passes", "verify_plan", "compute_plan_hash", "plan_hash_matches"]
