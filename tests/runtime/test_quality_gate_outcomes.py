"""How a gated task ends when its answer stays below the bar: an escalation whose later models all
fail keeps the answer already paid for (it used to fail "every model failed"); a task that
completes below its bar journals `quality_below_bar` and the run summary says so; the summary's
note on a routed model passed over says whether it failed or was escalated for quality.

`sim` provider, in process against a real SQLite journal, and `bmad run` in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from runtime_support import exported, plan_source, run_plan, sim_factory

CATALOG = """
provider p1 { kind sim }
provider p2 { kind sim }
provider p3 { kind sim }
model cheap { provider p1 price input $1 output $2 per 1M skills { writing 0.3 } }
model mid { provider p2 price input $2 output $4 per 1M skills { writing 0.8 } }
model critic { provider p3 price input $5 output $10 per 1M skills { reasoning 0.95 } }
"""


def workflow(clauses: str) -> str:
    return textwrap.dedent(f"""
    workflow w {{
      task t {{
        prompt "Write a paragraph about tides."
        needs writing
        model cheap
        {clauses}
      }}
      output t
    }}
    """)


def test_an_escalation_that_fails_keeps_the_answer_already_paid_for(tmp_path):
    plan = plan_source(tmp_path, workflow("fallback [mid]\n"
                                          "quality >= 0.99 judged by critic else escalate"),
                       catalog=CATALOG)
    factory = sim_factory(plan, model_failure_rates={"mid": 1.0}, failure_kinds=("auth",))
    outcome, rec = run_plan(plan, tmp_path, factory=factory)
    assert outcome.status == "completed", outcome.error
    data = exported(tmp_path, outcome.run_id)
    [task] = data["tasks"]
    [judge] = [c for c in data["calls"] if c["purpose"] == "judge"]
    assert task["model"] == "cheap" and task["output"]
    assert task["quality"] is not None and task["quality"] < 0.99  # its score, recorded
    assert [(c["model"], c["status"]) for c in data["calls"] if c["purpose"] == "answer"] == \
        [("cheap", "ok"), ("mid", "error")]
    assert judge["model"] == "critic"
    [below] = [e.data for e in rec.kinds("quality_below_bar")]
    assert below["model"] == "cheap" and below["quality"] == task["quality"]
    assert below["reason"].startswith("no later model answered; last: mid: ")


def bmad_run(tmp_path, source: str) -> subprocess.CompletedProcess:
    path = tmp_path / "w.bmad"
    path.write_text(CATALOG + source, encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BMAD_HOME", None)
    out = subprocess.run([sys.executable, "-m", "bmad", "run", str(path), "--provider", "sim",
                          "--sim-latency-scale", "0", "--journal", str(tmp_path / "j.db")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def test_a_task_below_its_bar_is_noted_in_the_run_summary(tmp_path):
    out = bmad_run(tmp_path, workflow("quality >= 0.99 judged by critic else retry 1"))
    assert out.returncode == 0, out.stderr
    assert ("note: task t completed below its quality bar: quality " in out.stderr
            and "< 0.99 (`else retry`: 1 retry used up)" in out.stderr), out.stderr


def test_a_model_escalated_for_quality_is_not_said_to_have_failed(tmp_path):
    out = bmad_run(tmp_path, workflow("fallback [mid]\n"
                                      "quality >= 0.5 judged by critic else escalate"))
    assert out.returncode == 0, out.stderr
    assert "note: task t was answered by mid, escalated from cheap: quality 0." in out.stderr
    assert "below 0.50" in out.stderr and "as cheap failed" not in out.stderr
