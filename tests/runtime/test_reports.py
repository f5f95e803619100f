"""Run reports (HTML, detailed text), metrics across runs, stored-result consensus and the monitor's
alert rules, against real journals written by real sim runs."""

from __future__ import annotations

import json
import re
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from report_workflow import HOSTILE, plan_report_workflow, run_report_workflow  # noqa: E402

from bmad.cli.run_export import render_export  # noqa: E402
from bmad.compiler.plan_html import render_plan_html  # noqa: E402
from bmad.runtime.export import export_run  # noqa: E402
from bmad.runtime.journal import Journal  # noqa: E402
from bmad.runtime.metrics import collect_metrics, percentile  # noqa: E402
from bmad.runtime.monitor import (AlertRules, AlertTracker, PlanCache, active_run_rows, evaluate_alerts,  # noqa: E402
                                  snapshot_run)
from bmad.runtime.report_html import render_run_html  # noqa: E402
from bmad.runtime.report_text import render_run_text  # noqa: E402
from bmad.runtime.run_report import build_run_report  # noqa: E402
from bmad.runtime.stored_results import (ResultNotFound, combine_outputs, decide_stored, latest_runs,  # noqa: E402
                                         resolve_result, resolve_results)

SECTION_IDS = ("summary", "inputs", "outputs", "timeline", "gantt", "costs", "cost-by-task", "cost-by-model",
               "routing", "reroutes", "retries", "escalations", "consensus", "quality", "tasks")


class _Elements(HTMLParser):
    """Collects element ids, tags and attribute values (the page must parse as HTML)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            self.attrs.append((tag, k, v or ""))
            if k == "id":
                self.ids.add(v)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports")
    journal = tmp / "runs.db"
    outcomes = [run_report_workflow(tmp, journal, seed=seed, failure_rate=0.3) for seed in (1, 2, 3)]
    assert all(o.status == "completed" for o in outcomes)
    return journal, [o.run_id for o in outcomes]


@pytest.fixture
def journal(runs):
    j = Journal(runs[0], readonly=True)
    yield j
    j.db.close()


def test_report_keeps_the_export_fields_and_adds_the_report(journal, runs):
    run_id = runs[1][0]
    report = build_run_report(journal, run_id)
    assert {k: v for k, v in report.items() if k != "report"} == export_run(journal, run_id)
    extra = report["report"]
    assert [t["task"] for t in extra["timeline"]["tasks"]] == ["draft", "verdict"]
    assert all(c["start"] <= c["end"] for c in extra["timeline"]["calls"])
    spent = sum(c["cost_usd"] for c in report["calls"] if not c["cached"] and c["cost_usd"] is not None)
    assert sum(g["cost_usd"] for g in extra["cost_by_model"]) == pytest.approx(spent)
    assert sum(g["cost_usd"] for g in extra["cost_by_task"]) == pytest.approx(spent)
    verdict = next(c for c in extra["consensus"] if c["task"] == "verdict")
    assert verdict["method"] == "vote"
    assert {v["model"] for v in verdict["votes"]} <= {"gpt-4o", "claude-sonnet", "gpt-4o-mini"}
    assert verdict["winner"] in {v["model"] for v in verdict["votes"]}
    routing = {r["task"]: r for r in extra["routing"]}
    assert routing["draft"]["rule"] == "pinned" and routing["draft"]["answered_by"] == ["gpt-4o-mini"]
    assert routing["verdict"]["planned"] == ["gpt-4o", "claude-sonnet", "gpt-4o-mini"]
    draft_quality = next(q for q in extra["quality"] if q["task"] == "draft")
    assert draft_quality["floor"] == 0.5 and draft_quality["judges"]


def test_html_report_is_self_contained_escaped_and_complete(journal, runs):
    report = build_run_report(journal, runs[1][0])
    page = render_run_html(report)
    parsed = _Elements()
    parsed.feed(page)
    assert set(SECTION_IDS) <= parsed.ids
    # Model text and inputs are escaped: the hostile input shows as text, never as markup.
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert not any(tag == "img" for tag in parsed.tags)
    # Nothing is loaded from anywhere: no src/href to a URL, no stylesheet links, no scripts.
    for tag, name, value in parsed.attrs:
        if name in ("src", "href"):
            assert not re.match(r"(?i)\s*(https?:|//)", value), (tag, name, value)
    assert "<link" not in page and "@import" not in page
    # Every retry the journal recorded appears in the retries table.
    retries = report["report"]["retries"]
    assert retries, "the seeded failures should have caused at least one retry"
    section = page[page.index('id="retries"'):page.index('id="escalations"')]
    for r in retries:
        assert f"<td>{r['task']}</td>" in section


def test_detailed_text_and_yaml_exports(journal, runs):
    run_id = runs[1][0]
    text = render_run_text(build_run_report(journal, run_id))
    for heading in ("Inputs", "Outputs", "Timeline", "Cost by task", "Cost by model", "Routing decisions",
                    "Retries", "Escalations", "Consensus votes", "Quality scores"):
        assert heading in text
    assert HOSTILE in text  # literal in a terminal (rich markup escaped, not interpreted)
    as_yaml = yaml.safe_load(render_export(journal, run_id, "yaml"))
    as_json = json.loads(render_export(journal, run_id, "json"))
    assert as_yaml == as_json
    assert render_export(journal, "no-such-run", "html") is None


def test_plan_html_draws_graph_and_cost_table(tmp_path):
    plan = plan_report_workflow(tmp_path)
    page = render_plan_html(plan)
    parsed = _Elements()
    parsed.feed(page)
    assert {"plan-graph", "cost-table", "totals", "notes", "node-draft", "node-verdict"} <= parsed.ids
    assert page.count('class="edge"') == 1  # verdict depends on draft
    assert "<script" not in page.lower()


def test_metrics_per_model_and_task(journal, runs):
    m = collect_metrics(journal)
    assert set(m.runs) == set(runs[1])
    models = {f.name: f for f in m.models}
    assert models["gpt-4o-mini"].count > 0
    calls = journal.db.execute("SELECT COUNT(*), SUM(status != 'ok') FROM calls WHERE model='gpt-4o-mini' "
                               "AND cached=0").fetchone()
    assert models["gpt-4o-mini"].count == calls[0]
    assert models["gpt-4o-mini"].failure_rate == pytest.approx(calls[1] / calls[0])
    tasks = {f.name: f for f in m.tasks}
    assert tasks["draft"].count == 3 and tasks["draft"].workflow == "report_demo"
    assert tasks["draft"].quality is not None
    assert tasks["draft"].quality_per_usd == pytest.approx(tasks["draft"].quality / tasks["draft"].mean_cost_usd)
    assert collect_metrics(journal, last=1).runs == [runs[1][-1]]
    assert collect_metrics(journal, workflow="other").models == []


def test_percentile_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == 95.0


def test_stored_results_consensus_and_ensemble(journal, runs):
    ids = runs[1]
    results = resolve_results(journal, ids)
    assert [r.id for r in results] == ids
    assert all(set(r.outputs) == {"draft", "verdict"} for r in results)
    outcome = decide_stored(results, "weighted")
    assert outcome.model in ids
    per_task = resolve_results(journal, [f"{i}:verdict" for i in ids])
    assert {r.value for r in per_task} <= {"YES", "NO"}
    vote = decide_stored(per_task, "vote")
    assert vote.value in {"YES", "NO"}
    assert decide_stored(per_task, "similarity").model in {r.id for r in per_task}
    combined = {c.name: c for c in combine_outputs(results)}
    assert combined["verdict"].method == "weighted vote"
    assert combined["draft"].method.startswith("medoid")
    assert [r.id for r in latest_runs(journal, None, 2)] == list(reversed(ids))[:2]
    with pytest.raises(ResultNotFound):
        resolve_result(journal, "nope")
    with pytest.raises(ResultNotFound, match="no task `missing`"):
        resolve_result(journal, f"{ids[0]}:missing")


def test_monitor_alerts_on_budget_failures_and_stalls(tmp_path):
    """A run still `running` in a real journal (this process is its live pid)."""
    plan = plan_report_workflow(tmp_path)
    j = Journal(tmp_path / "runs.db")
    now = time.time()
    j.store_plan(plan.plan_hash, plan.dumps())
    j.create_run("r1", workflow="report_demo", plan_hash=plan.plan_hash, plan_json=None,
                 inputs={}, budget=(1.0, None, None), total_tasks=2, source=None, options={})
    for i in range(4):
        j.add_call("r1", "draft", f"m{i}/", "gpt-4o-mini", f"h{i}", "error" if i < 3 else "ok", cost_usd=0.2)
    j.update_run_progress("r1", 0.85, 100, 0, 1.0, 0)
    j.flush()
    j.db.execute("UPDATE runs SET started_at=?, updated_at=? WHERE id='r1'", (now - 50, now - 1))
    rows = active_run_rows(j)
    assert [r["id"] for r in rows] == ["r1"]
    rules = AlertRules(stall_after_s=30.0)
    snap = snapshot_run(j, rows[0], rules, now, PlanCache())
    assert [t.task for t in snap.running] == ["draft"]  # verdict waits for draft
    kinds = {a.kind: a for a in evaluate_alerts(snap, rules, now)}
    assert set(kinds) == {"budget", "failure_rate", "stalled_task"}
    assert kinds["budget"].value == pytest.approx(0.85)
    assert kinds["failure_rate"].value == pytest.approx(0.75)
    assert kinds["stalled_task"].task == "draft"
    tracker = AlertTracker()
    assert len(tracker.new(list(kinds.values()))) == 3
    assert tracker.new(evaluate_alerts(snap, rules, now)) == []  # each fires once
    # Below every threshold: no alert.
    quiet = AlertRules(budget_fraction=0.9, failure_rate=0.9, stall_after_s=100.0)
    assert evaluate_alerts(snap, quiet, now) == []
    j.db.close()
