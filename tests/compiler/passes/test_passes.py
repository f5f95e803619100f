"""Each pass on its own fixture (fixtures/<pass>.bmad): behaviour asserted, the draft snapshotted."""

from __future__ import annotations

import pytest

from bmad.compiler.passes import PASSES, describe_passes, plan_program, make_context
from bmad.compiler.passes.measure_prompts import reduce_calls
from bmad.compiler.tokens import count_tokens, count_tokens_by_chars

from .conftest import draft_after, project, tasks


def test_passes_are_ordered_and_named_after_their_modules():
    names = [p.__name__ for p in PASSES]
    assert names == ["expand", "resolve_dependencies", "measure_prompts", "route_models", "learn_bars", "chain_fallbacks",
                     "estimate_cost", "enforce_budget", "schedule_tasks", "seal_plan"]
    assert all(p.__module__.endswith("." + p.__name__) for p in PASSES)
    assert all(doc for _name, doc in describe_passes())


def test_expand(snapshot_json):
    draft = draft_after("expand")
    assert list(draft.workflows) == ["helper", "main"]  # callees first
    main = tasks(draft, "main")
    each = main["each"].task
    assert each.consensus.implicit and each.consensus.count == 3 and each.consensus.method == "vote"
    assert main["other"].task.consensus is None  # pinned: the author's choice wins
    assert main["judged"].task.consensus.method == "judge"  # explicit clause kept
    assert main["each"].plan.fan_out == 3  # from the input's default
    assert main["other"].plan.fan_out == 10  # unknown: the documented default
    assert main["calls"].plan.kind == "call" and main["calls"].plan.subworkflow == "helper"
    assert project(draft, keys=["kind", "fan_out", "subworkflow"]) == snapshot_json


def test_expand_uses_known_inputs_for_fan_out():
    draft = draft_after("expand", inputs={"unknown": ["p", "q"]})
    assert tasks(draft, "main")["other"].plan.fan_out == 2


def test_resolve_dependencies(snapshot_json):
    draft = draft_after("resolve_dependencies")
    t = tasks(draft, "deps")
    assert t["b"].plan.depends == ("a",)
    assert t["c"].plan.depends == ("a",)
    assert t["d"].plan.depends == ("b",)  # from `when`
    assert t["f"].plan.depends == ("e",)  # from `reduce`
    assert draft.workflows["deps"].generations[0] == ["a", "e"]
    assert project(draft, keys=["depends"]) == snapshot_json


def test_measure_prompts(snapshot_json):
    draft = draft_after("measure_prompts")
    t = tasks(draft, "sizes")
    first, second = t["first"].shape, t["second"].shape
    assert first.output_worst == 200 and first.output_expected == 100
    assert first.input_expected >= 500  # the unknown `long` input counts as 500 tokens
    assert second.output_worst == 1024 and second.output_expected < 10  # an enum answer is short
    assert second.input_expected > first.output_expected  # includes first's expected output
    assert t["merged"].reduce_items == 4
    assert project(draft, keys=["fan_out"], shapes=True) == snapshot_json


def test_reduce_calls_make_a_tree():
    assert reduce_calls(1, 10) == (1, 1)
    assert reduce_calls(100, 10) == (11, 2)
    assert reduce_calls(1000, 10) == (111, 3)
    assert reduce_calls(50, None) == (1, 1)


def test_token_counter_falls_back_to_chars():
    assert count_tokens_by_chars("abcdefgh") == 2
    assert count_tokens("") == 0
    assert 1 <= count_tokens("hello world") <= 3


def test_route_models(snapshot_json):
    draft = draft_after("route_models")
    t = {k: v.plan for k, v in tasks(draft, "routing").items()}
    assert t["plain"].model == "cheap" and t["plain"].route_rule == "objective:cost"
    assert t["hard"].model == "rival" and t["hard"].quality_floor == 0.9  # cheapest at >= 0.9 reasoning
    assert t["pinned"].model == "rival" and t["pinned"].route_rule == "pinned"
    assert t["fastest"].model == "cheap" and t["fastest"].route_rule == "route:fastest"
    assert t["best"].model == "rival"  # best among the listed two
    assert t["ladder"].cascade == ("cheap", "rival", "strong") and t["ladder"].model == "cheap"
    panel = t["panel"]
    assert len(panel.participants) == 3
    providers = [draft_context_provider(p) for p in panel.participants[:2]]
    assert len(set(providers)) == 2  # one per provider first
    for c in t["plain"].candidates:
        assert c.reason in ("chosen", "qualified") or not c.qualified
    assert project(draft, keys=["model", "participants", "judge", "route_rule", "route_reason",
                                "quality_floor", "expected_quality", "cascade"]) == snapshot_json


def draft_context_provider(model: str) -> str:
    return {"cheap": "alpha", "strong": "alpha", "rival": "beta", "mystery": "gamma", "local": "local"}[model]


def test_route_models_only_routes_to_available_models():
    draft = draft_after("route_models", provider_mode=None, environment={"ALPHA_KEY": "set"})
    t = {k: v.plan for k, v in tasks(draft, "routing").items()}
    assert t["hard"].model == "strong"  # rival's BETA_KEY is unset
    rival = next(c for c in t["hard"].candidates if c.model == "rival")
    assert not rival.available and "BETA_KEY is not set" in rival.reason
    assert t["pinned"].model != "rival"
    assert any(d.code == "BMAD-W201" for d in draft.diagnostics)


def test_route_models_falls_back_to_the_local_model():
    draft = draft_after("route_models", provider_mode=None, environment={})
    plan = tasks(draft, "routing")["hard"].plan
    assert plan.model == "local" and plan.route_rule == "fallback:local"
    assert draft.program.model("local") is not None  # the runtime can find it
    assert any(d.code == "BMAD-W200" for d in draft.diagnostics)


def test_history_overrides_catalog_quality():
    from bmad.compiler.history import ModelHistory, Observation

    history = ModelHistory({("cheap", "reasoning"): Observation(quality=0.95, latency_s=0.5, samples=10)})
    draft = draft_after("route_models", history=history)
    assert tasks(draft, "routing")["hard"].plan.model == "cheap"


def test_chain_fallbacks(snapshot_json):
    draft = draft_after("chain_fallbacks")
    t = {k: v.plan for k, v in tasks(draft, "chains").items()}
    assert t["explicit"].fallbacks[0] == "strong"
    assert t["automatic"].model == "cheap" and t["automatic"].fallbacks[0] == "rival"  # another provider first
    assert t["escalating"].cascade[0] == t["escalating"].model
    assert project(draft, keys=["model", "fallbacks", "cascade"]) == snapshot_json


def test_estimate_cost(snapshot_json):
    draft = draft_after("estimate_cost")
    t = {k: v.plan for k, v in tasks(draft, "costs").items()}
    # The worst case counts every try the runtime may make (3 a call without `retry`): here every
    # model of the chain (cheap, then its fallbacks rival and strong) answers 3 tries; the first
    # to answer is judged (strong: 3 tries, and 3 for a re-ask of an unreadable score), then
    # refined twice (an answer and a score each): 9 + (6 + 2 x (3 + 6))
    assert t["refine"].fallbacks == ("rival", "strong")
    assert t["refine"].estimate.calls_worst == 9 + 6 + 2 * (3 + 6)
    # `retry 3`: the first try and 3 retries, of each of the 3 models of its chain
    assert t["retried"].estimate.calls_worst == 4 * 3 and t["retried"].estimate.calls_expected == 1
    assert t["voted"].estimate.calls_worst == 3 * 3
    assert t["ensemble"].estimate.calls_worst == 3 * 3  # two participants and the synthesiser
    assert t["reviewed"].estimate.calls_worst == 3 * 2 * (1 + 2 * 2)
    assert t["fan"].estimate.calls_worst == 5 * 3 * 3  # 5 items, 3 models, 3 tries
    assert t["unpriced"].estimate.cost_usd_expected is None
    assert draft.workflows["costs"].totals.cost_usd_expected is None  # never $0
    assert any(d.code == "BMAD-W212" for d in draft.diagnostics)
    assert project(draft, keys=["model", "estimate"]) == snapshot_json


def test_enforce_budget(snapshot_json):
    draft = draft_after("enforce_budget")
    wd = draft.workflows["squeeze"]
    t = {k: v.plan for k, v in tasks(draft, "squeeze").items()}
    assert wd.totals.cost_usd_worst <= 0.1
    assert t["keep"].downgraded_from is None  # critical priority stays
    assert t["spare"].downgraded_from is not None or t["extra"].downgraded_from is not None
    assert any(d.code == "BMAD-W211" for d in draft.diagnostics)
    assert project(draft, keys=["model", "downgraded_from", "estimate"]) == snapshot_json


def test_enforce_budget_rejects_an_impossible_budget(spec_dir):
    from bmad.compiler.compile import compile_file

    from bmad.compiler.passes import check_plan

    program = compile_file(str(spec_dir / "bad" / "budget.bmad")).program
    diagnostics = check_plan(program)
    [problem] = [d for d in diagnostics if d.is_error]
    assert problem.code == "BMAD-E210"
    assert problem.span.line == 4 and problem.span.column == 3  # the budget clause
    assert "`a`" in problem.message and "$0.026" in problem.message  # three significant digits


def test_a_budget_below_zero_names_no_free_task_as_the_cause():
    # A negative budget can only come from outside a file (files report BMAD-E185). Tasks that cost
    # nothing don't explain it, so the message must not trail off into an empty "mostly".
    from bmad.compiler.compile import compile_source
    from bmad.compiler.ir import Budget

    program = compile_source("""
provider p { kind sim }
model free { provider p price input $0 output $0 per 1M }
workflow w {
  task a { prompt "hi" model free }
  output a
}
""", "free.bmad").program
    context = make_context(program, environment={}, provider_mode="sim", budget=Budget(usd=-1.0))
    _plan, diagnostics = plan_program(program, context)
    [problem] = [d for d in diagnostics if d.code == "BMAD-E210"]
    assert problem.message.endswith("expected to cost $0")


def test_enforce_budget_warns_when_only_the_worst_case_is_over():
    from bmad.compiler.ir import Budget

    cheapest = draft_after("enforce_budget", objective="cost", budget=Budget(usd=1000.0)).workflows["squeeze"].totals
    between = (cheapest.cost_usd_expected + cheapest.cost_usd_worst) / 2
    draft = draft_after("enforce_budget", objective="cost", budget=Budget(usd=between))
    codes = {d.code for d in draft.diagnostics}
    assert "BMAD-W210" in codes and not draft.failed


def test_schedule_tasks(snapshot_json):
    draft = draft_after("schedule_tasks")
    wd = draft.workflows["timing"]
    t = {k: v.plan for k, v in tasks(draft, "timing").items()}
    assert wd.critical_path == ("slow", "after")
    assert t["slow"].rank == 0  # critical path first, although `quick` is critical priority
    assert t["after"].rank == 1 and t["quick"].rank == 2  # then priority
    assert t["after"].stage == 1 and t["slow"].stage == 0
    assert draft.provider_concurrency == {"alpha": 8}
    latency = draft_after("schedule_tasks", fixture="schedule_tasks", scheduling="cost_optimized")
    assert tasks(latency, "timing")["quick"].plan.rank == 0
    assert project(draft, keys=["stage", "rank", "on_critical_path"]) == snapshot_json


def test_seal_plan(snapshot_json):
    from bmad.compiler.passes import compute_plan_hash, verify_plan

    draft = draft_after("seal_plan")
    plan = draft.plan
    assert plan.plan_hash == compute_plan_hash(plan)
    assert verify_plan(plan) == []
    assert len(plan.plan_hash) == 64
    assert plan.passes == tuple(p.__name__ for p in PASSES)
    # Deterministic: planning again gives the same hash. (The hash covers the sources' absolute
    # paths, so its value differs between checkouts and isn't snapshotted.)
    assert draft_after("seal_plan").plan.plan_hash == plan.plan_hash
    assert {"tasks": [t.id for t in plan.tasks]} == snapshot_json


def test_verify_plan_refuses_edits_and_changed_sources(fixtures_dir):
    from dataclasses import replace

    from bmad.compiler.passes import verify_plan

    plan = draft_after("seal_plan").plan
    edited = replace(plan, budget=replace(plan.budget, usd=100.0))
    assert [d.code for d in verify_plan(edited)] == ["BMAD-E220"]
    path = str(fixtures_dir / "seal_plan.bmad")
    changed = {path: (fixtures_dir / "seal_plan.bmad").read_text() + "\n# edited\n"}
    assert [d.code for d in verify_plan(plan, changed)] == ["BMAD-E221"]


def test_plan_program_returns_diagnostics_and_no_plan_on_errors(spec_dir):
    from bmad.compiler.compile import compile_file

    program = compile_file(str(spec_dir / "bad" / "budget.bmad")).program
    plan, diagnostics = plan_program(program, make_context(program, environment={}, provider_mode="sim"))
    assert plan is None and any(d.code == "BMAD-E210" for d in diagnostics)


def test_a_program_without_workflows_checks_clean(spec_dir):
    from bmad.compiler.compile import compile_file
    from bmad.compiler.passes import check_plan

    assert check_plan(compile_file(str(spec_dir / "models.bmad")).program) == []


def test_the_fast_canonical_json_equals_the_codec(spec_file):
    import json

    from bmad.compiler import ir_codec
    from bmad.compiler.compile import compile_file
    from bmad.compiler.passes.seal_plan import canonical_json

    program = compile_file(str(spec_file)).program
    payload = {"program": program, "tasks": (program.workflows[-1].tasks if program.workflows else ())}
    assert canonical_json(payload) == json.dumps(
        {"program": ir_codec.to_data(program, spans=False),
         "tasks": ir_codec.to_data(payload["tasks"], spans=False)},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _budget_draft(usd):
    from bmad.compiler import ir

    return draft_after("enforce_budget", fixture="enforce_budget_calls",
                       budget=None if usd is None else ir.Budget(usd=usd))


def test_enforce_budget_moves_callee_tasks_for_the_callers_budget():
    # a budget that fits at once: under a dollar cap a model without a price (digest's fallback
    # `mystery`) is refused, never billed, so the worst case is known
    free = _budget_draft(1000.0)
    callee = tasks(free, "review_one")
    assert {td.plan.model for td in callee.values()} == {"strong"}  # optimize quality, no budget
    worst = free.workflows["nightly"].totals.cost_usd_worst
    own = tasks(free, "nightly")["digest"].plan.estimate.cost_usd_worst
    assert own < worst / 2  # the four reviews (the callee, 4 times) are most of the cost

    budget = round(own + (worst - own) * 0.7, 4)  # fits only if callee tasks move
    draft = _budget_draft(budget)
    nightly, review_one = draft.workflows["nightly"], draft.workflows["review_one"]
    assert nightly.totals.cost_usd_worst <= budget
    moved = {td.id: td.plan for td in review_one.tasks.values() if td.plan.downgraded_from}
    assert "check" in moved and moved["check"].model == "cheap"  # low priority first
    assert tasks(draft, "nightly")["digest"].plan.model == "strong"  # pinned stays
    # the call's estimate follows its callee's new totals, times the fan-out
    call = tasks(draft, "nightly")["reviews"].plan.estimate
    assert call.cost_usd_worst == pytest.approx(review_one.totals.cost_usd_worst * 4, abs=1e-5)
    [note] = [d for d in draft.diagnostics if d.code == "BMAD-W211"]
    assert "`review_one.check` strong -> cheap" in note.message


def test_enforce_budget_names_callee_tasks_when_infeasible():
    draft = _budget_draft(0.0001)
    [problem] = [d for d in draft.diagnostics if d.is_error]
    assert problem.code == "BMAD-E210"
    # the pinned digest and the callee's review dominate (cheapest: check and verdict on `cheap`)
    assert "`digest`" in problem.message and "`review_one.check` via `reviews`" in problem.message
    related = {r.message.split("`")[1]: r for r in problem.related}
    assert related["review_one.check"].span.file.endswith("enforce_budget_calls.bmad")
    assert related["review_one.check"].span.line == 7  # the callee's task, where it is declared
    assert "4 runs via `reviews`" in related["review_one.check"].message


def test_check_plan_names_callee_tasks_of_the_contract_pipeline(spec_dir, tmp_path):
    """shared/spec/pipeline.bmad with a budget too small for its reviews: E210 names code_review's tasks."""
    from bmad.compiler.compile import compile_file
    from bmad.compiler.passes import check_plan

    for name in ("code_review.bmad", "models.bmad"):
        (tmp_path / name).write_text((spec_dir / name).read_text())
    source = (spec_dir / "pipeline.bmad").read_text()
    assert "budget $10.00 per run" in source
    (tmp_path / "pipeline.bmad").write_text(source.replace("budget $10.00 per run", "budget $0.001 per run"))
    result = compile_file(str(tmp_path / "pipeline.bmad"))
    assert result.ok, [d.message for d in result.errors]
    [problem] = [d for d in check_plan(result.program) if d.is_error]
    assert problem.code == "BMAD-E210"
    assert "code_review." in problem.message and "via `reviews`" in problem.message


@pytest.mark.parametrize("objective", [None, "balanced", "cost", "latency", "quality"])
def test_a_program_without_models_plans_without_crashing(objective):
    """No model declared at all (not even the standard catalog): every task falls back to the
    embedded model, with a diagnostic, never a traceback."""
    from bmad.compiler import ir
    from bmad.compiler.compile import compile_source
    from bmad.compiler.passes import check_plan

    source = """workflow w {
  optimize balanced
  task a { prompt "Summarise the news" needs writing }
  task b { prompt "Vote on {{ a }}" consensus vote among 3 models }
  task c { prompt "Judge {{ b }}" consensus judge among 2 models }
  output c
}
"""
    program = compile_source(source).program
    bare = ir.replace(program, models=(), providers=())
    diagnostics = check_plan(bare)
    assert not [d for d in diagnostics if d.is_error]
    assert {d.code for d in diagnostics} >= {"BMAD-W200"}
    plan, diagnostics = plan_program(bare, make_context(bare, environment={}, objective=objective))
    assert plan is not None and {t.model for t in plan.tasks} == {"local"}


def test_no_model_to_route_to_is_a_diagnostic():
    """A catalog with nothing in it (no embedded model either): BMAD-E231 per task, no crash."""
    from bmad.compiler import ir
    from bmad.compiler.catalog import ModelCatalog
    from bmad.compiler.compile import compile_source
    from bmad.compiler.passes import PassContext

    program = compile_source('workflow w {\n  task a { prompt "hi" }\n  output a\n}\n').program
    bare = ir.replace(program, models=(), providers=())
    plan, diagnostics = plan_program(bare, PassContext(catalog=ModelCatalog({})))
    assert plan is None
    [problem] = [d for d in diagnostics if d.is_error]
    assert problem.code == "BMAD-E231" and "`a`" in problem.message
    assert problem.span.line == 2 and problem.hint


def test_ranking_no_candidates_gives_none():
    from bmad.compiler.passes.route_models import rank_candidates

    for objective in ("balanced", "cost", "latency", "quality"):
        assert rank_candidates([], objective) == []
        assert rank_candidates(iter([]), objective) == []
    from bmad.compiler.plan import Candidate

    pair = [Candidate("a", "p", True, True, 0.9, 0.01, 1.0), Candidate("b", "q", True, True, 0.5, 0.001, 2.0)]
    assert [c.model for c in rank_candidates(iter(pair), "balanced")] == \
        [c.model for c in rank_candidates(pair, "balanced")] and len(pair) == 2


def test_revise_is_replace():
    from dataclasses import replace

    from bmad.compiler.passes.draft import revise
    from bmad.compiler.plan import Estimate, TaskPlan

    plan = TaskPlan(id="a", model="m", depends=("b",), estimate=Estimate(cost_usd_expected=0.5))
    assert revise(plan, stage=2, fallbacks=("x",)) == replace(plan, stage=2, fallbacks=("x",))
    assert not hasattr(TaskPlan, "__post_init__")  # revise builds without __init__: nothing skipped
    with pytest.raises(TypeError):
        revise(plan, stgae=2)
