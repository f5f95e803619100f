"""A cascade learns from its own runs: every answer its gate scores is journaled as a measurement
of that model, and the next plan leaves out the member those measurements show doing worse than a
cheaper one (real SQLite journal, sim provider: orchestration semantics)."""

from __future__ import annotations

import sqlite3

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import plan_program
from bmad.compiler.passes.context import make_context
from bmad.runtime.history import load_model_history
from runtime_support import exported, run_plan, sim_factory

# `mid` costs more than `cheap` and is worse at reasoning; the sim judge scores an answer near its
# model's skill, so measured quality follows these skills.
SOURCE = """
provider p1 { kind sim }
provider p2 { kind sim }
provider p3 { kind sim }
model cheap { provider p1 price input $1 output $2 per 1M skills { reasoning 0.80 } }
model mid { provider p2 price input $2 output $4 per 1M skills { reasoning 0.30 } }
model strong { provider p3 price input $5 output $10 per 1M skills { reasoning 0.97 } }
workflow w {
  task t {
    prompt "Work it out"
    needs reasoning
    route cascade [cheap, mid, strong]
    quality >= 0.9 judged by strong else escalate
  }
  output t
}
"""


def plan_with(tmp_path, history=None):
    path = tmp_path / "wf.bmad"
    path.write_text(SOURCE, encoding="utf-8")
    program = compile_file(path).program
    plan, diagnostics = plan_program(program, make_context(program, provider_mode="sim", history=history))
    assert plan is not None, [d.message for d in diagnostics]
    return plan


def test_every_scored_answer_measures_its_model(tmp_path):
    plan = plan_with(tmp_path)
    assert plan.tasks[0].cascade == ("cheap", "mid", "strong")
    outcome, rec = run_plan(plan, tmp_path, factory=sim_factory(plan))
    assert outcome.status == "completed"
    escalations = [(e.data["from_model"], e.data["to_model"]) for e in rec.kinds("task_escalated")]
    assert escalations == [("cheap", "mid"), ("mid", "strong")]
    db = sqlite3.connect(tmp_path / "runs.db")
    rows = dict(db.execute("SELECT model, agreement FROM verdicts WHERE capability = 'reasoning'"))
    db.close()
    # the two rejected answers are measured too, not only the one that stood
    assert set(rows) == {"cheap", "mid", "strong"}
    assert rows["mid"] < 0.6 < rows["cheap"] < 0.9 <= rows["strong"]
    assert exported(tmp_path, outcome.run_id)["tasks"][0]["model"] == "strong"


def test_the_next_plan_skips_the_member_history_shows_worse(tmp_path):
    plan = plan_with(tmp_path)
    for _ in range(12):  # enough answers that the gap is beyond the noise of the figures
        assert run_plan(plan, tmp_path, factory=sim_factory(plan))[0].status == "completed"
    history = load_model_history(tmp_path / "runs.db", simulated=True)
    mid = history.observation("mid", "reasoning")
    assert mid.quality_samples == 12 and mid.quality < 0.5
    assert history.quality("cheap", "reasoning") > 0.7  # rejected every time, measured every time

    learned = plan_with(tmp_path, history)
    task = learned.tasks[0]
    assert task.cascade == ("cheap", "strong")
    assert "skips mid: history" in task.route_reason and "mid" not in task.fallbacks

    outcome, rec = run_plan(learned, tmp_path, factory=sim_factory(learned))
    assert outcome.status == "completed"
    escalations = [(e.data["from_model"], e.data["to_model"]) for e in rec.kinds("task_escalated")]
    assert escalations == [("cheap", "strong")]  # straight past mid: cheaper and faster
