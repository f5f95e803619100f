"""How much could the prompt's text add to escalation? A hindsight bound, like ceiling.py.

RouteLLM's learned routers (BERT classifier, matrix factorisation) decide from the prompt alone.
This asks the most generous version of that question on a split: for each multiple-choice dataset,
a pair of cheap models answers every prompt (the first model's letter is kept) and some prompts are
escalated to the strong model. Which ones? A logistic regression ranks them, trained *on the
correctness columns* (whether escalating would gain or lose a right answer) in k-fold
cross-validation, once on the pair's agreement features alone and once with TF-IDF word 1-2-grams
of the question added. A real router has no correctness labels (bmad's learn from the strong
model's answers), so its text signal can only be weaker than this one.

    pip install scikit-learn   # only this analysis needs it
    python bench/routing/text_bound.py --split ../shared/data/routerbench

Prints, per dataset, right answers at each number of escalations for both feature sets, then the
best total within a third of the strong model's cost (code: the pair's first model, as
vote2_escalate answers it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bmad.bench.routing.ceiling import multiple_choice
from bmad.bench.routing.scoring import CHOICES, answer_correct, strong_cost
from bmad.bench.routing.split import STRONG_MODEL, Item, read_split
from bmad.runtime.returns import normalise_enum

PAIR = ("zero-one-ai/Yi-34B-Chat", "mistralai/mixtral-8x7b-chat")  # vote2_escalate's pair with history
CODE_MODEL = "gpt-3.5-turbo-1106"  # vote2_escalate's code model with history
STEPS = (0, 50, 100, 150, 200, 300, 400, 500, 600)


def question(prompt: str) -> str:
    """The question being asked: the prompt's last few-shot block (the examples repeat)."""
    blocks = [b for b in prompt.split("\n\n") if b.strip()]
    return blocks[-1] if blocks else prompt


def curves(items: list[Item], pair: tuple[str, str], folds: int) -> dict[str, list[tuple[float, float]]]:
    """{features: [(cost, right answers) after escalating 0, 1, 2, ... prompts in ranked order]}."""
    import numpy as np
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    first, second = pair
    letters = [(normalise_enum(i.answers.get(first, ""), CHOICES),
                normalise_enum(i.answers.get(second, ""), CHOICES)) for i in items]
    kept = np.array([answer_correct(i, a) for i, (a, _b) in zip(items, letters)])
    gain = np.array([i.correct.get(STRONG_MODEL, 0.0) for i in items]) - kept
    agreement = csr_matrix(np.array(
        [[a == b, a is None, b is None, *(a == c for c in CHOICES), *(b == c for c in CHOICES)]
         for a, b in letters], dtype=float))
    texts = np.array([question(i.prompt) for i in items])
    base_cost = sum(i.cost.get(first, 0.0) + i.cost.get(second, 0.0) for i in items)
    escalation_cost = np.array([i.cost.get(STRONG_MODEL, 0.0) for i in items])
    out: dict[str, list[tuple[float, float]]] = {}
    for name, with_text in (("agreement", False), ("agreement + prompt text", True)):
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
        order = np.argsort(-score, kind="stable")
        right, cost, curve = float(kept.sum()), base_cost, [(base_cost, float(kept.sum()))]
        for index in order:
            right += gain[index]
            cost += escalation_cost[index]
            curve.append((cost, right))
        out[name] = curve
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("text_bound.py needs scikit-learn: pip install scikit-learn", file=sys.stderr)
        return 2
    items = read_split(args.split)
    budget = strong_cost(items) / 3
    datasets = sorted({i.dataset for i in items})
    per_dataset = {}
    fixed_cost = fixed_right = 0.0
    for dataset in datasets:
        subset = [i for i in items if i.dataset == dataset]
        if not multiple_choice(subset):
            fixed_cost += sum(i.cost.get(CODE_MODEL, 0.0) for i in subset)
            fixed_right += sum(i.correct.get(CODE_MODEL, 0.0) for i in subset)
            print(f"{dataset}: {CODE_MODEL} for all, {fixed_right:.0f} right of {len(subset)}")
            continue
        per_dataset[dataset] = curves(subset, PAIR, args.folds)
        print(f"{dataset} ({len(subset)} prompts; right answers after N escalations, cost):")
        for name, curve in per_dataset[dataset].items():
            row = ", ".join(f"{n}: {curve[n][1]:.0f} (${curve[n][0]:.2f})" for n in STEPS if n < len(curve))
            print(f"  {name:<24} {row}")
    for name in ("agreement", "agreement + prompt text"):
        best = _best_within(budget - fixed_cost, [per_dataset[d][name] for d in per_dataset])
        total = fixed_right + best[1]
        print(f"best within ${budget:.2f}, {name}: {total:.0f} right of {len(items)} "
              f"({total / len(items):.3f}) for ${fixed_cost + best[0]:.2f}")
    return 0


def _best_within(budget: float, curves_: list[list[tuple[float, float]]]) -> tuple[float, float]:
    """The most right answers over one point of each curve with their costs summed within budget."""
    best = {0.0: 0.0}  # cost -> right, as a frontier over the curves combined so far
    for curve in curves_:
        merged: dict[float, float] = {}
        for cost, right in best.items():
            for c, r in curve:
                if cost + c <= budget and r + right > merged.get(round(cost + c, 4), -1):
                    merged[round(cost + c, 4)] = r + right
        frontier, top = {}, -1.0
        for cost in sorted(merged):
            if merged[cost] > top:
                frontier[cost], top = merged[cost], merged[cost]
        best = frontier
    cost = max(best, key=lambda c: (best[c], -c))
    return cost, best[cost]


if __name__ == "__main__":
    sys.exit(main())
