"""The plan's worst case bounds what a run spends: runs of many task forms on the sim provider,
with most calls failing (so the runtime retries, walks fallback chains, re-asks judges, escalates
and runs quality rounds), never spend more dollars or tokens, nor make more calls (the journal's
call rows), than the plan's worst case, per task and in all. docs/planning.md, *The worst case*.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict

import pytest
from runtime_support import plan_source, run_plan, sim_factory

from bmad.runtime.interpreter import RunConfig

# Every form whose calls the worst case counts, on runtime_support's catalog (cheap, mid, strong
# on three sim providers): fallback chains, written fallbacks, `retry N`, quality gates with
# refine / retry / escalate / fail, route cascades, consensus forms (vote with a quorum,
# judge, ensemble, peer review, best_of) with their gates, enum and JSON answers (a repair
# round-trip each), a fan-out, a reduce tree and a called workflow.
FORMS = """
workflow sub {
  input text: text
  task check { prompt "Check: {{ text }}" max_tokens 60 quality >= 0.7 judged by strong else retry 1 }
  output check
}
workflow w {
  input items: list<text> = ["alpha", "beta", "gamma"]
  task plain { prompt "Write a haiku about the sea." max_tokens 80 }
  task pinned { prompt "Name a colour." model cheap fallback [mid] max_tokens 40 }
  task retried { prompt "Say yes." model mid max_tokens 30 retry 1 backoff fixed 0s to 0s }
  task labelled { prompt "Is the sky blue?" returns enum(YES, NO) max_tokens 20 }
  task shaped {
    prompt "Give a name and an age."
    returns json { "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] }
    max_tokens 60
  }
  task refined { prompt "Draft a slogan." model cheap max_tokens 50 quality >= 0.9 judged by strong else refine max 2 }
  task again { prompt "Pick a number." max_tokens 20 quality >= 0.95 else retry 2 }
  task climbed { prompt "Prove it." needs reasoning max_tokens 60 quality >= 0.9 else escalate }
  task laddered { prompt "Summarize {{ plain }}" route cascade [cheap, mid, strong] max_tokens 60 quality >= 0.8 else escalate }
  task voted {
    prompt "Approve?" returns enum(YES, NO) max_tokens 10
    consensus vote among [cheap, mid, strong] quorum 3
    fallback [strong]
  }
  task voted_again { prompt "A or B?" returns enum(A, B) consensus vote among [cheap, mid] quality >= 0.99 else retry 2 }
  task voted_refined { prompt "Why?" max_tokens 40 consensus similarity among [cheap, mid] quality >= 0.99 else refine max 1 }
  task judged { prompt "Best title?" max_tokens 30 consensus judge strong among [cheap, mid] quality >= 0.9 judged by strong else fail }
  task merged { prompt "Merge views." max_tokens 40 consensus ensemble by strong among [cheap, mid] }
  task reviewed { prompt "Review this." max_tokens 40 peer_review among [cheap, mid] rounds 1 }
  task best { prompt "Best line?" max_tokens 30 best_of 2 judged by mid }
  task each for each it in items { prompt "Shorten: {{ it }}" max_tokens 30 }
  task summed { prompt "Sum up {{ each }}" reduce each in chunks of 2 max_tokens 40 }
  task called for each it in items = sub(text: it)
  output plain
  output pinned
  output retried
  output labelled
  output shaped
  output refined
  output again
  output climbed
  output laddered
  output voted
  output voted_again
  output voted_refined
  output judged
  output merged
  output reviewed
  output best
  output summed
  output called
}
"""

SEQUENTIAL = """
workflow s {
  strategy sequential
  task a { prompt "one" max_tokens 40 fallback [cheap] }
  task b { prompt "two {{ a }}" max_tokens 40 quality >= 0.9 else escalate }
  task c { prompt "three" max_tokens 40 consensus vote among 2 models }
  output b
  output c
}
"""

ADAPTIVE = """
workflow a {
  strategy adaptive
  task x { prompt "one" model strong max_tokens 40 }
  task y { prompt "two {{ x }}" max_tokens 40 quality >= 0.9 else escalate }
  output y
}
"""


def spent(journal, run_id: str) -> tuple[dict[str, list[float]], tuple[float, int, int]]:
    """Per top-level task: [dollars, tokens, call rows]; and the run's totals."""
    db = sqlite3.connect(journal)
    try:
        per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0])
        for task_id, cost, tokens_in, tokens_out in db.execute(
                "SELECT task_id, cost_usd, input_tokens, output_tokens FROM calls WHERE run_id = ?",
                (run_id,)):
            top = task_id.split("/")[0].split("[")[0]
            row = per[top]
            row[0] += cost or 0.0
            row[1] += (tokens_in or 0) + (tokens_out or 0)
            row[2] += 1
        usd, tokens = db.execute("SELECT spent_usd, tokens FROM runs WHERE id = ?", (run_id,)).fetchone()
    finally:
        db.close()
    return per, (usd, tokens, sum(row[2] for row in per.values()))


def assert_within_the_worst_case(plan, journal, run_id: str, what: str) -> None:
    per, (usd, tokens, calls) = spent(journal, run_id)
    by_id = {t.id: t.estimate for t in plan.tasks}
    for task, (task_usd, task_tokens, task_calls) in per.items():
        worst = by_id[task]
        assert worst.cost_usd_worst is not None, task
        assert task_usd <= worst.cost_usd_worst + 1e-9, (what, task, task_usd, worst)
        assert task_tokens <= worst.tokens_worst, (what, task, task_tokens, worst)
        assert task_calls <= worst.calls_worst, (what, task, task_calls, worst)
    totals = plan.totals
    assert usd <= totals.cost_usd_worst + 1e-9, (what, usd, totals)
    assert tokens <= totals.tokens_worst, (what, tokens, totals)
    assert calls <= totals.calls_worst, (what, calls, totals)


def run_id_of(journal) -> list[str]:
    db = sqlite3.connect(journal)
    try:
        return [r for (r,) in db.execute("SELECT id FROM runs ORDER BY started_at")]
    finally:
        db.close()


def _sweep(*cases):
    """The first case runs by default; the rest of the sweep with the slow suites (CI runs both)."""
    first, *rest = cases
    return [first, *(pytest.param(*c, marks=pytest.mark.slow) for c in rest)]


@pytest.mark.parametrize("seed, failure_rate", _sweep((1, 0.7), (1, 0.0), (1, 0.4), (2, 0.4), (2, 0.7), (3, 0.9)))
def test_a_run_spends_no_more_than_the_plans_worst_case(tmp_path, seed, failure_rate):
    plan = plan_source(tmp_path, FORMS)
    outcome, _rec = run_plan(plan, tmp_path, config=RunConfig(seed=seed),
                             factory=sim_factory(plan, seed=seed, failure_rate=failure_rate,
                                                 failure_kinds=("transient", "rate_limited", "timeout")))
    [run_id] = run_id_of(tmp_path / "runs.db")
    assert_within_the_worst_case(plan, tmp_path / "runs.db", run_id, f"seed {seed}, failures {failure_rate}")


@pytest.mark.parametrize("source", [SEQUENTIAL, ADAPTIVE], ids=["sequential", "adaptive"])
@pytest.mark.parametrize("seed", [1, *(pytest.param(s, marks=pytest.mark.slow) for s in (2, 3, 4))])
def test_the_bound_holds_whatever_the_strategy(tmp_path, source, seed):
    plan = plan_source(tmp_path, source)
    run_plan(plan, tmp_path, factory=sim_factory(plan, seed=seed, failure_rate=0.6))
    [run_id] = run_id_of(tmp_path / "runs.db")
    assert_within_the_worst_case(plan, tmp_path / "runs.db", run_id, f"seed {seed}")


def test_a_chain_that_fails_through_is_counted_whole(tmp_path):
    """Every call fails: each model of the chain is tried as often as the runtime tries it, and
    the plan counted each of those calls."""
    plan = plan_source(tmp_path, """
workflow w {
  task a { prompt "Write a haiku about the sea." model cheap fallback [mid] max_tokens 50 }
  output a
}
""")
    run_plan(plan, tmp_path, factory=sim_factory(plan, seed=1, failure_rate=1.0))
    [run_id] = run_id_of(tmp_path / "runs.db")
    per, _totals = spent(tmp_path / "runs.db", run_id)
    chain = (plan.tasks[0].model, *plan.tasks[0].fallbacks)
    assert per["a"][2] == 3 * len(chain)  # 3 tries a model (the runtime's default)
    assert plan.tasks[0].estimate.calls_worst == 3 * len(chain)


def test_a_budget_the_plan_says_fits_is_not_exhausted_by_failures(tmp_path):
    """With the budget at the plan's worst case, a run whose calls mostly fail walks its chains
    and retries within the budget: it never ends `budget_exhausted`."""
    # the QA repro (fb.bmad): a cheap pinned model whose fallback costs more; the plan that
    # counted one try of the cheap model said a budget of that fitted, and the fallback's call
    # was then refused (`budget_exhausted`)
    plan = plan_source(tmp_path, """
workflow w {
  task a { prompt "Write a haiku about the sea." model cheap fallback [strong] max_tokens 200 }
  output a
}
""")
    worst = plan.totals.cost_usd_worst
    statuses = []
    for seed in range(1, 9):
        outcome, _rec = run_plan(plan, tmp_path / str(seed), budget_usd=worst,
                                 factory=sim_factory(plan, seed=seed, failure_rate=0.8))
        assert outcome.status != "budget_exhausted", (seed, outcome.status, outcome.spent_usd, worst)
        assert outcome.spent_usd <= worst
        statuses.append(outcome.status)
    assert "completed" in statuses
