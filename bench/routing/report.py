"""Collects scored runs and renders the tables: baselines, oracle, the routed workflows (no history
vs history), the cost-quality curve with AIQ and APGR, and where the gap to the oracle lies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bmad.bench.routing.harness import WorkflowRun
from bmad.bench.routing.scoring import (Scores, aiq, answer_correct, apgr, model_correct, oracle,
                                        recorded_accuracy, single_model,
                                        upper_hull)
from bmad.bench.routing.split import STRONG_MODEL, Item, models_of
from bmad.runtime.returns import normalise_enum

DATASETS = ("arc-challenge", "winogrande", "mbpp")
CHOICES = ("A", "B", "C", "D")


@dataclass(slots=True)
class RoutedResult:
    scores: Scores = field(default_factory=Scores)
    notes: list[str] = field(default_factory=list)
    gap: dict[str, dict[str, int]] = field(default_factory=dict)  # dataset -> reason -> count


class Report:
    def __init__(self, items: list[Item]):
        self.items = items
        self.by_id = {item.id: item for item in items}
        self.routed: dict[str, RoutedResult] = {}
        self.exploration: list[tuple[int, float]] = []  # (prompts, dollars) per learning step
        self.strong = single_model(items, STRONG_MODEL)

    def add_run(self, label: str, run: WorkflowRun, *, notes: str = "", fold: int | None = None
                ) -> None:
        result = self.routed.setdefault(label, RoutedResult())
        if notes:
            result.notes.append(notes if fold is None else f"fold {fold}: {notes}")
        for item_id, outcome in run.outcomes.items():
            item = self.by_id[item_id]
            ok = answer_correct(item, outcome.answer)
            result.scores.add(item.dataset, ok, outcome.cost, outcome.escalated)
            if not ok:
                reason = _why_wrong(item, outcome)
                counts = result.gap.setdefault(item.dataset, {})
                counts[reason] = counts.get(reason, 0) + 1

    # ------------------------------------------------------------------------------------------

    def render(self, *, main: str, curve_label: str, curve_workflows: tuple[str, ...],
               elapsed: float, journals: Path) -> str:
        out: list[str] = []
        datasets = [d for d in DATASETS if any(i.dataset == d for i in self.items)]
        datasets += sorted({i.dataset for i in self.items} - set(datasets))
        strong_cost = self.strong.overall.cost or 1.0
        out.append(f"RouterBench routing with bmad: {len(self.items)} prompts "
                   f"({', '.join(f'{d} {self._count(d)}' for d in datasets)})")
        out.append("")
        header = f"{'router':<44} " + " ".join(f"{d[:13]:>21}" for d in datasets) + \
            f" {'overall':>8} {'cost':>8} {'vs gpt-4':>8} {'escal.':>6}"
        out.append(header)
        out.append(" " * 45 + " ".join(f"{'acc    $    esc':>21}" for _ in datasets))
        out.append("-" * len(header))
        rows: list[tuple[str, Scores]] = []
        for model in models_of(self.items):
            rows.append((f"always {model}", single_model(self.items, model)))
        rows.append(("oracle (cheapest correct, hindsight)", oracle(self.items)))
        for label, result in self.routed.items():
            rows.append((label, result.scores))
        for label, scores in rows:
            cells = []
            for d in datasets:
                t = scores.by_dataset.get(d)
                cells.append(f"{t.accuracy:6.3f} {t.cost:6.2f} {t.escalation_rate:6.2f}" if t
                             else f"{'-':>21}")
            o = scores.overall
            out.append(f"{label[:44]:<44} " + " ".join(f"{c:>21}" for c in cells) +
                       f" {o.accuracy:8.3f} {o.cost:8.2f} {o.cost / strong_cost:8.1%} "
                       f"{o.escalation_rate:6.2f}")
        out.append("")
        out.append(f"gpt-4 ({STRONG_MODEL}): accuracy {self.strong.overall.accuracy:.3f} for "
                   f"${strong_cost:.2f} (scored as the routers are, by the letter it names; "
                   f"{recorded_accuracy(self.items, STRONG_MODEL):.3f} by the recorded column); "
                   f"the goal is >= {self.strong.overall.accuracy:.3f} for <= ${strong_cost / 3:.2f}.")
        if main in self.routed:
            m = self.routed[main].scores.overall
            met = m.accuracy >= self.strong.overall.accuracy and m.cost <= strong_cost / 3
            out.append(f"{main}: accuracy {m.accuracy:.3f} ({m.accuracy / self.strong.overall.accuracy:.1%}"
                       f" of gpt-4's) for ${m.cost:.2f} ({m.cost / strong_cost:.1%} of its cost): "
                       f"goal {'met' if met else 'NOT met'}.")
        if self.exploration:
            prompts = sum(p for p, _ in self.exploration)
            dollars = sum(c for _, c in self.exploration)
            out.append(f"learning: {len(self.exploration)} exploration run(s), {prompts} prompts, "
                       f"${dollars:.2f} in all (not counted above)")
        out.append("")
        out.extend(self._curve(curve_label, curve_workflows))
        out.append("")
        out.extend(self._gap(main))
        out.append("")
        out.append("models the router chose:")
        for label, result in self.routed.items():
            for note in dict.fromkeys(result.notes):
                out.append(f"  {label}: {note}")
        out.append("")
        out.append(f"journals in {journals}; {elapsed:.1f}s in all")
        return "\n".join(out)

    def _count(self, dataset: str) -> int:
        return sum(1 for i in self.items if i.dataset == dataset)

    def _curve(self, label: str, workflows: tuple[str, ...]) -> list[str]:
        singles = {m: single_model(self.items, m).overall for m in models_of(self.items)}
        strong = singles.get(STRONG_MODEL)
        if strong is None:
            return ["(no gpt-4 column: no curve)"]
        single_points = [(t.cost, t.accuracy) for t in singles.values()]
        c_min = min(c for c, _ in single_points)
        c_max = strong.cost
        out = [f"cost-quality curve ({label}), costs in [${c_min:.2f}, ${c_max:.2f}]:"]
        routed_points = []
        for w in workflows:
            result = self.routed.get(f"{w} ({label})")
            if result:
                o = result.scores.overall
                routed_points.append((o.cost, o.accuracy))
                out.append(f"  {w:<18} ${o.cost:6.2f}  accuracy {o.accuracy:.3f}")
        # A router may always fall back to the strong model alone: its curve ends there.
        router = routed_points + [(strong.cost, strong.accuracy)]
        cheapest_weak = min(singles.values(), key=lambda t: t.cost)
        weak = (cheapest_weak.cost, cheapest_weak.accuracy)
        out.append(f"  hull: " + ", ".join(f"(${c:.2f}, {q:.3f})" for c, q in upper_hull(router)))
        out.append(f"  AIQ (RouterBench): bmad router {aiq(router, c_min, c_max):.3f}; "
                   f"single models' hull {aiq(single_points, c_min, c_max):.3f}")
        out.append(f"  APGR (RouteLLM, weak = cheapest model, strong = gpt-4, cost axis): "
                   f"bmad router {apgr(router, weak, (strong.cost, strong.accuracy)):.3f}; "
                   f"single models {apgr(single_points, weak, (strong.cost, strong.accuracy)):.3f}")
        return out

    def _gap(self, main: str) -> list[str]:
        result = self.routed.get(main)
        if result is None:
            return []
        o = result.scores.overall
        orc = oracle(self.items).overall
        out = [f"where the gap to the oracle lies ({main}: {o.items - o.correct:.0f} wrong, "
               f"oracle {orc.items - orc.correct:.0f} wrong):"]
        for dataset, counts in sorted(result.gap.items()):
            parts = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items(),
                                                                       key=lambda kv: -kv[1]))
            out.append(f"  {dataset}: {parts}")
        return out


def _why_wrong(item: Item, outcome) -> str:
    """Why a routed answer was wrong, in the terms of the gap to the oracle."""
    some_right = any(model_correct(item, m) for m in item.correct)
    if not some_right:
        return "no model right (oracle wrong too)"
    cheap_right = any(model_correct(item, m) for m in item.correct if m != STRONG_MODEL)
    if outcome.escalated:
        return ("escalated, gpt-4 wrong, a cheap model right" if cheap_right
                else "escalated, gpt-4 wrong")
    if item.dataset == "mbpp":
        return "code: chosen model wrong, another right"
    voted = [normalise_enum(item.answers[m], CHOICES) for m in item.answers]
    if outcome.answer is None:
        return "no answer"
    if model_correct(item, STRONG_MODEL):
        return "voters agreed on a wrong answer (gpt-4 was right)"
    return "voters agreed on a wrong answer (gpt-4 wrong too)" if voted else "wrong"
