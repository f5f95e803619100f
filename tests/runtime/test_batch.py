"""Batch runs on the local executor: rows from .jsonl/.csv as child runs in a real journal, results in
input order, one budget for the whole batch, provider limits across rows, bad rows refused with
their line, and `--resume BATCH_ID` after a budget stop and after the driver is killed."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from runtime_support import plan_source, sim_factory

from bmad.cli.batch_cmd import print_final_table
from bmad.runtime.batch import BatchRequest, batch_results, execute_batch
from bmad.runtime.batch_inputs import RowsRefused, read_rows
from bmad.runtime.executors.local import RunRequest
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.journal import Journal
from bmad.runtime.providers import base

WORKFLOW = """
provider lab {
  kind sim
  limits { concurrent 8 }
}
model steady {
  provider lab
  price input $1 output $2 per 1M
  latency 100ms
}
workflow review {
  input topic: text
  input words: number = 20
  task draft {
    model steady
    prompt "Write {{ words }} words about {{ topic }}."
  }
  task check {
    model steady
    prompt "Check: {{ draft }}"
  }
  output check
}
"""

BODY = """
workflow review {
  input topic: text
  input words: number = 20
  task draft {
    model cheap
    prompt "Write about {{ topic }}."
  }
  task check {
    model mid
    prompt "Check: {{ draft }}"
  }
  output check
}
"""


def bmad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BMAD_HOME": str(cwd / "home"), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def write_rows(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"topic": f"topic {i}"}) + "\n")


def paid_twice(db: sqlite3.Connection) -> list:
    """Answered calls paid for more than once (a resume journals reused answers as cached)."""
    return db.execute("SELECT run_id, request_hash, COUNT(*) FROM calls WHERE status='ok' "
                      "AND cached=0 GROUP BY run_id, request_hash HAVING COUNT(*) > 1").fetchall()


@pytest.fixture
def workflow_dir(tmp_path: Path) -> Path:
    (tmp_path / "review.bmad").write_text(WORKFLOW, encoding="utf-8")
    return tmp_path


def test_jsonl_rows_are_child_runs_with_results_in_input_order(workflow_dir: Path):
    write_rows(workflow_dir / "rows.jsonl", 25)
    result = bmad("run", "review.bmad", "--inputs", "rows.jsonl", "--provider", "sim",
                  "--sim-latency-scale", "0", "--journal", "runs.db", "-o", "results.jsonl",
                  cwd=workflow_dir)
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stderr and "25" in result.stderr  # the final table
    results = [json.loads(line) for line in
               (workflow_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in results] == list(range(25))
    assert results[3]["inputs"] == {"topic": "topic 3", "words": 20}
    assert all(r["status"] == "completed" and r["outputs"]["check"] for r in results)

    db = sqlite3.connect(workflow_dir / "runs.db")
    (batch_id, status, total), = db.execute("SELECT id, status, total_rows FROM batches").fetchall()
    assert status == "completed" and total == 25
    # Each row is a run of its own, linked to the batch, with its own outputs and spend.
    rows = db.execute("SELECT b.row_index, r.id, r.status, r.spent_usd, r.inputs_json "
                      "FROM batch_rows b JOIN runs r ON r.id = b.run_id WHERE b.batch_id=? "
                      "ORDER BY b.row_index", (batch_id,)).fetchall()
    assert [r[1] for r in rows] == [f"{batch_id}.{i}" for i in range(25)]
    assert all(r[2] == "completed" and r[3] > 0 for r in rows)
    assert json.loads(rows[4][4]) == {"topic": "topic 4", "words": 20}
    outputs = db.execute("SELECT COUNT(DISTINCT run_id) FROM outputs").fetchone()[0]
    assert outputs == 25
    batch_spent = db.execute("SELECT spent_usd FROM batches").fetchone()[0]
    assert batch_spent == pytest.approx(sum(r[3] for r in rows))
    assert result.stdout == ""  # results went to the file


def test_csv_cells_are_parsed_by_the_declared_input_type(workflow_dir: Path):
    (workflow_dir / "rows.csv").write_text('topic,words\nbees,10\n"ants, and wasps",5\n',
                                           encoding="utf-8")
    result = bmad("run", "review.bmad", "--inputs", "rows.csv", "--provider", "sim",
                  "--sim-latency-scale", "0", "--journal", "runs.db", cwd=workflow_dir)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]  # no -o: stdout
    assert [r["inputs"] for r in records] == [{"topic": "bees", "words": 10},
                                              {"topic": "ants, and wasps", "words": 5}]


@pytest.mark.parametrize("name, text, code, where", [
    ("rows.jsonl", '{"topic": "a"}\n{"topic": 3}\n', "BMAD-E322", "line 2"),
    ("rows.jsonl", "", "BMAD-E320", "no rows"),
    ("rows.jsonl", '{"topic": "a"}\n\n{"topic": \n', "BMAD-E321", "rows.jsonl:3"),
    ("rows.jsonl", '["a"]\n', "BMAD-E321", "rows.jsonl:1"),
    ("rows.csv", "topic,words\nbees,many\n", "BMAD-E322", "line 2"),
    ("rows.csv", "topic,words\nbees\n", "BMAD-E321", "rows.csv:2"),
    ("rows.jsonl", '{"subject": "a"}\n', "BMAD-E322", "line 1"),
    ("rows.txt", "topic\n", "BMAD-E320", "rows.txt"),
])
def test_bad_rows_refuse_the_batch_with_their_line(tmp_path: Path, name, text, code, where):
    plan = plan_source(tmp_path, BODY)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RowsRefused) as refused:
        read_rows(path, plan.program.workflow("review"))
    assert refused.value.code == code and where in refused.value.message
    assert refused.value.hint


def test_a_bad_row_stops_the_batch_before_anything_runs(workflow_dir: Path):
    (workflow_dir / "rows.jsonl").write_text('{"topic": "a"}\n{"topic": 3}\n', encoding="utf-8")
    result = bmad("run", "review.bmad", "--inputs", "rows.jsonl", "--provider", "sim",
                  "--journal", "runs.db", cwd=workflow_dir)
    assert result.returncode == 2
    assert "BMAD-E322" in result.stderr and "line 2" in result.stderr
    assert "Traceback" not in result.stderr
    if (workflow_dir / "runs.db").exists():
        db = sqlite3.connect(workflow_dir / "runs.db")
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_missing_rows_file_and_conflicting_options_are_refused(workflow_dir: Path):
    result = bmad("run", "review.bmad", "--inputs", "nope.jsonl", "--provider", "sim",
                  cwd=workflow_dir)
    assert result.returncode == 2 and "BMAD-E320" in result.stderr
    write_rows(workflow_dir / "rows.jsonl", 2)
    result = bmad("run", "review.bmad", "--inputs", "rows.jsonl", "--input", "topic=x",
                  "--provider", "sim", cwd=workflow_dir)
    assert result.returncode == 2 and "--inputs rows" in result.stderr
    result = bmad("run", "--resume", "batch-nope", "--inputs", "rows.jsonl", cwd=workflow_dir)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_one_budget_caps_the_whole_batch_and_resume_finishes_it(tmp_path: Path):
    plan = plan_source(tmp_path, BODY)
    journal = tmp_path / "runs.db"
    rows = [{"topic": f"topic {i}"} for i in range(40)]

    def request(**kw) -> BatchRequest:
        run = RunRequest(provider_factory=sim_factory(plan), provider_mode="sim",
                         journal_path=journal, config=RunConfig(concurrency=4),
                         budget_usd=kw.pop("budget"))
        return BatchRequest(run=run, **kw)

    first = execute_batch(plan, request(rows=rows, budget=0.03))
    assert first.status == "budget_exhausted" and first.exit_code == 3
    assert first.spent_usd <= 0.03
    counts = first.counts()
    assert counts.get("completed", 0) > 0 and counts.get("pending", 0) > 0
    db = sqlite3.connect(journal)
    calls_before = dict(db.execute("SELECT run_id, COUNT(*) FROM calls GROUP BY run_id"))
    done_before = {r.run_id for r in first.rows if r.status == "completed"}

    second = execute_batch(plan, request(resume=first.batch_id[:18], budget=1.0))
    assert second.batch_id == first.batch_id and second.status == "completed"
    assert second.counts() == {"completed": 40}
    assert second.spent_usd <= 1.0
    # Completed rows were not run again, and no answered call was paid twice.
    calls_after = dict(db.execute("SELECT run_id, COUNT(*) FROM calls GROUP BY run_id"))
    assert all(calls_after[r] == calls_before[r] for r in done_before)
    assert paid_twice(db) == []
    paid = db.execute("SELECT SUM(cost_usd) FROM calls WHERE cached=0").fetchone()[0]
    assert second.spent_usd == pytest.approx(paid)
    # The results hold every row in order.
    j = Journal(journal, readonly=True)
    results = batch_results(j, first.batch_id)
    j.db.close()
    assert [r["row"] for r in results] == list(range(40))
    assert {r["status"] for r in results} == {"completed"}
    # The final table's rate counts the rows each process finished, over its own time: not the
    # rows left pending, nor the ones a resume found done (it said 40 rows / the resume's 0.1 s)
    assert first.rows_per_s == pytest.approx((40 - counts["pending"]) / first.elapsed_s, rel=0.02)
    assert second.rows_per_s == pytest.approx((40 - len(done_before))
                                              / (second.elapsed_s - first.elapsed_s), rel=0.02)
    table = io.StringIO()
    print_final_table(second, table)
    assert f"({second.rows_per_s:.1f} rows/s)" in table.getvalue()


class CountingProvider:
    """The sim provider, counting how many calls are in flight at once."""

    def __init__(self, inner: base.Provider, gauge: dict[str, int]):
        self.name = inner.name
        self.inner = inner
        self.gauge = gauge

    async def complete(self, request, on_progress=None):
        self.gauge["now"] += 1
        self.gauge["peak"] = max(self.gauge["peak"], self.gauge["now"])
        try:
            return await self.inner.complete(request)
        finally:
            self.gauge["now"] -= 1

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_rows_run_concurrently_under_the_providers_limit(tmp_path: Path):
    plan = plan_source(tmp_path, BODY, catalog="""
provider lab {
  kind sim
  limits { concurrent 3 }
}
model cheap {
  provider lab
  price input $1 output $2 per 1M
  latency 100ms
}
model mid {
  provider lab
  price input $2 output $4 per 1M
  latency 100ms
}
""")
    gauge = {"now": 0, "peak": 0}
    inner = sim_factory(plan, latency_scale=0.1)
    run = RunRequest(provider_factory=lambda decl: CountingProvider(inner(decl), gauge),
                     provider_mode="sim", journal_path=tmp_path / "runs.db",
                     config=RunConfig(concurrency=16))
    outcome = execute_batch(plan, BatchRequest(run=run, rows=[{"topic": str(i)} for i in range(30)]))
    assert outcome.status == "completed"
    assert gauge["peak"] == 3  # rows overlapped, and never more than the provider allows


def test_progress_reports_rows_done_and_spend(tmp_path: Path):
    plan = plan_source(tmp_path, BODY)
    seen = []
    run = RunRequest(provider_factory=sim_factory(plan), provider_mode="sim",
                     journal_path=tmp_path / "runs.db")
    outcome = execute_batch(plan, BatchRequest(run=run, rows=[{"topic": str(i)} for i in range(10)],
                                               on_progress=seen.append))
    final = seen[-1]
    assert final.completed == 10 and final.failed == 0 and final.total == 10
    assert final.spent_usd == pytest.approx(outcome.spent_usd)
    assert final.eta_s == 0 or final.eta_s is None


def test_a_killed_driver_resumes_the_batch_without_repeating_calls(workflow_dir: Path):
    write_rows(workflow_dir / "rows.jsonl", 60)
    env = {**os.environ, "BMAD_HOME": str(workflow_dir / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "bmad", "run", "review.bmad", "--inputs",
                             "rows.jsonl", "--provider", "sim", "--journal", "runs.db",
                             "--concurrency", "4"], cwd=workflow_dir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = workflow_dir / "runs.db"
    deadline = time.monotonic() + 120
    done = 0
    while done < 8:
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline
        time.sleep(0.1)
        if journal.exists():
            try:
                db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
                done = db.execute("SELECT COUNT(*) FROM runs WHERE status='completed'").fetchone()[0]
                db.close()
            except sqlite3.Error:
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    db = sqlite3.connect(journal)
    batch_id = db.execute("SELECT id FROM batches").fetchone()[0]
    assert db.execute("SELECT COUNT(*) FROM runs WHERE status='completed'").fetchone()[0] < 60
    answered = db.execute("SELECT COUNT(*) FROM calls WHERE status='ok'").fetchone()[0]

    result = bmad("run", "--resume", batch_id, "--journal", "runs.db", "-o", "results.jsonl",
                  "--sim-latency-scale", "0", cwd=workflow_dir)
    assert result.returncode == 0, result.stderr
    statuses = dict(db.execute("SELECT status, COUNT(*) FROM batches GROUP BY status"))
    assert statuses == {"completed": 1}
    assert db.execute("SELECT COUNT(*) FROM runs WHERE status='completed'").fetchone()[0] == 60
    # Calls answered before the kill were reused (journaled as cached), never paid again.
    assert paid_twice(db) == []
    paid = db.execute("SELECT COUNT(*) FROM calls WHERE status='ok' AND cached=0").fetchone()[0]
    assert paid == 120 and answered <= 120
    lines = (workflow_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["row"] for x in lines] == list(range(60))


def test_the_batch_async_entry_point_runs_inside_an_event_loop(tmp_path: Path):
    from bmad.runtime.batch import execute_batch_async

    plan = plan_source(tmp_path, BODY)
    run = RunRequest(provider_factory=sim_factory(plan), provider_mode="sim",
                     journal_path=tmp_path / "runs.db")
    outcome = anyio.run(execute_batch_async, plan, BatchRequest(run=run, rows=[{"topic": "a"}]))
    assert outcome.status == "completed" and len(outcome.rows) == 1
