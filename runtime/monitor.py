"""Watching runs from another process: snapshots of active runs read from the journal, and alerts.

The journal is SQLite in WAL mode, so a monitor reads it while runs write it. A run is active when
its status is `running` and its process is alive. Which tasks are running is inferred from the
run's plan: a task with no row yet whose dependencies all have one (rows are written when a task
finishes, before anything that depends on it starts).

Alerts (each fires once per run, and task, per monitor):
- `budget`: spend reached `budget_fraction` (80%) of the run's dollar or token budget;
- `failure_rate`: among the run's last `failure_window` calls, at least `min_failures` failed and
  the failed share reached `failure_rate` (a spike: retries are eating the run);
- `stalled_task`: a running task has taken longer than `stall_after_s` and `stall_factor` times
  the plan's latency estimate for it;
- `stalled_run`: the run has written nothing to the journal for `stall_after_s`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bmad.runtime.journal import ROWS_OF_RUN, Journal, holder_alive, with_holders


@dataclass(frozen=True, slots=True)
class AlertRules:
    budget_fraction: float = 0.8
    failure_rate: float = 0.25
    failure_window: int = 20
    min_failures: int = 3
    stall_after_s: float = 120.0
    stall_factor: float = 3.0


@dataclass(slots=True)
class RunningTask:
    task: str
    elapsed_s: float
    expected_s: float | None


@dataclass(slots=True)
class RunSnapshot:
    id: str
    workflow: str
    status: str
    alive: bool
    spent_usd: float
    budget_usd: float | None
    tokens: int
    budget_tokens: int | None
    done_tasks: int
    total_tasks: int
    started_at: float
    updated_at: float | None
    recent_calls: int
    recent_failures: int
    running: list[RunningTask] = field(default_factory=list)

    @property
    def recent_failure_rate(self) -> float:
        return self.recent_failures / self.recent_calls if self.recent_calls else 0.0


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # budget | failure_rate | stalled_task | stalled_run
    run_id: str
    workflow: str
    task: str | None
    message: str
    value: float
    threshold: float
    ts: float

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.run_id, self.kind, self.task)

    def as_json(self) -> dict[str, Any]:
        return {"source": "bmad", **asdict(self)}


_RUN_COLUMNS = ("id, workflow, status, pid, spent_usd, budget_usd, tokens, budget_tokens, done_tasks, "
                "total_tasks, started_at, updated_at")


def _run_rows(journal: Journal, where: str, args: tuple = ()) -> list[dict[str, Any]]:
    cur = journal.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE {where} ORDER BY started_at", args)
    names = [c[0] for c in cur.description]
    return with_holders(journal.db, [dict(zip(names, r)) for r in cur.fetchall()])


def active_run_rows(journal: Journal) -> list[dict[str, Any]]:
    return [r for r in _run_rows(journal, "status='running'") if _alive(r)]


def _alive(row: dict[str, Any]) -> bool:
    """Whether the process that runs it is alive (by its pid and the identity recorded with it)."""
    return holder_alive(row["pid"], row.get("holder"))


def is_active(row: dict[str, Any]) -> bool:
    """Whether a run row is active: journaled as running, by a process that is alive."""
    return row["status"] == "running" and _alive(row)


def ended_run_rows(journal: Journal, watched: set[str], since: float) -> list[dict[str, Any]]:
    """The runs that are no longer active: those in `watched` (seen active before), and those that
    started or finished at or after `since` and ended before a poll could see them active. Each row
    as it is now, with its final status and spend; a run whose process died while journaled as
    running is one (`bmad runs` shows it as `running (process gone)`)."""
    rows = _run_rows(journal, "(started_at>=? OR finished_at>=?)", (since, since))
    if watched:
        ids = sorted(watched - {r["id"] for r in rows})
        for start in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            chunk = ids[start:start + 500]
            rows += _run_rows(journal, f"id IN ({','.join('?' * len(chunk))})", tuple(chunk))
    return [r for r in rows if not is_active(r)]


def _plan_tasks(plan_json: str | None) -> list[tuple[str, tuple[str, ...], float | None]]:
    """(task, depends, expected latency) for the entry workflow, read without building a Plan."""
    if not plan_json:
        return []
    try:
        data = json.loads(plan_json)
        return [(t["id"], tuple(t.get("depends", ())), (t.get("estimate") or {}).get("latency_s"))
                for t in data.get("tasks", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


class PlanCache:
    """Each run's planned tasks, read from the journal once (a plan can be large)."""

    def __init__(self) -> None:
        self.tasks: dict[str, list[tuple[str, tuple[str, ...], float | None]]] = {}

    def get(self, journal: Journal, run_id: str) -> list[tuple[str, tuple[str, ...], float | None]]:
        if run_id not in self.tasks:
            try:
                text = journal.plan_json(run_id)  # plans are stored once per hash
            except sqlite3.OperationalError:
                text = None
            if text is None:  # a journal from before that: the plan sat in the run's row
                row = journal.db.execute("SELECT plan_json FROM runs WHERE id=?", (run_id,)).fetchone()
                text = row[0] if row else None
            self.tasks[run_id] = _plan_tasks(text)
        return self.tasks[run_id]


def snapshot_run(journal: Journal, row: dict[str, Any], rules: AlertRules, now: float | None = None,
                 plans: PlanCache | None = None) -> RunSnapshot:
    now = time.time() if now is None else now
    plans = plans or PlanCache()
    run_id = row["id"]
    finished = {task: end for task, end in journal.db.execute(
        f"SELECT task_id, finished_at FROM tasks WHERE {ROWS_OF_RUN}", journal.rows_of(run_id))}
    statuses = [s for (s,) in journal.db.execute(
        f"SELECT status FROM calls WHERE {ROWS_OF_RUN} ORDER BY id DESC LIMIT ?",
        (*journal.rows_of(run_id), rules.failure_window))]
    running = []
    # A run that ended (or whose process is gone) runs nothing: its unfinished tasks never will.
    planned = plans.get(journal, run_id) if is_active(row) else []
    for task, depends, expected in planned:
        if task in finished or any(d not in finished for d in depends):
            continue
        since = max([finished[d] or row["started_at"] for d in depends] + [row["started_at"] or now])
        running.append(RunningTask(task, max(0.0, now - since), expected))
    return RunSnapshot(run_id, row["workflow"] or "", row["status"] or "", _alive(row),
                       row["spent_usd"] or 0.0, row["budget_usd"], row["tokens"] or 0, row["budget_tokens"],
                       row["done_tasks"] or 0, row["total_tasks"] or 0, row["started_at"] or now,
                       row["updated_at"], len(statuses), sum(1 for s in statuses if s != "ok"), running)


def evaluate_alerts(snap: RunSnapshot, rules: AlertRules, now: float | None = None) -> list[Alert]:
    now = time.time() if now is None else now
    alerts = []

    def alert(kind: str, task: str | None, message: str, value: float, threshold: float) -> None:
        alerts.append(Alert(kind, snap.id, snap.workflow, task, message, round(value, 6), threshold, now))

    if snap.budget_usd and snap.spent_usd >= rules.budget_fraction * snap.budget_usd:
        alert("budget", None, f"spent ${snap.spent_usd:.4f} of the ${snap.budget_usd:.4f} budget "
                              f"({100 * snap.spent_usd / snap.budget_usd:.0f}%)",
              snap.spent_usd / snap.budget_usd, rules.budget_fraction)
    elif snap.budget_tokens and snap.tokens >= rules.budget_fraction * snap.budget_tokens:
        alert("budget", None, f"used {snap.tokens:,} of the {snap.budget_tokens:,}-token budget",
              snap.tokens / snap.budget_tokens, rules.budget_fraction)
    rate = snap.recent_failure_rate
    if snap.recent_failures >= rules.min_failures and rate >= rules.failure_rate:
        alert("failure_rate", None, f"{snap.recent_failures} of the last {snap.recent_calls} calls failed "
                                    f"({100 * rate:.0f}%)", rate, rules.failure_rate)
    for t in snap.running:
        limit = max(rules.stall_after_s, rules.stall_factor * (t.expected_s or 0.0))
        if t.elapsed_s > limit:
            expected = f" (planned ~{t.expected_s:.1f}s)" if t.expected_s else ""
            alert("stalled_task", t.task, f"task `{t.task}` has been running {t.elapsed_s:.1f}s{expected}",
                  t.elapsed_s, limit)
    if snap.updated_at is not None and now - snap.updated_at > rules.stall_after_s:
        alert("stalled_run", None, f"no progress written for {now - snap.updated_at:.0f}s",
              now - snap.updated_at, rules.stall_after_s)
    return alerts


class AlertTracker:
    """Remembers which alerts fired, so each fires once."""

    def __init__(self) -> None:
        self.fired: set[tuple[str, str, str | None]] = set()

    def new(self, alerts: list[Alert]) -> list[Alert]:
        fresh = [a for a in alerts if a.key not in self.fired]
        self.fired.update(a.key for a in fresh)
        return fresh


def post_alert(url: str, alert: Alert, *, timeout_s: float = 5.0) -> str | None:
    """POST the alert as JSON; the reason it failed, or None."""
    import httpx

    try:
        response = httpx.post(url, json=alert.as_json(), timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.status_code >= 400:
        return f"HTTP {response.status_code}"
    return None


def render_view(snaps: list[RunSnapshot], recent_alerts: list[Alert], now: float | None = None):
    """A rich renderable: one row per active run, then the latest alerts."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = time.time() if now is None else now
    table = Table(title=f"active runs ({time.strftime('%H:%M:%S', time.localtime(now))})", title_justify="left")
    for column in ("run", "workflow", "progress", "spent", "failures (recent)", "running", "updated"):
        table.add_column(column)
    for s in snaps:
        width = 20
        filled = int(width * min(s.done_tasks, s.total_tasks) / s.total_tasks) if s.total_tasks else 0
        budget = f" / ${s.budget_usd:.4f}" if s.budget_usd is not None else ""
        running = ", ".join(f"{t.task} {t.elapsed_s:.0f}s" for t in s.running[:4]) + \
            (f" +{len(s.running) - 4}" if len(s.running) > 4 else "")
        table.add_row(s.id, s.workflow, f"[{'#' * filled}{'.' * (width - filled)}] {s.done_tasks}/{s.total_tasks}",
                      f"${s.spent_usd:.4f}{budget}", f"{s.recent_failures}/{s.recent_calls}", running or "-",
                      "-" if s.updated_at is None else f"{max(0.0, now - s.updated_at):.0f}s ago")
    parts: list[Any] = [table if snaps else Text("no active runs")]
    for a in recent_alerts[-8:]:
        parts.append(Text(f"ALERT {a.kind} {a.run_id}" + (f" {a.task}" if a.task else "") + f": {a.message}",
                          style="bold red"))
    return Group(*parts)
