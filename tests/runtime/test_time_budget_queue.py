"""A time budget is a hard cap for calls queued behind a concurrency limit too: a call waiting for a
slot when the time runs out never starts, and one that gets its slot late gets only the time left.
Before, a `for each` of 8 one-second calls on a provider with `concurrent 1` under `budget 2s` ran
every queued call after the cap and ended `completed` at ~4x the budget. A real run on the sim
provider with its latencies (scaled down) and a real journal."""

from __future__ import annotations

import sqlite3

from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.interpreter import RunConfig

from runtime_support import plan_source, sim_factory

QUEUED = """
provider one { kind sim limits { concurrent 1 } }
model m { provider one price input $1 output $2 per 1M latency 1s skills { writing 0.8 } }

workflow queued {
  budget 2s
  input docs: list<text> = ["a", "b", "c", "d", "e", "f", "g", "h"]
  task direct for each d in docs {
    prompt "Summarize {{ d }}"
    model m
    fallback none
    max_tokens 20
  }
  output direct
}
"""


def test_calls_queued_behind_a_concurrency_limit_stop_at_the_time_budget(tmp_path):
    plan = plan_source(tmp_path, QUEUED, catalog="")
    journal = tmp_path / "runs.db"
    outcome = execute_plan(plan, RunRequest(
        config=RunConfig(), journal_path=journal, provider_mode="sim",
        provider_factory=sim_factory(plan, latency_scale=0.5)))  # 0.5 s a call: 4 fit in 2 s
    assert outcome.status == "budget_exhausted", (outcome.status, outcome.error)
    assert "time budget exhausted" in outcome.error
    with sqlite3.connect(journal) as db:
        answered = db.execute("SELECT COUNT(*) FROM calls WHERE status = 'ok'").fetchone()[0]
        last = db.execute("SELECT MAX(c.created_at) - r.started_at FROM calls c JOIN runs r "
                          "ON r.id = c.run_id").fetchone()[0]
    assert answered <= 4  # the ones that fitted; none of the queued rest ran past the cap
    assert outcome.elapsed_s < 2.0 + 0.5  # the cap, plus at most a scheduling tick
    assert last is not None and last < 2.0 + 0.5  # no call was journaled long after the cap
