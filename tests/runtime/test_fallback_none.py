"""`fallback none`: a pinned model answers or the task fails; the planner adds no automatic
fallback. Without it, a failing pinned model is replaced by a capable model of the catalog.

A real HTTP server on 127.0.0.1 (`UsageServer` of test_budget_overrun.py): `m_r429big` answers
every call with a 429 whose Retry-After is too long to wait, `m_ok` answers. `bmad run` in a
subprocess, the real SQLite journal read back, and the server's own count of requests per model.
"""

from __future__ import annotations

import json

import pytest

from test_budget_overrun import UsageServer, bmad, journal_rows, run_file


@pytest.fixture(scope="module")
def server():
    with UsageServer() as s:
        yield s


def workflow(server: UsageServer, fallback_clause: str) -> str:
    return server.catalog("r429big", "ok") + f"""
workflow pinned {{
  task t {{
    prompt "Say hi"
    model m_r429big
    {fallback_clause}
    max_tokens 50
  }}
  output t
}}
"""


def test_fallback_none_fails_the_task_instead_of_asking_another_model(server, tmp_path):
    before_ok, before_limited = server.count("ok"), server.count("r429big")
    out, journal = run_file(tmp_path, workflow(server, "fallback none"))
    assert out.returncode != 0, out.stderr
    assert server.count("ok") == before_ok  # no other model was asked
    assert server.count("r429big") - before_limited == 1
    [(status,)] = journal_rows(journal, "SELECT status FROM runs")
    assert status == "failed"
    assert journal_rows(journal, "SELECT DISTINCT model FROM calls") == [("m_r429big",)]
    [(task_status, error)] = journal_rows(journal, "SELECT status, error FROM tasks")
    assert task_status == "failed" and "m_r429big" in error


def planned(server: UsageServer, tmp_path, fallback_clause: str) -> tuple[dict, str]:
    (tmp_path / "wf.bmad").write_text(workflow(server, fallback_clause))
    out = bmad(tmp_path, "plan", "wf.bmad", "--format", "json")
    assert out.returncode == 0, out.stderr
    [task] = json.loads(out.stdout)["tasks"]
    return task, out.stdout


def test_the_plan_shows_no_fallback_and_no_risk_for_it(server, tmp_path):
    task, text = planned(server, tmp_path, "fallback none")
    assert task["model"] == "m_r429big" and task["fallbacks"] == []
    assert "BMAD-W230" not in text  # chosen by the author: not a risk to point out


def test_without_it_the_planner_adds_automatic_fallbacks(server, tmp_path):
    task, text = planned(server, tmp_path, "")
    assert task["model"] == "m_r429big" and "m_ok" in task["fallbacks"]
    task, _ = planned(server, tmp_path, "fallback [m_ok]")
    assert task["fallbacks"][0] == "m_ok"
