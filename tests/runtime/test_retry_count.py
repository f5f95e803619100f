"""`retry N` is N retries after the first try: N + 1 attempts per model (`retry 0`: one attempt, no
retry); a task without the clause keeps the default of 3 attempts (2 retries). Counted on the
journal's call rows with every call failing transiently (sim provider), and through `bmad run`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from runtime_support import exported, plan_source, run_plan, sim_factory


def answering_calls(data, task="t"):
    return [c for c in data["calls"] if c["task"] == task and c["purpose"] == "answer"]


@pytest.mark.parametrize("clause, attempts", [
    ("retry 0", 1),
    ("retry 1 backoff fixed 1ms to 1ms", 2),
    ("retry 2 backoff fixed 1ms to 1ms", 3),
    ("retry 4 backoff fixed 1ms to 1ms", 5),
    ("", 3),  # no clause: the default, 2 retries
])
def test_retry_n_makes_n_plus_one_attempts_per_model(tmp_path, clause, attempts):
    plan = plan_source(tmp_path, f"""
    workflow w {{
      task t {{ prompt "x" model cheap fallback none {clause} }}
      output t
    }}
    """)
    factory = sim_factory(plan, failure_rate=1.0, failure_kinds=("transient",))
    outcome, rec = run_plan(plan, tmp_path, factory=factory)
    assert outcome.status == "failed"
    calls = answering_calls(exported(tmp_path, outcome.run_id))
    assert [c["model"] for c in calls] == ["cheap"] * attempts
    assert [c["attempt"] for c in calls] == list(range(1, attempts + 1))
    assert len(rec.kinds("task_retried")) == attempts - 1


def test_retries_apply_to_each_model_of_the_fallback_chain(tmp_path):
    plan = plan_source(tmp_path, """
    workflow w {
      task t { prompt "x" model cheap fallback [mid] retry 1 backoff fixed 1ms to 1ms }
      output t
    }
    """)
    factory = sim_factory(plan, failure_rate=1.0, failure_kinds=("transient",))
    outcome, _ = run_plan(plan, tmp_path, factory=factory)
    calls = answering_calls(exported(tmp_path, outcome.run_id))
    models = [c["model"] for c in calls]
    assert models[:4] == ["cheap", "cheap", "mid", "mid"]
    assert all(models.count(m) == 2 for m in set(models)), models  # automatic fallbacks too


def test_bmad_run_with_retry_1_retries_once_and_fails_with_exit_1(tmp_path):
    (tmp_path / "r.bmad").write_text("""
provider s { kind sim }
model good { provider s  price input $1 output $2 per 1M  context 100k  skills { reasoning 0.95 } }
workflow r {
  task r {
    prompt "Retry me"
    model good
    fallback none
    retry 1 backoff fixed 100ms to 100ms
  }
  output r
}
""", encoding="utf-8")
    journal = tmp_path / "j.db"
    proc = subprocess.run([sys.executable, "-m", "bmad", "run", "r.bmad", "--provider", "sim",
                           "--journal", str(journal), "--sim-latency-scale", "0",
                           "--sim-failure-rate", "1", "--json-events"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"event"')]
    assert [e["attempt"] for e in events if e["event"] == "task_retried"] == [1]
    db = sqlite3.connect(journal)
    rows = db.execute("SELECT model, attempt, error_kind FROM calls WHERE task_id='r' ORDER BY id").fetchall()
    db.close()
    assert rows == [("good", 1, "transient"), ("good", 2, "transient")]
