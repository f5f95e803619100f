"""The ceiling of agreement-based routing on a split, in hindsight: how accurate *any* policy can be,
at a given cost, that decides from which cheap models agreed (and, when it escalates, from the
strong model's answer too). It bounds every rule of that family at once: fixed or learned agreement
bars, weighted votes, per-capability thresholds, a mid-tier step, the strong model as a voter.

For a panel of cheap models (always asked; or a pair always asked and the rest only when the pair
disagrees, the mid-tier cascade), each item's *agreement pattern* is which panel members gave the
same letter (letters relabelled by first appearance, so "a a b" is "the first two agreed, the third
did not"). For every pattern the ceiling picks, with the correctness columns, the best letter to
keep, and whether escalating to the strong model (then the best letter given the strong model's
answer as well) gains more than it costs; escalations are taken in order of gain per dollar. That is
the most any decision rule over those signals can get on these items: a real router, which must
learn its rule without the correctness columns, can only be below. Like the oracle, this reads the
correctness columns, and is for reporting where the gap lies, never for routing.

Code answers (MBPP) have no letters to agree on: there the options are one model for all, and, as
a hypothetical, a perfect picker among the cheap models' programs (the cheap oracle).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations, permutations
from typing import Iterable, Sequence

from bmad.bench.routing.scoring import CHOICES, answer_correct, model_correct
from bmad.bench.routing.split import STRONG_MODEL, Item
from bmad.runtime.returns import normalise_enum


@dataclass(frozen=True, slots=True)
class Point:
    """One way to answer a dataset: its cost, its correct answers, and what it is."""

    cost: float
    correct: float
    how: str


@dataclass(slots=True)
class _Row:
    letters: dict[str, str | None]
    right: set[str]
    cost: dict[str, float]


def _rows(items: Iterable[Item]) -> list[_Row]:
    rows = []
    for item in items:
        letters = {m: normalise_enum(a, CHOICES) for m, a in item.answers.items()}
        right = {l for l in set(letters.values()) if l and answer_correct(item, l)}
        rows.append(_Row(letters, right, item.cost))
    return rows


def multiple_choice(items: Sequence[Item]) -> bool:
    """Answers are letters: the typical recorded answer is a few characters, not a program (prose
    and code mention "a" often enough that naming a letter proves nothing)."""
    lengths = sorted(len(a.strip()) for i in items for a in i.answers.values())
    return bool(lengths) and lengths[len(lengths) // 2] <= _SHORT_ANSWER


_SHORT_ANSWER = 40  # characters: "A", "B)", "The answer is C." but no function


def _relabel(letters: Sequence[str | None], names: dict[str, str]) -> tuple[str, ...]:
    out = []
    for letter in letters:
        if letter is None:
            out.append("-")
            continue
        if letter not in names:
            names[letter] = "abcdefgh"[len(names)]
        out.append(names[letter])
    return tuple(out)


def _as_given(letters: Sequence[str | None], names: dict[str, str]) -> tuple[str, ...]:
    """`_relabel`'s letter-aware twin: the pattern is the letters themselves ("A A" is not "B B")."""
    for letter in letters:
        if letter is not None:
            names.setdefault(letter, letter)
    return tuple("-" if letter is None else letter for letter in letters)


def pattern_curve(rows: list[_Row], first: Sequence[str], then: Sequence[str] = (),
                  strong: str = STRONG_MODEL, *, by_letter: bool = False) -> list[Point]:
    """The hindsight-best policy's curve for one panel: `first` always answer; `then` answer only
    when `first` disagree (a mid-tier step); per agreement pattern, keep the best letter or escalate
    to `strong`. Points from no escalation to every worthwhile one. `by_letter`: patterns tell the
    letters apart (so a rule may trust "A A" and not "B B", as a model's bias towards one letter
    may warrant)."""
    pattern = _as_given if by_letter else _relabel
    keep: dict[tuple, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    esc: dict[tuple, dict[tuple, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(float)))
    esc_cost: dict[tuple, float] = defaultdict(float)
    base = 0.0
    for row in rows:
        asked = list(first)
        seen = {row.letters.get(m) for m in first}
        if then and (len(seen) > 1 or None in seen):
            asked += list(then)
        base += sum(row.cost.get(m, 0.0) for m in asked)
        names: dict[str, str] = {}
        key = (len(asked),) + pattern([row.letters.get(m) for m in asked], names)
        label_of = {v: k for k, v in names.items()}
        for label, letter in label_of.items():
            keep[key][label] += letter in row.right
        strong_label = pattern([row.letters.get(strong)], names)
        label_of = {v: k for k, v in names.items()}
        for label, letter in label_of.items():
            esc[key][strong_label][label] += letter in row.right
        esc_cost[key] += row.cost.get(strong, 0.0)
    kept = {k: max(v.values(), default=0.0) for k, v in keep.items()}
    for k in esc_cost:
        kept.setdefault(k, 0.0)
    gains = []
    for key, by_strong in esc.items():
        gain = sum(max(v.values(), default=0.0) for v in by_strong.values()) - kept[key]
        if gain > 0:
            gains.append((gain / esc_cost[key] if esc_cost[key] else float("inf"), gain,
                          esc_cost[key]))
    gains.sort(key=lambda g: -g[0])
    name = "+".join(_short(m) for m in first) + (f" then {'+'.join(_short(m) for m in then)}"
                                                 if then else "")
    correct, cost = sum(kept.values()), base
    points = [Point(cost, correct, f"{name}, no escalation")]
    for k, (_, gain, extra) in enumerate(gains, 1):
        correct += gain
        cost += extra
        points.append(Point(cost, correct, f"{name}, {k} pattern(s) escalated"))
    return points


def _short(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def frontier(points: Iterable[Point]) -> list[Point]:
    """The points no other point beats on both cost and correct answers, cheapest first."""
    out: list[Point] = []
    for p in sorted(points, key=lambda p: (p.cost, -p.correct)):
        if not out or p.correct > out[-1].correct:
            out.append(p)
    return out


def cheap_models(items: list[Item], budget: float, strong: str = STRONG_MODEL) -> list[str]:
    """Models whose every-prompt cost fits the budget on their own (the strong one excluded)."""
    total: dict[str, float] = defaultdict(float)
    for item in items:
        for m, c in item.cost.items():
            total[m] += c
    return sorted(m for m, c in total.items() if m != strong and c <= budget)


def dataset_points(items: list[Item], cheap: Sequence[str], *, max_panel: int = 3,
                   strong: str = STRONG_MODEL, by_letter: bool = False) -> list[Point]:
    """Every single model, and for multiple choice every panel of up to `max_panel` cheap models
    (all asked, or a pair then the rest on disagreement) and all of them, with the escalation
    curve of each: the dataset's frontier."""
    points = [Point(sum(i.cost.get(m, 0.0) for i in items),
                    sum(model_correct(i, m) for i in items), f"always {_short(m)}")
              for m in sorted({m for i in items for m in i.answers})]
    rows = _rows(items)
    if not multiple_choice(items):
        return frontier(points)  # free text: no letters to agree on
    panels: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for size in range(1, max_panel + 1):
        panels += [(p, ()) for p in combinations(cheap, size)]
    for pair in combinations(cheap, 2):
        for size in range(1, max_panel - 1):
            panels += [(pair, rest) for rest in permutations([m for m in cheap if m not in pair],
                                                              size)]
    if len(cheap) > max_panel:
        panels.append((tuple(cheap), ()))
    for first, then in panels:
        points += pattern_curve(rows, first, then, strong, by_letter=by_letter)
    return frontier(points)


def perfect_code_picker(items: list[Item], cheap: Sequence[str]) -> Point:
    """Hypothetical: every cheap model writes the program and a perfect judge picks a right one."""
    cost = sum(i.cost.get(m, 0.0) for i in items for m in cheap)
    correct = sum(1.0 for i in items if any(model_correct(i, m) for m in cheap))
    return Point(cost, correct, "perfect picker among the cheap models' programs")


@dataclass(slots=True)
class Combination:
    points: dict[str, Point]

    @property
    def cost(self) -> float:
        return sum(p.cost for p in self.points.values())

    @property
    def correct(self) -> float:
        return sum(p.correct for p in self.points.values())


def combined_frontier(per_dataset: dict[str, list[Point]]) -> list[Combination]:
    """One point per dataset, every way, kept to the combinations no other beats on both cost
    and correct answers (folded one dataset at a time, so it stays small)."""
    combos = [Combination({})]
    for name in sorted(per_dataset):
        grown = [Combination(dict(c.points, **{name: p}))
                 for c in combos for p in per_dataset[name]]
        grown.sort(key=lambda c: (c.cost, -c.correct))
        combos = []
        for c in grown:
            if not combos or c.correct > combos[-1].correct:
                combos.append(c)
    return combos


def best_within(per_dataset: dict[str, list[Point]], budget: float) -> Combination | None:
    """The most correct answers over all datasets for at most `budget` (one point per dataset)."""
    fits = [c for c in combined_frontier(per_dataset) if c.cost <= budget + 1e-9]
    return max(fits, key=lambda c: c.correct) if fits else None


def cheapest_reaching(per_dataset: dict[str, list[Point]], correct: float) -> Combination | None:
    """The cheapest combination with at least `correct` right answers."""
    reach = [c for c in combined_frontier(per_dataset) if c.correct >= correct - 1e-9]
    return min(reach, key=lambda c: c.cost) if reach else None


def render(items: list[Item], *, max_panel: int = 3, strong: str = STRONG_MODEL) -> list[str]:
    """The ceiling section of the report: for rules blind to which letter was given, then for any
    rule over the panel's letters."""
    by_dataset: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_dataset[item.dataset].append(item)
    strong_cost = sum(i.cost.get(strong, 0.0) for i in items)
    strong_correct = sum(model_correct(i, strong) for i in items)
    budget = strong_cost / 3
    cheap = cheap_models(items, budget, strong)
    code = [d for d, its in by_dataset.items() if not multiple_choice(its)]
    n = len(items)
    out = [f"ceiling of agreement-based routing (hindsight; panels of up to {max_panel} of "
           f"{len(cheap)} cheap models, a mid-tier step on disagreement, all {len(cheap)}; "
           f"per agreement pattern the best letter, escalating to {_short(strong)} where it pays):"]

    def describe(label: str, combo: Combination | None) -> None:
        if combo is None:
            out.append(f"    {label}: out of reach")
            return
        out.append(f"    {label}: accuracy {combo.correct / n:.3f} for ${combo.cost:.2f} "
                   f"({100 * combo.cost / strong_cost:.1f}% of {_short(strong)})")
        for d, p in sorted(combo.points.items()):
            m = len(by_dataset[d])
            out.append(f"        {d}: {p.correct / m:.3f} for ${p.cost:.2f} ({p.how})")

    for by_letter, family in ((False, "rules blind to which letter (quorums, agreement bars, "
                                      "weighted votes)"),
                              (True, "any rule over the panel's letters (may trust \"A A\" "
                                     "and not \"B B\")")):
        per_dataset = {d: dataset_points(its, cheap, max_panel=max_panel, strong=strong,
                                         by_letter=by_letter)
                       for d, its in sorted(by_dataset.items())}
        out.append(f"  {family}:")
        describe(f"best within ${budget:.2f} (a third of {_short(strong)})",
                 best_within(per_dataset, budget))
        describe(f"cheapest reaching {_short(strong)}'s {strong_correct / n:.3f}",
                 cheapest_reaching(per_dataset, strong_correct))
        if code:
            hypothetical = {d: frontier(ps + ([perfect_code_picker(by_dataset[d], cheap)]
                                              if d in code else []))
                            for d, ps in per_dataset.items()}
            describe(f"best within ${budget:.2f}, with a perfect picker for "
                     f"{', '.join(sorted(code))} (hypothetical)", best_within(hypothetical, budget))
    return out
