"""BMAD-E155: a learned bar (`quality >= auto [P]`) only on a consensus that escalates. Elsewhere the
runtime used P, a target match rate, as a score bar, while the plan said every decision escalates."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bmad.compiler.compile import compile_source

CATALOG = """
provider p { kind sim }
model a { provider p price input $1 output $2 per 1M skills { writing 0.5 } }
model b { provider p price input $1 output $2 per 1M skills { writing 0.7 } }
model c { provider p price input $1 output $2 per 1M skills { writing 0.9 } }
"""


def codes(task_clauses: str) -> list[tuple[str, int, int]]:
    source = CATALOG + f"""workflow w {{
  task t {{
    prompt "Write a line"
    needs writing
    {task_clauses}
  }}
  output t
}}
"""
    result = compile_source(source.encode(), "w.bmad")
    return [(d.code, d.span.line, d.span.column) for d in result.diagnostics if d.is_error]


GATE_LINE = CATALOG.count("\n") + 5  # the line of the task's clauses


@pytest.mark.parametrize("clauses", [
    "model a\n    quality >= auto else escalate",
    "model a\n    quality >= auto 0.3 else refine max 1",
    "consensus vote among [a, b, c]\n    quality >= auto 0.8 else refine max 1",
    "consensus vote among [a, b, c]\n    quality >= auto else fail",
    "consensus vote among [a, b, c]\n    quality >= auto",
])
def test_a_learned_bar_that_decides_nothing_is_rejected(clauses):
    [(code, line, column)] = codes(clauses)
    assert code == "BMAD-E155"
    assert (line, column) == (GATE_LINE + 1, 5)  # at the quality clause


@pytest.mark.parametrize("clauses", [
    "consensus vote among [a, b, c]\n    quality >= auto else escalate",
    "consensus weighted among [a, b, c]\n    quality >= auto 0.95 else escalate",
    "model a\n    quality >= 0.8 else refine max 1",
])
def test_a_learned_bar_on_an_escalating_consensus_and_fixed_bars_are_accepted(clauses):
    assert codes(clauses) == []


def test_bmad_check_exits_with_the_code(tmp_path):
    path = tmp_path / "w.bmad"
    path.write_text(CATALOG + 'workflow w {\n  task t { prompt "p" model a quality >= auto else escalate }\n'
                    "  output t\n}\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "bmad", "check", str(path)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert out.returncode == 1
    assert "error[BMAD-E155]" in out.stdout + out.stderr and "Traceback" not in out.stderr
