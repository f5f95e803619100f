"""`fallback only [...]` at run time: the closed group the plan wrote is all the runtime asks.

- `bmad run --provider sim --sim-failure-rate 1` in a subprocess, every call failing: the task walks
  its whole chain, and the real SQLite journal's calls touch the chosen model and the written ones,
  each of them, and nothing else; `fallback [...]` (not closed) goes on to the automatic ones.
- `strategy adaptive` short of money (`_adapt`) puts a cheaper model in front of a chain: for a
  closed group only a model of the group (run in-process against a real journal, with a run budget
  below the plan's expected cost); without the group, a model from outside.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from runtime_support import exported, plan_source, run_plan

CATALOG = """\
provider p1 { kind sim }
provider p2 { kind sim }
provider p3 { kind sim }
provider p4 { kind sim }
model cheap  { provider p1 price input $0.1 output $0.2 per 1M skills { writing 0.7 } }
model mid    { provider p2 price input $0.5 output $1 per 1M  skills { writing 0.8 } }
model strong { provider p3 price input $5 output $10 per 1M   skills { writing 0.95 } }
model extra  { provider p4 price input $0.3 output $0.6 per 1M skills { writing 0.9 } }
"""


def run_failing(tmp_path: Path, clauses: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    (tmp_path / "wf.bmad").write_text(CATALOG + f"""
workflow w {{
  task t {{
    prompt "Summarize the merger terms."
    model strong
    {clauses}
    retry 0
    max_tokens 50
  }}
  output t
}}
""", encoding="utf-8")
    journal = tmp_path / "j.db"
    journal.unlink(missing_ok=True)
    env = {**os.environ, "NO_COLOR": "1"}
    out = subprocess.run([sys.executable, "-m", "bmad", "run", "wf.bmad", "--provider", "sim",
                          "--sim-latency-scale", "0", "--sim-failure-rate", "1", "--journal", str(journal)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    db = sqlite3.connect(journal)
    try:
        models = {m for (m,) in db.execute("SELECT DISTINCT model FROM calls WHERE task_id = 't'")}
    finally:
        db.close()
    return out, models


def test_a_failing_closed_group_asks_exactly_the_chosen_and_the_written_models(tmp_path):
    out, models = run_failing(tmp_path, "fallback only [mid, cheap]")
    assert out.returncode == 1, out.stderr  # every model failed: the task fails
    assert models == {"strong", "mid", "cheap"}
    # the same models without `only`: the planner's automatic fallbacks are asked after them
    out, models = run_failing(tmp_path, "fallback [mid, cheap]")
    assert out.returncode == 1, out.stderr
    assert {"strong", "mid", "cheap"} < models


ADAPTIVE = """
workflow w {
  strategy adaptive
  task t {
    prompt "Write a haiku."
    model strong
    FALLBACK
    max_tokens 1000
  }
  output t
}
"""


def adaptive_run(tmp_path: Path, clauses: str):
    plan = plan_source(tmp_path, ADAPTIVE.replace("FALLBACK", clauses), catalog=CATALOG)
    expected = plan.tasks[0].estimate.cost_usd_expected
    budget = 0.003
    assert budget < expected  # short of money from the start: `_adapt` moves a cheaper model first
    outcome, rec = run_plan(plan, tmp_path, budget_usd=budget)
    moves = [(e.data["from_model"], e.data["to_model"]) for e in rec.kinds("task_rerouted")]
    calls = {c["model"] for c in exported(tmp_path, outcome.run_id)["calls"] if c["task"] == "t"}
    return outcome, moves, calls


def test_adaptive_short_of_money_moves_only_a_model_of_the_group_in_front(tmp_path):
    outcome, moves, calls = adaptive_run(tmp_path, "fallback only [mid]")
    assert outcome.status == "completed"
    assert moves == [("strong", "mid")]
    assert calls == {"mid"}


def test_adaptive_short_of_money_takes_a_model_from_outside_an_open_chain(tmp_path):
    _outcome, moves, calls = adaptive_run(tmp_path, "fallback [mid]")
    [(old, new)] = moves
    assert old == "strong" and new not in ("strong", "mid")
    assert new in calls


def test_adaptive_short_of_money_moves_no_model_in_front_of_fallback_none(tmp_path):
    # `fallback none` is for a task that must not reach another model: adaptive used to move a
    # cheaper outside model in front of it all the same
    outcome, moves, calls = adaptive_run(tmp_path, "fallback none")
    assert moves == []
    assert calls <= {"strong"}  # strong alone, which the budget may not even allow
    assert outcome.status != "completed"
