"""The journal file in trouble, with real SQLite files: a full disk, a write lock another process
holds past the busy timeout, a damaged file, read-only media, paths that can't hold a journal.
Each is told by its own code (BMAD-E340 to E345) in plain words, never as a raw SQLite error (or
"a bug in bmad"), and a failed commit keeps its rows buffered rather than losing them."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

import bmad.runtime.journal as journal_module
import bmad.runtime.journal_schema as schema
from bmad.runtime.journal import Journal, JournalError, JournalUnavailable

from tests.mounts import mounted_tmpfs, read_only_view


def _new_run(journal: Journal, run_id: str = "r1") -> None:
    journal.create_run(run_id, workflow="w", plan_hash="h", plan_json=None, inputs={},
                       budget=(None, None, None), total_tasks=1, source=None, options={})


def _add_calls(journal: Journal, run_id: str, count: int, size: int = 2000, start: int = 0) -> None:
    for i in range(start, start + count):
        journal.add_call(run_id, "t", f"s{i}", "m", f"h{i}", "ok", "x" * size, 10, 10, 0.001, 0.1,
                         attempt=1)


# -- a full disk --------------------------------------------------------------------------------

def test_a_full_journal_is_its_diagnostic_and_the_rows_stay_buffered(tmp_path):
    """SQLite's "database or disk is full" (here: the page limit the connection was given) is
    BMAD-E345 naming the file and the run to resume; the rows stay buffered, so a later flush,
    once there is room, writes them all."""
    path = tmp_path / "runs.db"
    journal = Journal(path)
    _new_run(journal)
    journal.flush()
    pages = journal.db.execute("PRAGMA page_count").fetchone()[0]
    journal.db.execute(f"PRAGMA max_page_count = {pages}")
    _add_calls(journal, "r1", 40)
    with pytest.raises(JournalUnavailable) as info:
        journal.flush()
    problem = info.value
    assert problem.code == "BMAD-E345"
    assert str(problem) == f"[BMAD-E345] the journal's disk is full ({path})"
    assert problem.resume_ids == ("r1",)
    assert "bmad run --resume r1" in problem.full_hint()
    assert isinstance(problem.__cause__, sqlite3.OperationalError)
    assert not journal.db.in_transaction
    assert journal.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    journal.db.execute("PRAGMA max_page_count = 1000000")
    journal.flush()
    assert len(journal.call_rows("r1")) == 40
    journal.close()


def test_a_commit_sqlite_rolled_back_itself_reports_the_full_disk(tmp_path):
    """On a disk that is really full SQLite rolls the transaction back itself: the commit's own
    ROLLBACK then failed with "cannot rollback - no transaction is active", which hid the full
    disk (and was reported as a bug in bmad)."""
    with mounted_tmpfs(tmp_path / "small", "300k") as small:
        journal = Journal(small / "runs.db")
        _new_run(journal)
        problem = None
        for batch in range(200):
            _add_calls(journal, "r1", 20, size=2000, start=batch * 20)
            try:
                journal.flush()
            except JournalUnavailable as exc:
                problem = exc
                break
        assert problem is not None, "the tmpfs never filled up"
        assert problem.code == "BMAD-E345" and "disk is full" in problem.message
        assert "rollback" not in str(problem)
        journal.close()  # does not try the failed commit again
        db = sqlite3.connect(small / "runs.db")
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()


def test_the_end_of_a_run_is_recorded_when_its_rows_dont_fit(tmp_path):
    """The buffered rows can't be written, but the run's own row may still take its end: the run
    is recorded with the reason rather than left `running`."""
    path = tmp_path / "runs.db"
    journal = Journal(path)
    _new_run(journal)
    journal.flush()
    pages = journal.db.execute("PRAGMA page_count").fetchone()[0]
    journal.db.execute(f"PRAGMA max_page_count = {pages}")
    _add_calls(journal, "r1", 40)
    with pytest.raises(JournalUnavailable):
        journal.flush()
    problem_text = "[BMAD-E345] the journal's disk is full"
    with pytest.raises(JournalUnavailable):
        journal.finish_run("r1", "interrupted", spent_usd=0.04, tokens=800, unknown_cost_calls=0,
                           elapsed_s=1.0, done_tasks=0, error=problem_text)
    journal.close()
    row = sqlite3.connect(path).execute("SELECT status, error, spent_usd FROM runs").fetchone()
    assert row == ("interrupted", problem_text, 0.04)


# -- a lock held by another process -------------------------------------------------------------

HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    db.execute("COMMIT")
""")


@contextmanager
def lock_held(path: Path, seconds: float):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def short_busy_timeout(monkeypatch):
    """Wait 0.5 s for a lock rather than 30 s (the message says so too)."""
    monkeypatch.setattr(journal_module, "BUSY_TIMEOUT_S", 0.5)
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_S", 0.5)


def test_a_journal_locked_past_the_timeout_is_busy_not_foreign(tmp_path, short_busy_timeout):
    path = tmp_path / "runs.db"
    Journal(path).close()
    with lock_held(path, 30) as holder:
        with pytest.raises(JournalUnavailable) as info:
            Journal(path)  # a writer: it writes the journal's meta row when it opens it
    problem = info.value
    assert problem.code == "BMAD-E343"
    assert problem.message.startswith(f"the journal {path} is locked by another process "
                                      f"(pid {holder.pid}: ")
    assert problem.message.endswith("for more than 0.5 s")
    assert "not a SQLite database" not in problem.message and "not a bmad journal" not in str(problem)
    assert "wait for that process to finish" in problem.hint


def test_a_commit_past_a_held_lock_keeps_its_rows(tmp_path, short_busy_timeout):
    path = tmp_path / "runs.db"
    journal = Journal(path)
    _new_run(journal)
    journal.flush()
    _add_calls(journal, "r1", 3)
    with lock_held(path, 30) as holder:
        with pytest.raises(JournalUnavailable) as info:
            journal.flush()
        assert not journal.db.in_transaction
    assert info.value.code == "BMAD-E343" and f"pid {holder.pid}" in info.value.message
    assert "bmad run --resume r1" in info.value.full_hint()
    journal.flush()  # the lock is gone: the rows are still there to write
    assert len(journal.call_rows("r1")) == 3
    journal.close()


# -- a damaged file -----------------------------------------------------------------------------

def _journal_with_calls(path: Path) -> None:
    journal = Journal(path)
    _new_run(journal)
    _add_calls(journal, "r1", 50, size=300)
    journal.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def test_a_truncated_journal_is_damaged_not_foreign(tmp_path):
    path = tmp_path / "runs.db"
    _journal_with_calls(path)
    path.write_bytes(path.read_bytes()[:20000])
    for readonly in (False, True):
        with pytest.raises(JournalUnavailable) as info:
            Journal(path, readonly=readonly)
        assert info.value.code == "BMAD-E344"
        assert info.value.message == f"the journal {path} is damaged (database disk image is malformed)"
        assert f"sqlite3 {path} .recover > dump.sql" in info.value.hint


def test_a_damaged_page_read_later_is_told_as_damage(tmp_path):
    """A reader's query that meets a damaged page raises SQLite's own error: `journal_problem`
    tells it as BMAD-E344 about the journal opened."""
    path = tmp_path / "runs.db"
    _journal_with_calls(path)
    db = sqlite3.connect(path)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name='calls'").fetchone()[0]
    db.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * 64)
    journal = Journal(path, readonly=True)
    with pytest.raises(sqlite3.DatabaseError) as info:
        journal.call_rows("r1")
    problem = journal_module.journal_problem(info.value)
    assert problem is not None and problem.code == "BMAD-E344" and str(path) in problem.message
    group = ExceptionGroup("a task group", [ValueError("other"), info.value])
    assert journal_module.journal_problem(group).code == "BMAD-E344"
    assert journal_module.journal_problem(sqlite3.OperationalError("no such column: x")) is None
    journal.db.close()


# -- the file's path ----------------------------------------------------------------------------

def _refusal(path: Path, readonly: bool = False) -> JournalError:
    with pytest.raises(JournalError) as info:
        Journal(path, readonly=readonly)
    return info.value


def test_each_kind_of_unusable_file_has_its_code(tmp_path):
    folder = tmp_path / "isdir.db"
    folder.mkdir()
    error = _refusal(folder)
    assert (error.code, error.message) == (
        "BMAD-E340", f"the journal {folder} is a folder, not a file: pass a file's path, such as "
                     f"{folder / 'runs.db'}")
    assert str(error).startswith("[BMAD-E340] ")
    assert "must be writable" not in str(_refusal(folder, readonly=True))

    (tmp_path / "afile").write_text("x")
    error = _refusal(tmp_path / "afile" / "runs.db")
    assert error.code == "BMAD-E340"
    assert error.message == (f"cannot create the journal {tmp_path / 'afile' / 'runs.db'}: "
                             f"{tmp_path / 'afile'} is a file, not a folder")

    assert _refusal(tmp_path / "missing.db", readonly=True).code == "BMAD-E340"

    text = tmp_path / "text.db"
    text.write_text("hello, not sqlite\n" * 100)
    assert _refusal(text).code == "BMAD-E341"

    foreign = tmp_path / "foreign.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.commit()
    db.close()
    assert _refusal(foreign).code == "BMAD-E341"

    newer = tmp_path / "newer.db"
    Journal(newer).close()
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.close()
    assert _refusal(newer, readonly=True).code == "BMAD-E342"


# -- read-only media ----------------------------------------------------------------------------

def test_readers_open_a_journal_on_read_only_media(tmp_path):
    """After a run a journal has no -wal or -shm file; on read-only media SQLite can't create the
    -shm file it reads a WAL journal with, so readers open it read-only (then immutable)."""
    source = tmp_path / "src"
    source.mkdir()
    _journal_with_calls(source / "runs.db")
    assert sorted(p.name for p in source.iterdir()) == ["runs.db"]
    with read_only_view(source, tmp_path / "ro") as ro:
        journal = Journal(ro / "runs.db", readonly=True)
        assert [r["id"] for r in journal.runs()] == ["r1"]
        assert len(journal.call_rows("r1")) == 50
        journal.db.close()
        with pytest.raises(JournalError) as info:  # a writer is refused, as before
            Journal(ro / "runs.db")
        assert info.value.code == "BMAD-E340"


def test_a_read_only_fallback_never_skips_commits_in_a_wal_file(tmp_path):
    """An immutable open ignores the -wal file: with commits in one, the reader is refused
    (BMAD-E340) rather than shown an older journal."""
    source = tmp_path / "src"
    source.mkdir()
    path = source / "runs.db"
    writer = Journal(path)
    _new_run(writer)
    writer.flush()
    snapshot = tmp_path / "snapshot"
    shutil.copytree(source, snapshot)  # the file and a -wal holding its commits, as left mid-run
    writer.close()
    (snapshot / "runs.db-shm").unlink(missing_ok=True)
    assert (snapshot / "runs.db-wal").stat().st_size > 0
    with read_only_view(snapshot, tmp_path / "ro") as ro:
        with pytest.raises(JournalError) as info:
            Journal(ro / "runs.db", readonly=True)
        assert info.value.code == "BMAD-E340"


def test_a_failed_write_is_not_tried_again_on_close(tmp_path, short_busy_timeout):
    """After a commit failed past a held lock, `close` does not wait out the lock once more."""
    path = tmp_path / "runs.db"
    journal = Journal(path)
    _new_run(journal)
    journal.flush()
    _add_calls(journal, "r1", 1)
    with lock_held(path, 30):
        with pytest.raises(JournalUnavailable):
            journal.flush()
        started = time.monotonic()
        journal.close()
        assert time.monotonic() - started < 0.4
