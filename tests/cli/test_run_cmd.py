"""`bmad run`, `export`, `runs`, `show`, `workflow status` as real subprocesses on the sim provider,
including SIGKILL mid-run + `--resume` and SIGTERM cancellation."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SPEC = Path("/work/shared/spec")
if not SPEC.exists():  # the contract examples ship with the repository's shared folder
    SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec"


def bmad(*args: str, cwd: Path, check: bool = False, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BMAD_HOME", None)
    result = subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120, **kw)
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


def chain_file(tmp_path: Path, n: int) -> Path:
    lines = ["provider p { kind sim }",
             "model cheap { provider p price input $1 output $2 per 1M skills { writing 0.7 } }",
             "workflow long {"]
    lines.append('  task t0 { prompt "start" model cheap max_tokens 40 }')
    for i in range(1, n):
        lines.append(f'  task t{i} {{ prompt "step {i} after {{{{ t{i - 1} }}}}" model cheap max_tokens 40 }}')
    lines.append(f"  output t{n - 1}")
    lines.append("}")
    path = tmp_path / "long.bmad"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_run_events_export_runs_show(tmp_path):
    result = bmad("run", str(SPEC / "code_review.bmad"), "--provider", "sim", "--sim-latency-scale", "0",
                  "--json-events", "--input", "diff=+ x = 1", "--input", 'files=["a.py", "b.py"]',
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["event"] == "run_started" and events[0]["run_id"]
    assert events[-1]["event"] == "run_finished" and events[-1]["status"] == "completed"
    kinds = {e["event"] for e in events}
    assert {"task_started", "task_finished", "call_finished"} <= kinds
    run_id = events[0]["run_id"]
    assert (tmp_path / ".bmad" / "runs.db").exists()

    data = json.loads(bmad("export", run_id, "--format", "json", cwd=tmp_path, check=True).stdout)
    assert {"id", "status", "workflow", "plan_hash", "spent_usd", "budget_usd", "tokens",
            "started_at", "finished_at"} <= set(data["run"])
    assert data["run"]["status"] == "completed" and data["run"]["budget_usd"] == 0.5
    for task in data["tasks"]:
        assert {"id", "status", "model", "attempts", "cost_usd", "quality", "output"} <= set(task)
    for call in data["calls"]:
        assert {"task", "model", "status", "input_tokens", "output_tokens", "cost_usd", "latency_s",
                "cached"} <= set(call)
    assert set(data["outputs"]) == {"verdict", "fix"}
    assert data["run"]["spent_usd"] == pytest.approx(sum(c["cost_usd"] for c in data["calls"]))

    listing = bmad("runs", cwd=tmp_path, check=True).stdout
    assert run_id in listing and "completed" in listing
    shown = bmad("show", run_id, cwd=tmp_path, check=True).stdout
    assert "verdict" in shown and "completed" in shown


def test_invalid_input_and_plan_exit_2(tmp_path):
    missing = bmad("run", str(SPEC / "code_review.bmad"), "--provider", "sim", cwd=tmp_path)
    assert missing.returncode == 2 and "input `diff`" in missing.stderr
    bad = tmp_path / "plan.json"
    bad.write_text("{}", encoding="utf-8")
    assert bmad("run", str(bad), cwd=tmp_path).returncode == 2
    assert bmad("run", "--resume", "nope", cwd=tmp_path).returncode == 2


def test_stale_plan_is_refused_unless_replanned(tmp_path):
    source = chain_file(tmp_path, 2)
    bmad("plan", str(source), "--provider", "sim", "-o", "plan.json", cwd=tmp_path, check=True)
    ok = bmad("run", "plan.json", "--provider", "sim", "--sim-latency-scale", "0", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    source.write_text(source.read_text() + "\n# edited\n", encoding="utf-8")
    stale = bmad("run", "plan.json", "--provider", "sim", cwd=tmp_path)
    assert stale.returncode == 2 and "changed since this plan was made" in stale.stderr
    replanned = bmad("run", "plan.json", "--replan", "--provider", "sim", "--sim-latency-scale", "0",
                     cwd=tmp_path)
    assert replanned.returncode == 0, replanned.stderr


def _completed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM tasks WHERE status='completed'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _start(tmp_path: Path, source: Path, journal: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "bmad", "run", str(source), "--provider", "sim",
                             "--sim-seed", "5", "--sim-latency-scale", "0.6", "--journal", str(journal),
                             "--json-events", "-o", str(tmp_path / "out.json"), *extra],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(predicate, what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _run_id(proc: subprocess.Popen) -> str:
    first = json.loads(proc.stdout.readline())
    assert first["event"] == "run_started"
    return first["run_id"]


def test_sigkill_then_resume_repeats_no_completed_call(tmp_path):
    source = chain_file(tmp_path, 20)
    # The reference: the same run, uninterrupted, in its own journal.
    ref = bmad("run", str(source), "--provider", "sim", "--sim-seed", "5", "--sim-latency-scale", "0",
               "--journal", str(tmp_path / "ref.db"), cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    expected = json.loads(ref.stdout)

    journal = tmp_path / "runs.db"
    proc = _start(tmp_path, source, journal)
    run_id = _run_id(proc)
    _wait_for(lambda: _completed(journal) >= 5, "5 completed tasks")
    status = bmad("workflow", "status", "--active", "--show-progress", "--journal", str(journal),
                  cwd=tmp_path, check=True).stdout
    assert run_id in status and "%" in status
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(journal) as conn:
        done_before = {t for (t,) in conn.execute(
            "SELECT task_id FROM tasks WHERE run_id=? AND status='completed'", (run_id,))}
        last_call_before = conn.execute("SELECT MAX(id) FROM calls").fetchone()[0]
    assert 5 <= len(done_before) < 20

    resumed = bmad("run", "--resume", run_id, "--journal", str(journal), "--sim-latency-scale", "0",
                   cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == expected
    with sqlite3.connect(journal) as conn:
        new_tasks = {t for (t,) in conn.execute(
            "SELECT DISTINCT task_id FROM calls WHERE run_id=? AND id > ? AND cached=0",
            (run_id, last_call_before))}
        duplicates = conn.execute(
            "SELECT request_hash, COUNT(*) FROM calls WHERE run_id=? AND status='ok' AND cached=0 "
            "GROUP BY request_hash HAVING COUNT(*) > 1", (run_id,)).fetchall()
        status_row = conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
    assert not (new_tasks & done_before)
    assert duplicates == []
    assert status_row == ("completed",)


def test_sigterm_cancels_cleanly_and_the_run_resumes(tmp_path):
    source = chain_file(tmp_path, 20)
    journal = tmp_path / "runs.db"
    proc = _start(tmp_path, source, journal)
    run_id = _run_id(proc)
    _wait_for(lambda: _completed(journal) >= 3, "3 completed tasks")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    finished = json.loads(out.strip().splitlines()[-1])
    assert finished["event"] == "run_finished" and finished["status"] == "cancelled"
    with sqlite3.connect(journal) as conn:
        assert conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone() == ("cancelled",)
        # Consistent: every completed task has its successful call recorded.
        orphans = conn.execute(
            "SELECT task_id FROM tasks t WHERE run_id=? AND status='completed' AND NOT EXISTS "
            "(SELECT 1 FROM calls c WHERE c.run_id=t.run_id AND c.task_id=t.task_id AND c.status='ok')",
            (run_id,)).fetchall()
        assert orphans == []
    resumed = bmad("run", "--resume", run_id, "--journal", str(journal), "--sim-latency-scale", "0",
                   cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "t19" in json.loads(resumed.stdout)


def test_runs_and_status_before_any_run_say_so(tmp_path):
    missing = tmp_path / "never.db"
    for command in (["runs"], ["workflow", "status"]):
        listed = bmad(*command, "--journal", str(missing), "--json", cwd=tmp_path)
        assert listed.returncode == 0
        assert listed.stdout == "[]\n"
        assert "no runs yet" in listed.stderr
        assert not missing.exists()
