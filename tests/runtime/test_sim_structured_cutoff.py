"""A structured answer `max_tokens` cuts off (the sim does as a real provider: finish reason
"length") goes through the runtime's handling of an answer that doesn't parse: one repair, then
the model fails; and what the run spends stays within the plan's worst case, which prices every
try at `max_tokens` (QA w5_tight: the plan said "$0.002 fits", the run spent $0.010175)."""

from __future__ import annotations

from runtime_support import plan_source, run_plan

BODY = """
workflow tight {
  strategy parallel
  input doc: text = "Report"

  task js {
    prompt "List the people named in:\\n{{ doc }}"
    model strong
    fallback none
    retry 0
    max_tokens 8
    returns json {
      "type": "object",
      "properties": {
        "people": { "type": "array", "items": { "type": "string" }, "minItems": 40 },
        "summary": { "type": "string", "minLength": 3000 }
      },
      "required": ["people", "summary"]
    }
  }
  output js
}
"""


def test_a_cut_off_json_answer_is_repaired_then_fails_within_the_worst_case(tmp_path):
    plan = plan_source(tmp_path, BODY)
    js = plan.tasks[0]
    outcome, rec = run_plan(plan, tmp_path)
    calls = rec.kinds("call_finished")
    assert [c.data["purpose"] for c in calls] == ["answer", "repair"]
    assert all(c.data["output_tokens"] <= 8 for c in calls)
    assert outcome.status == "failed"
    assert "does not match `returns` after one repair" in str(outcome.error)
    assert outcome.spent_usd <= js.estimate.cost_usd_worst
    assert outcome.spent_usd <= plan.totals.cost_usd_worst
