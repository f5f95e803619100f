"""Known input values size the plan: `bmad plan --input/--input-file` and `bmad run` (whose plan is
made with the run's own inputs) fan a `for each` out over the real list, not the assumed 10
(BMAD-W234 says when it is assumed); `bmad run --strategy` plans with the strategy it runs.
Real `bmad` subprocesses, the real journal read back."""

from __future__ import annotations

import json
import sqlite3

from tests.cli.test_plan_cmd import bmad

FAN = """
provider lab { kind sim }
model m { provider lab price input $1 output $2 per 1M }
workflow fan {
  input items: list<text>
  task each for each it in items {
    prompt "Describe {{ it }}"
    model m
    max_tokens 20
  }
  output each
}
"""


def fan_out(plan: dict) -> int:
    [task] = [t for t in plan["tasks"] if t["id"] == "each"]
    return task["fan_out"]


def test_plan_assumes_ten_items_and_says_so(tmp_path):
    (tmp_path / "fan.bmad").write_text(FAN)
    r = bmad("plan", "fan.bmad", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert fan_out(json.loads(r.stdout)) == 10
    text = bmad("plan", "fan.bmad", cwd=tmp_path)
    assert "BMAD-W234" in text.stdout + text.stderr and "x10?" in text.stdout


def test_plan_and_run_size_the_fan_out_by_the_known_list(tmp_path):
    (tmp_path / "fan.bmad").write_text(FAN)
    items = [f"item {i}" for i in range(40)]
    (tmp_path / "items.json").write_text(json.dumps({"items": items}))
    r = bmad("plan", "fan.bmad", "--format", "json", "--input-file", "items.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert fan_out(json.loads(r.stdout)) == 40
    r = bmad("plan", "fan.bmad", "--format", "json", "-i", 'items=["a", "b", "c"]', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert fan_out(json.loads(r.stdout)) == 3
    run = bmad("run", "fan.bmad", "--provider", "sim", "--sim-latency-scale", "0",
               "--input-file", "items.json", "--journal", "runs.db", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    db = sqlite3.connect(tmp_path / "runs.db")
    try:
        [(plan_json,)] = db.execute("SELECT plan_json FROM plans").fetchall()
    finally:
        db.close()
    assert fan_out(json.loads(plan_json)) == 40


def test_run_plans_with_the_strategy_it_runs(tmp_path):
    (tmp_path / "seq.bmad").write_text("""
provider lab { kind sim }
model m { provider lab price input $1 output $2 per 1M }
workflow w {
  strategy sequential
  task a { prompt "a" model m }
  task b { prompt "b" model m }
  output a
  output b
}
""")
    run = bmad("run", "seq.bmad", "--provider", "sim", "--sim-latency-scale", "0", "--strategy", "parallel",
               "--journal", "runs.db", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    db = sqlite3.connect(tmp_path / "runs.db")
    try:
        [(plan_json,)] = db.execute("SELECT plan_json FROM plans").fetchall()
    finally:
        db.close()
    stages = {t["id"]: t["stage"] for t in json.loads(plan_json)["tasks"]}
    assert stages["a"] == stages["b"]  # planned parallel, as it runs
