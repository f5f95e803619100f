"""A run that stops early still accounts for every task: the ones it never started get a journal row
(`not_started`) and appear in `bmad export`; a resume runs them."""

from __future__ import annotations

from runtime_support import exported, failing_factory, plan_source, run_plan

from bmad.runtime.interpreter import RunConfig

CHAIN = """
workflow w {
  task a { prompt "first" model cheap }
  task b { prompt "second after {{ a }}" model cheap }
  task c { prompt "third after {{ b }}" model cheap }
  task d { prompt "fourth after {{ c }}" model cheap }
  output d
}
"""


def _tasks(tmp_path, run_id):
    return {t["id"]: t for t in exported(tmp_path, run_id)["tasks"]}


def test_budget_exhausted_leaves_not_started_rows(tmp_path):
    plan = plan_source(tmp_path, CHAIN)
    # Each call reserves about $0.002 for its output (1,024 tokens at $2 per 1M) plus its prompt,
    # which carries the previous (simulated, seeded) answer, a byte per token: room for two.
    # (Calibrated to the sim's answers, half of max_tokens on average: $0.0062-0.0073 fits two.)
    outcome, _ = run_plan(plan, tmp_path, budget_usd=0.007,
                          config=RunConfig(strategy="sequential"))
    assert outcome.status == "budget_exhausted"
    assert outcome.spent_usd <= 0.007
    tasks = _tasks(tmp_path, outcome.run_id)
    assert set(tasks) == {"a", "b", "c", "d"}
    assert [tasks[t]["status"] for t in "abcd"] == ["completed", "completed", "budget_exhausted",
                                                   "not_started"]
    assert "budget" in tasks["d"]["error"]
    assert tasks["d"]["attempts"] == 0 and tasks["d"]["output"] is None
    assert outcome.task_statuses["d"] == "not_started"

    # A resume with more room runs exactly the tasks that did not complete.
    resumed, _ = run_plan(plan, tmp_path, resume=outcome.run_id, budget_usd=1.0)
    assert resumed.status == "completed"
    assert {t["status"] for t in _tasks(tmp_path, outcome.run_id).values()} == {"completed"}


def test_a_failure_under_on_error_fail_leaves_the_rest_not_started(tmp_path):
    plan = plan_source(tmp_path, """
workflow w {
  task a { prompt "first" model cheap }
  task bad { prompt "breaks" model cheap retry 0 }
  task after { prompt "needs {{ bad }}" model cheap }
  task other { prompt "independent" model cheap }
  output after
}
""")
    outcome, _ = run_plan(plan, tmp_path, factory=failing_factory(plan, {"bad"}),
                          config=RunConfig(strategy="sequential"))
    assert outcome.status == "failed"
    tasks = _tasks(tmp_path, outcome.run_id)
    assert set(tasks) == {"a", "bad", "after", "other"}
    assert tasks["bad"]["status"] == "failed"
    assert tasks["after"]["status"] == "not_started"
    assert "`bad` failed" in tasks["after"]["error"]
    # One at a time in plan order: whatever came after `bad` never started.
    assert {tasks[t]["status"] for t in ("a", "other")} <= {"completed", "not_started"}


def test_a_completed_run_has_no_unfinished_rows(tmp_path):
    plan = plan_source(tmp_path, CHAIN)
    outcome, _ = run_plan(plan, tmp_path)
    assert outcome.status == "completed"
    assert {t["status"] for t in _tasks(tmp_path, outcome.run_id).values()} == {"completed"}
