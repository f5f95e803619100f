"""Plan figures a QA comparison of plans with runs found off (files under /tmp/qa_plan):

- a `for each` over a called workflow runs its invocations as the runtime does (`_fan_out`: up to
  the run's item concurrency, each invocation's calls then waiting for their provider's slots), not
  4 at a time whatever the providers allow;
- a `for each` over a list known to be empty makes no call (expected, worst, latency);
- a quality gate whose bar is out of reach of the model that answers (the verdict BMAD-W202
  reports) runs every round, so its expected figures count every round, not 0.3 ** k of them.
"""

from __future__ import annotations

import math

import pytest

from bmad.compiler.call_shapes import RUN_CONCURRENCY
from bmad.compiler.catalog import DEFAULT_PROVIDER_CONCURRENCY
from bmad.compiler.compile import compile_source
from bmad.compiler.passes import make_context, plan_program, run_passes
from bmad.compiler.passes.estimate_cost import (GATE_FAILURE_PROBABILITY, SoloAssignment, estimate_task,
                                                out_of_reach)
from bmad.compiler.passes.solo_estimate import SoloEstimate, pool_profile


def plan_of(source: str, **context):
    result = compile_source(source, "w.bmad")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    plan, diagnostics = plan_program(result.program, make_context(result.program, environment={},
                                                                  provider_mode="sim", **context))
    assert plan is not None, [d.message for d in diagnostics if d.is_error]
    return plan, diagnostics


def task(plan, name: str):
    return next(t for t in plan.tasks if t.id == name)


def subplan_task(plan, workflow: str, name: str):
    sub = next(s for s in plan.subplans if s.workflow == workflow)
    return next(t for t in sub.tasks if t.id == name), sub


# ------------------------------------------------------------------------------------------------
# 1. `for each` over a called workflow: as many invocations at once as the callee's providers allow

CALL_FAN = """
provider p { kind openai base_url "https://example.invalid/v1" LIMITS }
provider q { kind openai base_url "https://example.invalid/v2" limits { concurrent 16 } }
model m { provider p price input $1.00 output $2.00 per 1M context 100k latency 1s + 5ms per token skills { writing 0.8 } }
model n { provider q price input $1.00 output $2.00 per 1M context 100k latency 1s + 5ms per token skills { writing 0.8 } }

workflow one {
  input doc: text
  task s { prompt "Summarize {{ doc }}" model m fallback none max_tokens 200 }
  output s
}

workflow two {
  input doc: text
  task first { prompt "Summarize {{ doc }}" model n fallback none max_tokens 200 }
  task second { prompt "Shorten {{ first }}" model m fallback none max_tokens 200 }
  output second
}

workflow many {
  strategy parallel
  budget BUDGET
  input docs: list<text> = [ITEMS]
  task each for each d in docs = CALLEE(doc: d)
  output each
}
"""


def call_fan_plan(limits: str = "", items: int = 12, callee: str = "one", budget: str = "60s"):
    source = (CALL_FAN.replace("LIMITS", limits).replace("BUDGET", budget).replace("CALLEE", callee)
              .replace("ITEMS", ", ".join(f'"d{i}"' for i in range(items))))
    return plan_of(source)


@pytest.mark.parametrize("limits, at_once", [
    ("limits { concurrent 16 }", 16),  # QA w7b: 12 items start at once: one wave (the run: 1.69 s)
    ("limits { concurrent 1 }", 1),  # QA w7c: one at a time: 12 waves (the run: 17.0 s)
    ("limits { concurrent 5 }", 5),
    ("", DEFAULT_PROVIDER_CONCURRENCY),  # a provider without `limits`: 4, as for prompt tasks
])
def test_a_call_fan_out_runs_as_many_invocations_at_once_as_the_callee_provider_allows(limits, at_once):
    plan, _ = call_fan_plan(limits)
    each = task(plan, "each")
    _s, one = subplan_task(plan, "one", "s")
    assert each.estimate.latency_s == pytest.approx(one.totals.latency_s * math.ceil(12 / at_once))


def test_the_call_fan_out_and_a_prompt_fan_out_on_the_same_provider_agree():
    for limits in ("limits { concurrent 16 }", "limits { concurrent 1 }", ""):
        plan, _ = call_fan_plan(limits)
        direct, _ = plan_of(CALL_FAN.replace("LIMITS", limits).replace("BUDGET", "60s")
                            .replace("ITEMS", ", ".join(f'"d{i}"' for i in range(12)))
                            .replace("task each for each d in docs = CALLEE(doc: d)",
                                     'task each for each d in docs { prompt "Summarize {{ d }}" model m '
                                     'fallback none max_tokens 200 }'))
        assert task(plan, "each").estimate.latency_s == task(direct, "each").estimate.latency_s


def test_no_false_time_budget_warning_when_the_provider_runs_every_item_at_once():
    # QA w7d: `budget 4s`, 12 items of 1.5 s on a provider with `concurrent 16`: they fit
    _plan, diagnostics = call_fan_plan("limits { concurrent 16 }", budget="4s")
    assert not [d for d in diagnostics if d.code == "BMAD-W213"]
    _plan, diagnostics = call_fan_plan("limits { concurrent 1 }", budget="8s")
    assert [d for d in diagnostics if d.code == "BMAD-W213"]  # 18 s: the run took 17 s


def test_a_callee_over_several_providers_runs_at_the_pace_of_the_tightest():
    # `first` on q (16 at once), then `second` on p (2 at once): 12 invocations take 6 waves of
    # the callee's whole latency (a bound: the looser stage overlaps the next wave in a run)
    plan, _ = call_fan_plan("limits { concurrent 2 }", callee="two")
    _t, two = subplan_task(plan, "two", "second")
    assert task(plan, "each").estimate.latency_s == pytest.approx(two.totals.latency_s * 6)


def test_the_run_item_concurrency_caps_a_generous_provider():
    from bmad.runtime.interpreter import RunConfig

    assert RUN_CONCURRENCY == RunConfig().concurrency  # what `bmad run` runs at once by default
    plan, _ = call_fan_plan("limits { concurrent 500 }", items=100)
    _s, one = subplan_task(plan, "one", "s")
    assert task(plan, "each").estimate.latency_s == pytest.approx(one.totals.latency_s * math.ceil(100 / 64))


# ------------------------------------------------------------------------------------------------
# 3. a `for each` over a list known to be empty makes no call

EMPTY = """
provider p { kind openai base_url "https://example.invalid/v1" }
model m { provider p price input $1.00 output $2.00 per 1M latency 1s + 5ms per token skills { writing 0.8 } }
workflow inner {
  input x: text
  task s { prompt "Note on {{ x }}" model m max_tokens 50 }
  output s
}
workflow entry_empty {
  input xs: list<text> = []
  task per for each x in xs { prompt "Note on {{ x }}" model m max_tokens 50 }
  task called for each x in [] = inner(x: x)
  task once { prompt "Once" model m max_tokens 50 }
  output per
  output called
  output once
}
"""


def test_a_fan_out_over_a_known_empty_list_costs_nothing():
    plan, _ = plan_of(EMPTY, inputs={"xs": []})  # QA w9c: `--input 'xs=[]'`; the run makes 0 calls
    for name in ("per", "called"):
        t = task(plan, name)
        assert t.fan_out == 0
        e = t.estimate
        assert (e.calls_expected, e.calls_worst, e.cost_usd_expected, e.cost_usd_worst) == (0, 0, 0, 0), name
        assert (e.tokens_expected, e.tokens_worst, e.latency_s) == (0, 0, 0), name
    once = task(plan, "once")  # no `for each`: once
    assert once.fan_out is None and once.estimate.calls_expected == 1 and once.estimate.calls_worst >= 3


def test_an_unknown_list_is_still_assumed_ten_items():
    plan, _ = plan_of(EMPTY)  # an empty default says nothing about real runs: assumed
    assert task(plan, "per").fan_out == 10
    assert task(plan, "per").estimate.calls_expected == 10


# ------------------------------------------------------------------------------------------------
# 4. a gate whose bar is out of the answering model's reach runs every round

GATES = """
provider p { kind openai base_url "https://example.invalid/v1" limits { concurrent 16 } }
provider a { kind anthropic limits { concurrent 8 } }
model weak { provider p price input $0.15 output $0.60 per 1M latency 400ms + 8ms per token skills { writing 0.72 } }
model judge { provider a price input $1.00 output $5.00 per 1M latency 400ms + 6ms per token skills { writing 0.82 } }
model mid { provider a price input $1.00 output $2.00 per 1M latency 400ms + 6ms per token skills { writing 0.80 } }
workflow gates {
  input doc: text = "The quick brown fox jumps over the lazy dog."
  task refine_it { prompt "Summarize:\\n{{ doc }}" model weak max_tokens 200 retry 0 quality >= BAR judged by judge else refine max 3 }
  task retry_it { prompt "Critique:\\n{{ doc }}" model weak max_tokens 200 retry 0 quality >= BAR else retry 3 }
  task climb { prompt "Explain:\\n{{ doc }}" route cascade [weak, mid] max_tokens 200 retry 0 quality >= BAR else escalate }
  task voted { prompt "Vote:\\n{{ doc }}" consensus vote among [weak, mid] max_tokens 200 retry 0 quality >= BAR else retry 2 }
  output refine_it
  output retry_it
  output climb
  output voted
}
"""


def gates_plan(bar: str):
    return plan_of(GATES.replace("BAR", bar))


def test_an_unreachable_bar_runs_every_round_of_refine_and_retry():
    plan, diagnostics = gates_plan("0.99")  # QA w1_gates: 8 calls in every seed, 2.834 planned
    warned = {d.message.split("`")[3] for d in diagnostics if d.code == "BMAD-W202" and "pinned" in d.message}
    assert {"refine_it", "retry_it"} <= warned
    for name in ("refine_it", "retry_it"):
        assert task(plan, name).estimate.calls_expected == 8  # 4 answers, 4 scores


def test_a_reachable_bar_keeps_the_default_failure_chance():
    plan, diagnostics = gates_plan("0.7")
    assert not [d for d in diagnostics if d.code == "BMAD-W202"]
    expected = 2 * sum(GATE_FAILURE_PROBABILITY ** k for k in range(4))
    for name in ("refine_it", "retry_it"):
        assert task(plan, name).estimate.calls_expected == pytest.approx(expected, abs=1e-3)


def test_unreachable_rounds_cost_and_take_every_round():
    low, _ = gates_plan("0.7")
    high, _ = gates_plan("0.99")
    ratio = 4 / sum(GATE_FAILURE_PROBABILITY ** k for k in range(4))  # every round / 1.417
    for name in ("refine_it", "retry_it"):
        a, b = task(low, name).estimate, task(high, name).estimate
        assert b.cost_usd_expected == pytest.approx(a.cost_usd_expected * ratio, rel=1e-3)
        assert b.latency_s == pytest.approx(a.latency_s * ratio, rel=1e-3)
        assert b.calls_worst >= b.calls_expected  # the worst case counted every round already
        # the router's figure for the pinned model (its candidate row, its route reason) is the task's
        chosen = next(c for c in task(high, name).candidates if c.model == "weak")
        assert (chosen.cost_usd_expected, chosen.latency_s) == (b.cost_usd_expected, b.latency_s)


def test_a_cascade_whose_members_all_fall_short_escalates_through_every_one():
    plan, _ = gates_plan("0.99")
    climb = task(plan, "climb")
    assert climb.cascade == ("weak", "mid")
    assert climb.estimate.calls_expected == 4  # each answers and is scored
    reachable, _ = gates_plan("0.75")  # weak (0.72) falls short surely, mid (0.80) may pass
    assert task(reachable, "climb").estimate.calls_expected == 4
    easy, _ = gates_plan("0.5")
    assert task(easy, "climb").estimate.calls_expected == pytest.approx(2 * (1 + GATE_FAILURE_PROBABILITY))


def test_named_participants_below_the_bar_retry_every_round():
    plan, diagnostics = gates_plan("0.99")
    assert [d for d in diagnostics if d.code == "BMAD-W202" and "consensus participants of task `voted`" in d.message]
    assert task(plan, "voted").estimate.calls_expected == 2 * 3  # both, three times (no judge)
    easy, _ = gates_plan("0.7")  # mean 0.76
    assert task(easy, "voted").estimate.calls_expected == pytest.approx(2 * (1 + 0.3 + 0.09))


def test_the_router_and_the_estimate_agree_on_an_unreachable_bar():
    for bar in ("0.99", "0.75", "0.5"):
        result = compile_source(GATES.replace("BAR", bar), "w.bmad")
        context = make_context(result.program, environment={}, provider_mode="sim")
        draft = run_passes(result.program, context, until="measure_prompts")
        for td in draft.workflows["gates"].tasks.values():
            solo = SoloEstimate(td, context.catalog, None)
            entries = list(context.catalog)
            for entry in entries:
                est = estimate_task(td, SoloAssignment(entry.name, td.plan.fan_out), context.catalog, None, solo=True)
                assert solo.cost_and_latency(entry) == (est.cost_usd_expected, est.latency_s), (bar, td.id, entry.name)
            assert solo.pool_costs(entries, pool_profile(entries)) == [solo.cost_and_latency(e) for e in entries]


def test_out_of_reach():
    assert out_of_reach(0.72, 0.99) and not out_of_reach(0.99, 0.99)
    assert not out_of_reach(None, 0.99) and not out_of_reach(0.5, None)
