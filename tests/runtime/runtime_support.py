"""Helpers for runtime tests (imported by the test modules; conftest.py puts this folder on sys.path): compile + plan a small .bmad source on sim, run it in-process against
a real SQLite journal in tmp_path, and read back what the journal recorded."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import plan_program
from bmad.compiler.passes.context import make_context
from bmad.runtime.events import CallbackSink
from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.export import export_run
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.journal import Journal
from bmad.runtime.providers.registry import ProviderOptions, build_provider
from bmad.runtime.providers.sim import SimSettings

CATALOG = """
provider p1 { kind sim }
provider p2 { kind sim }
provider p3 { kind sim }

model cheap {
  provider p1
  price input $1 output $2 per 1M
  skills { writing 0.6, code 0.6, reasoning 0.6 }
}
model mid {
  provider p2
  price input $2 output $4 per 1M
  skills { writing 0.8, code 0.8, reasoning 0.8 }
}
model strong {
  provider p3
  price input $5 output $10 per 1M
  skills { writing 0.95, code 0.95, reasoning 0.95 }
}
"""


def plan_source(tmp_path: Path, body: str, *, name: str = "wf.bmad", catalog: str = CATALOG):
    path = tmp_path / name
    path.write_text(catalog + "\n" + textwrap.dedent(body), encoding="utf-8")
    result = compile_file(path)
    errors = [d for d in result.diagnostics if d.is_error]
    assert not errors, [f"{d.code} {d.message}" for d in errors]
    plan, diagnostics = plan_program(result.program, make_context(result.program, provider_mode="sim"))
    assert plan is not None, [f"{d.code} {d.message}" for d in diagnostics if d.is_error]
    return plan


def sim_factory(plan, **settings: Any):
    options = ProviderOptions(models=plan.program.models,
                              sim=SimSettings(**{"latency_scale": 0.0, **settings}))
    return lambda decl: build_provider(decl, mode="sim", options=options)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def sink(self) -> CallbackSink:
        return CallbackSink(self.events.append)

    def kinds(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.kind == kind]


def run_plan(plan, tmp_path: Path, *, inputs: dict | None = None, factory=None,
             config: RunConfig | None = None, recorder: Recorder | None = None,
             sinks: tuple = (), **request: Any):
    rec = recorder or Recorder()
    req = RunRequest(inputs=inputs or {}, config=config or RunConfig(),
                     provider_factory=factory or sim_factory(plan), provider_mode="sim",
                     journal_path=tmp_path / "runs.db", sinks=[rec.sink(), *sinks], **request)
    outcome = execute_plan(plan, req)
    return outcome, rec


def exported(tmp_path: Path, run_id: str) -> dict[str, Any]:
    journal = Journal(tmp_path / "runs.db", readonly=True)
    try:
        return export_run(journal, run_id)
    finally:
        journal.db.close()


def failing_factory(plan, tasks: set[str], error: str = "bad_request", **settings: Any):
    """Sim providers, except that every call for the named tasks raises `error`."""
    from bmad.runtime.providers import base

    inner = sim_factory(plan, **settings)

    class FailingFor:
        def __init__(self, wrapped):
            self.wrapped = wrapped
            self.name = wrapped.name

        async def complete(self, request, on_progress=None):
            if request.task_id in tasks:
                raise base.ERROR_CLASSES[error](f"injected {error} for {request.task_id}",
                                                provider=self.name)
            return await self.wrapped.complete(request, on_progress)

        async def aclose(self):
            await self.wrapped.aclose()

    return lambda decl: FailingFor(inner(decl))
