"""The cascade learned from history: dominated members skipped, noise and the unmeasured respected."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bmad.compiler.history import ModelHistory, Observation
from bmad.compiler.passes.cascade_order import Measured, learn_cascade, measured_quality, outperforms
from .conftest import compile_fixture, draft_after, tasks


def history(**figures: tuple[float, int]) -> ModelHistory:
    """model=(quality, samples) on `reasoning` (the fixtures' `ladder` and `escalating` needs)."""
    obs = {}
    for model, (quality, samples) in figures.items():
        for cap in ("reasoning", "code", "*"):
            obs[(model, cap)] = Observation(quality=quality, samples=samples, quality_samples=samples)
    return ModelHistory(obs)


def test_a_clearly_worse_dearer_member_is_skipped():
    kept, skipped = learn_cascade(["a", "b", "c"], ("reasoning",),
                                  history(a=(0.80, 60), b=(0.40, 60), c=(0.95, 60)))
    assert kept == ("a", "c")
    assert skipped["b"] == ("history 0.40 over 60 answers, below cheaper a's 0.80 over 60")


def test_a_gap_within_the_noise_keeps_the_member():
    assert not outperforms(Measured(0.80, 5), Measured(0.60, 5))  # 4/5 against 3/5 proves nothing
    assert outperforms(Measured(0.80, 200), Measured(0.60, 200))
    kept, _ = learn_cascade(["a", "b"], ("reasoning",), history(a=(0.8, 5), b=(0.6, 5)))
    assert kept == ("a", "b")


def test_unmeasured_members_stay_and_skip_nobody():
    h = history(b=(0.2, 100), c=(0.9, 100))
    assert learn_cascade(["a", "b", "c"], ("reasoning",), h)[0] == ("a", "b", "c")  # a: no history
    assert learn_cascade(["a", "b"], ("reasoning",), None) == (("a", "b"), {})
    # a capability the history has not seen makes the model unmeasured
    assert measured_quality("b", ("reasoning", "vision"), h) is None
    assert measured_quality("b", ("reasoning",), h) == Measured(0.2, 100)


def test_a_named_fallback_is_never_skipped():
    h = history(a=(0.9, 100), b=(0.3, 100))
    assert learn_cascade(["a", "b"], (), h, keep={"b"}) == (("a", "b"), {})


def test_the_bar_is_the_best_kept_member_so_far():
    # c is worse than a (kept) though better than b (skipped): still skipped, against a
    kept, skipped = learn_cascade(["a", "b", "c", "d"], (),
                                  history(a=(0.9, 100), b=(0.2, 100), c=(0.5, 100), d=(0.97, 100)))
    assert kept == ("a", "d") and "cheaper a's" in skipped["c"]


figures = st.one_of(st.none(), st.tuples(st.floats(0, 1), st.integers(3, 500)))


@given(st.lists(figures, min_size=1, max_size=7), st.sets(st.integers(0, 6)))
def test_what_a_learned_cascade_keeps(members, keep_at):
    names = [f"m{i}" for i in range(len(members))]
    h = history(**{n: f for n, f in zip(names, members) if f is not None})
    keep = {names[i] for i in keep_at if i < len(names)}
    kept, skipped = learn_cascade(names, ("reasoning",), h, keep=keep)
    assert kept[0] == names[0]  # the cheapest is always asked
    assert [n for n in names if n in kept] == list(kept)  # order kept, cheapest first
    assert set(kept) | set(skipped) == set(names) and not set(kept) & set(skipped)
    assert keep <= set(kept)
    for name in skipped:  # only a measured member, beaten by a cheaper kept one
        mine = measured_quality(name, ("reasoning",), h)
        cheaper = [measured_quality(k, ("reasoning",), h) for k in kept
                   if names.index(k) < names.index(name)]
        assert mine is not None and any(c is not None and outperforms(c, mine) for c in cheaper)


def test_route_cascade_skips_what_history_shows_worse():
    # the fixture's `ladder`: route cascade [strong, cheap, rival] -> cheapest first: cheap, rival, strong
    h = history(cheap=(0.85, 80), rival=(0.55, 80), strong=(0.95, 80))
    plan = tasks(draft_after("route_models", history=h), "routing")["ladder"].plan
    assert plan.cascade == ("cheap", "strong")
    assert "skips rival: history 0.55 over 80 answers" in plan.route_reason
    # and it does not come back as an automatic fallback, which escalation would also walk
    chained = tasks(draft_after("chain_fallbacks", fixture="route_models", history=h), "routing")["ladder"]
    assert "rival" not in chained.plan.fallbacks


def test_else_escalate_chain_skips_what_history_shows_worse():
    # `escalating` (needs code, else escalate): cheap routed, then rival and strong by cost; all
    # three above the task's floor (0.65), so only the learned cascade takes rival out
    h = history(cheap=(0.92, 80), rival=(0.70, 80), strong=(0.97, 80))
    plan = tasks(draft_after("chain_fallbacks", history=h), "chains")["escalating"].plan
    assert plan.cascade == ("cheap", "strong") and "rival" not in plan.fallbacks
    assert "skips rival" in plan.route_reason
    # without history: the whole chain, as before
    plain = tasks(draft_after("chain_fallbacks"), "chains")["escalating"].plan
    assert plain.cascade == ("cheap", "rival", "strong")


def test_the_next_best_candidate_takes_the_place_of_a_skipped_member():
    # `escalating` routes cheap with two automatic fallbacks, cheapest first: rival, spare. History
    # shows rival worse than cheap (above the floor of 0.65, so still qualified); strong, left over
    # until then, takes its place.
    plain = tasks(draft_after("chain_fallbacks", fixture="escalate_refill"), "refill")["escalating"].plan
    assert plain.cascade == ("cheap", "rival", "spare")
    h = history(cheap=(0.92, 80), rival=(0.70, 80), spare=(0.90, 80), strong=(0.97, 80))
    plan = tasks(draft_after("chain_fallbacks", fixture="escalate_refill", history=h),
                 "refill")["escalating"].plan
    assert plan.cascade == ("cheap", "spare", "strong")
    assert plan.fallbacks == ("spare", "strong")
    assert "skips rival: history 0.70 over 80 answers" in plan.route_reason
    # a newcomer is weighed too: when strong also measured worse, the chain is what is left
    h = history(cheap=(0.92, 80), rival=(0.70, 80), spare=(0.90, 80), strong=(0.72, 80))
    plan = tasks(draft_after("chain_fallbacks", fixture="escalate_refill", history=h),
                 "refill")["escalating"].plan
    assert plan.cascade == ("cheap", "spare")
    assert "skips rival" in plan.route_reason and "skips strong" in plan.route_reason


def test_a_task_the_budget_moves_escalates_from_its_new_model_and_is_priced_so():
    from dataclasses import replace

    from bmad.compiler.passes import make_context, run_passes
    from bmad.compiler.passes.estimate_cost import estimate_task, rounded

    program = compile_fixture("budget_escalate")
    context = make_context(program, environment={}, provider_mode="sim")
    td = tasks(run_passes(program, context, until="enforce_budget"), "tight")["climb"]
    plan = td.plan
    assert plan.downgraded_from == "strong" and plan.model == "cheap"
    # from the new model up, cheapest first (a move for the budget falls back on the cheapest)
    assert plan.cascade == ("cheap", "mid", "rival")
    # the estimate it was moved on counts the escalations it may make
    assert plan.estimate == rounded(estimate_task(td, plan, context.catalog, context.history))
    alone = estimate_task(td, replace(plan, cascade=()), context.catalog, context.history)
    assert plan.estimate.cost_usd_expected > alone.cost_usd_expected
