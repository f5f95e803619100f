"""A batch's rows each keep their own account under the shared budget: a row whose own tasks all
finished is `completed` even when another row exhausts the cap meanwhile, and a running row's
`spent_usd`/`tokens` in the journal are its own calls, not the batch's running totals (also what a
killed driver leaves behind). Real `bmad` subprocesses, a real journal, the `sim` provider."""

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

# `quick` and `slow` are cheap; `pricey`'s worst case ($0.8) alone is over the batch's budget
# ($0.6, which the plan's expected cost, about $0.4, fits). A `big`
# row asks `pricey` while a small row's `slow` call is in flight: the cap stops the big row's
# own work, and the small row finishes everything it had to do.
SHARED_CAP = """
provider lab {
  kind sim
  limits { concurrent 8 }
}
model quick {
  provider lab
  price input $1 output $2 per 1M
  latency 50ms
}
model slow {
  provider lab
  price input $1 output $2 per 1M
  latency 600ms
}
model pricey {
  provider lab
  price input $100 output $200 per 1M
  latency 50ms
}
workflow rows {
  input big: bool = false
  task first {
    model quick
    prompt "Start {{ big }}."
    max_tokens 20
  }
  task large when big {
    model pricey
    prompt "Expand: {{ first }}"
    max_tokens 4000
  }
  task tail when not big {
    model slow
    prompt "Finish: {{ first }}"
    max_tokens 20
  }
  output first
  output large
  output tail
}
"""

# Rows run one at a time; each row's second call is slow enough to kill the driver during it.
LIVE_SPEND = """
provider lab {
  kind sim
  limits { concurrent 8 }
}
model quick {
  provider lab
  price input $1 output $2 per 1M
  latency 100ms
}
model slow {
  provider lab
  price input $1 output $2 per 1M
  latency 20s
}
workflow rows {
  input topic: text
  task draft {
    model quick
    prompt "Write about {{ topic }}."
    max_tokens 60
  }
  task check {
    model slow
    prompt "Check: {{ draft }}"
    max_tokens 60
  }
  output check
}
"""


def bmad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BMAD_HOME": str(cwd / "home"), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def stopped_tasks(db: sqlite3.Connection, run_id: str) -> list[str]:
    """The row's own tasks the run did not finish (what a budget stop leaves)."""
    return [t for (t,) in db.execute(
        "SELECT task_id FROM tasks WHERE run_id=? AND status IN "
        "('budget_exhausted', 'not_started', 'cancelled')", (run_id,))]


def test_a_row_whose_tasks_all_finished_is_completed_when_another_row_exhausts_the_cap(
        tmp_path: Path):
    (tmp_path / "rows.bmad").write_text(SHARED_CAP, encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text(
        "".join(json.dumps({"big": big}) + "\n" for big in (True, False)), encoding="utf-8")
    result = bmad("run", "rows.bmad", "--inputs", "rows.jsonl", "-o", "results.jsonl",
                  "--provider", "sim", "--journal", "runs.db", "--budget", "$0.6",
                  "--concurrency", "2", cwd=tmp_path)
    assert result.returncode == 3, result.stderr  # the batch itself hit its cap

    db = sqlite3.connect(tmp_path / "runs.db")
    batch_id = db.execute("SELECT id FROM batches").fetchone()[0]
    runs = {i: (status, error) for i, status, error in db.execute(
        "SELECT b.row_index, r.status, r.error FROM batch_rows b JOIN runs r ON r.id = b.run_id "
        "WHERE b.batch_id=?", (batch_id,))}
    # The big row's own call was refused: that row, and only that row, is budget_exhausted.
    assert runs[0][0] == "budget_exhausted"
    assert stopped_tasks(db, f"{batch_id}.0") == ["large"]
    # The small row finished all its own work: completed, no error about the other row's call.
    assert stopped_tasks(db, f"{batch_id}.1") == []
    assert runs[1] == ("completed", None)
    finished = [json.loads(e) for (e,) in db.execute(
        "SELECT data_json FROM events WHERE run_id=? AND kind='run_finished'", (f"{batch_id}.1",))]
    assert [e["status"] for e in finished] == ["completed"]

    records = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["row"], r["status"]) for r in records] == [(0, "budget_exhausted"), (1, "completed")]
    assert records[1]["error"] is None and records[1]["outputs"]["first"]

    # The resume keeps the completed row and reruns only the stopped one.
    again = bmad("run", "--resume", batch_id, "--journal", "runs.db", "--budget", "$2",
                 "-o", "again.jsonl", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    reused = db.execute("SELECT COUNT(*) FROM events WHERE run_id=? AND kind='run_started'",
                        (f"{batch_id}.1",)).fetchone()[0]
    assert reused == 1  # row 1 was not started again
    lines = (tmp_path / "again.jsonl").read_text().splitlines()
    assert [json.loads(x)["status"] for x in lines] == ["completed", "completed"]


def journal_figures(path: Path, run_id: str) -> tuple[str, float, int, float, int]:
    """A run's status, its journaled spend and tokens, and what its own calls add up to."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        status, spent, tokens = db.execute("SELECT status, spent_usd, tokens FROM runs WHERE id=?",
                                           (run_id,)).fetchone()
        calls_usd, calls_tokens = db.execute(
            "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens + output_tokens), 0) "
            "FROM calls WHERE run_id=? AND cached=0", (run_id,)).fetchone()
    finally:
        db.close()
    return status, spent or 0.0, tokens or 0, calls_usd, calls_tokens


def test_a_running_rows_spend_is_its_own_and_stays_so_after_a_kill(tmp_path: Path):
    (tmp_path / "rows.bmad").write_text(LIVE_SPEND, encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text(
        "".join(json.dumps({"topic": f"topic {i}"}) + "\n" for i in range(3)), encoding="utf-8")
    env = {**os.environ, "BMAD_HOME": str(tmp_path / "home")}
    # `--sim-latency-scale 0.1`: `check` takes ~2 s, long enough to look at the row mid-flight.
    proc = subprocess.Popen([sys.executable, "-m", "bmad", "run", "rows.bmad", "--inputs",
                             "rows.jsonl", "--provider", "sim", "--sim-latency-scale", "0.1",
                             "--journal", "runs.db", "--concurrency", "1"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = tmp_path / "runs.db"
    try:
        deadline = time.monotonic() + 120
        live = None
        while live is None:  # row 1 running, with its `draft` done and `check` in flight
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
            if not journal.exists():
                continue
            try:
                db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
                row = db.execute("SELECT b.run_id FROM batch_rows b JOIN runs r ON r.id=b.run_id "
                                 "JOIN tasks t ON t.run_id=r.id WHERE b.row_index=1 AND "
                                 "r.status='running' AND t.task_id='draft' AND "
                                 "t.status='completed'").fetchone()
                db.close()
            except sqlite3.Error:
                continue
            if row is not None:
                live = row[0]
        status, spent, tokens, calls_usd, calls_tokens = journal_figures(journal, live)
        assert status == "running"
        # Row 0 has spent too; row 1 shows only what its own calls cost.
        assert calls_usd > 0 and spent == pytest.approx(calls_usd, rel=1e-9)
        assert tokens == calls_tokens
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()  # type: ignore[union-attr]

    # What the killed driver left in the journal is the row's own spend, until a resume.
    status, spent, tokens, calls_usd, calls_tokens = journal_figures(journal, live)
    assert status == "running"
    assert spent == pytest.approx(calls_usd, rel=1e-9) and tokens == calls_tokens
