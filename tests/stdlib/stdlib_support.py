"""Helpers for the stdlib tests: compile a program that uses a std pattern, plan it on sim, run it
in-process against a real SQLite journal, and list the stdlib's pattern modules."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import plan_program
from bmad.compiler.passes.context import make_context
from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.providers.registry import ProviderOptions, build_provider
from bmad.runtime.providers.sim import SimSettings

# The seed's patterns, by family (docs/stdlib.md has a page for each).
PATTERNS = {
    "development": ("code_generation", "code_review", "documentation_creation", "testing_strategy"),
    "analysis": ("requirement_analysis", "architecture_design", "pattern_identification",
                 "decision_support"),
    "knowledge": ("knowledge_extraction", "knowledge_synthesis", "knowledge_validation",
                  "knowledge_application"),
}
ALL_PATTERNS = tuple(p for family in PATTERNS.values() for p in family)


def stdlib_path(module: str) -> Path:
    return Path(str(resources.files("bmad.stdlib").joinpath(f"{module}.bmad")))


def compile_text(tmp_path: Path, text: str, name: str = "main.bmad"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return compile_file(path)


def plan_compiled(result, **context: Any):
    errors = [f"{d.code} {d.message}" for d in result.diagnostics if d.is_error]
    assert not errors, errors
    plan, diagnostics = plan_program(result.program,
                                     make_context(result.program, provider_mode="sim", **context))
    assert plan is not None, [f"{d.code} {d.message}" for d in diagnostics if d.is_error]
    return plan


def run_on_sim(plan, tmp_path: Path, inputs: dict[str, Any] | None = None, sim_seed: int = 0):
    options = ProviderOptions(models=plan.program.models,
                              sim=SimSettings(latency_scale=0.0, seed=sim_seed))
    request = RunRequest(inputs=inputs or {}, provider_mode="sim",
                         provider_factory=lambda decl: build_provider(decl, mode="sim", options=options),
                         journal_path=tmp_path / "runs.db")
    return execute_plan(plan, request)
