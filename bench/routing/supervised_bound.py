"""What a router trained on the correctness labels could reach: a bound, like ceiling.py, but out of
sample (k-fold cross-validation) instead of in hindsight.

A real router has no correctness labels (bmad's learn from the strong model's answers), so what
these supervised routers reach is more than any real one can. Two questions about the
multiple-choice datasets (code is answered by `CODE_MODEL` throughout, as vote2_escalate answers
it), each answered by the best total within a third of the strong model's cost:

1. **The prompt's text** (RouteLLM's learned routers decide from the prompt alone). A pair of cheap
   models answers every prompt, the first one's letter is kept, and a logistic regression ranks the
   prompts to escalate by whether escalating gains or loses a right answer: once on the pair's
   letters alone, once with TF-IDF word 1-2-grams of the question added.
2. **More cheap voters** (stacking). A multinomial logistic regression on the one-hot letters of 2,
   3 or 4 cheap models picks the letter; the least confident prompts go to the strong model.

    pip install scikit-learn   # only this analysis needs it
    python bench/routing/supervised_bound.py --split ../shared/data/routerbench
"""

from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path
from typing import Sequence

from bmad.bench.routing.ceiling import multiple_choice
from bmad.bench.routing.scoring import CHOICES, answer_correct, model_correct, strong_cost
from bmad.bench.routing.split import STRONG_MODEL, Item, read_split
from bmad.runtime.returns import normalise_enum

PAIR = ("zero-one-ai/Yi-34B-Chat", "mistralai/mixtral-8x7b-chat")  # vote2_escalate's pair with history
CODE_MODEL = "gpt-3.5-turbo-1106"  # vote2_escalate's code model with history
# six of the eight cheap models, to keep the search to 50 panels: left out are code-llama (a code
# model) and llama-2-70b (which answers "B" to 98% of Winogrande)
VOTERS = ("zero-one-ai/Yi-34B-Chat", "mistralai/mixtral-8x7b-chat", "mistralai/mistral-7b-chat",
          "WizardLM/WizardLM-13B-V1.2", "gpt-3.5-turbo-1106", "claude-instant-v1")
STEPS = (0, 50, 100, 150, 200, 300, 400, 500, 600)

Curve = list[tuple[float, float]]  # (cost, right answers) after escalating 0, 1, 2, ... prompts


def question(prompt: str) -> str:
    """The question being asked: the prompt's last few-shot block (the examples repeat)."""
    blocks = [b for b in prompt.split("\n\n") if b.strip()]
    return blocks[-1] if blocks else prompt


def _letters(items: list[Item], models: Sequence[str]) -> list[list[str | None]]:
    return [[normalise_enum(i.answers.get(m, ""), CHOICES) for m in models] for i in items]


def _escalation_curve(items: list[Item], models: Sequence[str], kept, order) -> Curve:
    """Right answers and cost as the prompts in `order` go to the strong model one by one."""
    right = float(sum(kept))
    cost = sum(i.cost.get(m, 0.0) for i in items for m in models)
    curve = [(cost, right)]
    for index in order:
        item = items[index]
        right += model_correct(item, STRONG_MODEL) - kept[index]
        cost += item.cost.get(STRONG_MODEL, 0.0)
        curve.append((cost, right))
    return curve


def text_curves(items: list[Item], pair: Sequence[str], folds: int) -> dict[str, Curve]:
    """{features: curve}: the pair's first letter kept, escalations ranked by a classifier."""
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    letters = _letters(items, pair)
    kept = np.array([answer_correct(i, row[0]) for i, row in zip(items, letters)])
    gain = np.array([model_correct(i, STRONG_MODEL) for i in items]) - kept
    agreement = csr_matrix(np.array(
        [[a == b, a is None, b is None, *(a == c for c in CHOICES), *(b == c for c in CHOICES)]
         for a, b in letters], dtype=float))
    texts = np.array([question(i.prompt) for i in items])
    out: dict[str, Curve] = {}
    for name, with_text in (("letters", False), ("letters + prompt text", True)):
        score = np.zeros(len(items))
        for train, test in KFold(folds, shuffle=True, random_state=0).split(texts):
            features_train, features_test = agreement[train], agreement[test]
            if with_text:
                tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(texts[train])
                features_train = hstack([tfidf.transform(texts[train]), features_train]).tocsr()
                features_test = hstack([tfidf.transform(texts[test]), features_test]).tocsr()
            for sign in (1, -1):  # P(escalating gains a right answer) - P(it loses one)
                labels = (sign * gain[train] > 0).astype(int)
                if labels.min() == labels.max():
                    continue
                model = LogisticRegression(max_iter=2000).fit(features_train, labels)
                score[test] += sign * model.predict_proba(features_test)[:, 1]
        out[name] = _escalation_curve(items, pair, kept, np.argsort(-score, kind="stable"))
    return out


def stacked_curve(items: list[Item], voters: Sequence[str], folds: int) -> Curve:
    """A classifier over the voters' letters picks the letter; the least confident escalate."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    features = np.array([[letter == c for letter in row for c in CHOICES]
                         for row in _letters(items, voters)], dtype=float)
    right_letter = []
    for item in items:
        right = [c for c in CHOICES if answer_correct(item, c)]
        right_letter.append(CHOICES.index(right[0]) if right else 0)  # none right: any label
    labels = np.array(right_letter)
    probability = np.zeros((len(items), len(CHOICES)))
    for train, test in KFold(folds, shuffle=True, random_state=0).split(features):
        if len(set(labels[train])) < 2:
            probability[test, labels[train][0]] = 1.0
            continue
        model = LogisticRegression(max_iter=3000).fit(features[train], labels[train])
        probability[np.ix_(test, model.classes_)] = model.predict_proba(features[test])
    picked = probability.argmax(axis=1)
    kept = np.array([answer_correct(i, CHOICES[k]) for i, k in zip(items, picked)])
    return _escalation_curve(items, voters, kept, np.argsort(probability.max(axis=1), kind="stable"))


def best_within(budget: float, curves: list[Curve]) -> tuple[float, float]:
    """The most right answers over one point of each curve with their costs summed within budget."""
    best = {0.0: 0.0}  # cost -> right, a frontier over the curves combined so far
    for curve in curves:
        merged: dict[float, float] = {}
        for cost, right in best.items():
            for c, r in curve:
                total = round(cost + c, 6)
                if total <= budget + 1e-9 and r + right > merged.get(total, -1.0):
                    merged[total] = r + right
        frontier, top = {}, -1.0
        for cost in sorted(merged):
            if merged[cost] > top:
                frontier[cost], top = merged[cost], merged[cost]
        best = frontier or {0.0: float("-inf")}
    cost = max(best, key=lambda c: (best[c], -c))
    return cost, best[cost]


def _short(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-voters", type=int, default=4, help="largest stacked panel")
    args = parser.parse_args(argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("supervised_bound.py needs scikit-learn: pip install scikit-learn", file=sys.stderr)
        return 2
    items = read_split(args.split)
    n = len(items)
    budget = strong_cost(items) / 3
    by_dataset: dict[str, list[Item]] = {}
    for item in items:
        by_dataset.setdefault(item.dataset, []).append(item)
    choice = {d: its for d, its in sorted(by_dataset.items()) if multiple_choice(its)}
    code = [i for d, its in by_dataset.items() if d not in choice for i in its]
    fixed_cost = sum(i.cost.get(CODE_MODEL, 0.0) for i in code)
    fixed_right = sum(model_correct(i, CODE_MODEL) for i in code)
    print(f"within ${budget:.2f} (a third of {_short(STRONG_MODEL)}); trained on the correctness "
          f"columns, {args.folds}-fold CV; code: {_short(CODE_MODEL)} ({fixed_right:.0f} right of "
          f"{len(code)}, ${fixed_cost:.2f})")

    def total(curves: list[Curve]) -> str:
        cost, right = best_within(budget - fixed_cost, curves)
        return f"{(right + fixed_right) / n:.3f} for ${cost + fixed_cost:.2f}"

    print(f"\n1. the prompt's text ({' + '.join(_short(m) for m in PAIR)}; right answers after N "
          f"escalations)")
    per_dataset = {d: text_curves(its, PAIR, args.folds) for d, its in choice.items()}
    for dataset, curves in per_dataset.items():
        for name, curve in curves.items():
            row = ", ".join(f"{k}: {curve[k][1]:.0f}" for k in STEPS if k < len(curve))
            print(f"  {dataset:<14} {name:<22} {row}")
    for name in ("letters", "letters + prompt text"):
        print(f"  best total, {name}: {total([c[name] for c in per_dataset.values()])}")

    print("\n2. stacked voters (a classifier over their letters; the least confident escalate)")
    for size in range(2, args.max_voters + 1):
        results = []
        for voters in combinations(VOTERS, size):
            curves = [stacked_curve(its, voters, args.folds) for its in choice.values()]
            cost, right = best_within(budget - fixed_cost, curves)
            results.append((right, -cost, voters))  # most right, then cheapest
        right, negative_cost, voters = max(results)
        print(f"  best of {len(results)} panels of {size}: {(right + fixed_right) / n:.3f} for "
              f"${fixed_cost - negative_cost:.2f} ({', '.join(_short(m) for m in voters)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
