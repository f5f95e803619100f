"""Scores a run's answers against the recorded correctness (after the run, never during it), and
computes the baselines, the oracle and the cost-quality curve metrics (RouterBench's AIQ,
RouteLLM's APGR)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from bmad.bench.routing.split import STRONG_MODEL, Item
from bmad.runtime.returns import normalise_enum

CHOICES = ("A", "B", "C", "D")


@dataclass(slots=True)
class Tally:
    """Correct answers, dollars and escalations over some items."""

    items: int = 0
    correct: float = 0.0
    cost: float = 0.0
    escalated: int = 0

    def add(self, correct: float, cost: float, escalated: bool = False) -> None:
        self.items += 1
        self.correct += correct
        self.cost += cost
        self.escalated += int(escalated)

    @property
    def accuracy(self) -> float:
        return self.correct / self.items if self.items else 0.0

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.items if self.items else 0.0


@dataclass(slots=True)
class Scores:
    """Per-dataset tallies and the overall one."""

    by_dataset: dict[str, Tally] = field(default_factory=dict)

    def add(self, dataset: str, correct: float, cost: float, escalated: bool = False) -> None:
        self.by_dataset.setdefault(dataset, Tally()).add(correct, cost, escalated)

    @property
    def overall(self) -> Tally:
        total = Tally()
        for t in self.by_dataset.values():
            total.items += t.items
            total.correct += t.correct
            total.cost += t.cost
            total.escalated += t.escalated
        return total

    def merge(self, other: "Scores") -> None:
        for name, t in other.by_dataset.items():
            mine = self.by_dataset.setdefault(name, Tally())
            mine.items += t.items
            mine.correct += t.correct
            mine.cost += t.cost
            mine.escalated += t.escalated


def answer_correct(item: Item, answer: Any) -> float:
    """1.0 when the workflow's answer is right. Multiple choice: the letter some correct model gave.
    Free text (code): the correctness of the model whose recorded answer it is."""
    if answer is None:
        return 0.0
    if item.dataset == "mbpp" or not isinstance(answer, str) or answer not in CHOICES:
        text = str(answer).strip()
        for model, recorded in item.answers.items():
            if recorded.strip() == text:
                return item.correct.get(model, 0.0)
        return 0.0
    right = {normalise_enum(item.answers[m], CHOICES) for m, ok in item.correct.items() if ok}
    return 1.0 if answer in right else 0.0


def model_correct(item: Item, model: str) -> float:
    """A recorded model's answer, scored as a workflow's answer is: multiple choice by the letter
    it names, code by its recorded correctness. The recorded column alone would be stricter with
    single models than with routers: on a few ARC prompts only gpt-3.5 is graded right although
    every model gave the same letter."""
    answer = item.answers.get(model)
    if answer is not None and item.dataset != "mbpp":
        letter = normalise_enum(answer, CHOICES)
        if letter is not None:
            return answer_correct(item, letter)
    return item.correct.get(model, 0.0)


def single_model(items: Iterable[Item], model: str) -> Scores:
    scores = Scores()
    for item in items:
        scores.add(item.dataset, model_correct(item, model), item.cost.get(model, 0.0))
    return scores


def recorded_accuracy(items: Sequence[Item], model: str) -> float:
    """A model's accuracy by the recorded correctness column alone (RouterBench's own figure)."""
    return sum(item.correct.get(model, 0.0) for item in items) / len(items) if items else 0.0


def oracle(items: Iterable[Item]) -> Scores:
    """The hindsight oracle: the cheapest correct model, else the cheapest model (for nothing)."""
    scores = Scores()
    for item in items:
        right = [item.cost[m] for m in item.correct if m in item.cost and model_correct(item, m)]
        if right:
            scores.add(item.dataset, 1.0, min(right))
        else:
            scores.add(item.dataset, 0.0, min(item.cost.values()) if item.cost else 0.0)
    return scores


def upper_hull(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """RouterBench's non-decreasing convex hull of (cost, quality) points."""
    pts = sorted(set(points))
    hull: list[tuple[float, float]] = []
    for p in pts:
        if hull and p[1] <= hull[-1][1]:
            continue  # dearer and no better: never on a non-decreasing frontier
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()  # hull[-1] lies on or below the chord: not convex
            else:
                break
        hull.append(p)
    return hull


def aiq(points: Sequence[tuple[float, float]], c_min: float, c_max: float) -> float:
    """Average Improvement in Quality (RouterBench): the area under the non-decreasing convex hull
    of the router's (cost, quality) points over [c_min, c_max], divided by the range. Below its
    cheapest point the curve is 0; above its dearest it stays flat."""
    hull = upper_hull([p for p in points if c_min <= p[0] <= c_max]) or [(c_min, 0.0)]
    xs = [c_min] + [x for x, _ in hull] + [c_max]
    def height(x: float) -> float:
        if x < hull[0][0]:
            return 0.0
        for (x1, y1), (x2, y2) in zip(hull, hull[1:]):
            if x1 <= x <= x2:
                return y1 + (y2 - y1) * (x - x1) / (x2 - x1) if x2 > x1 else max(y1, y2)
        return hull[-1][1]
    area = 0.0
    for a, b in zip(xs, xs[1:]):
        if b > a:
            # the hull is piecewise linear between consecutive xs, so the trapezoid rule is exact,
            # except for the step at the first point, taken from its right-hand value
            left = height(a) if a >= hull[0][0] else 0.0
            area += (left + height(b)) / 2 * (b - a) if a >= hull[0][0] else 0.0
    return area / (c_max - c_min) if c_max > c_min else hull[-1][1]


def apgr(points: Sequence[tuple[float, float]], weak: tuple[float, float],
         strong: tuple[float, float]) -> float:
    """RouteLLM's Average Performance Gap Recovered: PGR = (q - q_weak) / (q_strong - q_weak),
    averaged over the cost range from the weak to the strong model (the area under the router's
    PGR curve, its hull over the weak model's and its own points, cost normalised to 0..1)."""
    gap = strong[1] - weak[1]
    if gap <= 0 or strong[0] <= weak[0]:
        return 0.0
    pgr = [((c - weak[0]) / (strong[0] - weak[0]), (q - weak[1]) / gap)
           for c, q in [weak, *points]]
    return aiq(pgr, 0.0, 1.0)


def strong_cost(items: Iterable[Item]) -> float:
    return sum(item.cost.get(STRONG_MODEL, 0.0) for item in items)
