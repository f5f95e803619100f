"""`else retry N` and `else refine max N` on a consensus task are honoured (they were ignored): retry
asks the whole panel again, refine has the decided answer revised and re-judged; when the rounds
run out the task completes below its bar with a `quality_below_bar` event.

In-process runs on the `sim` provider against a real SQLite journal, read back.
"""

from __future__ import annotations

import json
import sqlite3

from runtime_support import exported, plan_source, run_plan

CATALOG = """
provider p1 { kind sim }
provider p2 { kind sim }
provider p3 { kind sim }
model cheap { provider p1 price input $1 output $2 per 1M skills { writing 0.3 } }
model mid { provider p2 price input $2 output $4 per 1M skills { writing 0.5 } }
model critic { provider p3 price input $5 output $10 per 1M skills { reasoning 0.95 } }
"""


def run_task(tmp_path, clauses: str):
    plan = plan_source(tmp_path, f"""
    workflow w {{
      task t {{
        prompt "Write a paragraph about tides."
        needs writing
        {clauses}
      }}
      output t
    }}
    """, catalog=CATALOG)
    outcome, rec = run_plan(plan, tmp_path)
    assert outcome.status == "completed", outcome.error
    data = exported(tmp_path, outcome.run_id)
    [task] = data["tasks"]
    return task, data["calls"], rec


def test_else_retry_asks_the_whole_panel_again_and_keeps_the_best_decision(tmp_path):
    task, calls, rec = run_task(tmp_path, "consensus vote among [cheap, mid]\n"
                                          "quality >= 0.999 judged by critic else retry 2")
    answers = sorted(c["slot"] for c in calls if c["purpose"] == "answer")
    assert answers == ["p0/", "p1/", "retry1/p0/", "retry1/p1/", "retry2/p0/", "retry2/p1/"]
    gate = {c["slot"]: c for c in calls if c["purpose"] == "judge"}
    assert sorted(gate) == ["gate/judge/", "retry1/gate/judge/", "retry2/gate/judge/"]
    db = sqlite3.connect(tmp_path / "runs.db")
    replies = db.execute("SELECT response_text FROM calls WHERE purpose='judge'").fetchall()
    db.close()
    assert task["quality"] == max(json.loads(text)["score"] for (text,) in replies)
    [below] = [e.data for e in rec.kinds("quality_below_bar")]
    assert below["reason"] == "`else retry`: 2 retries used up" and below["bar"] == 0.999


def test_else_refine_revises_the_decided_answer_and_judges_each_revision(tmp_path):
    task, calls, rec = run_task(tmp_path, "consensus ensemble by mid among [cheap, mid]\n"
                                          "quality >= 0.999 judged by critic else refine max 2")
    refines = [c for c in calls if c["slot"].startswith("refine") and c["purpose"] == "answer"]
    assert [(c["slot"], c["model"]) for c in refines] == [("refine1/", "mid"), ("refine2/", "mid")]
    ensemble = next(c for c in calls if c["slot"] == "ensemble/")
    assert refines[0]["input_tokens"] > ensemble["output_tokens"]  # the answer and critique fed back
    judged = [c["slot"] for c in calls if c["purpose"] == "judge"]
    assert judged == ["gate/judge/", "refine1/judge/", "refine2/judge/"]
    assert task["model"] == "mid"
    [below] = [e.data for e in rec.kinds("quality_below_bar")]
    assert below["reason"] == "`else refine`: 2 revisions used up"


def test_else_refine_without_a_judge_revises_from_the_panels_agreement(tmp_path):
    task, calls, rec = run_task(tmp_path, "consensus similarity among [cheap, mid]\n"
                                          "quality >= 0.999 else refine max 1")
    refine = [c for c in calls if c["slot"].startswith("refine1/")]
    assert [c["purpose"] for c in refine] == ["answer", "judge"]
    assert refine[0]["model"] == refine[1]["model"] == task["model"]
    assert len(rec.kinds("quality_below_bar")) == 1
