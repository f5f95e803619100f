"""While a long `for each` task runs, the run's row shows what it has spent so far (for `bmad runs`,
`workflow status` and the monitor's budget alerts), as its items finish: it read $0 until the whole
task ended, and forever after a crash mid-task. A real run on the sim provider; the journal is read
from another SQLite connection while calls are in flight, as those commands read it."""

from __future__ import annotations

import sqlite3

from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.interpreter import RunConfig

from runtime_support import plan_source, sim_factory

WORKFLOW = """
workflow fan {
  input items: list<text>
  task per for each x in items {
    prompt "Summarise {{ x }}."
    model cheap
    max_tokens 30
  }
  output per
}
"""


def test_the_runs_row_shows_the_spend_of_finished_items_before_the_task_ends(tmp_path):
    plan = plan_source(tmp_path, WORKFLOW)
    journal = tmp_path / "runs.db"
    inner = sim_factory(plan)
    seen: list[float] = []

    class Watching:
        """The sim provider; at its 40th call, reads the run's row as `bmad runs` would."""

        def __init__(self, provider):
            self.provider, self.name = provider, provider.name

        async def complete(self, request, on_progress=None):
            seen.append(-1.0)
            if len(seen) == 40:
                with sqlite3.connect(journal) as db:
                    seen[-1] = db.execute("SELECT spent_usd FROM runs").fetchone()[0]
            return await self.provider.complete(request)

        async def aclose(self):
            await self.provider.aclose()

    outcome = execute_plan(plan, RunRequest(
        inputs={"items": [f"document {i}" for i in range(60)]}, config=RunConfig(concurrency=4),
        journal_path=journal, provider_factory=lambda decl: Watching(inner(decl))))
    assert outcome.status == "completed", outcome.error
    assert len(seen) == 60
    assert seen[39] > 0  # ~36 items had finished and been paid for
    assert seen[39] < outcome.spent_usd
