"""The journal in trouble, seen from the command line (real `bmad` processes, real SQLite files):
a full disk (a small tmpfs), a write lock held past the busy timeout, a damaged file, read-only
media and paths that can't hold a journal. Each is `error: [BMAD-E34x] ...` with a hint, exit 2,
never "internal error" or a traceback; a run the journal stopped is resumable."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.mounts import mounted_tmpfs, read_only_view

# a minute of real subprocesses on tmpfs mounts, held locks and damaged files: with the slow
# suite (CI runs both); tests/runtime/test_journal_trouble.py checks the same paths in-process
pytestmark = pytest.mark.slow

CHAIN = """workflow chain {
  strategy sequential
  budget $5.00 per run
  input topic: text = "sqlite"

  task a { prompt "Write about {{ topic }} part a." max_tokens 400 }
  task b { prompt "Continue {{ a }} part b." max_tokens 400 }
  task c { prompt "Continue {{ b }} part c." max_tokens 400 }
  task d { prompt "Continue {{ c }} part d." max_tokens 400 }
  task e { prompt "Continue {{ d }} part e." max_tokens 400 }
  task f { prompt "Continue {{ e }} part f." max_tokens 400 }

  output f
}
"""

FANOUT = """workflow fanout {
  budget $50.00 per run
  input items: list<text>
  task per for each it in items { prompt "Write a long essay about {{ it }}." max_tokens 800 }
  output per
}
"""

SIM = ("--provider", "sim", "--sim-latency-scale", "0")


def bmad(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("BMAD_HOME", None)
    env.pop("BMAD_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_diagnostic(result: subprocess.CompletedProcess[str], code: str, *words: str) -> None:
    err = result.stderr
    assert result.returncode == 2, (result.returncode, err)
    assert "internal error" not in err and "Traceback" not in err and "bug in bmad" not in err, err
    first = err.splitlines()[0]
    assert first.startswith(f"error: [{code}] "), err
    assert "  = help: " in err, err
    for word in words:
        assert word in err, (word, err)


def runs_table(path: Path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT id, status, error FROM runs ORDER BY started_at").fetchall()
    finally:
        db.close()


def checkpointed_journal(tmp_path: Path, name: str, runs: int) -> Path:
    (tmp_path / "chain.bmad").write_text(CHAIN)
    path = tmp_path / name
    for _ in range(runs):
        result = bmad("run", "chain.bmad", *SIM, "--journal", str(path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return path


# -- a full disk --------------------------------------------------------------------------------

def test_a_full_disk_mid_run_is_a_diagnostic_and_the_run_resumes(tmp_path):
    (tmp_path / "fanout.bmad").write_text(FANOUT)
    (tmp_path / "items.json").write_text(json.dumps({"items": [f"topic {i}" for i in range(300)]}))
    with mounted_tmpfs(tmp_path / "full", "600k") as full:
        journal = full / "j.db"
        result = bmad("run", "fanout.bmad", "--provider", "sim", "--sim-latency-scale", "0.05",
                      "--input-file", "items.json", "--journal", str(journal), cwd=tmp_path)
        [(run_id, status, error)] = runs_table(journal)
        assert_diagnostic(result, "BMAD-E345", f"the journal's disk is full ({journal})",
                          f"bmad run --resume {run_id}")
        assert "rollback" not in result.stderr
        # the run's row is `interrupted` if the file took that write, else its process is gone
        assert status in ("running", "interrupted"), (status, error)
        db = sqlite3.connect(journal)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        paid = db.execute("SELECT COUNT(*) FROM calls WHERE cost_usd > 0").fetchone()[0]
        db.close()
        assert paid > 0
        listed = bmad("runs", "--journal", str(journal), cwd=tmp_path)
        assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr
        moved = tmp_path / "big"
        moved.mkdir()
        for part in full.iterdir():
            shutil.copy2(part, moved / part.name)
    resumed = bmad("run", "--resume", run_id, "--journal", str(moved / "j.db"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert runs_table(moved / "j.db")[0][1] == "completed"


def test_a_full_disk_mid_batch_names_the_batch_to_resume(tmp_path):
    (tmp_path / "chain.bmad").write_text(CHAIN)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"topic": f"t{i}"}) + "\n"
                                                 for i in range(200)))
    with mounted_tmpfs(tmp_path / "full", "1500k") as full:
        journal = full / "j.db"
        result = bmad("run", "chain.bmad", *SIM, "--inputs", "rows.jsonl", "--concurrency", "4",
                      "--journal", str(journal), "-o", "results.jsonl", cwd=tmp_path)
        db = sqlite3.connect(journal)
        [batch_id] = [r[0] for r in db.execute("SELECT id FROM batches")]
        db.close()
        assert_diagnostic(result, "BMAD-E345", "the journal's disk is full",
                          f"bmad run --resume {batch_id}`")
        moved = tmp_path / "big"
        moved.mkdir()
        for part in full.iterdir():
            shutil.copy2(part, moved / part.name)
    resumed = bmad("run", "--resume", batch_id, "--journal", str(moved / "j.db"), "-o",
                   "results.jsonl", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    statuses = {status for _, status, _ in runs_table(moved / "j.db")}
    assert statuses == {"completed"}


# -- a lock held past the busy timeout ----------------------------------------------------------

HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    path, wait_for_task, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    while wait_for_task != "-":  # hold the lock once the running run has committed that task
        try:
            if db.execute("SELECT 1 FROM tasks t JOIN runs r ON r.id = t.run_id WHERE "
                          "r.status = 'running' AND t.task_id = ? AND t.status = 'completed'",
                          (wait_for_task,)).fetchone():
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    db.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(seconds)
    db.execute("COMMIT")
""")

# `bmad` as its console script runs it, with the journal's busy timeout shortened from 30 s to
# 2 s so that the test takes seconds (the messages say "2 s").
BMAD_SHORT_TIMEOUT = textwrap.dedent("""
    import sys
    import bmad.runtime.journal as journal, bmad.runtime.journal_schema as schema
    journal.BUSY_TIMEOUT_S = schema.BUSY_TIMEOUT_S = 2.0
    from bmad.cli.main import run
    run(sys.argv[1:])
""")


def bmad_short_timeout(*args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ}
    env.pop("BMAD_HOME", None)
    return subprocess.Popen([sys.executable, "-c", BMAD_SHORT_TIMEOUT, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def hold_lock(path: Path, seconds: float, after_task: str = "-") -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), after_task, str(seconds)],
                            stdout=subprocess.PIPE, text=True)


def test_a_lock_held_when_a_run_starts_is_busy_not_a_foreign_file(tmp_path):
    journal = checkpointed_journal(tmp_path, "lk.db", 1)
    holder = hold_lock(journal, 30)
    try:
        assert holder.stdout.readline().strip() == "locked"
        run = bmad_short_timeout("run", "chain.bmad", *SIM, "--journal", str(journal), cwd=tmp_path)
        out, err = run.communicate(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    result = subprocess.CompletedProcess(run.args, run.returncode, out, err)
    assert_diagnostic(result, "BMAD-E343", f"the journal {journal} is locked by another process "
                      f"(pid {holder.pid}: ", "for more than 2 s", "wait for that process")
    assert "not a SQLite database" not in err and "not a bmad journal" not in err


def test_a_lock_held_mid_run_interrupts_the_run_which_resumes(tmp_path):
    journal = checkpointed_journal(tmp_path, "ml.db", 1)
    run = bmad_short_timeout("run", "chain.bmad", "--provider", "sim", "--sim-latency-scale",
                             "0.3", "--journal", str(journal), cwd=tmp_path)
    # Held from the run's first commit for 3.3 s: the next commit (~0.3 s later) gives up after
    # 2 s, and the run's end is written once the lock is gone (its one retry waits up to 2 s).
    holder = hold_lock(journal, 3.3, after_task="a")
    try:
        out, err = run.communicate(timeout=120)
    finally:
        holder.kill()
        holder.wait()
    result = subprocess.CompletedProcess(run.args, run.returncode, out, err)
    run_id, status, error = runs_table(journal)[-1]
    assert_diagnostic(result, "BMAD-E343", f"(pid {holder.pid}: ", "for more than 2 s",
                      f"bmad run --resume {run_id}")
    assert "ExceptionGroup" not in err
    assert status == "interrupted"
    assert error.startswith(f"[BMAD-E343] the journal {journal} is locked by another process")
    resumed = bmad("run", "--resume", run_id, "--sim-latency-scale", "0", "--journal",
                   str(journal), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert runs_table(journal)[-1][1] == "completed"


def test_the_real_busy_timeout_with_the_console_script(tmp_path):
    """As a user meets it: `bmad` itself, the 30 s busy timeout."""
    journal = checkpointed_journal(tmp_path, "lk.db", 1)
    holder = hold_lock(journal, 45)
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = bmad("run", "chain.bmad", *SIM, "--journal", str(journal), cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert_diagnostic(result, "BMAD-E343", f"(pid {holder.pid}: ", "for more than 30 s")


# -- a damaged file -----------------------------------------------------------------------------

def test_a_damaged_journal_is_reported_by_every_command(tmp_path):
    journal = checkpointed_journal(tmp_path, "good.db", 2)
    first_run = runs_table(journal)[0][0]
    db = sqlite3.connect(journal)
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name='calls'").fetchone()[0]
    db.close()
    with open(journal, "r+b") as f:  # the calls table's root page: the schema still reads
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * 64)
    damage = f"the journal {journal} is damaged (database disk image is malformed)"
    recover = f"sqlite3 {journal} .recover > dump.sql"
    for args in (["show", first_run], ["export", first_run], ["workflow", "metrics"],
                 ["runs", "--prune", "--keep", "0"], ["run", "chain.bmad", *SIM]):
        result = bmad(*args, "--journal", str(journal), cwd=tmp_path)
        assert_diagnostic(result, "BMAD-E344", damage, recover)
    # the run that met the damage is not left `running`
    run_id, status, error = runs_table(journal)[-1]
    assert run_id != first_run and status == "interrupted"
    assert error.startswith(f"[BMAD-E344] {damage}")

    truncated = tmp_path / "trunc.db"
    truncated.write_bytes(journal.read_bytes()[:20000])
    for args in (["runs"], ["run", "chain.bmad", *SIM]):
        result = bmad(*args, "--journal", str(truncated), cwd=tmp_path)
        assert_diagnostic(result, "BMAD-E344", f"the journal {truncated} is damaged")
        assert "not a bmad journal" not in result.stderr


# -- the file's path, and files that aren't journals ---------------------------------------------

def test_journal_file_problems_have_stable_codes(tmp_path):
    (tmp_path / "chain.bmad").write_text(CHAIN)
    (tmp_path / "isdir.db").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "text.db").write_text("hello this is not sqlite\n")
    db = sqlite3.connect(tmp_path / "foreign.db")
    db.execute("CREATE TABLE runs (x INTEGER)")
    db.commit()
    db.close()
    newer = checkpointed_journal(tmp_path, "newer.db", 1)
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.close()
    run = ("run", "chain.bmad", *SIM)
    cases = [
        (run, "isdir.db", "BMAD-E340", "is a folder, not a file"),
        (("runs",), "isdir.db", "BMAD-E340", "is a folder, not a file"),
        (run, "afile/j.db", "BMAD-E340", f"{tmp_path / 'afile'} is a file, not a folder"),
        (("show", "x"), "nope.db", "BMAD-E340", "no journal at"),
        (run, "text.db", "BMAD-E341", "not a bmad journal"),
        (("workflow", "status"), "text.db", "BMAD-E341", "not a bmad journal"),
        (run, "foreign.db", "BMAD-E341", "is a SQLite database but not a bmad journal"),
        (("runs",), "newer.db", "BMAD-E342", "written by a newer bmad"),
        (run, "newer.db", "BMAD-E342", "written by a newer bmad"),
    ]
    for args, name, code, words in cases:
        result = bmad(*args, "--journal", str(tmp_path / name), cwd=tmp_path)
        assert_diagnostic(result, code, words)
        assert "must be writable" not in result.stderr


def test_readers_read_a_journal_on_read_only_media(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (tmp_path / "chain.bmad").write_text(CHAIN)
    checkpointed_journal(source, "j.db", 1)
    (source / "chain.bmad").unlink()
    assert sorted(p.name for p in source.iterdir()) == ["j.db"]
    run_id = runs_table(source / "j.db")[0][0]
    with read_only_view(source, tmp_path / "ro") as ro:
        journal = str(ro / "j.db")
        for args in (["runs"], ["show", run_id], ["export", run_id, "--format", "detailed"],
                     ["workflow", "status"], ["workflow", "monitor", "--once"],
                     ["workflow", "metrics"]):
            result = bmad(*args, "--journal", journal, cwd=tmp_path)
            assert result.returncode == 0, (args, result.stderr)
            assert "can't open the journal" not in result.stderr
        assert run_id in bmad("runs", "--journal", journal, cwd=tmp_path).stdout
        written = bmad("run", "chain.bmad", *SIM, "--journal", journal, cwd=tmp_path)
        assert_diagnostic(written, "BMAD-E340", "can't open the journal")
        assert sorted(p.name for p in source.iterdir()) == ["j.db"]  # nothing written beside it
