"""The journal file: private permissions, two writers at once, corrupt/foreign/newer files refused in
plain words, older schemas migrated forward, and retention (`bmad runs --prune`)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bmad.runtime.journal import Journal, JournalError
from bmad.runtime.journal_schema import CURRENT_VERSION
from bmad.runtime.retention import Retention, prune_runs

WORKFLOW = """
workflow busy {
  input topic: text = "x"
%s
  output t0
}
"""


def bmad(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("BMAD_HOME", None)
    return subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def write_workflow(tmp_path: Path, tasks: int) -> Path:
    body = "".join(f'  task t{i} {{ prompt "Say {i} about {{{{ topic }}}}" }}\n' for i in range(tasks))
    path = tmp_path / "busy.bmad"
    path.write_text(WORKFLOW % body)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_journal_directory_is_0700_and_its_files_0600(tmp_path):
    path = tmp_path / "fresh" / "nested" / "runs.db"
    journal = Journal(path)
    journal.add_event("r", "x", None, {})
    journal.flush()
    assert mode(path.parent) == 0o700
    for name in ("runs.db", "runs.db-wal", "runs.db-shm"):
        if (path.parent / name).exists():
            assert mode(path.parent / name) == 0o600, name
    journal.close()


def test_a_bmad_run_creates_a_private_journal(tmp_path):
    write_workflow(tmp_path, 2)
    result = bmad("run", "busy.bmad", "--provider", "sim", "--sim-latency-scale", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert mode(tmp_path / ".bmad") == 0o700
    assert mode(tmp_path / ".bmad" / "runs.db") == 0o600


def test_two_bmad_run_processes_on_one_journal_lose_no_writes(tmp_path):
    write_workflow(tmp_path, 40)
    journal = tmp_path / "shared.db"
    args = [sys.executable, "-m", "bmad", "run", "busy.bmad", "--provider", "sim",
            "--sim-latency-scale", "0.001", "--journal", str(journal), "--concurrency", "4"]
    env = {k: v for k, v in os.environ.items() if k != "BMAD_HOME"}
    procs = [subprocess.Popen(args + ["--input", f"topic=run{i}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    db = sqlite3.connect(journal)
    runs = db.execute("SELECT id, status, done_tasks FROM runs").fetchall()
    assert len(runs) == 2 and all(r[1] == "completed" for r in runs)
    for run_id, _, _ in runs:
        assert db.execute("SELECT COUNT(*) FROM tasks WHERE run_id=? AND status='completed'",
                          (run_id,)).fetchone()[0] == 40
        assert db.execute("SELECT COUNT(*) FROM calls WHERE run_id=? AND status='ok'",
                          (run_id,)).fetchone()[0] >= 40
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("kind", ["random bytes", "text file", "foreign database", "newer journal"])
def test_unusable_files_are_refused_in_plain_words(tmp_path, kind):
    path = tmp_path / "runs.db"
    if kind == "random bytes":
        path.write_bytes(os.urandom(8192))
    elif kind == "text file":
        path.write_text("SQLite format 3\x00 but not really\n" * 50)
    elif kind == "foreign database":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        db.execute("INSERT INTO customers VALUES (1, 'Ada')")
        db.commit()
        db.close()
    else:
        Journal(path).close()
        db = sqlite3.connect(path)
        db.execute("PRAGMA user_version = 99")
        db.close()
    before = path.read_bytes()
    with pytest.raises(JournalError) as info:
        Journal(path)
    message = str(info.value)
    assert str(path) in message
    expected = {"random bytes": "not a bmad journal", "text file": "not a bmad journal",
                "foreign database": "left untouched", "newer journal": "newer bmad"}[kind]
    assert expected in message
    if kind == "foreign database":
        assert path.read_bytes() == before
        tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
        assert tables == [("customers",)]
    write_workflow(tmp_path, 1)
    for args in (["runs", "--journal", str(path)],
                 ["run", "busy.bmad", "--provider", "sim", "--journal", str(path)],
                 ["show", "x", "--journal", str(path)]):
        result = bmad(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and "error:" in result.stderr, result.stderr
        assert expected in result.stderr


OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE runs (id TEXT PRIMARY KEY, workflow TEXT, plan_hash TEXT, status TEXT,
  budget_usd REAL, budget_tokens INTEGER, budget_time_s REAL, spent_usd REAL DEFAULT 0,
  tokens INTEGER DEFAULT 0, started_at REAL, finished_at REAL, updated_at REAL,
  total_tasks INTEGER, done_tasks INTEGER DEFAULT 0, pid INTEGER, error TEXT, source TEXT,
  inputs_json TEXT, options_json TEXT, plan_json TEXT);
CREATE TABLE tasks (run_id TEXT, task_id TEXT, status TEXT, model TEXT, attempts INTEGER,
  cost_usd REAL, tokens INTEGER, quality REAL, output_json TEXT, error TEXT, started_at REAL,
  finished_at REAL, PRIMARY KEY (run_id, task_id));
CREATE TABLE calls (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, task_id TEXT, slot TEXT,
  model TEXT, request_hash TEXT, status TEXT, response_text TEXT, input_tokens INTEGER,
  output_tokens INTEGER, cost_usd REAL, latency_s REAL, error TEXT, error_kind TEXT,
  cached INTEGER DEFAULT 0, created_at REAL);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO runs (id, workflow, status, started_at, total_tasks) VALUES ('old-run', 'w', 'completed', 1.0, 1);
INSERT INTO tasks (run_id, task_id, status, output_json) VALUES ('old-run', 't', 'completed', '"hi"');
"""


def test_an_older_journal_is_migrated_forward_keeping_its_runs(tmp_path):
    path = tmp_path / "runs.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    journal = Journal(path)
    assert journal.db.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    columns = {r[1] for r in journal.db.execute("PRAGMA table_info(tasks)")}
    assert {"cache_key", "cached", "capability"} <= columns  # added since
    assert {r[1] for r in journal.db.execute("PRAGMA table_info(calls)")} >= {"purpose", "quality"}
    assert journal.db.execute("SELECT name FROM sqlite_master WHERE name='runs_by_started'").fetchone()
    assert journal.run("old-run")["status"] == "completed"
    assert journal.final_tasks("old-run")["t"]["output"] == "hi"
    journal.close()
    result = bmad("runs", "--journal", str(path), "--json", cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout)[0]["id"] == "old-run"


def _journal_with_runs(path: Path, ages_days: list[float], running: set[int] = frozenset()) -> list[str]:
    journal = Journal(path)
    now = time.time()
    ids = []
    for i, age in enumerate(ages_days):
        run_id = f"run{i}"
        journal.create_run(run_id, workflow="w", plan_hash=f"plan{i}", plan_json=None, inputs={},
                           budget=(None, None, None), total_tasks=1, source=None, options={})
        journal.store_plan(f"plan{i}", "{}")
        journal.add_task(run_id, "t", "completed", output="secret answer")
        journal.add_call(run_id, "t", "", "m", f"h{i}", "ok", text="secret answer")
        journal.add_event(run_id, "task_finished", "t", {})
        journal.flush()
        status = "running" if i in running else "completed"
        journal.db.execute("UPDATE runs SET started_at=?, status=? WHERE id=?",
                           (now - age * 86400, status, run_id))
        ids.append(run_id)
    journal.close()
    return ids


def test_prune_by_age_and_count_keeps_running_runs(tmp_path):
    path = tmp_path / "runs.db"
    _journal_with_runs(path, [0, 1, 10, 40, 50], running={4})
    journal = Journal(path)
    report = prune_runs(journal.db, Retention(keep_days=30))
    assert report.removed == ["run3"] and report.kept_running == 1
    report = prune_runs(journal.db, Retention(keep_runs=2))
    assert sorted(report.removed) == ["run2"]
    left = [r["id"] for r in journal.runs()]
    assert sorted(left) == ["run0", "run1", "run4"]
    for table in ("tasks", "calls", "events"):
        assert {r[0] for r in journal.db.execute(f"SELECT run_id FROM {table}")} == set(left)
    assert {r[0] for r in journal.db.execute("SELECT plan_hash FROM plans")} == {"plan0", "plan1", "plan4"}
    assert journal.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    journal.close()


def test_bmad_runs_prune_from_flags_and_from_bmad_toml(tmp_path):
    path = tmp_path / "runs.db"
    _journal_with_runs(path, [0, 1, 2, 3])
    result = bmad("runs", "--journal", str(path), "--prune", "--keep", "3", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["removed"] == ["run3"]
    result = bmad("runs", "--journal", str(path), "--prune", cwd=tmp_path)
    assert result.returncode == 2 and "nothing to prune by" in result.stderr
    (tmp_path / "bmad.toml").write_text("[journal]\nkeep_runs = 1\n")
    result = bmad("runs", "--journal", str(path), "--prune", cwd=tmp_path)
    assert result.returncode == 0 and "removed 2 run(s)" in result.stdout
    (tmp_path / "bmad.toml").write_text("[journal]\nkeep_forever = true\n")
    result = bmad("runs", "--journal", str(path), "--prune", cwd=tmp_path)
    assert result.returncode == 2 and "keep_forever" in result.stderr and "Traceback" not in result.stderr


def test_bmad_run_prunes_when_it_finishes_if_bmad_toml_says_so(tmp_path):
    path = tmp_path / "runs.db"
    _journal_with_runs(path, [1, 2, 40])
    flow = write_workflow(tmp_path, 1)
    (tmp_path / "bmad.toml").write_text("[journal]\nkeep_runs = 0\nkeep_days = 30\n")
    result = bmad("run", str(flow), "--provider", "sim", "--sim-latency-scale", "0", "--journal", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pruned" not in result.stderr  # rules alone apply only with `bmad runs --prune`
    assert len(Journal(path, readonly=True).runs()) == 4
    (tmp_path / "bmad.toml").write_text("[journal]\nkeep_days = 30\nprune_after_run = true\n")
    result = bmad("run", str(flow), "--provider", "sim", "--sim-latency-scale", "0", "--journal", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pruned 1 old run(s)" in result.stderr
    left = {r["id"] for r in Journal(path, readonly=True).runs()}
    assert len(left) == 4 and "run2" not in left
    # keep_runs = 0 still spares the run that just finished
    (tmp_path / "bmad.toml").write_text("[journal]\nkeep_runs = 0\nprune_after_run = true\n")
    result = bmad("run", str(flow), "--provider", "sim", "--sim-latency-scale", "0", "--journal", str(path), cwd=tmp_path)
    run_id = result.stderr.split("run ", 1)[1].split(":", 1)[0]
    assert [r["id"] for r in Journal(path, readonly=True).runs()] == [run_id]
    (tmp_path / "bmad.toml").write_text("[journal]\nprune_after_run = \"yes\"\n")
    result = bmad("run", str(flow), "--provider", "sim", "--sim-latency-scale", "0", "--journal", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "prune_after_run must be true or false" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_batch_prunes_when_it_finishes_and_spares_its_own_rows(tmp_path):
    path = tmp_path / "runs.db"
    _journal_with_runs(path, [1, 2])
    flow = write_workflow(tmp_path, 1)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"topic": f"t{i}"}) + "\n" for i in range(3)))
    (tmp_path / "bmad.toml").write_text("[journal]\nkeep_runs = 1\nprune_after_run = true\n")
    result = bmad("run", str(flow), "--inputs", "rows.jsonl", "--provider", "sim", "--sim-latency-scale", "0", "--journal", str(path),
                  "-o", "results.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pruned 2 old run(s)" in result.stderr
    left = {r["id"] for r in Journal(path, readonly=True).runs()}
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert left == {r["run_id"] for r in rows} and len(left) == 3


def test_a_journal_sqlite_may_not_write_is_not_called_a_foreign_file(tmp_path):
    """What SQLite says when the file or its folder is read-only (seen with `chattr +i`, which
    even root can't write through) becomes a plain reason, not "is not a bmad journal"."""
    import sqlite3

    from bmad.runtime.journal_schema import unusable_message

    path = tmp_path / "runs.db"
    readonly = unusable_message(path, sqlite3.OperationalError("attempt to write a readonly database"))
    assert readonly.startswith(f"can't write the journal {path}: the file is read-only")
    folder = unusable_message(path, sqlite3.OperationalError("unable to open database file"))
    assert "its folder must be writable" in folder and "runs.db-wal" in folder
    foreign = unusable_message(path, sqlite3.DatabaseError("file is not a database"))
    assert foreign == f"{path} is not a bmad journal (not a SQLite database: file is not a database)"
