"""A task's own `budget` and a called workflow's `budget` are hard caps at run time, nested in the
run's: exhausting one fails that task (under its `on_error`), never the whole run."""

from __future__ import annotations

import pytest

from bmad.runtime.interpreter import RunConfig

from runtime_support import exported, plan_source, run_plan


def tasks_by_id(data):
    return {t["id"]: t for t in data["tasks"]}


def spent_by(data, prefix: str) -> tuple[float, int]:
    calls = [c for c in data["calls"] if c["task"] == prefix or c["task"].startswith(prefix + "/")]
    return (sum(c["cost_usd"] or 0.0 for c in calls),
            sum((c["input_tokens"] or 0) + (c["output_tokens"] or 0) for c in calls))


def tiny_budget_plan(tmp_path, on_error: str):
    return plan_source(tmp_path, f"""
    workflow w {{
      budget $1 per run
      task a {{ prompt "Write about bees" model cheap budget $0.0001 on_error {on_error} }}
      task b {{ prompt "Write about ants" model cheap }}
      task c {{ prompt "Use {{{{ a }}}}" model cheap }}
      output b
      output c
    }}
    """)


def test_a_tiny_task_budget_fails_that_task_and_the_run_goes_on(tmp_path):
    outcome, _ = run_plan(tiny_budget_plan(tmp_path, "skip"), tmp_path)
    assert outcome.status == "completed"
    data = exported(tmp_path, outcome.run_id)
    tasks = tasks_by_id(data)
    assert tasks["a"]["status"] == "skipped"
    assert "task `a` budget" in tasks["a"]["error"] and "usd budget exhausted" in tasks["a"]["error"]
    assert tasks["b"]["status"] == "completed"
    assert tasks["c"]["status"] == "skipped"  # its dependency was skipped
    assert not [c for c in data["calls"] if c["task"] == "a"]  # refused before any call
    assert 0 < data["run"]["spent_usd"] <= 1.0


def test_on_error_continue_lets_dependents_run(tmp_path):
    outcome, _ = run_plan(tiny_budget_plan(tmp_path, "continue"), tmp_path)
    assert outcome.status == "completed"
    tasks = tasks_by_id(exported(tmp_path, outcome.run_id))
    assert tasks["a"]["status"] == "failed" and "task `a` budget" in tasks["a"]["error"]
    assert tasks["b"]["status"] == "completed" and tasks["c"]["status"] == "completed"


def test_on_error_fail_fails_the_run_not_as_a_run_budget_stop(tmp_path):
    outcome, _ = run_plan(tiny_budget_plan(tmp_path, "fail"), tmp_path)
    assert outcome.status == "failed"
    tasks = tasks_by_id(exported(tmp_path, outcome.run_id))
    assert tasks["a"]["status"] == "failed" and "task `a` budget" in tasks["a"]["error"]


def test_a_token_budget_on_a_task(tmp_path):
    plan = plan_source(tmp_path, """
    workflow w {
      task small { prompt "Write a long essay" model cheap budget 60 tokens on_error continue }
      task other { prompt "Write a haiku" model cheap }
      output other
    }
    """)
    outcome, _ = run_plan(plan, tmp_path)
    assert outcome.status == "completed"
    tasks = tasks_by_id(exported(tmp_path, outcome.run_id))
    assert tasks["small"]["status"] == "failed"
    assert "tokens budget exhausted" in tasks["small"]["error"]
    assert tasks["other"]["status"] == "completed"


def test_a_called_workflow_budget_caps_each_invocation(tmp_path):
    plan = plan_source(tmp_path, """
    workflow inner {
      budget 2100 tokens
      input topic: text
      task t1 { prompt "Write about {{ topic }}" model cheap max_tokens 200 on_error continue }
      task t2 { prompt "More on {{ topic }}: {{ t1 }}" model cheap max_tokens 200 on_error continue }
      output t2
    }
    workflow outer {
      input items: list<text>
      task each for each it in items = inner(topic: it)
      output each
    }
    """)
    # Long inputs the planner can't see: the first task of an invocation fits, the second doesn't.
    items = [f"word{i} " * 230 for i in range(3)]
    outcome, _ = run_plan(plan, tmp_path, inputs={"items": items})
    assert outcome.status == "completed"
    data = exported(tmp_path, outcome.run_id)
    tasks = tasks_by_id(data)
    for i in range(3):
        assert tasks[f"each[{i}]/t1"]["status"] == "completed"
        assert tasks[f"each[{i}]/t2"]["status"] == "failed"
        assert f"workflow call `each[{i}]`" in tasks[f"each[{i}]/t2"]["error"]
        assert spent_by(data, f"each[{i}]")[1] <= 2100


@pytest.mark.parametrize("budget", [0.0025, 0.004, 0.006])
def test_a_task_never_spends_more_than_its_budget(tmp_path, budget):
    plan = plan_source(tmp_path, f"""
    workflow w {{
      input items: list<text>
      task each for each it in items {{
        prompt "Describe {{{{ it }}}}" model cheap budget ${budget} on_error continue
      }}
      task other {{ prompt "Write a haiku" model cheap }}
      output other
    }}
    """)
    outcome, _ = run_plan(plan, tmp_path, inputs={"items": [f"thing {i}" for i in range(12)]},
                          config=RunConfig(for_each_concurrency=4))
    assert outcome.status == "completed"
    data = exported(tmp_path, outcome.run_id)
    usd, _ = spent_by(data, "each")
    assert 0 < usd <= budget + 1e-9
    assert tasks_by_id(data)["other"]["status"] == "completed"


def test_a_task_budget_raises_its_own_alerts_and_the_journal_keeps_them(tmp_path):
    plan = plan_source(tmp_path, """
    workflow w {
      budget $1 per run
      input items: list<text>
      task each for each it in items {
        prompt "Describe {{ it }}" model cheap budget $0.004 on_error continue
      }
      output each
    }
    """)
    outcome, rec = run_plan(plan, tmp_path, inputs={"items": [f"thing {i}" for i in range(12)]},
                            config=RunConfig(for_each_concurrency=4))
    alerts = [(e.task, e.data["kind"], e.data["threshold"]) for e in rec.kinds("budget_alert")]
    assert ("each", "usd", 0.5) in alerts
    assert ("each", "usd", 1.0) in alerts  # the cap refused a call (80% may be jumped over)
    assert all(task == "each" for task, *_ in alerts)  # the run's $1 was far from its marks
    assert len(alerts) == len(set(alerts))  # each mark once
    journaled = [e for e in exported(tmp_path, outcome.run_id)["events"] if e["event"] == "budget_alert"]
    assert sorted((e["task"], e["threshold"]) for e in journaled) == sorted((t, th) for t, _, th in alerts)
    assert all(e["budget"] == 0.004 for e in journaled)
