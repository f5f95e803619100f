"""A run whose calls went to a model without a price didn't spend "$0": the run's summary, `bmad show`,
the text report and `bmad runs` say how many calls have no price (language.md: an unpriced model is
never counted as free). A real run on the sim provider and a real journal."""

from __future__ import annotations

import sqlite3

from bmad.cli.run_cmd import _print_runs, _print_show
from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.export import export_run
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.journal import Journal
from bmad.runtime.ledger import spent_text
from bmad.runtime.report_text import render_run_text
from bmad.runtime.run_report import build_run_report

from runtime_support import plan_source

UNPRICED = """
provider p { kind sim }
model free { provider p price input $0 output $0 per 1M skills { writing 0.7 } }
model unpriced { provider p skills { writing 0.7 } }
"""
WORKFLOW = """
workflow w {
  task a { prompt "hi" model unpriced max_tokens 20 }
  task b { prompt "more on {{ a }}" model unpriced max_tokens 20 }
  task c { prompt "and {{ b }}" model free max_tokens 20 }
  output c
}
"""


def test_spent_text_counts_the_calls_without_a_price():
    assert spent_text(0.0) == "$0.000000"
    assert spent_text(0.25, 1) == "$0.250000 and 1 call of unknown price"
    assert spent_text(None, 3) == "$0.000000 and 3 calls of unknown price"


def test_every_summary_of_a_run_names_its_unpriced_calls(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    plan = plan_source(tmp_path, WORKFLOW, catalog=UNPRICED)
    journal_path = tmp_path / "runs.db"
    outcome = execute_plan(plan, RunRequest(config=RunConfig(), journal_path=journal_path,
                                            provider_mode="sim", sim_latency_scale=0.0))
    assert outcome.status == "completed", outcome.error
    assert (outcome.spent_usd, outcome.unknown_cost_calls) == (0.0, 2)  # `free` is priced at $0

    journal = Journal(journal_path, readonly=True)
    try:
        data = export_run(journal, outcome.run_id)
        report = build_run_report(journal, outcome.run_id)
        rows = journal.runs()
    finally:
        journal.db.close()
    assert data["run"]["unknown_cost_calls"] == 2
    assert "spent $0.000000 and 2 calls of unknown price" in render_run_text(report)
    _print_show(data)
    assert "spent $0.000000 and 2 calls of unknown price" in capsys.readouterr().out
    _print_runs(rows)
    assert "$0.0000+?" in capsys.readouterr().out

    with sqlite3.connect(journal_path) as db:  # a run whose every call was priced shows no mark
        db.execute("UPDATE runs SET unknown_cost_calls = 0")
    journal = Journal(journal_path, readonly=True)
    try:
        _print_runs(journal.runs())
        assert "+?" not in capsys.readouterr().out
        assert "unknown price" not in render_run_text(build_run_report(journal, outcome.run_id))
    finally:
        journal.db.close()
