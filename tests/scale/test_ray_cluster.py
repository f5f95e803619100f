"""The Ray executor on a real two-node cluster (loopback only, in a network namespace): a 500-row
batch on the sim provider keeps going when the second node is killed mid-run, every row completes
exactly once, no call is recorded twice, and the batch spends no more than its budget."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopback_cluster import LoopbackCluster, can_make_namespaces

pytestmark = pytest.mark.slow

ROWS = 500
BUDGET_USD = 3.0

WORKFLOW = """
provider lab {
  kind sim
  limits { concurrent 32 }
}
model steady {
  provider lab
  price input $1 output $2 per 1M
  latency 200ms
}
workflow review {
  input topic: text
  task draft {
    model steady
    prompt "Write a short paragraph about {{ topic }}."
  }
  task check {
    model steady
    prompt "Check this paragraph: {{ draft }}"
  }
  output check
}
"""


def _completed_rows(journal: Path) -> int:
    if not journal.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM runs WHERE status='completed'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _start_batch(cluster, tmp_path: Path, rows: int, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """`bmad run` of WORKFLOW over `rows` input rows on the cluster (journal `runs.db`)."""
    (tmp_path / "review.bmad").write_text(WORKFLOW, encoding="utf-8")
    with (tmp_path / "rows.jsonl").open("w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"topic": f"subject number {i}"}) + "\n")
    return cluster.popen(
        [sys.executable, "-m", "bmad", "run", "review.bmad", "--inputs", "rows.jsonl",
         "--provider", "sim", "--executor", "ray", "--ray-address", cluster.address,
         "--journal", str(tmp_path / "runs.db"), "--budget", f"${BUDGET_USD}", "--concurrency", "16",
         *extra], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _wait_for_rows(driver: subprocess.Popen, journal: Path, rows: int) -> None:
    """Until `rows` runs of the batch are completed in the journal (the driver still running)."""
    deadline = time.monotonic() + 240
    while _completed_rows(journal) < rows:
        assert driver.poll() is None, driver.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.2)


@pytest.fixture
def cluster():
    why = can_make_namespaces()
    if why is not None:
        pytest.skip(why)
    c = LoopbackCluster()
    try:
        c.start(nodes=2)
        yield c
    finally:
        c.stop()


# A whole cluster started, loaded and partly killed on a shared 2-core machine. It used to fail
# about once in seven runs (once in three with two CPU hogs beside it): the second node was listed
# alive but not yet taking work, so every call actor went to the head and killing node 1 lost
# none ("4 call actors on 1 node(s) at the start"). The cluster now waits until each node has run
# a task pinned to it (5 of 5 passed with the hogs). Re-runs stay as a guard on this shared
# machine; CI prints why a test was re-run (-rR). Two, since a CI run on 2026-11-24 failed the
# placement check twice in a row (isolated runs minutes later: 8 of 10 passed; the rows were right
# every time, only "2 node(s) at the start" failed).
@pytest.mark.flaky(reruns=2)
def test_a_node_killed_mid_batch_loses_and_repeats_nothing(cluster, tmp_path):
    journal = tmp_path / "runs.db"
    driver = _start_batch(cluster, tmp_path, ROWS, "-o", "results.jsonl")

    # Kill the second node once the batch is well under way (but far from done).
    _wait_for_rows(driver, journal, 60)
    cluster.kill_node(1)
    done_at_kill = _completed_rows(journal)

    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err.decode()[-3000:]
    assert done_at_kill < ROWS  # the node died mid-run
    # The call actors were spread over both nodes, and the lost ones restarted on the head.
    assert "call actors on 2 node(s) at the start, 1 at the end" in err.decode()

    db = sqlite3.connect(journal)
    (batch_id, status, spent, budget), = db.execute(
        "SELECT id, status, spent_usd, budget_usd FROM batches").fetchall()
    assert status == "completed"
    # Every row completed, exactly once: one run per row, each with both tasks done once.
    runs = db.execute("SELECT r.id, r.status FROM batch_rows b JOIN runs r ON r.id = b.run_id "
                      "WHERE b.batch_id=?", (batch_id,)).fetchall()
    assert len(runs) == ROWS and {s for _, s in runs} == {"completed"}
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == ROWS
    tasks = db.execute("SELECT run_id, task_id, status FROM tasks").fetchall()
    assert len(tasks) == 2 * ROWS and {s for *_, s in tasks} == {"completed"}
    # No call recorded twice: one answer per (run, request), one per task here.
    twice = db.execute("SELECT run_id, request_hash, COUNT(*) FROM calls WHERE status='ok' "
                       "GROUP BY run_id, request_hash HAVING COUNT(*) > 1").fetchall()
    assert twice == []
    assert db.execute("SELECT COUNT(*) FROM calls WHERE status='ok'").fetchone()[0] == 2 * ROWS
    # The budget held, and the batch's spend is exactly what its calls cost.
    paid = db.execute("SELECT SUM(cost_usd) FROM calls WHERE cached=0").fetchone()[0]
    assert budget == BUDGET_USD
    assert spent <= budget
    assert spent == pytest.approx(paid, rel=1e-9)
    db.close()

    results = [json.loads(line) for line in
               (tmp_path / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in results] == list(range(ROWS))
    assert all(r["status"] == "completed" and r["outputs"]["check"] for r in results)
    assert results[7]["inputs"] == {"topic": "subject number 7"}


def test_losing_the_head_node_stops_the_batch_and_resume_finishes_it_locally(cluster, tmp_path):
    """Ray can't outlive its head (the GCS holds the cluster's state), so the driver stops; what
    completed is journaled, and `--resume` on the local executor finishes the rest, paying for no
    call twice and staying within the batch's budget.

    The actors on the surviving node keep answering until the driver gives up on the GCS (5 s
    here), ~40 rows a second: the batch is long enough that this can't finish it (with 200 rows
    it once did, the call actors spread over both nodes)."""
    rows = 600
    journal = tmp_path / "runs.db"
    # give up on the GCS in 5 s, not 60
    driver = _start_batch(cluster, tmp_path, rows, env={"RAY_gcs_rpc_server_reconnect_timeout_s": "5"})
    _wait_for_rows(driver, journal, 30)
    cluster.kill_node(0)
    driver.communicate(timeout=300)
    assert driver.returncode != 0  # it could not finish without its cluster

    db = sqlite3.connect(journal)
    (batch_id, status), = db.execute("SELECT id, status FROM batches").fetchall()
    done_before = db.execute("SELECT COUNT(*) FROM runs WHERE status='completed'").fetchone()[0]
    paid_before = db.execute("SELECT COUNT(*) FROM calls WHERE status='ok'").fetchone()[0]
    db.close()
    assert status != "completed" and 30 <= done_before < rows

    resumed = subprocess.run(
        [sys.executable, "-m", "bmad", "run", "--resume", batch_id, "--journal", str(journal),
         "-o", "results.jsonl"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    db = sqlite3.connect(journal)
    (status, spent, budget), = db.execute("SELECT status, spent_usd, budget_usd FROM batches").fetchall()
    assert status == "completed" and spent <= budget
    assert {s for (s,) in db.execute("SELECT status FROM runs")} == {"completed"}
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == rows
    twice = db.execute("SELECT run_id, request_hash, COUNT(*) FROM calls WHERE status='ok' "
                       "GROUP BY run_id, request_hash HAVING COUNT(*) > 1").fetchall()
    assert twice == []
    paid = db.execute("SELECT COUNT(*) FROM calls WHERE status='ok'").fetchone()[0]
    assert paid == 2 * rows and paid - paid_before <= 2 * (rows - done_before)
    db.close()
    results = [json.loads(line) for line in
               (tmp_path / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in results] == list(range(rows))
