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


@pytest.mark.parametrize("budget", ["budget $1000000 per run", "budget $0.05 per run", "budget $3 per run",
                                    "budget $1000 per run\n  budget 30s", "budget $5 per run\n  budget 20k tokens"])
def test_check_plan_matches_on_a_big_generated_workflow(tmp_path, budget):
    path = tmp_path / "generated.bmad"
    path.write_text(generated_workflow(budget))
    result = compile_file(str(path))
    assert result.ok, result.diagnostics[:3]
    context = make_context(result.program, environment={}, provider_mode="sim")
    _plan, whole = plan_program(result.program, context)
    assert check_plan(result.program) == whole
