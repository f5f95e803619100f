"""A SQLite file that merely has a table named `runs` (or `tasks`, `calls`, `meta`) is not a bmad
journal: it is refused in the words a file without `runs` gets and left untouched byte for byte,
whatever its `user_version`; real old journals, versioned or not, still migrate."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bmad.runtime.journal import Journal, JournalError
from bmad.runtime.journal_schema import CURRENT_VERSION

from old_journals import META_AND_RUNS_BEFORE_V5

HELLO = """
workflow hello {
  input topic: text = "x"
  task greet { prompt "Say hi about {{ topic }}" }
  output greet
}
"""


def bmad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BMAD_HOME"}
    return subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def make_db(path: Path, script: str) -> bytes:
    db = sqlite3.connect(path)
    db.executescript(script)
    db.close()
    return path.read_bytes()


FOREIGN = {
    # the QA repro: a user's own `runs` table, unversioned
    "runs(x)": "CREATE TABLE runs (x INTEGER); INSERT INTO runs VALUES (1);",
    # another program that stamps user_version and keeps its own `runs`
    "versioned runs": ("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT, started REAL);"
                       "INSERT INTO runs VALUES (1, 'nightly', 2.0); PRAGMA user_version = 3;"),
    # a `runs` like bmad's beside a foreign `tasks` table
    "foreign tasks": (META_AND_RUNS_BEFORE_V5 +
                      "CREATE TABLE tasks (todo TEXT, done INTEGER);"
                      "INSERT INTO tasks VALUES ('milk', 0);"),
}


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_foreign_runs_table_is_refused_and_left_untouched(tmp_path, kind):
    path = tmp_path / "other.db"
    before = make_db(path, FOREIGN[kind])
    schema_before = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master").fetchall()
    for readonly in (False, True):
        with pytest.raises(JournalError) as info:
            Journal(path, readonly=readonly)
        message = str(info.value)
        assert message.startswith(f"[BMAD-E341] {path} is a SQLite database but not a bmad "
                                  "journal (it holds ")
        assert message.endswith("it was left untouched")
        assert path.read_bytes() == before
    assert sqlite3.connect(path).execute("SELECT sql FROM sqlite_master").fetchall() == schema_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]  # no -wal, no -shm


def test_bmad_commands_refuse_a_foreign_runs_table_without_touching_it(tmp_path):
    path = tmp_path / "other.db"
    before = make_db(path, FOREIGN["runs(x)"])
    (tmp_path / "hello.bmad").write_text(HELLO)
    for args in (["run", "hello.bmad", "--provider", "sim", "--sim-latency-scale", "0"],
                 ["runs"], ["show", "x"], ["workflow", "status"], ["export", "x"]):
        result = bmad(*args, "--journal", str(path), cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        assert "is a SQLite database but not a bmad journal" in result.stderr, (args, result.stderr)
        assert "left untouched" in result.stderr
        assert path.read_bytes() == before, args
    rows = sqlite3.connect(path).execute("SELECT * FROM runs").fetchall()
    assert rows == [(1,)]


UNVERSIONED_JOURNAL = META_AND_RUNS_BEFORE_V5 + """
CREATE TABLE tasks (run_id TEXT, task_id TEXT, status TEXT, model TEXT, attempts INTEGER,
  cost_usd REAL, tokens INTEGER, quality REAL, output_json TEXT, error TEXT, started_at REAL,
  finished_at REAL, PRIMARY KEY (run_id, task_id));
CREATE TABLE calls (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, task_id TEXT, slot TEXT,
  model TEXT, request_hash TEXT, status TEXT, response_text TEXT, input_tokens INTEGER,
  output_tokens INTEGER, cost_usd REAL, latency_s REAL, error TEXT, error_kind TEXT,
  cached INTEGER DEFAULT 0, created_at REAL);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO runs (id, workflow, status, started_at, total_tasks) VALUES ('old', 'w', 'completed', 1.0, 1);
INSERT INTO tasks (run_id, task_id, status, output_json) VALUES ('old', 't', 'completed', '"hi"');
"""


def test_a_real_unversioned_journal_still_migrates(tmp_path):
    path = tmp_path / "runs.db"
    make_db(path, UNVERSIONED_JOURNAL)
    journal = Journal(path)
    assert journal.db.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    assert journal.run("old")["status"] == "completed"
    assert journal.final_tasks("old")["t"]["output"] == "hi"
    journal.close()


def test_a_journal_of_only_meta_and_runs_still_migrates(tmp_path):
    """The first journals created `meta` and `runs` before the other tables."""
    path = tmp_path / "runs.db"
    make_db(path, META_AND_RUNS_BEFORE_V5 +
            "INSERT INTO runs (id, workflow, status, started_at) VALUES ('r', 'w', 'failed', 1.0);")
    journal = Journal(path)
    assert journal.run("r")["status"] == "failed"
    journal.close()
