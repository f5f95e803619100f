"""Attempt numbers live on the call rows (journal schema 3): each answering call carries the task's
try number, the task row its count, and a version-2 journal's `attempts` table is folded in."""

from __future__ import annotations

import sqlite3

from bmad.runtime.journal import Journal
from bmad.runtime.journal_schema import CURRENT_VERSION

from old_journals import META_AND_RUNS_BEFORE_V5
from runtime_support import exported, plan_source, run_plan, sim_factory

RETRYING = """
workflow retrying {
  input n: list<text>
  task each for each x in n { prompt "work on {{ x }}" model cheap retry 6 backoff fixed 1ms to 1ms }
  output each
}
"""


def test_each_answering_call_carries_its_attempt_number(tmp_path):
    plan = plan_source(tmp_path, RETRYING)
    factory = sim_factory(plan, failure_rate=0.4, seed=5, failure_kinds=("transient",))
    outcome, _ = run_plan(plan, tmp_path, factory=factory, inputs={"n": [f"i{k}" for k in range(12)]})
    assert outcome.status == "completed", outcome.error
    data = exported(tmp_path, outcome.run_id)
    by_task: dict[str, list[dict]] = {}
    for call in data["calls"]:
        by_task.setdefault(call["task"], []).append(call)
    retried = 0
    for task in data["tasks"]:
        calls = by_task.get(task["id"], [])
        if not calls:
            continue
        assert [c["attempt"] for c in calls] == list(range(1, len(calls) + 1))
        assert task["attempts"] == len(calls)
        retried += len(calls) > 1
    assert retried  # the failure rate made some items try again
    journal = Journal(tmp_path / "runs.db")
    tables = {r[0] for r in journal.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    journal.close()
    assert "attempts" not in tables


V2_JOURNAL = META_AND_RUNS_BEFORE_V5 + """
CREATE TABLE tasks (
  run_id TEXT, task_id TEXT, status TEXT, model TEXT, attempts INTEGER, cost_usd REAL,
  tokens INTEGER, quality REAL, output_json TEXT, error TEXT, started_at REAL, finished_at REAL,
  cache_key TEXT, cached INTEGER DEFAULT 0, capability TEXT, PRIMARY KEY (run_id, task_id));
CREATE TABLE attempts (
  run_id TEXT, task_id TEXT, attempt INTEGER, model TEXT, status TEXT, error TEXT,
  started_at REAL, finished_at REAL);
CREATE TABLE calls (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, task_id TEXT, slot TEXT, model TEXT,
  request_hash TEXT, status TEXT, response_text TEXT, input_tokens INTEGER, output_tokens INTEGER,
  cost_usd REAL, latency_s REAL, error TEXT, error_kind TEXT, cached INTEGER DEFAULT 0,
  purpose TEXT, capability TEXT, quality REAL, created_at REAL);
CREATE INDEX calls_by_run ON calls (run_id, request_hash);
CREATE INDEX runs_by_started ON runs (started_at);
INSERT INTO runs (id, workflow, status, started_at, total_tasks) VALUES ('r', 'w', 'completed', 1.0, 2);
INSERT INTO tasks (run_id, task_id, status, attempts, output_json) VALUES ('r', 'a', 'completed', 2, '"x"');
INSERT INTO tasks (run_id, task_id, status, attempts, output_json) VALUES ('r', 'b', 'completed', 1, '"y"');
INSERT INTO attempts VALUES ('r', 'a', 1, 'm', 'error', 'transient: x', 1.0, 1.1);
INSERT INTO attempts VALUES ('r', 'a', 2, 'm', 'ok', NULL, 1.1, 1.2);
INSERT INTO attempts VALUES ('r', 'b', 1, 'm', 'ok', NULL, 1.0, 1.2);
INSERT INTO calls (run_id, task_id, slot, model, status, purpose, cached) VALUES ('r', 'a', '', 'm', 'error', 'answer', 0);
INSERT INTO calls (run_id, task_id, slot, model, status, purpose, cached) VALUES ('r', 'b', '', 'm', 'ok', 'answer', 0);
INSERT INTO calls (run_id, task_id, slot, model, status, purpose, cached) VALUES ('r', 'a', '', 'm', 'ok', 'answer', 0);
INSERT INTO calls (run_id, task_id, slot, model, status, purpose, cached) VALUES ('r', 'a', '', 'j', 'ok', 'judge', 0);
PRAGMA user_version = 2;
"""


def test_a_version_2_journal_numbers_its_calls_and_drops_the_attempts_table(tmp_path):
    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    db.executescript(V2_JOURNAL)
    db.close()
    journal = Journal(path)
    assert journal.db.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    rows = journal.db.execute("SELECT task_id, purpose, attempt FROM calls ORDER BY id").fetchall()
    assert rows == [("a", "answer", 1), ("b", "answer", 1), ("a", "answer", 2), ("a", "judge", None)]
    assert not journal.db.execute("SELECT 1 FROM sqlite_master WHERE name='attempts'").fetchone()
    assert journal.final_tasks("r")["a"]["attempts"] == 2
    journal.close()
    journal = Journal(path)  # opening it again changes nothing
    assert journal.db.execute("SELECT attempt FROM calls ORDER BY id").fetchall() == [(1,), (1,), (2,), (None,)]
    journal.close()
