"""Measured figures across runs, from the journal: per model and per task.

For each model (its calls; reused answers are left out, they took no time and cost nothing):
calls, latency p50/p95, total and mean cost, failure rate (calls that returned an error), mean
quality of the tasks it answered, and quality per dollar. For each task (per workflow; the items of
a `for each` count as one task): runs, duration p50/p95, total and mean cost, failure rate (failed
over completed + failed; skipped tasks are not failures), mean quality, and quality per dollar.
Only tasks that ran count (`ran`): completed or failed, or stopped after making calls (skipped by
`on_error skip`, or stopped by the budget between retries). A task that never started
(`not_started`), was skipped before it began (a skipped dependency, a false `when`), or was
cancelled or stopped by the budget before it finished a call is no run: it has no duration, cost or
outcome of its own, and a resume runs it again.

Quality per dollar is mean quality divided by mean cost (per call for a model, per run for a
task): how much score a dollar buys. It is None when quality or cost is unknown, or cost is zero.
Percentiles are nearest-rank over the observed values.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from statistics import fmean
from typing import Any, Sequence

from bmad.runtime.journal import Journal, rows_of_runs_join

_CALLS, _TASKS = rows_of_runs_join("calls", "c"), rows_of_runs_join("tasks", "t")

_INDEX = re.compile(r"\[\d+\]")

RAN_STATUSES = ("completed", "failed")


def ran(status: str | None, attempts: int | None) -> bool:
    """Whether a task row is a run of the task: it finished, or it made calls before it stopped."""
    return status in RAN_STATUSES or bool(attempts)


@dataclass(slots=True)
class Figures:
    name: str
    workflow: str | None  # per task: its workflow; per model: None
    count: int  # calls (per model) or task runs (per task)
    failures: int
    failure_rate: float
    latency_p50_s: float | None
    latency_p95_s: float | None
    cost_usd: float
    mean_cost_usd: float | None
    unpriced: int  # calls or tasks without a known price
    quality: float | None
    quality_per_usd: float | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Metrics:
    runs: list[str]
    models: list[Figures]
    tasks: list[Figures]

    def as_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "models": [m.as_json() for m in self.models],
                "tasks": [t.as_json() for t in self.tasks]}


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[rank - 1]


def select_runs(journal: Journal, *, workflow: str | None = None, last: int | None = None,
                since: float | None = None) -> list[str]:
    """Run ids, newest first: optionally one workflow's, started after `since`, the latest `last`."""
    sql = "SELECT id FROM runs WHERE 1=1"
    args: list[Any] = []
    if workflow:
        sql += " AND workflow=?"
        args.append(workflow)
    if since is not None:
        sql += " AND started_at>=?"
        args.append(since)
    sql += " ORDER BY started_at DESC"
    if last:
        sql += " LIMIT ?"
        args.append(last)
    return [r[0] for r in journal.db.execute(sql, args).fetchall()]


def _placeholders(ids: Sequence[str]) -> str:
    return ",".join("?" * len(ids))


def _quality_per_usd(quality: float | None, mean_cost: float | None) -> float | None:
    if quality is None or not mean_cost:
        return None
    return quality / mean_cost


def model_figures(journal: Journal, run_ids: Sequence[str]) -> list[Figures]:
    if not run_ids:
        return []
    calls = journal.db.execute(
        f"SELECT c.model, c.status, c.latency_s, c.cost_usd FROM runs r JOIN {_CALLS} "
        f"WHERE c.cached=0 AND r.id IN ({_placeholders(run_ids)}) ORDER BY c.id",
        list(run_ids)).fetchall()
    qualities: dict[str, list[float]] = {}
    for model, quality in journal.db.execute(
            f"SELECT t.model, t.quality FROM runs r JOIN {_TASKS} WHERE t.quality IS NOT NULL "
            f"AND t.model IS NOT NULL AND r.id IN ({_placeholders(run_ids)})", list(run_ids)):
        qualities.setdefault(model, []).append(quality)
    grouped: dict[str, list[tuple]] = {}
    for row in calls:
        grouped.setdefault(row[0] or "?", []).append(row)
    out = []
    for model, rows in grouped.items():
        latencies = [r[2] for r in rows if r[2] is not None and r[1] == "ok"]
        costs = [r[3] for r in rows if r[3] is not None]
        failures = sum(1 for r in rows if r[1] != "ok")
        mean_cost = fmean(costs) if costs else None
        quality = fmean(qualities[model]) if qualities.get(model) else None
        out.append(Figures(model, None, len(rows), failures, failures / len(rows),
                           percentile(latencies, 0.5), percentile(latencies, 0.95), sum(costs), mean_cost,
                           len(rows) - len(costs), quality, _quality_per_usd(quality, mean_cost)))
    return sorted(out, key=lambda f: (-f.cost_usd, f.name))


def task_figures(journal: Journal, run_ids: Sequence[str]) -> list[Figures]:
    if not run_ids:
        return []
    rows = journal.db.execute(
        f"SELECT r.workflow, t.run_id, t.task_id, t.status, t.attempts, t.started_at, t.finished_at, t.cost_usd, "
        f"t.quality FROM runs r JOIN {_TASKS} WHERE r.id IN ({_placeholders(run_ids)})",
        list(run_ids)).fetchall()
    # One observation per (run, task): the items of a fan-out are summed into their task. Rows of
    # tasks that did not run are left out (see `ran`).
    runs: dict[tuple[str, str, str], dict[str, Any]] = {}
    for workflow, run_id, task_id, status, attempts, started, finished, cost, quality in rows:
        if not ran(status, attempts):
            continue
        key = (workflow or "?", _INDEX.sub("", task_id), run_id)
        obs = runs.setdefault(key, {"statuses": [], "start": started, "end": finished, "cost": 0.0,
                                    "unpriced": False, "qualities": []})
        obs["statuses"].append(status)
        if started is not None:
            obs["start"] = min(x for x in (obs["start"], started) if x is not None)
        if finished is not None:
            obs["end"] = max(x for x in (obs["end"], finished) if x is not None)
        if cost is None:
            obs["unpriced"] = True
        else:
            obs["cost"] += cost
        if quality is not None:
            obs["qualities"].append(quality)
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (workflow, task, _run), obs in runs.items():
        grouped.setdefault((workflow, task), []).append(obs)
    out = []
    for (workflow, task), observations in grouped.items():
        failed = sum(1 for o in observations if "failed" in o["statuses"])
        finished = sum(1 for o in observations if {"completed", "failed"} & set(o["statuses"]))
        durations = [o["end"] - o["start"] for o in observations if o["start"] is not None and o["end"] is not None]
        costs = [o["cost"] for o in observations if not o["unpriced"]]
        scores = [q for o in observations for q in o["qualities"]]
        mean_cost = fmean(costs) if costs else None
        quality = fmean(scores) if scores else None
        out.append(Figures(task, workflow, len(observations), failed, failed / finished if finished else 0.0,
                           percentile(durations, 0.5), percentile(durations, 0.95), sum(costs), mean_cost,
                           len(observations) - len(costs), quality, _quality_per_usd(quality, mean_cost)))
    return sorted(out, key=lambda f: (f.workflow or "", f.name))


def collect_metrics(journal: Journal, *, workflow: str | None = None, last: int | None = None,
                    since: float | None = None) -> Metrics:
    run_ids = select_runs(journal, workflow=workflow, last=last, since=since)
    return Metrics(run_ids, model_figures(journal, run_ids), task_figures(journal, run_ids))
