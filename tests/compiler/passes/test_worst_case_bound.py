"""The plan's worst case is a bound of what the runtime can spend on a task: every model of the
chain it walks, each tried as often as the runtime tries a call (`DEFAULT_ATTEMPTS`, shared with
runtime/retry.py; `retry N`: N + 1), every judge, round and escalation, each try billed in full.
The expected figures stay expected. docs/planning.md, *The worst case*; the runs that check the
bound against a journal are tests/runtime/test_worst_case_holds.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bmad.compiler.compile import compile_source
from bmad.compiler.ir import Budget
from bmad.compiler.passes import check_plan, make_context, plan_program
from bmad.compiler.plan_render import render_text

CATALOG = """
provider s { kind sim }
provider t { kind sim }
provider u { kind sim }
model cheap  { provider s  price input $1 output $2 per 1M    skills { writing 0.7, reasoning 0.7 } }
model mid    { provider t  price input $2 output $4 per 1M    skills { writing 0.8, reasoning 0.8 } }
model strong { provider u  price input $5 output $10 per 1M   skills { writing 0.95, reasoning 0.95 } }
"""


def plan_of(body: str, catalog: str = CATALOG, **options):
    result = compile_source(catalog + body, "worst.bmad")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    context = make_context(result.program, environment={}, provider_mode="sim", **options)
    plan, diagnostics = plan_program(result.program, context)
    return plan, diagnostics, context


def call_cost(context, model: str, tokens_in: float, tokens_out: float) -> float:
    return context.catalog.get(model).call_cost(tokens_in, tokens_out)


def test_the_compiler_and_the_runtime_share_the_default_attempts():
    from bmad.compiler.plan import DEFAULT_ATTEMPTS
    from bmad.runtime import retry

    assert retry.DEFAULT_ATTEMPTS == DEFAULT_ATTEMPTS == 3
    assert retry.RetryPolicy.from_ir(None).attempts == DEFAULT_ATTEMPTS
    # one number, not two that agree today: the runtime reads the compiler's
    code = ("import bmad.compiler.plan as plan; plan.DEFAULT_ATTEMPTS = 5; "
            "import bmad.runtime.retry as retry; print(retry.DEFAULT_ATTEMPTS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "5", out.stderr


def test_the_call_shapes_the_worst_case_counts_are_the_runtimes_own():
    """One definition (compiler/call_shapes.py) that both sides import, not copies that agree."""
    from bmad.compiler import call_shapes
    from bmad.compiler.passes import estimate_cost as _  # noqa: F401  (the module, below)
    from bmad.runtime import calls, interpreter, returns, templates

    estimate = sys.modules["bmad.compiler.passes.estimate_cost"]
    measure = sys.modules["bmad.compiler.passes.measure_prompts"]
    for side in (estimate, calls):
        assert (side.JUDGE_MAX_TOKENS, side.REVIEW_MAX_TOKENS) == (
            call_shapes.JUDGE_MAX_TOKENS, call_shapes.REVIEW_MAX_TOKENS)
    # the default `else refine|retry` rounds: one function both sides call (it holds the constants)
    assert estimate.gate_rounds is interpreter.gate_rounds is call_shapes.gate_rounds
    assert measure.DEFAULT_MAX_TOKENS == interpreter.DEFAULT_MAX_TOKENS == call_shapes.DEFAULT_MAX_TOKENS
    assert measure.format_instruction is returns.format_instruction is call_shapes.format_instruction
    assert measure.render_value is templates.render_value is call_shapes.render_value


def test_the_runtimes_own_text_around_what_it_quotes_fits_the_allowance():
    from bmad.compiler import ir
    from bmad.compiler.tokens import count_tokens
    from bmad.runtime import consensus, quality, returns

    estimate = sys.modules["bmad.compiler.passes.estimate_cost"]
    assert count_tokens(quality.DEFAULT_RUBRIC) <= estimate.DEFAULT_RUBRIC_TOKENS
    own_text = [
        quality.judge_prompt("", "", ""), quality.reask_prompt("", "", "candidate number"),
        consensus.judge_choice_prompt("", [], ""), consensus.ensemble_prompt("", []),
        consensus.review_prompt("", ""), consensus.revise_followup("", "")[1][1],
        quality.refine_followup("", quality.review_note(0.5, 0.9, ""))[1][1],
        returns.repair_prompt("", "the answer is not one of YES, NO", ir.Returns("enum", values=("YES", "NO"))),
    ]
    for text in own_text:
        assert count_tokens(text) <= estimate.WRAPPER_TOKENS, text


def test_the_planner_does_not_import_the_runtime():
    code = ("import sys, bmad.compiler.passes, bmad.compiler.plan_render; "
            "print(sorted(m for m in sys.modules if m.startswith('bmad.runtime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_model_of_the_chain_is_tried_three_times():
    """The QA repro (`fb.bmad`): a pinned model with a written fallback and the automatic ones."""
    plan, _d, context = plan_of("""
workflow w {
  task a { prompt "Write a haiku about the sea." model cheap fallback [strong] max_tokens 200 }
  output a
}
""")
    a = plan.tasks[0]
    chain = (a.model, *a.fallbacks)
    assert chain[:2] == ("cheap", "strong") and len(set(chain)) == len(chain) >= 3
    assert a.estimate.calls_worst == 3 * len(chain)
    assert a.estimate.calls_expected == 1  # the expected case: one call
    tokens_in = a.estimate.tokens_worst / a.estimate.calls_worst - 200
    worst = sum(3 * call_cost(context, m, tokens_in, 200) for m in chain)
    assert a.estimate.cost_usd_worst == pytest.approx(worst, abs=2e-6)
    assert a.estimate.cost_usd_worst >= worst  # rounded up, never down
    assert a.estimate.cost_usd_expected == pytest.approx(
        call_cost(context, "cheap", tokens_in, 100), abs=2e-6)  # one try, half of max_tokens


@pytest.mark.parametrize("clause, tries", [("retry 0", 1), ("retry 1", 2), ("", 3), ("retry 4", 5)])
def test_retry_n_is_n_plus_one_tries_of_each_model(clause, tries):
    plan, _d, _c = plan_of(f"""
workflow w {{
  task a {{ prompt "x" model cheap {clause} max_tokens 10 }}
  task b {{ prompt "y" model cheap {clause} max_tokens 10 fallback none }}
  output a
  output b
}}
""")
    a, b = plan.tasks
    assert a.estimate.calls_worst == tries * (1 + len(a.fallbacks)) and a.fallbacks
    assert b.estimate.calls_worst == tries and b.fallbacks == ()  # `fallback none`: one model


def test_a_gate_counts_its_judge_its_rounds_and_the_chain():
    plan, _d, _c = plan_of("""
workflow w {
  task refined { prompt "x" model cheap fallback none max_tokens 10 quality >= 0.9 judged by strong else refine max 2 }
  task climbed { prompt "x" needs reasoning max_tokens 10 quality >= 0.75 else escalate }
  task failed { prompt "x" model cheap fallback none max_tokens 10 quality >= 0.9 else fail }
  output refined
  output climbed
  output failed
}
""")
    t = {x.id: x for x in plan.tasks}
    # one model: its answer (3), a score (judge 3 + re-ask 3), then 2 rounds of answer + score
    assert t["refined"].estimate.calls_worst == 3 + 6 + 2 * (3 + 6)
    # every model of the ladder answers and is scored (by itself: no judge named)
    ladder = len(dict.fromkeys((t["climbed"].model, *t["climbed"].cascade, *t["climbed"].fallbacks)))
    assert ladder >= 2 and t["climbed"].estimate.calls_worst == ladder * (3 + 6)
    assert t["failed"].estimate.calls_worst == 3 + 6  # scored once, then it fails or stands


def test_a_consensus_counts_its_rounds_its_judge_and_its_escalation():
    plan, _d, _c = plan_of("""
workflow w {
  task voted { prompt "x" max_tokens 10 consensus vote among [cheap, mid] quorum 2 fallback [strong] }
  task retried { prompt "x" max_tokens 10 consensus vote among [cheap, mid] quality >= 0.99 else retry 2 }
  task judged { prompt "x" max_tokens 10 consensus judge strong among [cheap, mid] }
  task labelled { prompt "x" returns enum(A, B) consensus vote among [cheap, mid] }
  output voted
  output retried
  output judged
  output labelled
}
""")
    t = {x.id: x for x in plan.tasks}
    assert t["voted"].estimate.calls_worst == 3 * 2 + 3  # the panel, then `strong` settles it
    assert t["retried"].estimate.calls_worst == (1 + 2) * 3 * 2  # the panel, asked 3 times
    assert t["judged"].estimate.calls_worst == 3 * 2 + 3 + 3  # the judge's choice and its re-ask
    assert t["labelled"].estimate.calls_worst == 2 * (3 + 3)  # each answer may need a repair


def test_the_qa_budget_no_longer_fits():
    """fb.bmad with `--budget $0.00013` said `fits` (worst $0.000122, one call), and runs ended
    `budget_exhausted` walking the fallbacks: now the worst case is over that budget."""
    plan, diagnostics, _c = plan_of("""
workflow fb {
  task a { prompt "Write a haiku about the sea." model cheap fallback [strong] max_tokens 200 }
  output a
}
""", budget=Budget(usd=0.0013))
    assert plan.totals.cost_usd_worst > 0.0013
    assert "BMAD-W210" in {d.code for d in diagnostics}
    assert "fits" not in render_text(plan).split("cost      ")[1].splitlines()[0]
    roomy, _d, _c = plan_of("""
workflow fb {
  task a { prompt "Write a haiku about the sea." model cheap fallback [strong] max_tokens 200 }
  output a
}
""", budget=Budget(usd=1.0))
    assert "(budget $1.00: fits)" in render_text(roomy)


def test_a_move_for_the_budget_takes_the_cheapest_fallbacks_too():
    catalog = CATALOG + """
model pricey { provider t price input $20 output $40 per 1M skills { writing 0.9, reasoning 0.9 } }
"""
    body = """
workflow w {
  optimize quality
  task a { prompt "x" needs writing priority low max_tokens 100 }
  output a
}
"""
    free, _d, _c = plan_of(body, catalog)
    assert "pricey" in (free.tasks[0].model, *free.tasks[0].fallbacks)
    budget = free.totals.cost_usd_worst / 4
    moved, diagnostics, _c = plan_of(body, catalog, budget=Budget(usd=budget))
    a = moved.tasks[0]
    assert a.downgraded_from is not None
    assert "pricey" not in (a.model, *a.fallbacks)
    assert moved.totals.cost_usd_worst <= budget
    assert "BMAD-W211" in {d.code for d in diagnostics}


def test_a_model_without_a_price_is_refused_under_a_dollar_budget():
    catalog = CATALOG + "model mystery { provider t skills { writing 0.99 } }\n"
    body = """
workflow w {
  task a { prompt "x" model cheap fallback [mystery] max_tokens 10 }
  task b { prompt "y" model mystery max_tokens 10 }
  output a
  output b
}
"""
    loose, diagnostics, _c = plan_of(body, catalog)
    a, b = loose.tasks
    assert a.estimate.cost_usd_expected is not None and a.estimate.cost_usd_worst is None  # mystery may bill
    assert any(d.code == "BMAD-W212" and "`mystery`" in d.message for d in diagnostics)
    capped, diagnostics, _c = plan_of(body, catalog, budget=Budget(usd=1.0))
    a, b = capped.tasks
    assert a.estimate.cost_usd_worst is not None  # under the cap the runtime refuses mystery's calls
    assert b.estimate.cost_usd_expected is None  # routed to it: the task can't run under the cap
    assert "BMAD-W215" in {d.code for d in diagnostics}
    assert "(budget $1.00: unknown)" in render_text(capped)


def test_an_adaptive_run_may_reroute_to_a_cheaper_model_and_the_worst_case_counts_it():
    # optimize quality: the automatic fallbacks are the best (elite, cheap), so the cheapest
    # qualified model ($0 `local`) stays outside the chain, and adaptive may move it in front
    catalog = CATALOG + ("model elite { provider t price input $4 output $8 per 1M "
                         "skills { writing 0.96, reasoning 0.96 } }\n")
    body = """
workflow w {
  strategy STRATEGY
  optimize quality
  task a { prompt "x" model strong fallback [mid] max_tokens 100 }
  output a
}
"""
    parallel, _d, _c = plan_of(body.replace("STRATEGY", "parallel"), catalog)
    adaptive, _d, _c = plan_of(body.replace("STRATEGY", "adaptive"), catalog)
    assert parallel.tasks[0].fallbacks == adaptive.tasks[0].fallbacks == ("mid", "elite", "cheap")
    assert parallel.tasks[0].estimate.calls_worst == 3 * 4
    assert adaptive.tasks[0].estimate.calls_worst == 3 * 4 + 3  # `local` in front
    assert adaptive.tasks[0].estimate.cost_usd_expected == parallel.tasks[0].estimate.cost_usd_expected


def test_an_adaptive_run_moves_no_model_in_front_of_a_closed_chain():
    # `fallback none` must not reach another model: adaptive only reorders a closed chain
    # (`_adapt` and the worst case use compiler/adaptive.py's one rule)
    for clause in ("fallback none", "fallback only [mid]"):
        body = f"""
workflow w {{
  strategy STRATEGY
  task a {{ prompt "x" model strong {clause} max_tokens 100 }}
  output a
}}
"""
        parallel, _d, _c = plan_of(body.replace("STRATEGY", "parallel"))
        adaptive, _d, _c = plan_of(body.replace("STRATEGY", "adaptive"))
        assert adaptive.tasks[0].estimate.calls_worst == parallel.tasks[0].estimate.calls_worst, clause


def test_an_adaptive_run_puts_nothing_in_front_of_a_free_model():
    """A task on a $0 model: nothing is cheaper (runtime/interpreter.py `_adapt`), so the adaptive
    worst case is the parallel one, not the chain plus the costliest candidate."""
    catalog = CATALOG + """
model free { provider s price input $0 output $0 per 1M skills { writing 0.6, reasoning 0.6 } }
"""
    pinned = """
workflow w {
  strategy STRATEGY
  task a { prompt "x" model free fallback none max_tokens 100 }
  output a
}
"""
    # routed to the embedded `local` ($0) with fallbacks: if a slow `local` moves back, the
    # cheapest model under the next one's cost is `local` again, already in the chain
    routed = """
workflow w {
  strategy STRATEGY
  task b { prompt "y" route cheapest max_tokens 100 }
  output b
}
"""
    for body, models in ((pinned, catalog), (routed, CATALOG)):
        parallel, _d, _c = plan_of(body.replace("STRATEGY", "parallel"), models)
        adaptive, _d, _c = plan_of(body.replace("STRATEGY", "adaptive"), models)
        [before], [after] = parallel.tasks, adaptive.tasks
        assert after.estimate.cost_usd_expected == 0.0 and after.model in ("free", "local")
        assert after.estimate == before.estimate, after.id


def test_an_adaptive_run_counts_the_one_model_it_would_put_in_front():
    """Short of money the runtime moves the cheapest candidate under the answering model's cost to
    the front; the chain's second model answers first when the first is slow, so what is cheaper
    than it counts too, and a model already in the chain is not counted twice."""
    from bmad.compiler.passes.estimate_cost import adaptive_fronts
    from bmad.compiler.plan import Candidate, TaskPlan

    def row(model, cost, qualified=True):
        return Candidate(model=model, provider="p", available=True, qualified=qualified,
                         expected_quality=0.8, cost_usd_expected=cost, latency_s=1.0)

    plan = TaskPlan(id="t", candidates=(row("mid", 2.0), row("cheap", 1.0), row("free", 0.0),
                                        row("tiny", 0.5, qualified=False), row("strong", 5.0)))
    assert adaptive_fronts(plan, ["free"], 0.0) == []  # nothing under $0
    assert adaptive_fronts(plan, ["mid"], 2.0) == ["free"]  # the cheapest, not the costliest
    assert adaptive_fronts(plan, ["mid", "free"], 2.0) == []  # free is in the chain already
    assert adaptive_fronts(plan, ["free", "strong"], 0.0) == []  # strong first: free moves back up
    assert adaptive_fronts(plan, ["cheap", "strong"], 1.0) == ["free"]
    assert adaptive_fronts(plan, ["unlisted"], None) == ["free"]  # an unknown cost: any priced one
    # of equally cheap ones the runtime takes the first the table lists: either may answer
    tied = TaskPlan(id="t", candidates=(*plan.candidates, row("gratis", 0.0)))
    assert adaptive_fronts(tied, ["mid"], 2.0) == ["free", "gratis"]
    assert adaptive_fronts(tied, ["mid", "free"], 2.0) == ["gratis"]


def test_bmad_check_reports_what_the_plan_reports_with_every_chain_priced():
    result = compile_source(CATALOG + """
workflow w {
  budget $0.001 per run
  task a { prompt "x" model cheap max_tokens 100 }
  output a
}
""", "worst.bmad")
    context = make_context(result.program, environment={}, provider_mode="sim")
    _plan, whole = plan_program(result.program, context)
    assert "BMAD-W210" in {d.code for d in whole}
    assert check_plan(result.program) == whole
