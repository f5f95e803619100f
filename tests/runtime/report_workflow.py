"""A small workflow run on sim into a real journal, for the report, metrics and monitor tests."""

from __future__ import annotations

from pathlib import Path

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import plan_program
from bmad.compiler.passes.context import make_context
from bmad.runtime.executors.local import RunRequest, execute_plan

HOSTILE = '<script>alert("x")</script> & <img src=http://example.invalid/x.png>'

SOURCE = """
workflow report_demo {
  budget $1.00 per run
  input topic: text

  task draft {
    prompt "Write three sentences about {{ topic }}."
    model gpt-4o-mini
    max_tokens 80
    retry 3 backoff fixed 0.01s to 0.01s
    quality >= 0.5 judged by gpt-4o-mini
  }

  task verdict {
    prompt "Is this draft fine? {{ draft }} Answer YES or NO."
    returns enum(YES, NO)
    consensus vote among [gpt-4o, claude-sonnet, gpt-4o-mini] quorum 1
    retry 3 backoff fixed 0.01s to 0.01s
  }

  output draft
  output verdict
}
"""


def plan_report_workflow(tmp_path: Path):
    path = tmp_path / "report_demo.bmad"
    path.write_text(SOURCE, encoding="utf-8")
    result = compile_file(str(path))
    assert result.ok, [f"{d.code} {d.message}" for d in result.diagnostics if d.is_error]
    plan, diagnostics = plan_program(result.program, make_context(result.program, provider_mode="sim"))
    assert plan is not None, [f"{d.code} {d.message}" for d in diagnostics if d.is_error]
    return plan


def run_report_workflow(tmp_path: Path, journal: Path, *, seed: int = 1, failure_rate: float = 0.0,
                        topic: str = HOSTILE):
    plan = plan_report_workflow(tmp_path)
    return execute_plan(plan, RunRequest(
        input_texts={"topic": topic}, provider_mode="sim", sim_seed=seed, sim_latency_scale=0.0,
        sim_failure_rate=failure_rate, journal_path=journal, source=str(tmp_path / "report_demo.bmad")))
