"""Who may write a run: a resume claims it (`Journal.reopen_run`) in one compare-and-set under the
journal's write lock, and pruning chooses what it removes under that same lock, sparing running
runs and every run of a batch still running. Real SQLite files, two connections (as two processes
have), and the interleavings that went wrong made exact by a hook, not by timing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bmad.cli.runs_prune import prune_after_run
from bmad.runtime.journal import Journal, RunClaimRefused
from bmad.runtime.retention import Retention, prune_runs


def _run(journal: Journal, run_id: str, status: str, *, tasks: tuple[str, ...] = ("a", "b"),
         started_at: float | None = None) -> None:
    """A run with one paid call and one completed task per name in `tasks`, left `status`."""
    journal.create_run(run_id, workflow="w", plan_hash="p", plan_json=None, inputs={},
                       budget=(None, None, None), total_tasks=len(tasks) + 2, source=None,
                       options={})
    for task in tasks:
        journal.add_call(run_id, task, "m0/", "m", f"h-{task}", "ok", text=task,
                         cost_usd=0.25, attempt=1)
        journal.add_task(run_id, task, "completed", "m", 1, 0.25, 5, None, task)
    journal.finish_run(run_id, status, spent_usd=0.25 * len(tasks), tokens=0,
                       unknown_cost_calls=0, elapsed_s=1.0, done_tasks=len(tasks))
    if started_at is not None:
        journal.db.execute("UPDATE runs SET started_at=? WHERE id=?", (started_at, run_id))


def _rows(path: Path, run_id: str) -> tuple[int, int, int]:
    """(runs rows, calls rows, tasks rows) of `run_id`, read by a third connection."""
    with sqlite3.connect(path) as db:
        return tuple(db.execute(f"SELECT COUNT(*) FROM {table} WHERE "
                                f"{'id' if table == 'runs' else 'run_id'}=?", (run_id,)).fetchone()[0]
                     for table in ("runs", "calls", "tasks"))


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid():
    """The pid of another process alive for the test's length."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc.pid
    proc.kill()
    proc.wait()


# -- the claim ----------------------------------------------------------------------------------

def test_a_claim_makes_the_run_running_under_this_process(tmp_path):
    journal = Journal(tmp_path / "runs.db")
    _run(journal, "r", "cancelled")
    journal.reopen_run("r", (2.0, None, None))
    row = journal.run("r")
    assert (row["status"], row["pid"], row["budget_usd"], row["error"]) == \
        ("running", os.getpid(), 2.0, None)
    journal.close()


def test_a_run_held_by_a_live_process_is_not_claimed(tmp_path, live_pid):
    journal = Journal(tmp_path / "runs.db")
    _run(journal, "r", "cancelled")
    journal.db.execute("UPDATE runs SET status='running', pid=? WHERE id='r'", (live_pid,))
    with pytest.raises(RunClaimRefused) as refused:
        journal.reopen_run("r")
    assert (refused.value.status, refused.value.pid, refused.value.changed) == \
        ("running", live_pid, False)
    assert journal.run("r")["pid"] == live_pid  # untouched
    journal.close()


def test_a_run_left_running_by_a_dead_process_is_claimed(tmp_path, dead_pid):
    journal = Journal(tmp_path / "runs.db")
    _run(journal, "r", "cancelled")
    journal.db.execute("UPDATE runs SET status='running', pid=? WHERE id='r'", (dead_pid,))
    journal.reopen_run("r")
    assert journal.run("r")["pid"] == os.getpid()
    journal.close()


def test_of_two_resumes_that_read_the_run_before_either_claimed_it_only_one_claims(tmp_path):
    """The race of two `bmad run --resume R`: both read R `cancelled`, then each claims. The
    second claim sees R written since its read (or running in a live process) and is refused,
    rather than both paying for every remaining call."""
    path = tmp_path / "runs.db"
    first, second = Journal(path), Journal(path)
    _run(first, "r", "cancelled")
    seen_by_first = first.run("r")["updated_at"]
    seen_by_second = second.run("r")["updated_at"]
    first.reopen_run("r", seen_updated_at=seen_by_first)
    with pytest.raises(RunClaimRefused) as refused:
        second.reopen_run("r", seen_updated_at=seen_by_second)
    # this process holds both connections, so the holder is "us": the read went stale
    assert refused.value.status == "running" and refused.value.changed
    # the first resume finishes (cancelled again): the second's read is still stale
    first.finish_run("r", "cancelled", spent_usd=0.5, tokens=0, unknown_cost_calls=0,
                     elapsed_s=2.0, done_tasks=2)
    with pytest.raises(RunClaimRefused) as refused:
        second.reopen_run("r", seen_updated_at=seen_by_second)
    assert refused.value.status == "cancelled" and refused.value.changed
    # read afresh, it claims
    second.reopen_run("r", seen_updated_at=second.run("r")["updated_at"])
    first.close()
    second.close()


def test_a_run_completed_since_it_was_read_is_not_claimed(tmp_path):
    path = tmp_path / "runs.db"
    first, second = Journal(path), Journal(path)
    _run(first, "r", "cancelled")
    seen = second.run("r")["updated_at"]
    first.reopen_run("r")
    first.finish_run("r", "completed", spent_usd=0.5, tokens=0, unknown_cost_calls=0,
                     elapsed_s=2.0, done_tasks=2)
    with pytest.raises(RunClaimRefused) as refused:
        second.reopen_run("r", seen_updated_at=seen)
    assert refused.value.status == "completed"
    first.close()
    second.close()


def test_a_run_removed_since_it_was_read_is_not_claimed(tmp_path):
    """A resume that read the run, then lost it to a prune: refused (BMAD-E301 in `bmad run`),
    never a "running" row that no longer exists."""
    path = tmp_path / "runs.db"
    resumer, pruner = Journal(path), Journal(path)
    _run(resumer, "r", "cancelled")
    seen = resumer.run("r")["updated_at"]
    assert prune_runs(pruner.db, Retention(keep_runs=0)).removed == ["r"]
    with pytest.raises(RunClaimRefused) as refused:
        resumer.reopen_run("r", seen_updated_at=seen)
    assert refused.value.status is None
    assert _rows(path, "r") == (0, 0, 0)
    resumer.close()
    pruner.close()


def test_a_stale_run_is_not_marked_interrupted_once_a_resume_holds_it(tmp_path, dead_pid):
    """`fail_stale_runs` read the run held by a dead process; a resume claims it before the
    update lands: the live resume's run stays `running`."""
    path = tmp_path / "runs.db"
    journal = Journal(path)
    _run(journal, "r", "cancelled")
    journal.db.execute("UPDATE runs SET status='running', pid=? WHERE id='r'", (dead_pid,))
    other = Journal(path)

    class ClaimAfterRead:  # the stale list is read; the resume claims; then the update runs
        def __init__(self, db):
            self.db = db

        def execute(self, sql, *args):
            if sql.startswith("UPDATE runs SET status='interrupted'"):
                other.reopen_run("r")
            return self.db.execute(sql, *args)

    journal.db = ClaimAfterRead(journal.db)
    journal.fail_stale_runs()
    journal.db = journal.db.db
    assert (journal.run("r")["status"], journal.run("r")["pid"]) == ("running", os.getpid())
    journal.close()
    other.close()


# -- pruning while a run is claimed -------------------------------------------------------------

class _ClaimWhenPruneLocks:
    """A connection whose next `BEGIN IMMEDIATE` first lets a resume claim `run_id` on another
    connection: the claim lands between what prune read before and the lock it then takes."""

    def __init__(self, db: sqlite3.Connection, resumer: Journal, run_id: str):
        self.db, self.resumer, self.run_id, self.claimed = db, resumer, run_id, False

    def execute(self, sql: str, *args):
        if sql == "BEGIN IMMEDIATE" and not self.claimed:
            self.claimed = True
            self.resumer.reopen_run(self.run_id)
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_a_run_claimed_while_prune_waits_for_the_lock_is_kept_whole(tmp_path):
    """Prune read the run `cancelled`, then waited for the write lock while a resume claimed
    it: the run is kept with every call and task (it was: calls and tasks deleted, the `running`
    row kept, and the resume finished a run missing its first tasks)."""
    path = tmp_path / "runs.db"
    resumer, pruner = Journal(path), Journal(path)
    _run(resumer, "r", "cancelled")
    _run(resumer, "old", "completed", started_at=1.0)
    db = _ClaimWhenPruneLocks(pruner.db, resumer, "r")
    report = prune_runs(db, Retention(keep_runs=0))
    assert db.claimed
    assert report.removed == ["old"] and report.kept_running == 1
    assert _rows(path, "r") == (1, 2, 2)
    assert _rows(path, "old") == (0, 0, 0)
    resumer.close()
    pruner.close()


def test_prune_takes_no_write_lock_when_nothing_is_due(tmp_path):
    path = tmp_path / "runs.db"
    journal = Journal(path)
    _run(journal, "r", "completed")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    reader = sqlite3.connect(path, isolation_level=None, timeout=0)
    assert prune_runs(reader, Retention(keep_runs=5)).removed == []
    holder.execute("COMMIT")
    for db in (reader, holder):
        db.close()
    journal.close()


# -- pruning while a batch runs -----------------------------------------------------------------

def _batch(journal: Journal, batch_id: str, status: str, pid: int, rows: int) -> list[str]:
    """A batch row in `status` held by `pid`, with `rows` completed row runs (oldest first)."""
    run_ids = [f"{batch_id}.{i}" for i in range(rows)]
    for i, run_id in enumerate(run_ids):
        _run(journal, run_id, "completed", started_at=10.0 + i)
    journal.db.execute("INSERT INTO batches (id, workflow, plan_hash, status, total_rows, pid, "
                       "started_at) VALUES (?,?,?,?,?,?,?)",
                       (batch_id, "w", "p", status, rows + 1, pid, 10.0))
    journal.db.executemany("INSERT INTO batch_rows VALUES (?,?,?,?)",
                           [(batch_id, i, f"{batch_id}.{i}", "{}") for i in range(rows + 1)])
    return run_ids


def test_the_runs_of_a_batch_still_running_are_never_pruned(tmp_path, live_pid):
    """`bmad runs --prune --keep 0` during a batch removed its completed (paid) rows; the batch
    then reported them failed and a resume paid for them again."""
    path = tmp_path / "runs.db"
    journal = Journal(path)
    _run(journal, "single", "completed", started_at=5.0)
    rows = _batch(journal, "batch-live", "running", live_pid, 3)
    report = prune_runs(journal.db, Retention(keep_runs=0))
    assert report.removed == ["single"]
    assert report.kept_in_batch == 3 and report.kept_running == 0
    for run_id in rows:
        assert _rows(path, run_id) == (1, 2, 2)
    journal.close()


def test_the_runs_of_a_batch_whose_driver_is_gone_are_pruned_like_any(tmp_path, dead_pid):
    path = tmp_path / "runs.db"
    journal = Journal(path)
    rows = _batch(journal, "batch-dead", "running", dead_pid, 2)
    report = prune_runs(journal.db, Retention(keep_runs=0))
    assert sorted(report.removed) == sorted(rows) and report.kept_in_batch == 0
    journal.close()


def test_prune_after_run_spares_a_batch_running_in_another_process(tmp_path, live_pid):
    """`[journal] prune_after_run = true`: an ordinary run finishing during a batch prunes old
    runs, never the batch's."""
    path = tmp_path / "runs.db"
    journal = Journal(path)
    _run(journal, "older", "completed", started_at=1.0)
    rows = _batch(journal, "batch-live", "running", live_pid, 3)
    _run(journal, "just-finished", "completed", started_at=time.time())
    journal.close()
    prune_after_run(path, Retention(keep_runs=1, after_run=True), frozenset({"just-finished"}))
    assert _rows(path, "older") == (0, 0, 0)
    for run_id in rows + ["just-finished"]:
        assert _rows(path, run_id)[0] == 1
