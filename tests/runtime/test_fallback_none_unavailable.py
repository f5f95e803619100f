"""`fallback none` with a pinned model that is unavailable here (its provider's key variable is
unset): the plan keeps the pin (BMAD-W205) and the run fails the task under its `on_error`, without
asking any other model; the task never completes on a model the author excluded.

A real HTTP server on 127.0.0.1 (`UsageServer` of test_budget_overrun.py): provider `vault` on it
needs a key variable that is never set, provider `lab` (the server's key is set by `bmad`) has a
model that answers. `bmad plan` / `bmad run` in a subprocess, the real SQLite journal read back,
and the server's own count of requests per model id.
"""

from __future__ import annotations

import json

import pytest

from test_budget_overrun import UsageServer, bmad, journal_rows, run_file

UNSET_KEY = "BMAD_TEST_FBN_KEY_NEVER_SET"


@pytest.fixture(scope="module")
def server():
    with UsageServer() as s:
        yield s


def workflow(server: UsageServer, clauses: str) -> str:
    return server.catalog("ok") + f"""
provider vault {{
  kind openai
  base_url "{server.url}"
  api_key env {UNSET_KEY}
  timeout 5s
}}
model m_locked {{
  provider vault
  id "locked"
  price input $1.00 output $2.00 per 1M
  context 128k
  skills {{ writing 0.8, reasoning 0.8 }}
}}
workflow w {{
  task secret {{
    prompt "Confidential: summarise our merger terms."
    model m_locked
    {clauses}
    max_tokens 50
  }}
  output secret
}}
"""


def test_the_plan_keeps_the_unavailable_pin_with_w205(server, tmp_path, monkeypatch):
    monkeypatch.delenv(UNSET_KEY, raising=False)
    (tmp_path / "wf.bmad").write_text(workflow(server, "fallback none"))
    out = bmad(tmp_path, "plan", "wf.bmad", "--format", "json")
    assert out.returncode == 0, out.stderr
    [task] = json.loads(out.stdout)["tasks"]
    assert task["model"] == "m_locked" and task["fallbacks"] == []
    text = bmad(tmp_path, "plan", "wf.bmad")
    assert "BMAD-W205" in text.stdout + text.stderr and "BMAD-W201" not in text.stdout + text.stderr


def test_the_run_fails_the_task_without_asking_another_model(server, tmp_path, monkeypatch):
    monkeypatch.delenv(UNSET_KEY, raising=False)
    before_ok, before_locked = server.count("ok"), server.count("locked")
    out, journal = run_file(tmp_path, workflow(server, "fallback none"))
    assert out.returncode != 0, out.stderr
    assert server.count("ok") == before_ok  # no other model was asked
    assert server.count("locked") == before_locked  # nor was the locked one: it has no key
    [(status,)] = journal_rows(journal, "SELECT status FROM runs")
    assert status == "failed"
    [(task_status, model, error)] = journal_rows(journal, "SELECT status, model, error FROM tasks")
    assert task_status == "failed" and model in (None, "")
    assert "m_locked" in error and UNSET_KEY in error
    assert {m for (m,) in journal_rows(journal, "SELECT DISTINCT model FROM calls")} <= {"m_locked"}


def test_under_on_error_continue_the_run_completes_with_the_task_failed(server, tmp_path, monkeypatch):
    monkeypatch.delenv(UNSET_KEY, raising=False)
    before_ok = server.count("ok")
    out, journal = run_file(tmp_path, workflow(server, "fallback none\n    on_error continue"))
    assert out.returncode == 0, out.stderr
    assert server.count("ok") == before_ok
    [(task_status,)] = journal_rows(journal, "SELECT status FROM tasks")
    assert task_status == "failed"
