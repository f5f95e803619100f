"""`strategy collaborative`: the planner decides who answers each task and prices all of them.

The runtime asks several models for every prompt task without a consensus form; the plan must
name them (`TaskPlan.participants`, `TaskPlan.method`) and price every call, so the estimates and
the budget check (BMAD-E210 / W210) hold for the run. Rules (docs/planning.md, *Strategy
collaborative*): a routed task's panel is its routed model and the next-best qualified models of
its `route [...]` list; a pinned task, `fallback none` and `route cascade` stay with one model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import jsonschema
import pytest

from bmad.compiler.compile import compile_source
from bmad.compiler.passes import make_context, plan_program, verify_plan
from bmad.compiler.passes.seal_plan import canonical_json, hash_payload
from bmad.compiler.plan import Plan

SCHEMA = json.loads(resources.files("bmad.compiler.schema").joinpath("plan.v1.json").read_text())

CATALOG = """
provider s { kind sim }
provider t { kind sim }
model good  { provider s  price input $1 output $2 per 1M      context 100k  skills { reasoning 0.95, writing 0.95 } latency 100ms }
model mid   { provider t  price input $0.5 output $1 per 1M    context 100k  skills { reasoning 0.6, writing 0.6 } latency 100ms }
model bad   { provider s  price input $0.1 output $0.2 per 1M  context 100k  skills { reasoning 0.1, writing 0.1 } latency 100ms }
model other { provider t  price input $0.3 output $0.6 per 1M  context 100k  skills { reasoning 0.8, writing 0.8 } latency 100ms }
model tiny  { provider t  price input $0.01 output $0.02 per 1M context 2   skills { reasoning 0.99, writing 0.99 } latency 100ms }
"""


def plan_of(body: str, **options):
    source = CATALOG + body
    result = compile_source(source, "collab.bmad")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    program = result.program
    context = make_context(program, environment={}, provider_mode="sim", **options)
    return plan_program(program, context)


COLLAB = """
workflow collab {
  strategy collaborative
  task routed {
    prompt "Pick A or B"
    needs reasoning
    returns enum(A, B)
    route best [good, mid, bad]
  }
  task pinned {
    prompt "Write a note"
    needs writing
    model good
  }
  task alone {
    prompt "Write a line"
    needs writing
    route cheapest
    fallback none
  }
  task steps {
    prompt "Write a word"
    needs writing
    route cascade [bad, mid, good]
  }
  task free_text {
    prompt "Write a paragraph"
    needs writing
    route best
  }
  output routed
  output pinned
  output alone
  output steps
  output free_text
}
"""


@pytest.fixture(scope="module")
def collab():
    plan, diagnostics = plan_of(COLLAB)
    assert plan is not None, [d.message for d in diagnostics]
    return plan


def test_a_routed_task_is_a_panel_of_its_route_list(collab):
    t = collab.entry.task("routed")
    assert t.participants == ("good", "mid", "bad")  # the list's models, best first
    assert t.model == "good" and t.method == "vote"  # exact answers (`returns enum`) are voted on
    assert not set(t.participants) & set(t.fallbacks)
    assert "panel of 3, decided by vote" in t.route_reason


def test_a_routed_task_without_a_list_asks_the_next_best_qualified_models(collab):
    t = collab.entry.task("free_text")
    assert t.method == "similarity"  # free text: the most central answer
    assert t.participants[0] == t.model == "good"
    assert len(set(t.participants)) == 3
    assert "tiny" not in t.participants  # its context can't take the prompt
    assert {collab.program.model(m).provider.name for m in t.participants[:2]} == {"s", "t"}


def test_a_pin_fallback_none_and_a_cascade_stay_with_one_model(collab):
    pinned = collab.entry.task("pinned")
    assert (pinned.model, pinned.participants, pinned.method) == ("good", (), None)
    alone = collab.entry.task("alone")
    assert alone.participants == () and alone.method is None and alone.fallbacks == ()
    steps = collab.entry.task("steps")
    assert steps.participants == () and steps.method is None and steps.cascade


def test_the_estimate_prices_every_participant(collab):
    panel = collab.entry.task("routed")
    # the worst case: each participant's answer and, for its `returns enum`, one repair
    # round-trip, each tried 3 times (the runtime's default attempts)
    assert panel.estimate.calls_expected == 3 and panel.estimate.calls_worst == 3 * 2 * 3
    # the same task alone on each participant (with no fallback to walk), planned without the
    # collaborative strategy
    solo = {}
    for model in panel.participants:
        plan, _ = plan_of(COLLAB.replace("strategy collaborative", "strategy parallel")
                          .replace("route best [good, mid, bad]", f"model {model} fallback none"))
        solo[model] = plan.entry.task("routed").estimate
    assert panel.estimate.cost_usd_expected == pytest.approx(sum(e.cost_usd_expected for e in solo.values()))
    # (each worst case is rounded up to the micro-dollar)
    assert panel.estimate.cost_usd_worst == pytest.approx(sum(e.cost_usd_worst for e in solo.values()), abs=3e-6)
    assert panel.estimate.tokens_worst == sum(e.tokens_worst for e in solo.values())
    pinned = collab.entry.task("pinned")
    assert pinned.estimate.calls_expected == 1
    assert collab.totals.calls_worst == sum(t.estimate.calls_worst for t in collab.tasks)


def test_a_called_workflow_of_a_collaborative_run_is_planned_with_panels():
    plan, _ = plan_of("""
workflow inner {
  input topic: text
  task draft { prompt "Write about {{ topic }}" needs writing }
  output draft
}
workflow outer {
  strategy collaborative
  task run = inner(topic: "rain")
  output run
}
""")
    draft = plan.subplan("inner").task("draft")
    assert len(draft.participants) == 3 and draft.method == "similarity"
    assert draft.estimate.calls_expected == 3
    assert plan.entry.task("run").estimate.cost_usd_expected == pytest.approx(draft.estimate.cost_usd_expected)


def test_fallback_none_gets_no_implicit_consensus_either():
    plan, _ = plan_of("""
workflow w {
  strategy collaborative
  task t { prompt "Write" needs writing fallback none }
  task u { prompt "Write" needs writing }
  output t
  output u
}
""")
    t = plan.entry.task("t")
    assert t.participants == () and t.fallbacks == ()
    assert plan.program.workflow("w").tasks[0].consensus is None
    assert len(plan.entry.task("u").participants) == 3  # the implicit `consensus vote among 3 models`


BUDGETED = """
workflow collab {{
  strategy collaborative
  budget ${budget} per run
  task a {{
    prompt "Write a long essay"
    needs writing
    max_tokens 1000
    route best [good, mid, bad]
  }}
  output a
}}
"""


def bmad(cwd, *args):
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_the_budget_check_prices_the_panel(tmp_path):
    # one call of the cheapest listed model fits $0.0012, the panel's three calls (~$0.0016) don't
    (tmp_path / "wf.bmad").write_text(CATALOG + BUDGETED.format(budget="0.0012"))
    out = bmad(tmp_path, "plan", "wf.bmad", "--provider", "sim")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "BMAD-E210" in out.stderr + out.stdout
    # expected fits, worst (every answer at max_tokens, ~$0.0032) doesn't: W210, and the plan is made
    (tmp_path / "wf.bmad").write_text(CATALOG + BUDGETED.format(budget="0.003"))
    out = bmad(tmp_path, "plan", "wf.bmad", "--provider", "sim", "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert "BMAD-W210" in {n["code"] for n in data["notes"]}
    [task] = data["tasks"]
    assert task["model"] == task["participants"] == ["good", "mid", "bad"]
    assert task["method"] == "similarity" and task["routed_model"] == "good"
    assert data["totals"]["cost_usd_worst"] > 0.003 > data["totals"]["cost_usd_expected"]


def test_the_plan_file_carries_the_method_and_verifies(collab):
    data = json.loads(collab.dumps())
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    again = Plan.from_json(data)
    assert again.entry.task("routed").method == "vote"
    assert verify_plan(again, current_sources={"collab.bmad": CATALOG + COLLAB}) == []
    assert again.plan_hash == collab.plan_hash


def test_plans_without_panels_hash_as_before():
    plan, _ = plan_of(COLLAB.replace("strategy collaborative", "strategy parallel"))
    assert all(t.method is None for t in plan.tasks)
    assert '"method"' not in canonical_json(hash_payload(plan))  # so hashes sealed earlier still verify
    collab_plan, _ = plan_of(COLLAB)
    assert '"method":"vote"' in canonical_json(hash_payload(collab_plan))


def test_a_panel_that_escalates_is_priced_as_the_panel_then_each_escalation_step():
    plan, _ = plan_of("""
workflow w {
  strategy collaborative
  task plain {
    prompt "Write a line"
    needs writing
    route best [good, mid]
    quality >= 0.5 else escalate
  }
  task judged {
    prompt "Write a line"
    needs writing
    route best [good, mid]
    quality >= 0.5 judged by good else escalate
  }
  output plain
  output judged
}
""")
    plain = plan.entry.task("plain")
    assert plain.participants == ("good", "mid") and plain.method == "similarity"
    beyond = [m for m in dict.fromkeys((*plain.cascade, *plain.fallbacks)) if m not in plain.participants]
    assert beyond == ["other"]  # the only other model that qualifies (and can take the prompt)
    # no `judged by`: the agreement is the quality, no judge call; each escalation step once at
    # worst; every answer tried 3 times (the runtime's default attempts)
    assert plain.estimate.calls_worst == 3 * (2 + 1)
    assert plain.estimate.calls_expected == pytest.approx(2 + 0.3)
    judged = plan.entry.task("judged")
    # the gate's judge scores the panel's decision once: 3 tries, and 3 for a re-ask of an
    # unreadable score
    assert judged.estimate.calls_worst == plain.estimate.calls_worst + 3 + 3
