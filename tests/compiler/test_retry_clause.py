"""`retry N` counts retries after the first try: it lowers to N + 1 attempts in the IR (which, like
the seed's `max_attempts`, counts the first try), `retry 0` is valid (no retry), the planner's
worst case counts N + 1 calls, and BMAD-E186 is left for IR that allows no attempt at all."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bmad.compiler import ir
from bmad.compiler.compile import compile_file, compile_source
from bmad.compiler.passes import plan_program
from bmad.compiler.passes.context import make_context
from bmad.runtime.retry import DEFAULT_ATTEMPTS, RetryPolicy

CATALOG = """
provider p { kind sim }
model cheap { provider p  price input $1 output $2 per 1M  skills { writing 0.8 } }
"""


def lowered_retry(clause: str) -> ir.Retry | None:
    result = compile_source(CATALOG + f'workflow w {{\n  task t {{ prompt "x" model cheap {clause} }}\n'
                            "  output t\n}\n", "w.bmad")
    assert result.ok, [d.message for d in result.diagnostics]
    return result.program.workflows[0].tasks[0].retry


@pytest.mark.parametrize("retries", [0, 1, 2, 5])
def test_retry_n_lowers_to_n_plus_one_attempts(retries):
    retry = lowered_retry(f"retry {retries} backoff fixed 1s to 2s")
    assert retry.attempts == retries + 1
    assert RetryPolicy.from_ir(retry).attempts == retries + 1


def test_no_clause_keeps_three_attempts_and_retry_2_matches_it():
    assert lowered_retry("") is None
    assert RetryPolicy.from_ir(None).attempts == DEFAULT_ATTEMPTS == 3
    assert RetryPolicy.from_ir(lowered_retry("retry 2")).attempts == DEFAULT_ATTEMPTS


def test_bmad_check_accepts_retry_0(tmp_path):
    (tmp_path / "r.bmad").write_text(CATALOG + 'workflow w {\n  task t { prompt "x" model cheap retry 0 }\n'
                                     "  output t\n}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "bmad", "check", "r.bmad"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BMAD-E186" not in proc.stdout + proc.stderr


def test_seed_max_attempts_means_the_same_as_retry_one_less(tmp_path):
    (tmp_path / "w.yaml").write_text(
        "id: w\ntasks:\n  - id: t\n    retry_config: { max_attempts: 3, backoff: fixed }\n", encoding="utf-8")
    from_yaml = compile_file(tmp_path / "w.yaml")
    assert from_yaml.ok
    assert from_yaml.program.workflows[0].tasks[0].retry.attempts == 3
    assert lowered_retry("retry 2 backoff fixed").attempts == 3


@pytest.mark.parametrize("clause, worst", [("retry 0", 1), ("retry 1", 2), ("retry 3", 4)])
def test_the_plan_worst_case_counts_the_first_try_and_the_retries(clause, worst):
    result = compile_source(CATALOG + f'workflow w {{\n  task t {{ prompt "x" model cheap {clause} }}\n'
                            "  output t\n}\n", "w.bmad")
    plan, _ = plan_program(result.program, make_context(result.program, provider_mode="sim"))
    task = plan.entry.tasks[0]
    # per model of the chain the runtime walks: the pinned model, then each fallback
    assert task.estimate.calls_worst == worst * (1 + len(task.fallbacks))


def test_e186_is_ir_with_no_attempt_at_all():
    from bmad.compiler.checks.values import check_task

    span = ir.Span("x.bmad", 1, 1, 1, 8)
    out = []
    check_task(ir.Task(name="t", prompt=None, retry=ir.Retry(0, span=span), name_span=span), out)
    assert [d.code for d in out] == ["BMAD-E186"]
    assert "allows no attempt" in out[0].message and "`retry 0`" in out[0].hint
    out = []
    check_task(ir.Task(name="t", prompt=None, retry=ir.Retry(1, span=span), name_span=span), out)
    assert out == []
