"""`best_candidate` (the router's winner when nothing reads the rest of the ranking) is always
`rank_candidates(...)[0]`: every objective, ties on every key, unpriced and unknown figures."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bmad.compiler.passes.route_models import best_candidate, rank_candidates
from bmad.compiler.plan import Candidate

# few distinct values, so that scores, costs and latencies tie often
FIGURES = st.one_of(st.none(), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1e-6, 3.0]))


@st.composite
def candidates(draw) -> list[Candidate]:
    names = draw(st.lists(st.sampled_from([f"m{i}" for i in range(12)]), unique=True, max_size=12))
    return [Candidate(model=name, provider=draw(st.sampled_from(["a", "b", "c"])), available=True, qualified=True,
                      expected_quality=draw(FIGURES), cost_usd_expected=draw(FIGURES), latency_s=draw(FIGURES))
            for name in names]


@settings(max_examples=300, deadline=None)
@given(listed=candidates(), objective=st.sampled_from(["balanced", "cost", "latency", "quality"]))
def test_best_candidate_is_the_first_of_the_ranking(listed: list[Candidate], objective: str):
    ranked = rank_candidates(listed, objective)
    assert best_candidate(listed, objective) == (ranked[0] if ranked else None)
    assert best_candidate(iter(listed), objective) == (ranked[0] if ranked else None)


def test_best_candidate_of_none_is_none():
    for objective in ("balanced", "cost", "latency", "quality"):
        assert best_candidate([], objective) is None
