"""The RouterBench runner on a tiny slice of the real data (a subprocess, as users run it), and
its scoring: answers, baselines, the oracle, the curve metrics."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from bmad.bench.routing.scoring import (aiq, answer_correct, apgr, model_correct, oracle,
                                        recorded_accuracy, single_model, upper_hull)
from bmad.bench.routing.split import Item, read_split

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "routerbench"
RUNNER = Path(__file__).resolve().parents[2] / "bench" / "routing" / "run.py"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="RouterBench data not present")


def tiny_split(tmp_path: Path, per_file: int = 6) -> Path:
    """The first rows of each RouterBench file, as a split folder of the same layout."""
    csv.field_size_limit(10**9)
    out = tmp_path / "split"
    out.mkdir()
    for source in sorted(DATA.glob("*.csv")):
        with source.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [row for _, row in zip(range(per_file), reader)]
            fields = reader.fieldnames
        with (out / source.name).open("w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    return out


@needs_data
def test_runner_prints_the_table_on_a_tiny_split(tmp_path):
    split = tiny_split(tmp_path)
    result = subprocess.run(
        [sys.executable, str(RUNNER), "--split", str(split), "--journal", str(tmp_path / "j"),
         "--folds", "2", "--explore", "8"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "18 prompts (arc-challenge 6, winogrande 6, mbpp 6)" in out
    for line in ("always gpt-4-1106-preview", "oracle (cheapest correct, hindsight)",
                 "vote2_escalate (no history)", "vote2_escalate (2-fold CV history)",
                 "AIQ (RouterBench)", "APGR (RouteLLM", "where the gap to the oracle lies",
                 "midtier_escalate (2-fold CV history)", "ceiling of agreement-based routing"):
        assert line in out, line
    assert sorted(p.name for p in (tmp_path / "j").glob("explore-fold*.db")) == \
        ["explore-fold0.db", "explore-fold1.db"]


@needs_data
def test_runner_learns_from_a_separate_train_split(tmp_path):
    split = tiny_split(tmp_path, per_file=3)
    result = subprocess.run(
        [sys.executable, str(RUNNER), "--split", str(split), "--train", str(DATA),
         "--journal", str(tmp_path / "j"), "--explore", "12"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "vote2_escalate (history from --train)" in result.stdout


def test_runner_refuses_a_missing_split(tmp_path):
    result = subprocess.run([sys.executable, str(RUNNER), "--split", str(tmp_path / "nope")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def item(dataset: str, answers: dict[str, str], correct: dict[str, float],
         cost: dict[str, float] | None = None) -> Item:
    return Item("x", dataset, "prompt", answers, cost or {m: 1.0 for m in answers}, correct)


def test_multiple_choice_answers_are_scored_by_letter():
    it = item("arc-challenge", {"a": "B", "b": "B)", "c": "C"}, {"a": 1.0, "b": 1.0, "c": 0.0})
    assert answer_correct(it, "B") == 1.0
    assert answer_correct(it, "C") == 0.0
    assert answer_correct(it, None) == 0.0


def test_code_answers_are_scored_by_the_model_that_wrote_them():
    it = item("mbpp", {"a": "def f(): pass", "b": "def g(): return 1"}, {"a": 0.0, "b": 1.0})
    assert answer_correct(it, "def g(): return 1") == 1.0
    assert answer_correct(it, "def f(): pass") == 0.0
    assert answer_correct(it, "something else") == 0.0


def test_single_models_are_scored_as_routers_are():
    # Every model named B, but the recorded column grades only "a" right: a router answering B
    # scores 1, so the single models must too, or the baselines would be graded more strictly.
    it = item("arc-challenge", {"a": "B", "strong": "B\n", "c": "C"},
              {"a": 1.0, "strong": 0.0, "c": 0.0}, {"a": 0.5, "strong": 2.0, "c": 0.1})
    assert model_correct(it, "strong") == 1.0
    assert model_correct(it, "c") == 0.0
    assert single_model([it], "strong").overall.correct == 1.0
    assert recorded_accuracy([it], "strong") == 0.0
    code = item("mbpp", {"a": "def f(): pass"}, {"a": 1.0})
    assert model_correct(code, "a") == 1.0


def test_oracle_takes_the_cheapest_correct_model():
    items = [item("mbpp", {"a": "x", "b": "y"}, {"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 0.1}),
             item("mbpp", {"a": "x", "b": "y"}, {"a": 0.0, "b": 0.0}, {"a": 0.5, "b": 0.1})]
    o = oracle(items).overall
    assert (o.correct, round(o.cost, 6)) == (1.0, 0.2)


def test_hull_and_aiq():
    assert upper_hull([(1, 0.5), (2, 0.8), (3, 0.7), (1.5, 0.55)]) == [(1, 0.5), (2, 0.8)]
    # 0 below the first point, the chord 0.5 -> 0.8 over [1, 2], flat 0.8 over [2, 3]
    assert aiq([(1, 0.5), (2, 0.8), (3, 0.7)], 0, 3) == pytest.approx((0.65 + 0.8) / 3)
    # A router that reaches the strong model's quality at the weak one's cost recovers the gap.
    assert apgr([(0.0, 0.9)], (0.0, 0.5), (1.0, 0.9)) == pytest.approx(1.0)
    # Only the two endpoints: the straight line between them, half the gap on average.
    assert apgr([(1.0, 0.9)], (0.0, 0.5), (1.0, 0.9)) == pytest.approx(0.5)


@needs_data
def test_the_split_reader_reads_every_prompt_and_model():
    items = read_split(DATA / "mbpp_train.csv")
    assert len(items) == 299 and all(len(i.answers) == 11 for i in items)
