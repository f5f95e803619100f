"""Who holds a run: a pid alone can't say whether the process that wrote it is alive. Each run and
batch has a `holders` row (pid, boot id, PID namespace, start time) written with its creation or
claim, so a pid from another boot, from another PID namespace (a container), or reused since by
another process is not taken for the run's process. Real journals, real processes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from bmad.runtime.journal import (Journal, RunClaimRefused, holder_alive, process_identity,
                                  read_holders)
from bmad.runtime.journal_schema import CURRENT_VERSION

from test_run_claims import _run  # a run with paid calls, left in a status


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _hold(journal: Journal, run_id: str, pid: int, boot: str, ns: int, start: int) -> None:
    """Mark `run_id` running, held by this identity (as another process would have written it)."""
    journal.db.execute("UPDATE runs SET status='running', pid=? WHERE id=?", (pid, run_id))
    journal.db.execute("INSERT OR REPLACE INTO holders VALUES (?,?,?,?,?)",
                       (run_id, pid, boot, ns, start))


def _start(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


needs_proc = pytest.mark.skipif(process_identity() is None, reason="no /proc here")


@needs_proc
def test_a_run_records_who_holds_it(tmp_path):
    journal = Journal(tmp_path / "runs.db")
    _run(journal, "r", "cancelled")
    boot, ns, start = process_identity()
    assert read_holders(journal.db, ["r"]) == {"r": (os.getpid(), boot, ns, start)}
    assert start == _start(os.getpid())
    journal.reopen_run("r")
    assert read_holders(journal.db, ["r"])["r"][0] == os.getpid()
    journal.close()


@needs_proc
def test_a_live_holder_is_alive_and_its_run_is_not_claimed(tmp_path, live_pid):
    journal = Journal(tmp_path / "runs.db")
    _run(journal, "r", "cancelled")
    boot, ns, _ = process_identity()
    _hold(journal, "r", live_pid, boot, ns, _start(live_pid))
    journal.fail_stale_runs()
    assert journal.run("r")["status"] == "running"
    with pytest.raises(RunClaimRefused):
        journal.reopen_run("r")
    journal.close()


@needs_proc
def test_a_pid_reused_by_another_process_is_not_the_holder(tmp_path, live_pid):
    """The holder died and its pid now names another process (started later): the run is stale,
    and a resume claims it. With the bare pid it looked alive forever."""
    journal = Journal(tmp_path / "runs.db")
    _run(journal, "r", "cancelled")
    boot, ns, _ = process_identity()
    _hold(journal, "r", live_pid, boot, ns, _start(live_pid) - 1)
    journal.fail_stale_runs()
    assert journal.run("r")["status"] == "interrupted"
    journal.reopen_run("r")
    journal.close()


@needs_proc
def test_a_holder_of_another_boot_is_gone(tmp_path, live_pid):
    """Written before a reboot (its pid may name any process now)."""
    journal = Journal(tmp_path / "runs.db")
    _run(journal, "r", "cancelled")
    _, ns, _ = process_identity()
    _hold(journal, "r", live_pid, "another-boot", ns, _start(live_pid))
    journal.fail_stale_runs()
    assert journal.run("r")["status"] == "interrupted"
    journal.close()


def test_a_run_without_a_holder_row_goes_by_its_pid_as_before(tmp_path, live_pid):
    """Written by an older bmad (no `holders` row), or the row is not the run's current pid."""
    journal = Journal(tmp_path / "runs.db")
    _run(journal, "r", "cancelled")
    journal.db.execute("DELETE FROM holders")
    journal.db.execute("UPDATE runs SET status='running', pid=? WHERE id='r'", (live_pid,))
    assert holder_alive(live_pid, None)
    assert holder_alive(live_pid, (live_pid + 1, "another-boot", 1, 1))  # a stale row: the pid
    journal.fail_stale_runs()
    assert journal.run("r")["status"] == "running"
    journal.close()


def test_a_journal_without_the_holders_table_is_read_and_then_given_one(tmp_path):
    """A version-6 journal written before `holders`: readers (read-only) go by the pid; the next
    writer adds the table, the schema version unchanged."""
    path = tmp_path / "runs.db"
    journal = Journal(path)
    _run(journal, "r", "running")
    journal.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE holders")
    reader = Journal(path, readonly=True)
    assert [r["id"] for r in reader.runs()] == ["r"] and "holder" not in reader.runs()[0]
    reader.db.close()
    writer = Journal(path)
    assert read_holders(writer.db, ["r"]) == {}
    assert writer.db.execute("PRAGMA user_version").fetchone()[0] == CURRENT_VERSION
    writer.close()


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0
                    or process_identity() is None,
                    reason="needs root and unshare (a PID namespace)")
def test_a_run_killed_in_another_pid_namespace_is_gone_here_and_resumes(tmp_path):
    """A run started in a PID namespace of its own (as in a container sharing the journal's
    volume) is SIGKILLed there with its pid 2. Here pid 2 is another process (kthreadd), so by
    the pid alone it was `running` for ever and `--resume` said BMAD-E308."""
    source = tmp_path / "chain.bmad"
    source.write_text("\n".join([
        "provider p { kind sim }",
        "model cheap { provider p price input $1 output $2 per 1M skills { writing 0.7 } }",
        "workflow chain {",
        '  task t0 { prompt "start" model cheap max_tokens 40 }',
        '  task t1 { prompt "next {{ t0 }}" model cheap max_tokens 40 }',
        '  task t2 { prompt "last {{ t1 }}" model cheap max_tokens 40 }',
        "  output t2", "}"]) + "\n", encoding="utf-8")
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import os, signal, sys\n"
        "from bmad.runtime.journal import Journal\n"
        "original = Journal.add_task\n"
        "def hooked(self, *args, **kwargs):\n"
        "    original(self, *args, **kwargs)\n"
        "    if args[1] == 't1':\n"
        "        self.flush()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "Journal.add_task = hooked\n"
        "from bmad.cli.main import run\n"
        "run(sys.argv[1:])\n", encoding="utf-8")
    journal = tmp_path / "runs.db"
    env = {**os.environ, "NO_COLOR": "1"}
    # `sh` is the namespace's pid 1 (init ignores a SIGKILL from inside); bmad is its pid 2.
    inner = (f"{sys.executable} {driver} run {source} --provider sim --sim-latency-scale 0 "
             f"--journal {journal}; true")
    done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", inner],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in done.stderr, done.stderr
    with sqlite3.connect(journal) as db:
        (run_id, status, pid), = db.execute("SELECT id, status, pid FROM runs").fetchall()
    assert status == "running" and pid == 2
    assert process_identity()[1] != read_holders(sqlite3.connect(journal), [run_id])[run_id][2]

    def bmad(*args):
        result = subprocess.run([sys.executable, "-m", "bmad", *args, "--journal", str(journal)],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    listed = bmad("runs")
    assert "running (process gone)" in listed.stdout, listed.stdout
    assert "no active runs" in bmad("workflow", "status", "--active").stdout
    resumed = bmad("run", "--resume", run_id, "--sim-latency-scale", "0")
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("completed",)]
