"""Routing on RouterBench, done by bmad: runs the workflows of bench/routing/ over a split through
the replay provider, scores the answers afterwards against the recorded correctness, and prints
accuracy, cost, cost relative to always-gpt-4 and escalation rate per dataset and overall, beside
the single-model baselines and the oracle, plus the cost-quality curve's AIQ and APGR.

    python bench/routing/run.py --split PATH_OR_DIR [--train PATH_OR_DIR] [--journal DIR]

Learning: `explore.bmad` runs on (a sample of) the training data and journals each cheap model's
agreement with the decision; that journal's history plans the routed workflows. With no `--train`
(or the same data), history comes from cross-validation: for each of `--folds` folds, explore on
the other folds and evaluate on the held-out one.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bmad.bench.routing.ceiling import render as render_ceiling
from bmad.bench.routing.harness import HERE, BenchError, history_from, run_workflow
from bmad.bench.routing.report import Report
from bmad.bench.routing.split import Item, read_split

ROUTED = ("best_single", "midtier_escalate", "vote2_escalate", "vote3_escalate",
          "learned_escalate")
MAIN = "vote2_escalate"
# Workflows whose bars are learned: their learning run (on the training sample, with the explored
# history) escalates every decision and journals whether the cheap decision matched the escalation.
CALIBRATED = ("learned_escalate",)


def stratified_folds(items: list[Item], k: int, seed: int) -> list[list[Item]]:
    """k folds, each with its share of every dataset."""
    rng = random.Random(seed)
    by_dataset: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_dataset[item.dataset].append(item)
    folds: list[list[Item]] = [[] for _ in range(k)]
    for name in sorted(by_dataset):
        group = by_dataset[name][:]
        rng.shuffle(group)
        for i, item in enumerate(group):
            folds[i % k].append(item)
    return folds


def sample(items: list[Item], size: int, seed: int) -> list[Item]:
    if size <= 0 or size >= len(items):
        return list(items)
    return random.Random(seed).sample(items, size)


def limit_items(items: list[Item], per_dataset: int | None) -> list[Item]:
    if not per_dataset:
        return items
    seen: dict[str, int] = defaultdict(int)
    out = []
    for item in items:
        if seen[item.dataset] < per_dataset:
            seen[item.dataset] += 1
            out.append(item)
    return out


def learn(train: list[Item], data: Path, journal: Path, size: int, seed: int):
    """Explore on a sample of `train`; the journal's history (None if it measured nothing)."""
    explored = sample(train, size, seed)
    run_workflow(HERE / "explore.bmad", explored, data, journal)
    routed_by = history_from(journal)
    for name in CALIBRATED:
        run_workflow(HERE / f"{name}.bmad", explored, data, journal, history=routed_by)
    return history_from(journal), len(explored)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", type=Path, required=True,
                        help="the data to evaluate on: a RouterBench CSV or a folder of them")
    parser.add_argument("--train", type=Path, default=None,
                        help="the data history is learned from (default: cross-validate on --split)")
    parser.add_argument("--journal", type=Path, default=None,
                        help="folder for the run journals (default: a temporary folder)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--explore", type=int, default=300,
                        help="prompts the exploration run answers per learning step (default 300)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first N prompts of each dataset (quick checks)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    for path in (args.split, args.train):
        if path is not None and not path.exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
    started = time.time()
    items = limit_items(read_split(args.split), args.limit)
    if not items:
        print(f"error: no prompts in {args.split}", file=sys.stderr)
        return 2
    journal_dir = args.journal or Path(tempfile.mkdtemp(prefix="bmad-routerbench-"))
    journal_dir.mkdir(parents=True, exist_ok=True)
    report = Report(items)
    try:
        # 1. No history: the router knows only the catalog's neutral prior.
        for name in ROUTED:
            run = run_workflow(HERE / f"{name}.bmad", items, args.split,
                               journal_dir / f"{name}-no-history.db")
            report.add_run(f"{name} (no history)", run, notes=_chosen(run))
        # 2. History: learned on --train, or cross-validated on the split.
        if args.train is not None and args.train.resolve() != args.split.resolve():
            train = limit_items(read_split(args.train), args.limit)
            history, explored = learn(train, args.train, journal_dir / "explore.db",
                                      args.explore, args.seed)
            report.exploration.append((explored, _explore_cost(journal_dir / "explore.db")))
            for name in ROUTED:
                run = run_workflow(HERE / f"{name}.bmad", items, args.split,
                                   journal_dir / f"{name}-history.db", history=history)
                report.add_run(f"{name} (history from --train)", run, notes=_chosen(run))
            label = "history from --train"
        else:
            folds = stratified_folds(items, max(2, args.folds), args.seed)
            for k, fold in enumerate(folds):
                rest = [item for j, f in enumerate(folds) if j != k for item in f]
                explore_db = journal_dir / f"explore-fold{k}.db"
                history, explored = learn(rest, args.split, explore_db, args.explore,
                                          args.seed + k)
                report.exploration.append((explored, _explore_cost(explore_db)))
                for name in ROUTED:
                    run = run_workflow(HERE / f"{name}.bmad", fold, args.split,
                                       journal_dir / f"{name}-fold{k}.db", history=history)
                    report.add_run(f"{name} ({len(folds)}-fold CV history)", run,
                                   notes=_chosen(run), fold=k)
            label = f"{len(folds)}-fold CV history"
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.render(main=f"{MAIN} ({label})", curve_label=label,
                        curve_workflows=ROUTED, elapsed=time.time() - started,
                        journals=journal_dir))
    # What any rule deciding from the same agreement signals could reach (hindsight, like the
    # oracle): where the rest of the gap lies.
    print()
    print("\n".join(render_ceiling(items)))
    return 0


def _chosen(run) -> str:
    return "; ".join(f"{task.removesuffix('_answer')}: {'+'.join(models)}"
                     for task, models in sorted(run.participants.items()))


def _explore_cost(journal: Path) -> float:
    from bmad.runtime.journal import Journal

    j = Journal(journal, readonly=True)
    try:
        return j.db.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM calls").fetchone()[0]
    finally:
        j.db.close()


if __name__ == "__main__":
    sys.exit(main())
