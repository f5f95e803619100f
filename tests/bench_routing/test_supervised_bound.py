"""The supervised bound (bench/routing/supervised_bound.py): its budget search on made-up curves,
and the script itself on a slice of the real data (a subprocess, as it is run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bmad.bench.routing.supervised_bound import best_within, question

from .test_runner import needs_data, tiny_split

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "routing" / "supervised_bound.py"


def test_the_budget_search_takes_one_point_of_each_curve():
    arc = [(1.0, 10.0), (2.0, 14.0), (4.0, 15.0)]
    wino = [(1.0, 5.0), (1.5, 9.0), (3.0, 10.0)]
    assert best_within(3.5, [arc, wino]) == (3.5, 23.0)  # 2.0 + 1.5
    assert best_within(2.0, [arc, wino]) == (2.0, 15.0)
    assert best_within(100, [arc, wino]) == (7.0, 25.0)


def test_the_question_is_the_prompts_last_block():
    assert question("Q1\nA) x\nAnswer:\nA\n\nQ2\nA) y\nAnswer:") == "Q2\nA) y\nAnswer:"


@needs_data
def test_the_script_prints_both_bounds(tmp_path):
    pytest.importorskip("sklearn")
    split = tiny_split(tmp_path, per_file=40)
    done = subprocess.run([sys.executable, str(SCRIPT), "--split", str(split), "--folds", "2",
                           "--max-voters", "3"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "letters + prompt text" in done.stdout
    assert done.stdout.count("best total") == 2
    assert "best of 15 panels of 2" in done.stdout and "best of 20 panels of 3" in done.stdout
