"""Processes racing on one journal, as real `bmad` subprocesses: two `--resume` of one run, a
resume and a prune, a prune during a batch, and signals at the edges of a run (SIGHUP too).

The interleavings are made exact, not timed: a small driver (`driver.py`, below) runs the command
line with a hook on one `Journal` method, which either waits at a barrier (the test lets it go
once the other process has done its part) or sends the process a signal at that very point."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

DRIVER = '''
import os, signal, sys, time
from pathlib import Path
from bmad.runtime.journal import Journal

method, when, action = os.environ["HOOK"].split(":")
match = os.environ.get("HOOK_MATCH")
original = getattr(Journal, method)
fired = []


def act():
    if action == "wait":  # a barrier: say we are here, then wait for the test's go
        here = Path(os.environ["HOOK_DIR"])
        (here / f"reached-{os.getpid()}").touch()
        while not (here / "go").exists():
            time.sleep(0.01)
    else:
        os.kill(os.getpid(), getattr(signal, action))


def hooked(self, *args, **kwargs):
    mine = not fired and (match is None or match in map(str, args))
    if mine:
        fired.append(1)
        if when == "before":
            act()
    result = original(self, *args, **kwargs)
    if mine and when == "after":
        act()
    return result


setattr(Journal, method, hooked)
from bmad.cli.main import run
run(sys.argv[1:])
'''

CHAIN = ["provider p { kind sim }",
         "model cheap { provider p price input $1 output $2 per 1M skills { writing 0.7 } }",
         "workflow chain {", "  input topic: text = \"x\"",
         '  task t0 { prompt "start {{ topic }}" model cheap max_tokens 40 }',
         *[f'  task t{i} {{ prompt "step {i} after {{{{ t{i - 1} }}}}" model cheap max_tokens 40 }}'
           for i in range(1, 8)],
         "  output t7", "}"]


_SPAWNED: list[subprocess.Popen] = []


@pytest.fixture
def project(tmp_path: Path):
    (tmp_path / "chain.bmad").write_text("\n".join(CHAIN) + "\n", encoding="utf-8")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    (tmp_path / "hook").mkdir()
    yield tmp_path
    # A test that failed before letting its barrier go leaves no process waiting at it.
    (tmp_path / "hook" / "go").touch()
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _env(project: Path, hook: str | None = None, match: str | None = None) -> dict[str, str]:
    env = {**os.environ, "NO_COLOR": "1", "HOOK_DIR": str(project / "hook")}
    env.pop("BMAD_HOME", None)
    for name, value in (("HOOK", hook), ("HOOK_MATCH", match)):
        env.pop(name, None)
        if value is not None:
            env[name] = value
    return env


def bmad(project: Path, *args: str, hook: str | None = None, match: str | None = None,
         wait: bool = True):
    """`bmad ARGS` (through the driver when hooked); a Popen when `wait` is false."""
    command = [sys.executable, str(project / "driver.py") if hook else "-m",
               *([] if hook else ["bmad"]), *args]
    proc = subprocess.Popen(command, cwd=project, env=_env(project, hook, match),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _SPAWNED.append(proc)
    return _done(proc) if wait else proc


def _done(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=180)
    assert "Traceback" not in err, err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _at_barrier(project: Path, count: int) -> None:
    deadline = time.monotonic() + 120
    while len(list((project / "hook").glob("reached-*"))) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {count} process(es) at the barrier")
        time.sleep(0.02)


def _go(project: Path) -> None:
    (project / "hook" / "go").touch()


def _cancelled_run(project: Path, journal: Path) -> str:
    """A run of the chain cancelled (SIGINT, as Ctrl-C) right after its task t2 was recorded."""
    # (calls take a moment, so the signal is handled before the chain's end)
    result = bmad(project, "run", "chain.bmad", "--provider", "sim", "--sim-latency-scale", "0.3",
                  "--journal", str(journal), hook="add_task:after:SIGINT", match="t2")
    assert result.returncode == 130, result.stderr
    with sqlite3.connect(journal) as db:
        (run_id, status), = db.execute("SELECT id, status FROM runs").fetchall()
    assert status == "cancelled"
    return run_id


def _state(journal: Path, run_id: str):
    with sqlite3.connect(journal) as db:
        runs = db.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchall()
        tasks = [t for (t,) in db.execute("SELECT task_id FROM tasks WHERE run_id=? ORDER BY 1",
                                          (run_id,))]
        paid = db.execute("SELECT request_hash, COUNT(*) FROM calls WHERE run_id=? AND cached=0 "
                          "AND status='ok' GROUP BY 1", (run_id,)).fetchall()
    return runs, tasks, paid


# -- 1. two resumes of one run -------------------------------------------------------------------

def test_two_resumes_of_one_run_one_runs_it_the_other_is_refused(project):
    """Both resumes read the cancelled run and reach their claim before either claims (the
    barrier). One runs it; the other is refused (BMAD-E308, or E302 if the first has already
    finished): every remaining call is paid once, each task has one row."""
    journal = project / "runs.db"
    run_id = _cancelled_run(project, journal)
    procs = [bmad(project, "run", "--resume", run_id, "--journal", str(journal), "--provider", "sim",
                  "--sim-latency-scale", "0", hook="reopen_run:before:wait", wait=False)
             for _ in range(2)]
    _at_barrier(project, 2)
    _go(project)
    results = sorted((_done(p) for p in procs), key=lambda r: r.returncode)
    assert [r.returncode for r in results] == [0, 2], [r.stderr for r in results]
    refused = results[1].stderr
    assert "[BMAD-E308]" in refused or "[BMAD-E302]" in refused, refused
    runs, tasks, paid = _state(journal, run_id)
    assert runs == [("completed",)]
    assert tasks == [f"t{i}" for i in range(8)]
    assert len(paid) == 8 and all(n == 1 for _, n in paid), paid


# -- 3. a resume and a prune ---------------------------------------------------------------------

@pytest.mark.slow  # a race between real processes; the core resume race stays in the default run
def test_a_resume_whose_run_is_pruned_before_its_claim_is_refused_and_writes_nothing(project):
    """The resume has read the run; a prune removes it; the claim then finds no run: refused with
    BMAD-E301, not a run "completed" into rows of a run that no longer exists."""
    journal = project / "runs.db"
    run_id = _cancelled_run(project, journal)
    resume = bmad(project, "run", "--resume", run_id, "--journal", str(journal), "--provider", "sim",
                  "--sim-latency-scale", "0", hook="reopen_run:before:wait", wait=False)
    _at_barrier(project, 1)
    pruned = bmad(project, "runs", "--prune", "--keep", "0", "--journal", str(journal))
    assert pruned.returncode == 0 and "removed 1 run(s)" in pruned.stdout, pruned.stderr
    _go(project)
    result = _done(resume)
    assert result.returncode == 2 and "[BMAD-E301]" in result.stderr, result.stderr
    assert _state(journal, run_id) == ([], [], [])


@pytest.mark.slow  # a race between real processes; the core resume race stays in the default run
def test_a_prune_during_a_resumed_run_keeps_it_whole(project):
    """Once the resume holds the run, a prune keeps every row of it and the run completes."""
    journal = project / "runs.db"
    run_id = _cancelled_run(project, journal)
    resume = bmad(project, "run", "--resume", run_id, "--journal", str(journal), "--provider", "sim",
                  "--sim-latency-scale", "0", hook="reopen_run:after:wait", wait=False)
    _at_barrier(project, 1)
    pruned = bmad(project, "runs", "--prune", "--keep", "0", "--json", "--journal", str(journal))
    assert json.loads(pruned.stdout) == {"removed": [], "kept_running": 1,
                                         "kept_in_running_batch": 0}
    _go(project)
    assert _done(resume).returncode == 0
    runs, tasks, paid = _state(journal, run_id)
    assert runs == [("completed",)] and tasks == [f"t{i}" for i in range(8)] and len(paid) == 8


# -- 2. pruning during a batch -------------------------------------------------------------------

@pytest.mark.parametrize("pruner", ["runs --prune", "prune_after_run"])
def test_pruning_during_a_batch_removes_none_of_its_runs(project, pruner):
    """Row 0 of a batch has completed (paid); the batch waits at the barrier while a prune runs
    (`bmad runs --prune --keep 0`, or an ordinary run finishing under `prune_after_run`). The
    batch still completes every row, and nothing is paid twice."""
    journal = project / "runs.db"
    rows = project / "rows.jsonl"
    rows.write_text("".join(json.dumps({"topic": f"r{i}"}) + "\n" for i in range(3)), "utf-8")
    batch = bmad(project, "run", "chain.bmad", "--inputs", str(rows), "--provider", "sim",
                 "--sim-latency-scale", "0", "--concurrency", "1", "-o", "results.jsonl",
                 "--journal", str(journal), hook="finish_run:after:wait", wait=False)
    _at_barrier(project, 1)
    with sqlite3.connect(journal) as db:
        (row0, status), = db.execute("SELECT id, status FROM runs").fetchall()
    assert row0.endswith(".0") and status == "completed"
    if pruner == "runs --prune":
        pruned = bmad(project, "runs", "--prune", "--keep", "0", "--journal", str(journal))
        assert pruned.returncode == 0 and "removed 0 run(s)" in pruned.stdout, pruned.stdout
        assert "kept 1 of a batch still running" in pruned.stdout
    else:
        (project / "bmad.toml").write_text("[journal]\nprune_after_run = true\nkeep_runs = 0\n",
                                           encoding="utf-8")
        single = bmad(project, "run", "chain.bmad", "--provider", "sim", "--sim-latency-scale", "0",
                      "--journal", str(journal))
        assert single.returncode == 0, single.stderr
    _go(project)
    result = _done(batch)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (project / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["completed"] * 3
    with sqlite3.connect(journal) as db:
        twice = db.execute("SELECT COUNT(*) FROM (SELECT run_id, request_hash FROM calls "
                           "WHERE cached=0 AND status='ok' GROUP BY 1, 2 HAVING COUNT(*) > 1)"
                           ).fetchone()[0]
        kept = db.execute("SELECT COUNT(*) FROM tasks WHERE run_id=?", (row0,)).fetchone()[0]
    assert twice == 0 and kept == 8


# -- 5. signals at the edges of a run ------------------------------------------------------------

@pytest.mark.parametrize("sig", ["SIGTERM", pytest.param("SIGHUP", marks=pytest.mark.slow),
                                 pytest.param("SIGINT", marks=pytest.mark.slow)])
@pytest.mark.parametrize("hook", ["create_run:before", "create_run:after"])
def test_a_signal_as_the_run_is_created_ends_it_cancelled_and_resumable(project, sig, hook):
    """A signal landing before the run's watcher started (it once killed the process and left
    the run `running`, or no record at all for SIGHUP): the run is recorded `cancelled`."""
    journal = project / "runs.db"
    result = bmad(project, "run", "chain.bmad", "--provider", "sim", "--sim-latency-scale", "0",
                  "--journal", str(journal), hook=f"{hook}:{sig}")
    assert result.returncode == 130, (result.returncode, result.stderr)
    with sqlite3.connect(journal) as db:
        (run_id, status), = db.execute("SELECT id, status FROM runs").fetchall()
    assert status == "cancelled"
    resumed = bmad(project, "run", "--resume", run_id, "--journal", str(journal),
                   "--sim-latency-scale", "0")
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow  # a race between real processes; the core resume race stays in the default run
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_as_a_resume_claims_its_run_ends_it_cancelled(project, sig):
    journal = project / "runs.db"
    run_id = _cancelled_run(project, journal)
    result = bmad(project, "run", "--resume", run_id, "--journal", str(journal),
                  "--sim-latency-scale", "0", hook=f"reopen_run:after:{sig}")
    assert result.returncode == 130, (result.returncode, result.stderr)
    assert _state(journal, run_id)[0] == [("cancelled",)]


@pytest.mark.slow  # a race between real processes; the core resume race stays in the default run
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_as_the_end_is_recorded_leaves_the_run_recorded(project, sig):
    """The workflow is done and its end is being recorded when the signal lands: the end is
    recorded (the process is not killed half-way, the run left `running`)."""
    journal = project / "runs.db"
    result = bmad(project, "run", "chain.bmad", "--provider", "sim", "--sim-latency-scale", "0",
                  "--journal", str(journal), hook=f"finish_run:before:{sig}")
    assert result.returncode == 0, (result.returncode, result.stderr)
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("completed",)]


def test_sighup_mid_run_cancels_it_like_sigterm_and_it_resumes(project):
    """The terminal closing (SIGHUP) mid-run: recorded `cancelled`, exit 130, resumable; it once
    killed the run without a record (`running (process gone)`)."""
    journal = project / "runs.db"
    result = bmad(project, "run", "chain.bmad", "--provider", "sim", "--sim-latency-scale", "0.3",
                  "--journal", str(journal), hook="add_task:after:SIGHUP", match="t2")
    assert result.returncode == 130, (result.returncode, result.stderr)
    with sqlite3.connect(journal) as db:
        (run_id, status), = db.execute("SELECT id, status FROM runs").fetchall()
    assert status == "cancelled"
    resumed = bmad(project, "run", "--resume", run_id, "--journal", str(journal),
                   "--sim-latency-scale", "0")
    assert resumed.returncode == 0, resumed.stderr
    runs, tasks, paid = _state(journal, run_id)
    assert runs == [("completed",)] and len(tasks) == 8 and all(n == 1 for _, n in paid)


@pytest.mark.slow  # a race between real processes; the core resume race stays in the default run
def test_sighup_mid_batch_cancels_it_and_it_resumes(project):
    journal = project / "runs.db"
    rows = project / "rows.jsonl"
    rows.write_text("".join(json.dumps({"topic": f"r{i}"}) + "\n" for i in range(3)), "utf-8")
    args = ("-o", "results.jsonl", "--journal", str(journal))
    result = bmad(project, "run", "chain.bmad", "--inputs", str(rows), "--provider", "sim",
                  "--sim-latency-scale", "0.3", "--concurrency", "1", *args,
                  hook="add_task:after:SIGHUP", match="t2")
    assert result.returncode == 130, (result.returncode, result.stderr)
    with sqlite3.connect(journal) as db:
        (batch_id, status), = db.execute("SELECT id, status FROM batches").fetchall()
    assert status == "cancelled"
    resumed = bmad(project, "run", "--resume", batch_id, *args)
    assert resumed.returncode == 0, resumed.stderr


# -- batches: the batch's claim, and a row resumed on its own --------------------------------------

def _cancelled_batch(project: Path, journal: Path) -> str:
    """A 3-row batch cancelled (SIGINT) in its row 0, right after that row's task t2: row 0
    cancelled, rows 1 and 2 never started."""
    rows = project / "rows.jsonl"
    rows.write_text("".join(json.dumps({"topic": f"r{i}"}) + "\n" for i in range(3)), "utf-8")
    result = bmad(project, "run", "chain.bmad", "--inputs", str(rows), "--provider", "sim",
                  "--sim-latency-scale", "0.3", "--concurrency", "1", "-o", "first.jsonl",
                  "--journal", str(journal), hook="add_task:after:SIGINT", match="t2")
    assert result.returncode == 130, result.stderr
    with sqlite3.connect(journal) as db:
        (batch_id, status), = db.execute("SELECT id, status FROM batches").fetchall()
    assert status == "cancelled"
    return batch_id


def _paid_twice(journal: Path) -> int:
    with sqlite3.connect(journal) as db:
        return db.execute("SELECT COUNT(*) FROM (SELECT run_id, request_hash FROM calls "
                          "WHERE cached=0 AND status='ok' GROUP BY 1, 2 HAVING COUNT(*) > 1)"
                          ).fetchone()[0]


@pytest.mark.slow  # a race between real processes; the core resume race stays in the default run
def test_two_resumes_of_one_batch_one_runs_it_the_other_is_refused(project):
    """Both batch resumes read the batch `cancelled` and reach its claim (the barrier, just before
    it) before either claims: one runs the batch, the other is refused (BMAD-E323)."""
    journal = project / "runs.db"
    batch_id = _cancelled_batch(project, journal)
    procs = [bmad(project, "run", "--resume", batch_id, "--journal", str(journal),
                  "--sim-latency-scale", "0", "-o", f"res{i}.jsonl", hook="has_plan:before:wait",
                  wait=False) for i in range(2)]
    _at_barrier(project, 2)
    _go(project)
    results = sorted((_done(p) for p in procs), key=lambda r: r.returncode)
    assert [r.returncode for r in results] == [0, 2], [r.stderr for r in results]
    assert "[BMAD-E323]" in results[1].stderr, results[1].stderr
    assert _paid_twice(journal) == 0
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT status FROM batches").fetchall() == [("completed",)]


@pytest.mark.slow  # a race between real processes; the core resume race stays in the default run
def test_a_batch_resume_leaves_a_row_resumed_on_its_own_to_that_process(project):
    """Row 0 is resumed on its own (`--resume BATCH_ID.0`) and held (the barrier, after its
    claim) while the batch is resumed: the batch runs the other rows and leaves row 0 alone,
    rather than both running it; once that process finishes it, a last resume completes the
    batch with nothing paid twice."""
    journal = project / "runs.db"
    batch_id = _cancelled_batch(project, journal)
    alone = bmad(project, "run", "--resume", f"{batch_id}.0", "--journal", str(journal),
                 "--sim-latency-scale", "0", hook="reopen_run:after:wait", wait=False)
    _at_barrier(project, 1)
    batch = bmad(project, "run", "--resume", batch_id, "--journal", str(journal),
                 "--sim-latency-scale", "0", "-o", "res.jsonl")
    assert batch.returncode == 1 and "1 of 3 rows did not complete" in batch.stderr, batch.stderr
    records = [json.loads(line) for line in (project / "res.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["running", "completed", "completed"]
    _go(project)
    assert _done(alone).returncode == 0
    last = bmad(project, "run", "--resume", batch_id, "--journal", str(journal), "-o", "res.jsonl")
    assert last.returncode == 0, last.stderr
    assert _paid_twice(journal) == 0
