"""`check_plan` stops after `enforce_budget`: it must report exactly what planning the whole program
reports (scheduling and sealing add plan notes, never diagnostics). Compared on every contract
file, example, fixture and bench workflow that compiles clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import FEASIBILITY_UNTIL, PASSES, check_plan, make_context, plan_program

from .conftest import REPO_ROOT, WORKFLOW_FILES


def test_the_feasibility_passes_are_a_prefix_of_the_pass_order():
    names = [p.__name__ for p in PASSES]
    assert FEASIBILITY_UNTIL in names
    assert names[names.index(FEASIBILITY_UNTIL) + 1:] == ["schedule_tasks", "seal_plan"]


def test_there_are_files_to_compare():
    assert len(WORKFLOW_FILES) > 50


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_check_plan_reports_what_the_whole_plan_reports(path: Path):
    result = compile_file(str(path))
    if result.program is None or not result.ok or not result.program.workflows:
        pytest.skip("does not compile clean: `bmad check` plans only clean programs")
    context = make_context(result.program, environment={}, provider_mode="sim")
    _plan, whole = plan_program(result.program, context)
    assert check_plan(result.program) == whole


def generated_workflow(budget: str) -> str:
    """The check benchmark's generated workflow (routing, consensus, calls, fan-outs), 200 tasks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_bench", REPO_ROOT / "bench" / "check_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.workflow_source(200).replace("budget $1000000 per run", budget)


VARIANTS = [
    ("budget $1000000 per run", None), ("budget $0.05 per run", None), ("budget $3 per run", None),
    ("budget $1000 per run\n  budget 30s", None), ("budget $5 per run\n  budget 20k tokens", None),
    # every objective, and quality gates that escalate (chain_fallbacks builds their cascade)
    ("budget $2 per run", "optimize cost"), ("budget $2 per run", "optimize latency"),
    ("budget $4 per run", "optimize quality"), ("budget $0.5 per run", "escalate"),
]


def variant_workflow(budget: str, change: str | None) -> str:
    text = generated_workflow(budget)
    if change == "escalate":
        return text.replace("else refine max 2", "else escalate")
    if change is not None:
        return text.replace("optimize balanced", change)
    return text


@pytest.mark.parametrize("budget, change", VARIANTS)
def test_check_plan_matches_on_a_big_generated_workflow(tmp_path, budget, change):
    path = tmp_path / "generated.bmad"
    path.write_text(variant_workflow(budget, change))
    result = compile_file(str(path))
    assert result.ok, result.diagnostics[:3]
    context = make_context(result.program, environment={}, provider_mode="sim")
    _plan, whole = plan_program(result.program, context)
    assert check_plan(result.program) == whole


def _decisions(program, explaining: bool) -> dict:
    """Every task plan after `enforce_budget`, without what only explains it (the candidate
    table and the route reason), plus the diagnostics."""
    from bmad.compiler.passes import run_passes
    from bmad.compiler.passes.route_models import without_explanations

    context = make_context(program, environment={}, provider_mode="sim")
    if explaining:
        draft = run_passes(program, context, until=FEASIBILITY_UNTIL)
    else:
        with without_explanations():
            draft = run_passes(program, context, until=FEASIBILITY_UNTIL)
    plans = {}
    for name, wd in draft.workflows.items():
        for td in wd.tasks.values():
            data = td.plan.to_json()
            data.pop("route_reason")
            # the same candidates, whatever their order and the chosen ones' `chosen` mark
            data["candidates"] = sorted((c["model"], c["cost_usd_expected"], c["latency_s"], c["qualified"],
                                         c["expected_quality"]) for c in data["candidates"])
            plans[(name, td.id)] = data
    return {"plans": plans, "diagnostics": draft.diagnostics}


@pytest.mark.parametrize("budget, change", VARIANTS[::2])
def test_routing_without_explanations_decides_the_same(tmp_path, budget, change):
    path = tmp_path / "generated.bmad"
    path.write_text(variant_workflow(budget, change))
    program = compile_file(str(path)).program
    assert _decisions(program, explaining=False) == _decisions(program, explaining=True)


@pytest.mark.parametrize("path", WORKFLOW_FILES[::3], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_routing_without_explanations_decides_the_same_on_workflow_files(path: Path):
    result = compile_file(str(path))
    if result.program is None or not result.ok or not result.program.workflows:
        pytest.skip("does not compile clean: `bmad check` plans only clean programs")
    assert _decisions(result.program, explaining=False) == _decisions(result.program, explaining=True)


def _plans_after_budget(program, passes) -> dict:
    from bmad.compiler.passes import run_passes

    context = make_context(program, environment={}, provider_mode="sim")
    draft = run_passes(program, context, until=FEASIBILITY_UNTIL, passes=passes)
    return {(name, td.id): (td, td.plan) for name, wd in draft.workflows.items() for td in wd.tasks.values()}


@pytest.mark.parametrize("budget, change", [("budget $0.5 per run", "escalate"), ("budget $3 per run", "escalate"),
                                            ("budget $1000000 per run", None)])
def test_check_passes_chain_what_later_passes_read(tmp_path, budget, change):
    """CHECK_PASSES (every task chained, as the worst case prices each fallback chain): every
    estimate and cascade is the one the whole pass order gives, and so is an escalating task's
    chain."""
    from bmad.compiler.passes import CHECK_PASSES

    path = tmp_path / "generated.bmad"
    path.write_text(variant_workflow(budget, change))
    program = compile_file(str(path)).program
    checked = _plans_after_budget(program, CHECK_PASSES)
    whole = _plans_after_budget(program, PASSES)
    assert checked.keys() == whole.keys()
    escalating = 0
    for key, (td, plan) in checked.items():
        other = whole[key][1]
        assert (plan.model, plan.cascade, plan.estimate, plan.participants, plan.judge) == \
               (other.model, other.cascade, other.estimate, other.participants, other.judge), key
        if td.task.quality is not None and td.task.quality.otherwise == "escalate":
            escalating += 1
            assert plan.fallbacks == other.fallbacks, key
    assert escalating or change is None
