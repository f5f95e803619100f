"""`strategy collaborative`: the run asks exactly the models the plan names and prices.

`bmad plan -o plan.json`, then `bmad run plan.json` (the sim provider) in subprocesses; the real
SQLite journal's `calls` are compared with the plan: per task, the models that answered are its
planned participants (its one model when it has none), as many calls as the plan counts, and the
run spends no more than the plan's worst case.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import defaultdict

import pytest

SOURCE = """
provider s { kind sim }
provider t { kind sim }
model good  { provider s  price input $1 output $2 per 1M      context 100k  skills { reasoning 0.95, writing 0.95 } latency 100ms }
model mid   { provider t  price input $0.5 output $1 per 1M    context 100k  skills { reasoning 0.6, writing 0.6 } latency 100ms }
model bad   { provider s  price input $0.1 output $0.2 per 1M  context 100k  skills { reasoning 0.1, writing 0.1 } latency 100ms }
model other { provider t  price input $0.3 output $0.6 per 1M  context 100k  skills { reasoning 0.8, writing 0.8 } latency 100ms }
model tiny  { provider t  price input $0.01 output $0.02 per 1M context 2   skills { reasoning 0.99, writing 0.99 } latency 100ms }

workflow inner {
  input topic: text
  task sketch { prompt "Sketch {{ topic }}" needs writing max_tokens 40 }
  output sketch
}

workflow collab {
  strategy collaborative
  task routed {
    prompt "Pick collab"
    needs reasoning
    returns enum(A, B)
    route best [good, mid, bad]
  }
  task pinned { prompt "Write collab" needs writing model good max_tokens 40 }
  task open { prompt "Write freely" needs writing max_tokens 40 }
  task alone { prompt "Write alone" needs writing route cheapest [mid, other] fallback none max_tokens 40 }
  task called = inner(topic: "rain")
  output routed
  output pinned
  output open
  output alone
  output called
}
"""


def bmad(cwd, *args):
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=180)


@pytest.fixture(scope="module")
def planned_and_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("collab")
    (root / "wf.bmad").write_text(SOURCE)
    planned = bmad(root, "plan", "wf.bmad", "--provider", "sim", "-o", "plan.json")
    assert planned.returncode == 0, planned.stderr
    plan = json.loads((root / "plan.json").read_text())
    journal = root / "runs.db"
    out = bmad(root, "run", "plan.json", "--provider", "sim", "--sim-latency-scale", "0",
               "--journal", str(journal))
    assert out.returncode == 0, out.stderr
    db = sqlite3.connect(journal)
    try:
        calls = db.execute("SELECT task_id, model, purpose, status, cost_usd FROM calls ORDER BY id").fetchall()
        [(spent,)] = db.execute("SELECT spent_usd FROM runs").fetchall()
    finally:
        db.close()
    return plan, calls, spent


def planned_tasks(plan: dict) -> dict[str, dict]:
    """Every prompt task by the journal's task path (`call/task` inside a called workflow)."""
    found = {t["id"]: t for t in plan["tasks"] if t["kind"] == "prompt"}
    for sub in plan["subplans"]:
        for call in (t for t in plan["tasks"] if t["subworkflow"] == sub["workflow"]):
            found.update({f"{call['id']}/{t['id']}": t for t in sub["tasks"] if t["kind"] == "prompt"})
    return found


def test_each_task_is_answered_by_the_models_the_plan_names(planned_and_run):
    plan, calls, _ = planned_and_run
    answered: dict[str, list[str]] = defaultdict(list)
    for task, model, purpose, status, _cost in calls:
        assert status == "ok", (task, model)  # no model that can't take the prompt was asked
        if purpose == "answer":
            answered[task].append(model)
    tasks = planned_tasks(plan)
    assert set(answered) == set(tasks)
    for path, t in tasks.items():
        expected = t["participants"] or [t["routed_model"]]
        assert sorted(answered[path]) == sorted(expected), path
        # a run without failures makes the expected calls; the worst case (every try, every
        # fallback) bounds them
        assert len(answered[path]) == t["estimate"]["calls_expected"] <= t["estimate"]["calls_worst"], path
    assert tasks["routed"]["participants"] == ["good", "mid", "bad"] and tasks["routed"]["method"] == "vote"
    assert answered["pinned"] == ["good"]  # a pin answers alone
    assert len(answered["alone"]) == 1  # `fallback none`: no other model
    assert len(set(answered["open"])) == 3 and len(set(answered["called/sketch"])) == 3


def test_the_plan_counts_and_prices_every_call_the_run_makes(planned_and_run):
    plan, calls, spent = planned_and_run
    assert len(calls) == plan["totals"]["calls_expected"] <= plan["totals"]["calls_worst"]
    assert spent == pytest.approx(sum(cost or 0.0 for *_, cost in calls))
    assert 0 < spent <= plan["totals"]["cost_usd_worst"]
