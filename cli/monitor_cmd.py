"""`bmad workflow monitor` (active runs, live, with alerts) and `bmad workflow metrics` (figures
across runs): both read the journal, from any process, while runs write it."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from bmad.cli.common import examples, fail_usage
from bmad.cli.workflow_cmd import workflow_app


def _journal(journal: Optional[Path], *, wait: bool = False):
    from bmad.runtime.journal import Journal, JournalError, JournalNotCreatedYet, default_journal_path

    path = journal if journal is not None else default_journal_path()
    if wait and not path.exists():
        return None, path
    try:
        return Journal(path, readonly=True), path
    except JournalError as exc:
        # A run creating the journal this instant leaves an empty database for a moment.
        if wait and isinstance(exc, JournalNotCreatedYet):
            return None, path
        raise fail_usage(str(exc), "runs are journaled where `bmad run` ran (or pass --journal PATH)")


@workflow_app.command("monitor", epilog=examples(
    ("bmad workflow monitor --real-time --alerts-enabled", "a live view of active runs, alerts printed"),
    ("bmad workflow monitor --alerts-enabled --webhook https://hooks.example/bmad",
     "also POST each alert as JSON to a webhook"),
    ("bmad workflow monitor --once", "print the active runs once and exit"),
    ("bmad workflow monitor --alerts-enabled --until-idle --interval 0.5", "watch until no run is active"),
))
def monitor(
    real_time: bool = typer.Option(True, "--real-time/--no-real-time",
                                   help="Refresh a live view (on a terminal); off: print changes as lines."),
    alerts_enabled: bool = typer.Option(False, "--alerts-enabled", help="Check the alert rules and report alerts."),
    webhook: Optional[str] = typer.Option(None, "--webhook", metavar="URL",
                                          help="POST each alert as JSON here (implies --alerts-enabled)."),
    once: bool = typer.Option(False, "--once", help="One snapshot (and its alerts), then exit."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, help="Seconds between polls of the journal."),
    until_idle: bool = typer.Option(False, "--until-idle",
                                    help="Exit once the active runs have finished (waits for a first one to start)."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=0.0, help="Stop after this long."),
    budget_alert: float = typer.Option(0.8, "--budget-alert", min=0.0, max=1.0,
                                       help="Alert when this share of a run's budget is spent."),
    failure_rate: float = typer.Option(0.25, "--failure-rate", min=0.0, max=1.0,
                                       help="Alert when this share of a run's recent calls failed."),
    failure_window: int = typer.Option(20, "--failure-window", min=1, help="How many recent calls count."),
    min_failures: int = typer.Option(3, "--min-failures", min=1, help="Failures needed before a failure-rate alert."),
    stall_after: float = typer.Option(120.0, "--stall-after", min=0.0,
                                      help="Seconds after which a task (beyond 3x its estimate) or a silent run is stalled."),
    as_json: bool = typer.Option(False, "--json", help="Print snapshots and alerts as JSON lines."),
    journal: Optional[Path] = typer.Option(None, "--journal", help="The journal file."),
) -> None:
    """Watch active runs from the journal; alert on budget, failure-rate spikes and stalled tasks."""
    from rich.console import Console
    from rich.live import Live

    from bmad.runtime.monitor import (AlertRules, AlertTracker, PlanCache, active_run_rows, ended_run_rows,
                                      evaluate_alerts, post_alert, render_view, snapshot_run)

    if webhook is not None:
        if not webhook.startswith(("http://", "https://")):
            raise fail_usage(f"--webhook {webhook}: not an http(s) URL", "e.g. --webhook https://hooks.example/bmad")
        alerts_enabled = True
    rules = AlertRules(budget_fraction=budget_alert, failure_rate=failure_rate, failure_window=failure_window,
                       min_failures=min_failures, stall_after_s=stall_after)
    tracker, plans = AlertTracker(), PlanCache()
    console, err = Console(file=sys.stdout, highlight=False), Console(stderr=True, highlight=False, soft_wrap=True)
    live_view = real_time and not once and not as_json and sys.stdout.isatty()
    recent: list = []
    last_lines: dict[str, str] = {}
    started = time.monotonic()
    started_wall = time.time()
    watched: set[str] = set()  # runs seen active: each gets a last line when it ends
    ended: set[str] = set()  # runs whose last line is printed

    def poll():
        """(the active runs, the runs that ended since the last poll), as snapshots."""
        j, _path = _journal(journal, wait=True)
        if j is None:
            return [], []
        try:
            now = time.time()
            snaps = [snapshot_run(j, row, rules, now, plans) for row in active_run_rows(j)]
            finals = [snapshot_run(j, row, rules, now, plans)
                      for row in ended_run_rows(j, watched, started_wall) if row["id"] not in ended]
        except sqlite3.OperationalError:
            return [], []  # a journal being created this instant: its tables aren't there yet
        finally:
            j.db.close()
        watched.update(s.id for s in snaps)
        ended.difference_update(s.id for s in snaps)  # resumed: it will end again
        watched.difference_update(s.id for s in finals)
        ended.update(s.id for s in finals)
        if alerts_enabled:
            for snap in snaps:
                for a in tracker.new(evaluate_alerts(snap, rules, now)):
                    recent.append(a)
                    report(a)
            for snap in finals:  # its last spend can cross the budget line; a run that ended is not stalled
                for a in tracker.new([a for a in evaluate_alerts(snap, rules, now)
                                      if a.kind not in ("stalled_task", "stalled_run")]):
                    recent.append(a)
                    report(a)
        return snaps, finals

    def report(a) -> None:
        if as_json:
            sys.stdout.write(json.dumps({"alert": a.as_json()}) + "\n")
            sys.stdout.flush()
        elif not live_view:
            err.print(f"ALERT {a.kind} {a.run_id}" + (f" {a.task}" if a.task else "") + f": {a.message}",
                      markup=False)
        if webhook is not None:
            problem = post_alert(webhook, a)
            if problem is not None:
                err.print(f"warning: the webhook did not take the alert: {problem}", markup=False)

    def print_changes(snaps) -> None:
        for s in snaps:
            gone = s.status == "running" and not s.alive  # ended without finishing: its process died
            if as_json:
                fields = {"run": s.id, "workflow": s.workflow, "status": s.status, "done": s.done_tasks,
                          "total": s.total_tasks, "spent_usd": round(s.spent_usd, 6),
                          "running": [t.task for t in s.running]}
                line = json.dumps(fields | ({"process_gone": True} if gone else {}))
            elif s.alive and s.status == "running":
                line = (f"{s.id} {s.workflow}: {s.done_tasks}/{s.total_tasks} tasks, spent ${s.spent_usd:.4f}, "
                        f"running {', '.join(t.task for t in s.running) or '-'}")
            else:
                status = "running (process gone)" if gone else s.status
                line = f"{s.id} {s.workflow}: {status}, {s.done_tasks}/{s.total_tasks} tasks, spent ${s.spent_usd:.4f}"
            if last_lines.get(s.id) != line:
                last_lines[s.id] = line
                sys.stdout.write(line + "\n")
                sys.stdout.flush()

    if once:
        snaps, _ended = poll()
        if as_json:
            print_changes(snaps)
        else:
            console.print(render_view(snaps, []))
        return

    seen = False

    def done(snaps, finals) -> bool:
        nonlocal seen
        seen = seen or bool(snaps) or bool(finals)
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return True
        return until_idle and seen and not snaps

    try:
        if live_view:
            with Live(render_view([], []), console=console, refresh_per_second=4) as live:
                while True:
                    snaps, finals = poll()
                    live.update(render_view(snaps, recent))
                    if done(snaps, finals):
                        break
                    time.sleep(interval)
        else:
            while True:
                snaps, finals = poll()
                print_changes(snaps + finals)  # a run that ended: its last line, with its final status
                if done(snaps, finals):
                    break
                time.sleep(interval)
    except KeyboardInterrupt:
        pass
    if not as_json:
        sys.stderr.write(f"monitor: {len(tracker.fired)} alert(s)\n")


@workflow_app.command("metrics", epilog=examples(
    ("bmad workflow metrics --execution-time --cost-efficiency", "per model and per task, across all runs"),
    ("bmad workflow metrics --workflow code_review --last 20 --by model", "one workflow's latest 20 runs"),
    ("bmad workflow metrics --json", "every figure as JSON"),
))
def metrics(
    execution_time: bool = typer.Option(False, "--execution-time", help="Latency p50/p95 and failure rate."),
    cost_efficiency: bool = typer.Option(False, "--cost-efficiency", help="Cost, quality and quality per dollar."),
    by: str = typer.Option("both", "--by", help="model, task or both."),
    workflow: Optional[str] = typer.Option(None, "--workflow", "-w", help="Only this workflow's runs."),
    last: Optional[int] = typer.Option(None, "--last", min=1, help="Only the latest N runs."),
    since_hours: Optional[float] = typer.Option(None, "--since-hours", min=0.0, help="Only runs started in the last N hours."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of tables."),
    journal: Optional[Path] = typer.Option(None, "--journal", help="The journal file."),
) -> None:
    """Measured figures across runs, per model and per task: latency, cost, failures, quality."""
    from rich.console import Console
    from rich.table import Table

    from bmad.runtime.metrics import collect_metrics

    if by not in ("model", "task", "both"):
        raise fail_usage(f"unknown --by `{by}`", "use model, task or both")
    j, path = _journal(journal, wait=True)
    if j is None:
        raise fail_usage(f"no runs yet ({path} does not exist)", "run a workflow first, or pass --journal PATH")
    try:
        m = collect_metrics(j, workflow=workflow, last=last,
                            since=time.time() - since_hours * 3600 if since_hours is not None else None)
    finally:
        j.db.close()
    if as_json:
        sys.stdout.write(json.dumps(m.as_json(), indent=2) + "\n")
    elif not m.runs:
        sys.stdout.write("no runs match\n")
    if not m.runs or as_json:
        if not m.runs:  # exit status 1: nothing matched (docs/cli.md)
            raise typer.Exit(1)
        return
    if not execution_time and not cost_efficiency:
        execution_time = cost_efficiency = True

    def fmt(v, kind):
        if v is None:
            return "-"
        return {"s": f"{v:.2f}s", "$": f"${v:.6f}", "%": f"{100 * v:.0f}%", "q": f"{v:.2f}", "q$": f"{v:,.0f}"}[kind]

    console = Console(file=sys.stdout, width=160, highlight=False)
    console.print(f"metrics over {len(m.runs)} run(s)" + (f" of {workflow}" if workflow else ""))
    for title, rows, label in (("per model", m.models, "model"), ("per task", m.tasks, "task")):
        if by not in (label, "both"):
            continue
        table = Table(title=title, title_justify="left")
        columns = [label] + (["workflow"] if label == "task" else []) + ["calls" if label == "model" else "runs"]
        if execution_time:
            columns += ["p50", "p95", "failure rate"]
        if cost_efficiency:
            columns += ["cost", "mean cost", "quality", "quality per $"]
        for c in columns:
            table.add_column(c, justify="left" if c in (label, "workflow") else "right")
        for f in rows:
            cells = [f.name] + ([f.workflow or "-"] if label == "task" else []) + [str(f.count)]
            if execution_time:
                cells += [fmt(f.latency_p50_s, "s"), fmt(f.latency_p95_s, "s"), fmt(f.failure_rate, "%")]
            if cost_efficiency:
                cells += [fmt(f.cost_usd, "$") + (f" (+{f.unpriced} unpriced)" if f.unpriced else ""),
                          fmt(f.mean_cost_usd, "$"), fmt(f.quality, "q"), fmt(f.quality_per_usd, "q$")]
            table.add_row(*cells)
        console.print(table)
