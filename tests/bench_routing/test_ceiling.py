"""The hindsight ceiling of agreement-based routing (bench/routing/ceiling.py) on small made-up
splits whose best policies can be worked out by hand."""

from __future__ import annotations

from bmad.bench.routing.ceiling import (Point, best_within, cheapest_reaching, frontier,
                                        multiple_choice, pattern_curve, render, _rows)
from bmad.bench.routing.split import STRONG_MODEL, Item

STRONG = STRONG_MODEL


def mc(i: int, answers: dict[str, str], gold: str, cost: dict[str, float] | None = None,
       dataset: str = "arc-challenge") -> Item:
    cost = cost or {m: (3.0 if m == STRONG else 1.0) for m in answers}
    return Item(str(i), dataset, "q", answers, cost,
                {m: 1.0 if a == gold else 0.0 for m, a in answers.items()})


def test_agreement_is_kept_and_disagreement_escalated_where_it_pays():
    items = [mc(0, {"x": "A", "y": "A", STRONG: "A"}, "A"),   # agree, right
             mc(1, {"x": "B", "y": "B", STRONG: "C"}, "B"),   # agree, right; strong wrong
             mc(2, {"x": "A", "y": "B", STRONG: "B"}, "B"),   # disagree; strong right
             mc(3, {"x": "C", "y": "D", STRONG: "D"}, "D")]   # disagree; strong right
    points = pattern_curve(_rows(items), ("x", "y"))
    # Unescalated, "a a" keeps the agreed letter and "a b" keeps y's letter: all four right.
    assert (points[0].cost, points[0].correct) == (8.0, 4.0)
    assert len(points) == 1  # escalating "a b" gains nothing over always taking y's letter


def test_escalation_gains_when_the_strong_model_separates_the_cases():
    items = [mc(0, {"x": "A", "y": "B", STRONG: "A"}, "A"),
             mc(1, {"x": "A", "y": "B", STRONG: "B"}, "B"),
             mc(2, {"x": "C", "y": "C", STRONG: "C"}, "C")]
    points = pattern_curve(_rows(items), ("x", "y"))
    assert [(p.cost, p.correct) for p in points] == [(6.0, 2.0), (12.0, 3.0)]


def test_a_mid_tier_step_is_paid_only_on_disagreement():
    items = [mc(0, {"x": "A", "y": "A", "z": "B", STRONG: "A"}, "A"),
             mc(1, {"x": "A", "y": "B", "z": "B", STRONG: "B"}, "B")]
    points = pattern_curve(_rows(items), ("x", "y"), ("z",))
    assert points[0].cost == 5.0  # x, y on both; z on the second only
    assert points[0].correct == 2.0


def test_frontier_and_budgeted_combinations():
    assert frontier([Point(1, 1, "a"), Point(2, 1, "b"), Point(3, 5, "c"), Point(2, 4, "d")]) == \
        [Point(1, 1, "a"), Point(2, 4, "d"), Point(3, 5, "c")]
    per = {"p": [Point(1, 10, "p1"), Point(5, 12, "p2")], "q": [Point(1, 3, "q1"),
                                                                Point(2, 6, "q2")]}
    best = best_within(per, 4)
    assert best is not None and best.correct == 16 and best.cost == 3
    reach = cheapest_reaching(per, 18)
    assert reach is not None and reach.cost == 7
    assert cheapest_reaching(per, 19) is None
    assert best_within(per, 1) is None


def test_code_answers_are_not_multiple_choice():
    code = Item("c", "mbpp", "q", {"x": "def f(a):\n    return a  # a list\n" * 3}, {"x": 1.0},
                {"x": 1.0})
    assert not multiple_choice([code])
    assert multiple_choice([mc(0, {"x": "A", "y": "B)"}, "A")])


def test_render_names_the_budget_and_the_reach():
    items = [mc(i, {"x": "A", "y": "A" if i % 2 else "B", STRONG: "A"}, "A",
                {"x": 0.1, "y": 0.1, STRONG: 1.0}) for i in range(6)]
    items.append(Item("c", "mbpp", "q", {"x": "def f(a):\n    return a\n" * 4,
                                         STRONG: "def f(a):\n    return a + 0\n" * 4},
                      {"x": 0.01, STRONG: 1.0}, {"x": 1.0, STRONG: 1.0}))
    text = "\n".join(render(items))
    assert "best within $2.33" in text
    assert "cheapest reaching" in text
    assert "perfect picker" in text


def test_a_letter_aware_rule_escalates_only_the_letter_it_distrusts():
    # The pair says A wrongly and B rightly: a letter-blind rule sees "a a" both times and must
    # escalate both to fix the first; a letter-aware one escalates "A A" alone.
    items = [mc(0, {"x": "A", "y": "A", STRONG: "B"}, "B"),
             mc(1, {"x": "B", "y": "B", STRONG: "B"}, "B")]
    blind = pattern_curve(_rows(items), ("x", "y"))
    aware = pattern_curve(_rows(items), ("x", "y"), by_letter=True)
    assert [(p.cost, p.correct) for p in blind] == [(4.0, 1.0), (10.0, 2.0)]
    assert [(p.cost, p.correct) for p in aware] == [(4.0, 1.0), (7.0, 2.0)]
    text = "\n".join(render(items))
    assert "rules blind to which letter" in text and "any rule over the panel's letters" in text
