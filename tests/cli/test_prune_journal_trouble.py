"""`bmad runs --prune` on a journal in trouble: each SQLite failure is its journal diagnostic
(docs/diagnostics.md), exit 2, with that diagnostic's hint. It used to report every one of them,
read-only media and a full disk included, as "try again when the journal is less busy" (exit 1).

Real `bmad` processes and real files: a write lock another process holds (with the journal's busy
timeout shortened, so that the test takes a second), a read-only bind mount and a full tmpfs (root
only: skipped elsewhere). Nothing is pruned in any of them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bmad.runtime.journal import Journal

from tests.mounts import mounted_tmpfs, read_only_view

# `bmad` as its console script runs it, with the journal's busy timeout 0.5 s instead of 30 s
BMAD_SHORT_TIMEOUT = textwrap.dedent("""
    import sys
    import bmad.runtime.journal as journal, bmad.runtime.journal_schema as schema
    journal.BUSY_TIMEOUT_S = schema.BUSY_TIMEOUT_S = 0.5
    from bmad.cli.main import run
    run(sys.argv[1:])
""")

HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(120)
""")


def bmad(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("BMAD_HOME", None)
    env.pop("BMAD_DEBUG", None)
    return subprocess.run([sys.executable, "-c", BMAD_SHORT_TIMEOUT, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def make_journal(path: Path, runs: int = 3) -> Path:
    """A journal of `runs` finished runs (each with a call and a task), all in the main file."""
    journal = Journal(path)
    for i in range(runs):
        run_id = f"r{i}"
        journal.create_run(run_id, workflow="w", plan_hash="p", plan_json=None, inputs={},
                           budget=(None, None, None), total_tasks=1, source=None, options={})
        journal.add_call(run_id, "a", "m0/", "m", f"h-{i}", "ok", text="x" * 2000,
                         cost_usd=0.25, attempt=1)
        journal.add_task(run_id, "a", "completed", "m", 1, 0.25, 5, None, "a")
        journal.finish_run(run_id, "completed", spent_usd=0.25, tokens=0, unknown_cost_calls=0,
                           elapsed_s=1.0, done_tasks=1)
    journal.flush()
    journal.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    journal.close()
    return path


def run_count(path: Path) -> int:
    db = sqlite3.connect(path)  # (read-write: it leaves no -wal or -shm file behind)
    try:
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    finally:
        db.close()


def assert_diagnostic(result: subprocess.CompletedProcess[str], code: str, *words: str) -> None:
    err = result.stderr
    assert result.returncode == 2, (result.returncode, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert "less busy" not in err, err
    lines = err.splitlines()
    assert lines[0].startswith(f"error: [{code}] ") and lines[0].endswith("; nothing pruned"), err
    assert lines[1].startswith("  = help: "), err
    for word in words:
        assert word in err, (word, err)
    assert result.stdout == ""


def test_a_journal_locked_by_another_process_is_busy(tmp_path):
    journal = make_journal(tmp_path / "j.db")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(journal)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = bmad("runs", "--prune", "--keep", "0", "--journal", str(journal), cwd=tmp_path)
    finally:
        holder.kill()
        holder.communicate()
    assert_diagnostic(result, "BMAD-E343",
                      f"the journal {journal} is locked by another process (pid {holder.pid}: ",
                      "for more than 0.5 s",
                      "wait for that process to finish, or stop it, then run the command again")
    assert run_count(journal) == 3


def test_a_journal_on_read_only_media_is_not_writable_not_busy(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    make_journal(source / "j.db")
    with read_only_view(source, tmp_path / "ro") as ro:
        journal = ro / "j.db"
        result = bmad("runs", "--prune", "--keep", "0", "--journal", str(journal), cwd=tmp_path)
        assert_diagnostic(result, "BMAD-E340",
                          f"can't write the journal {journal}: the file is read-only",
                          "check the path and its permissions, or pass --journal PATH")
        listed = bmad("runs", "--prune", "--keep", "5", "--journal", str(journal), cwd=tmp_path)
        assert listed.returncode == 0 and "removed 0 run(s)" in listed.stdout, listed.stderr
    assert sorted(p.name for p in source.iterdir()) == ["j.db"]  # nothing written beside it
    assert run_count(source / "j.db") == 3


def test_a_journal_on_a_full_disk_is_full_not_busy(tmp_path):
    with mounted_tmpfs(tmp_path / "full", "400k") as full:
        journal = make_journal(full / "j.db")
        # a reader keeps the journal's -shm file (which SQLite sizes as it opens): what fails is
        # the prune's own write, not opening the journal
        reader = sqlite3.connect(journal)
        try:
            assert reader.execute("SELECT COUNT(*) FROM runs").fetchone() == (3,)
            fd = os.open(full / "filler", os.O_CREAT | os.O_WRONLY)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                pass  # the disk is full
            finally:
                os.close(fd)
            result = bmad("runs", "--prune", "--keep", "0", "--journal", str(journal),
                          cwd=tmp_path)
            assert_diagnostic(result, "BMAD-E345", f"the journal's disk is full ({journal})",
                              "free space on that disk (or pass --journal PATH on another one)")
            assert reader.execute("SELECT COUNT(*) FROM runs").fetchone() == (3,)
        finally:
            reader.close()


# -- in-process: what is not the journal's trouble, and pruning after a run ----------------------

def test_a_statement_error_is_not_reported_as_the_journal_being_busy(tmp_path, monkeypatch):
    """A SQLite error about a statement (a bug) is not dressed up as the journal's trouble: it
    reaches the command line's top level, which reports an internal error."""
    import bmad.runtime.retention as retention
    from bmad.cli.runs_prune import prune_journal

    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("no such column: started")

    monkeypatch.setattr(retention, "prune_runs", broken)
    journal = make_journal(tmp_path / "j.db")
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        prune_journal(journal, None, 0, as_json=False)


def test_pruning_after_a_run_names_a_locked_journal_by_its_code(tmp_path, monkeypatch, capsys):
    """`[journal] prune_after_run = true` on a journal another process holds locked: a warning
    with the diagnostic (the run's own outcome stands), nothing pruned."""
    import bmad.runtime.journal as journal_module
    import bmad.runtime.journal_schema as schema
    from bmad.cli.runs_prune import prune_after_run
    from bmad.runtime.retention import Retention

    monkeypatch.setattr(journal_module, "BUSY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_S", 0.2)
    journal = make_journal(tmp_path / "j.db")
    holder = sqlite3.connect(journal, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        prune_after_run(journal, Retention(keep_runs=0, after_run=True), frozenset())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    err = capsys.readouterr().err
    assert err.startswith("warning: journal retention not applied this time: [BMAD-E343] "
                          f"the journal {journal} is locked by another process"), err
    assert run_count(journal) == 3
