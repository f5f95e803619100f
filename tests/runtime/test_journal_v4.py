"""A version-3 journal is brought forward through schema 4 (`calls` without AUTOINCREMENT, `tasks`
rebuilt) and schema 5 (tests/runtime/test_journal_v5.py: each run's calls and tasks moved into
its block of ids) keeping every row, each run's call order, and the indexes."""

from __future__ import annotations

import sqlite3

from bmad.runtime.export import export_run
from bmad.runtime.journal import CALL_BLOCK_BITS, Journal
from bmad.runtime.journal_schema import CURRENT_VERSION

from old_journals import META_AND_RUNS_BEFORE_V5

V3_JOURNAL = META_AND_RUNS_BEFORE_V5 + """
CREATE TABLE tasks (
  run_id TEXT, task_id TEXT, status TEXT, model TEXT, attempts INTEGER, cost_usd REAL,
  tokens INTEGER, quality REAL, output_json TEXT, error TEXT, started_at REAL, finished_at REAL,
  cache_key TEXT, cached INTEGER DEFAULT 0, capability TEXT, PRIMARY KEY (run_id, task_id));
CREATE TABLE calls (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, task_id TEXT, slot TEXT, model TEXT,
  request_hash TEXT, status TEXT, response_text TEXT, input_tokens INTEGER, output_tokens INTEGER,
  cost_usd REAL, latency_s REAL, error TEXT, error_kind TEXT, cached INTEGER DEFAULT 0,
  purpose TEXT, capability TEXT, quality REAL, created_at REAL, attempt INTEGER);
CREATE INDEX calls_by_run ON calls (run_id, request_hash);
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, ts REAL, kind TEXT, task_id TEXT, data_json TEXT);
CREATE INDEX runs_by_started ON runs (started_at);
INSERT INTO runs (id, workflow, plan_hash, status, started_at, total_tasks)
  VALUES ('r', 'w', 'p', 'failed', 1.0, 2);
INSERT INTO tasks (run_id, task_id, status, model, attempts, output_json)
  VALUES ('r', 'a', 'completed', 'm', 2, '"x"');
INSERT INTO tasks (run_id, task_id, status, model, attempts, output_json, error)
  VALUES ('r', 'b', 'failed', 'm', 1, NULL, 'boom');
INSERT INTO calls (id, run_id, task_id, slot, model, request_hash, status, response_text, purpose, attempt)
  VALUES (7, 'r', 'a', 'm0/', 'm', 'h1', 'error', NULL, 'answer', 1);
INSERT INTO calls (id, run_id, task_id, slot, model, request_hash, status, response_text, purpose, attempt)
  VALUES (9, 'r', 'a', 'm0/', 'm', 'h2', 'ok', 'x', 'answer', 2);
INSERT INTO calls (id, run_id, task_id, slot, model, request_hash, status, response_text, purpose, attempt)
  VALUES (12, 'r', 'b', 'm0/', 'm', 'h3', 'error', NULL, 'answer', 1);
PRAGMA user_version = 3;
"""


def _sql(journal: Journal, name: str) -> str:
    return journal.db.execute("SELECT sql FROM sqlite_master WHERE name=?", (name,)).fetchone()[0]


def test_a_version_3_journal_is_rebuilt_keeping_rows_ids_and_indexes(tmp_path):
    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    db.executescript(V3_JOURNAL)
    db.close()
    journal = Journal(path)
    assert journal.db.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    assert "id INTEGER PRIMARY KEY" in _sql(journal, "tasks")  # schema 5: rows in blocks
    assert "AUTOINCREMENT" not in _sql(journal, "calls")
    indexes = {r[0] for r in journal.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "calls_by_run" not in indexes and "calls_of_run" not in indexes
    assert {"runs_by_started", "runs_by_call_block"} <= indexes
    tables = {r[0] for r in journal.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not any("_before_v" in t for t in tables)
    first = 1 << CALL_BLOCK_BITS  # the run's block (schema 5), in the order the calls were made
    assert [(c["id"], c["task_id"], c["attempt"]) for c in journal.call_rows("r")] == \
        [(first, "a", 1), (first + 1, "a", 2), (first + 2, "b", 1)]
    assert journal.final_tasks("r") == {"a": {"status": "completed", "model": "m", "attempts": 2,
                                              "cost_usd": None, "tokens": None, "quality": None,
                                              "output": "x"}}
    assert journal.recorded_calls("r")["h2"].text == "x"
    exported = export_run(journal, "r")
    assert [t["id"] for t in exported["tasks"]] == ["a", "b"]
    assert [c["attempt"] for c in exported["calls"]] == [1, 2, 1]

    # New rows after the migration: call ids keep increasing, a task row is replaced in place.
    journal.add_call("r", "b", "m0/", "m", "h4", "ok", text="y", attempt=2)
    journal.add_task("r", "b", "completed", model="m", attempts=2, output="y")
    journal.flush()
    assert [c["id"] for c in journal.call_rows("r")][-1] == first + 3
    assert journal.final_tasks("r")["b"]["output"] == "y"
    assert journal.db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 2
    journal.close()

    journal = Journal(path)  # opening it again changes nothing
    assert [c["id"] for c in journal.call_rows("r")][:3] == [first, first + 1, first + 2]
    journal.close()
