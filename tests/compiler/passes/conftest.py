"""Helpers for the pass tests: compile a fixture, run the passes up to one, project the draft."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import make_context, run_passes

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parents[3]
# Every workflow file the repository holds (contract files, examples, fixtures, bench), for the
# tests that compare two ways of planning on all of them.
WORKFLOW_FILES = sorted(
    path.resolve()
    for folder in (REPO_ROOT / ".." / "shared" / "spec", REPO_ROOT / "examples", REPO_ROOT / "tests" / "fixtures",
                   FIXTURES, REPO_ROOT / "bench") if folder.is_dir()
    for pattern in ("*.bmad", "*.yaml", "*.yml") for path in folder.rglob(pattern)
    if "__snapshots__" not in path.parts and not path.name.endswith(".expected.bmad")
)


def compile_fixture(name: str):
    result = compile_file(str(FIXTURES / f"{name}.bmad"))
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    return result.program


def draft_after(pass_name: str, fixture: str | None = None, **context_options):
    program = compile_fixture(fixture or pass_name)
    options = {"environment": {}, "provider_mode": "sim", **context_options}
    context = make_context(program, **options)
    return run_passes(program, context, until=pass_name)


def tasks(draft, workflow: str) -> dict:
    """A workflow's task drafts by task name."""
    return {td.id: td for td in draft.workflows[workflow].tasks.values()}


def project(draft, *, keys=None, shapes: bool = False) -> dict:
    """What a snapshot shows: per workflow, each task's plan (without the candidate table)."""
    out = {"diagnostics": sorted(f"{d.code}: {d.message}" for d in draft.diagnostics), "workflows": {}}
    for name, wd in draft.workflows.items():
        tasks = {}
        for td in wd.tasks.values():
            data = td.plan.to_json()
            data.pop("candidates")
            if keys:
                data = {k: data[k] for k in keys}
            if shapes:
                data["shape"] = {"input_expected": td.shape.input_expected, "input_worst": td.shape.input_worst,
                                 "output_expected": td.shape.output_expected, "output_worst": td.shape.output_worst}
            tasks[td.id] = data
        out["workflows"][name] = {"tasks": tasks, "order": list(wd.order),
                                  "totals": wd.totals.__class__.__name__ and {
                                      k: getattr(wd.totals, k) for k in ("cost_usd_expected", "cost_usd_worst",
                                                                         "tokens_expected", "latency_s")},
                                  "critical_path": list(wd.critical_path), "stages": [list(s) for s in wd.stages]}
    return out


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
