"""Stop signals during a batch (`bmad run FILE --inputs rows.jsonl`), as real `bmad` processes:
one receiver catches SIGINT, SIGTERM and SIGHUP from before the batch is recorded (or claimed)
until its end is recorded, as for a single run. A signal landing while the batch is being
recorded, a second Ctrl-C while the cancelled rows are recorded, a signal while the batch's end is
recorded: exit 130 with the batch and its rows `cancelled` and resumable (or, once every row is
done, the batch recorded as it ended), never a traceback, never a batch left `running`.

The moments are exact, not timed: a small driver (`driver.py`, below) runs the command line with
hooks that send the process a signal at a given call (a `Journal` method, or a function of
`bmad.runtime.batch`), each hook once and in order: the second is armed once the first fired."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = '''
import importlib, json, os, signal, sys

# HOOKS: [[target, when, signal, match], ...]; target "module:Qual.name"; each fires once, in order
steps = json.loads(os.environ["HOOKS"])
fired = []


def resolve(target):
    module, _, name = target.partition(":")
    owner = importlib.import_module(module)
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attr


def hook(index, target, when, sig, match):
    owner, attr = resolve(target)
    original = getattr(owner, attr)

    def hooked(*args, **kwargs):
        mine = len(fired) == index and (match is None or match in map(str, args))
        if mine:
            fired.append(target)
            if when == "before":
                os.kill(os.getpid(), getattr(signal, sig))
        result = original(*args, **kwargs)
        if mine and when == "after":
            os.kill(os.getpid(), getattr(signal, sig))
        return result

    setattr(owner, attr, hooked)


for i, step in enumerate(steps):
    hook(i, *step)
if os.environ.get("UNHANDLED_SIGNALS"):  # the batch as a library runs it: signals not handled
    import bmad.runtime.batch as batch
    execute_batch = batch.execute_batch

    def unhandled(plan, request):
        request.run.handle_signals = False
        return execute_batch(plan, request)

    batch.execute_batch = unhandled
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

JOURNAL = "bmad.runtime.journal:Journal"
BATCH = "bmad.runtime.batch"
# Ctrl-C in row 0 (of 3, one at a time) right after its task t2 is recorded: calls take a moment
# (latency 0.3), so the signal is handled before the chain's end.
CTRL_C_IN_ROW_0 = [f"{JOURNAL}.add_task", "after", "SIGINT", "t2"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "chain.bmad").write_text("\n".join(CHAIN) + "\n", encoding="utf-8")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text(
        "".join(json.dumps({"topic": f"r{i}"}) + "\n" for i in range(3)), encoding="utf-8")
    return tmp_path


def bmad(project: Path, *args: str, hooks: list[list] | None = None, unhandled: bool = False,
         timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`bmad ARGS`, through the driver when hooked; SIGINT is Python's own, as in a terminal."""
    env = {**os.environ, "NO_COLOR": "1"}
    for name in ("BMAD_HOME", "BMAD_DEBUG", "HOOKS", "UNHANDLED_SIGNALS"):
        env.pop(name, None)
    if hooks:
        env["HOOKS"] = json.dumps(hooks)
    if unhandled:
        env["UNHANDLED_SIGNALS"] = "1"
    command = [sys.executable, str(project / "driver.py")] if hooks else \
        [sys.executable, "-m", "bmad"]
    return subprocess.run([*command, *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # whatever the test runner's disposition is


def run_batch(project: Path, *hooks: list, latency: str = "0.3", unhandled: bool = False):
    return bmad(project, "run", "chain.bmad", "--inputs", "rows.jsonl", "--provider", "sim",
                "--sim-latency-scale", latency, "--concurrency", "1", "-o", "results.jsonl",
                "--journal", str(project / "runs.db"), hooks=list(hooks), unhandled=unhandled)


def assert_quiet(result: subprocess.CompletedProcess[str], code: int) -> None:
    err = result.stderr
    assert result.returncode == code, (result.returncode, err)
    for words in ("Traceback", "unhandled exception", "Exception ignored", "KeyboardInterrupt",
                  "internal error"):
        assert words not in err, err


def journal_state(project: Path):
    """The batch's (id, status), and its rows' statuses by index (`pending`: no run)."""
    with sqlite3.connect(project / "runs.db") as db:
        (batch_id, status), = db.execute("SELECT id, status FROM batches").fetchall()
        rows = db.execute("SELECT b.row_index, COALESCE(r.status, 'pending') FROM batch_rows b "
                          "LEFT JOIN runs r ON r.id = b.run_id WHERE b.batch_id=? "
                          "ORDER BY b.row_index", (batch_id,)).fetchall()
    return batch_id, status, [s for _, s in rows]


def paid_twice(project: Path) -> int:
    with sqlite3.connect(project / "runs.db") as db:
        return db.execute("SELECT COUNT(*) FROM (SELECT run_id, request_hash FROM calls "
                          "WHERE cached=0 AND status='ok' GROUP BY 1, 2 HAVING COUNT(*) > 1)"
                          ).fetchone()[0]


def resume_completes(project: Path, batch_id: str) -> None:
    resumed = bmad(project, "run", "--resume", batch_id, "--sim-latency-scale", "0",
                   "--journal", str(project / "runs.db"), "-o", "resumed.jsonl")
    assert_quiet(resumed, 0)
    assert journal_state(project)[1:] == ("completed", ["completed"] * 3)
    assert paid_twice(project) == 0


# -- a second signal while the cancelled batch winds down -----------------------------------------

@pytest.mark.parametrize("second", [
    # recording the cancelled row's end
    pytest.param([f"{JOURNAL}.finish_run", "before", "SIGINT", None], id="finish_run-SIGINT"),
    pytest.param([f"{JOURNAL}.spend", "before", "SIGINT", None], id="spend-SIGINT",
                 marks=pytest.mark.slow),
    pytest.param([f"{JOURNAL}.finish_run", "before", "SIGTERM", None], id="finish_run-SIGTERM",
                 marks=pytest.mark.slow),
])
def test_a_second_ctrl_c_while_the_cancelled_rows_are_recorded_is_absorbed(project, second):
    """Ctrl-C twice: the second landed in the cancelled row's `finally` (the batch's watcher
    had stopped listening after the first) and was a KeyboardInterrupt there, printed as
    "unhandled exception during asyncio.run() shutdown" with a traceback, the batch and its row
    left `running`. Now it is absorbed: the batch and row 0 are `cancelled`, and resume."""
    result = run_batch(project, CTRL_C_IN_ROW_0, second)
    assert_quiet(result, 130)
    batch_id, status, rows = journal_state(project)
    assert (status, rows) == ("cancelled", ["cancelled", "pending", "pending"])
    assert f"resume with --resume {batch_id}" in result.stderr
    resume_completes(project, batch_id)


# -- a signal while the batch is being recorded (before its rows run) ----------------------------

@pytest.mark.parametrize("hook", [
    # as the journal is opened, before the batch is read (inside `anyio.run`, Ctrl-C then
    # cancelled the batch's task: recorded `running`, never ended, exit 130 without a word)
    pytest.param([f"{JOURNAL}.fail_stale_runs", "after", "SIGINT", None], id="opening-SIGINT"),
    # inside the transaction that records the batch (it was a death by SIGTERM: nothing recorded)
    pytest.param([f"{JOURNAL}.record_holder", "after", "SIGTERM", None], id="recording-SIGTERM"),
    # once it is recorded, before the rows run (the batch was left `running`)
    pytest.param([f"{BATCH}:_BatchRunner._record_batch", "after", "SIGINT", None],
                 id="recorded-SIGINT"),
    pytest.param([f"{BATCH}:_BatchRunner._record_batch", "after", "SIGTERM", None],
                 id="recorded-SIGTERM", marks=pytest.mark.slow),
    pytest.param([f"{BATCH}:_BatchRunner._record_batch", "after", "SIGHUP", None],
                 id="recorded-SIGHUP", marks=pytest.mark.slow),
])
def test_a_signal_as_the_batch_is_recorded_ends_it_cancelled_and_resumable(project, hook):
    """The signal is queued until the batch's watcher reads it, as its first row starts (whose
    first call takes a moment): row 0 is `cancelled`, the others never start."""
    result = run_batch(project, hook)
    assert_quiet(result, 130)
    batch_id, status, rows = journal_state(project)
    assert (status, rows) == ("cancelled", ["cancelled", "pending", "pending"])
    resume_completes(project, batch_id)


@pytest.mark.slow  # three batch processes: the new batch's case above stays in the default run
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_as_a_resume_claims_its_batch_ends_it_cancelled(project, sig):
    """The resume claims the cancelled batch (`running`, this process) and the signal lands in
    that transaction: the batch is `cancelled` again, not left `running` by a dead process."""
    first = run_batch(project, CTRL_C_IN_ROW_0)
    assert_quiet(first, 130)
    batch_id = journal_state(project)[0]
    result = bmad(project, "run", "--resume", batch_id, "--sim-latency-scale", "0.3",
                  "--concurrency", "1", "--journal", str(project / "runs.db"), "-o",
                  "results.jsonl", hooks=[[f"{JOURNAL}.record_holder", "after", sig, None]])
    assert_quiet(result, 130)
    assert journal_state(project)[1:] == ("cancelled", ["cancelled", "pending", "pending"])
    resume_completes(project, batch_id)


def test_a_batch_run_as_a_library_records_its_end_when_ctrl_c_cancels_it(project):
    """Without `handle_signals` (a library's caller), Ctrl-C inside `anyio.run` cancels the
    batch's task: the batch is recorded `cancelled` as it stops (it was left `running`), and the
    KeyboardInterrupt still reaches the caller (here the command line: exit 130)."""
    result = run_batch(project, [f"{JOURNAL}.fail_stale_runs", "after", "SIGINT", None],
                       unhandled=True)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    batch_id, status, rows = journal_state(project)
    assert (status, rows) == ("cancelled", ["cancelled", "pending", "pending"])
    with sqlite3.connect(project / "runs.db") as db:
        (error,), = db.execute("SELECT error FROM batches").fetchall()
    assert error == f"cancelled; resume with --resume {batch_id}"


# -- a signal while the batch's end is recorded --------------------------------------------------

@pytest.mark.parametrize("sig", ["SIGTERM", pytest.param("SIGINT", marks=pytest.mark.slow),
                                 pytest.param("SIGHUP", marks=pytest.mark.slow)])
def test_a_signal_as_the_batch_end_is_recorded_leaves_it_recorded(project, sig):
    """Every row is done and the batch's end is being recorded (its watcher already stopped)
    when the signal lands: the batch is recorded `completed`, not killed half-way and left
    `running` (SIGTERM, SIGHUP), nor stopped by a KeyboardInterrupt (SIGINT)."""
    result = run_batch(project, [f"{BATCH}:batch_rows", "before", sig, None], latency="0")
    assert_quiet(result, 0)
    assert journal_state(project)[1:] == ("completed", ["completed"] * 3)
    records = [json.loads(line) for line in (project / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["completed"] * 3
