"""What a run report shows, read from the journal: the export plus timeline, costs, routing, votes.

`build_run_report(journal, run_id)` returns `bmad export`'s JSON (unchanged field names) with one
more key, `report`, that the detailed text and HTML reports draw:

- `timeline`: seconds since the run started, per task (`start`, `end`) and per model call (a call's
  end is when the journal recorded it; its start is that minus its latency).
- `cost_by_task`, `cost_by_model`: dollars actually spent (reused calls are free), tokens, calls,
  and how many calls had no known price.
- `routing`: per planned task, the model the planner chose, the rule and reason, the candidates
  it weighed, the fallbacks, and the model that actually answered; `reroutes` (adaptive moves).
- `retries`, `escalations`, `skips`, `budget_alerts`: the journaled events (a budget alert with a
  `task` is about that task's own budget, or the workflow it calls; `budget_owner` names it);
  `gate_events`: the quality gates' `judge_unreadable` and `quality_below_bar` events, in order.
- `consensus`: per task answered by several models, the method, each participant's answer (the
  vote) and the winner; `quality`: each task's score against its floor, with the judges' replies.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from typing import Any

from bmad.runtime.export import export_run
from bmad.runtime.journal import Journal

GATE_EVENTS = ("judge_unreadable", "quality_below_bar")
ANSWER_EXCERPT = 4000  # characters of each participant's answer kept in a report
_PARTICIPANT_SLOT = re.compile(r"(?:^|/)p(\d+)/$")
_INDEX = re.compile(r"\[\d+\]")


def gate_event_row(event: dict[str, Any]) -> tuple[str, str, str, str]:
    """(task, what, model, detail) of a quality gate's event, as the text and HTML reports show it."""
    if event.get("event") == "judge_unreadable":
        return (event.get("task") or "-", f"judge {event.get('judge') or '?'} gave no score",
                event.get("model") or "-", f"{event.get('action') or ''}; reply: {event.get('reply') or ''}")
    quality = event.get("quality")
    bar = event.get("bar")
    score = "no score" if quality is None else f"{quality:.2f}"
    return (event.get("task") or "-", f"below the bar ({score} < {'-' if bar is None else f'{bar:.2f}'})",
            event.get("model") or "-", event.get("reason") or "-")


def budget_owner(alert: dict[str, Any]) -> str:
    """Whose budget a `budget_alert` is about: the run's, or a task's own (or its called workflow's)."""
    return f"task {alert['task']}" if alert.get("task") else "run"


def build_run_report(journal: Journal, run_id: str) -> dict[str, Any] | None:
    data = export_run(journal, run_id)
    if data is None:
        return None
    row = journal.run(run_id) or {}
    run_id = row["id"]
    try:
        plan_text = journal.plan_json(run_id)  # plans are stored once per hash
    except sqlite3.OperationalError:
        plan_text = None
    plan = _load_plan(plan_text or row.get("plan_json"))
    call_rows = journal.call_rows(run_id)
    task_rows = journal.task_rows(run_id)
    t0 = row.get("started_at") or min([t["started_at"] for t in task_rows if t["started_at"]] or [0.0])
    events = data["events"]
    data["report"] = {
        "timeline": _timeline(t0, row, task_rows, call_rows),
        "cost_by_task": _cost_by(call_rows, "task_id"),
        "cost_by_model": _cost_by(call_rows, "model"),
        "routing": _routing(plan, task_rows),
        "reroutes": _events(events, "task_rerouted"),
        "retries": _events(events, "task_retried"),
        "escalations": _events(events, "task_escalated"),
        "skips": _events(events, "task_skipped"),
        "budget_alerts": _events(events, "budget_alert"),
        "gate_events": [e for e in events if e.get("event") in GATE_EVENTS],
        "consensus": _consensus(plan, task_rows, call_rows),
        "quality": _quality(plan, task_rows, call_rows),
        "plan": {"objective": plan.objective, "strategy": plan.strategy,
                 "expected_usd": plan.totals.cost_usd_expected,
                 "worst_usd": plan.totals.cost_usd_worst,
                 "critical_path": list(plan.entry.critical_path)} if plan is not None else None,
    }
    return data


def _load_plan(text: str | None):
    if not text:
        return None
    from bmad.compiler.plan import Plan

    try:
        return Plan.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None  # a journal from an older bmad: the report shows what the rows hold


def _offset(ts: float | None, t0: float) -> float | None:
    return None if ts is None else max(0.0, ts - t0)


def _timeline(t0: float, row: dict[str, Any], task_rows: list[dict[str, Any]],
              call_rows: list[dict[str, Any]]) -> dict[str, Any]:
    tasks = [{"task": t["task_id"], "status": t["status"], "model": t["model"],
              "start": _offset(t["started_at"], t0), "end": _offset(t["finished_at"], t0),
              "cached": bool(t["cached"])}
             for t in task_rows if t["started_at"] is not None]
    calls = []
    for c in call_rows:
        end = _offset(c["created_at"], t0)
        if end is None:
            continue
        calls.append({"task": c["task_id"], "model": c["model"], "status": c["status"],
                      "purpose": c["purpose"], "slot": c["slot"], "cost_usd": c["cost_usd"],
                      "start": max(0.0, end - (c["latency_s"] or 0.0)), "end": end,
                      "cached": bool(c["cached"])})
    ends = [x["end"] for x in tasks + calls if x["end"] is not None]
    finished = _offset(row.get("finished_at"), t0)
    return {"duration_s": max(ends + ([finished] if finished is not None else []) + [0.0]),
            "tasks": sorted(tasks, key=lambda x: (x["start"], x["task"])), "calls": calls}


def _cost_by(call_rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for c in call_rows:
        name = c[key] or "?"
        g = groups.setdefault(name, {"name": name, "cost_usd": 0.0, "calls": 0, "failed_calls": 0,
                                     "reused_calls": 0, "tokens": 0, "unpriced_calls": 0})
        g["calls"] += 1
        g["failed_calls"] += c["status"] != "ok"
        if c["cached"]:
            g["reused_calls"] += 1
            continue  # a reused answer cost nothing this time
        g["tokens"] += (c["input_tokens"] or 0) + (c["output_tokens"] or 0)
        if c["cost_usd"] is None:
            g["unpriced_calls"] += 1
        else:
            g["cost_usd"] += c["cost_usd"]
    return sorted(groups.values(), key=lambda g: (-g["cost_usd"], g["name"]))


def _events(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == kind]


def _plan_tasks(plan) -> list[tuple[str, Any]]:
    if plan is None:
        return []
    out = [(plan.workflow, t) for t in plan.entry.tasks]
    for sub in plan.subplans:
        out.extend((sub.workflow, t) for t in sub.tasks)
    return out


def _base_name(path: str) -> str:
    return _INDEX.sub("", path.rsplit("/", 1)[-1])


def _routing(plan, task_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    used: dict[str, list[str]] = defaultdict(list)
    for t in task_rows:
        if t["model"] and t["model"] not in used[_base_name(t["task_id"])]:
            used[_base_name(t["task_id"])].append(t["model"])
    rows = []
    for workflow, t in _plan_tasks(plan):
        rows.append({
            "workflow": workflow, "task": t.id, "kind": t.kind,
            "planned": list(t.participants) or ([t.model] if t.model else []),
            "subworkflow": t.subworkflow, "judge": t.judge, "rule": t.route_rule,
            "reason": t.route_reason, "fallbacks": list(t.fallbacks),
            "quality_floor": t.quality_floor, "expected_quality": t.expected_quality,
            "expected_usd": t.estimate.cost_usd_expected, "worst_usd": t.estimate.cost_usd_worst,
            "candidates": [{"model": c.model, "qualified": c.qualified, "available": c.available,
                            "expected_quality": c.expected_quality,
                            "cost_usd_expected": c.cost_usd_expected, "reason": c.reason}
                           for c in t.candidates],
            "answered_by": used.get(t.id, []),
        })
    return rows


def _ir_task(plan, path: str):
    if plan is None:
        return None
    name = _base_name(path)
    for w in plan.program.workflows:
        task = w.task(name) if hasattr(w, "task") else None
        if task is not None:
            return task
    return None


def _consensus(plan, task_rows: list[dict[str, Any]], call_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in call_rows:
        if c["purpose"] == "answer" and _PARTICIPANT_SLOT.search(c["slot"] or ""):
            by_task[c["task_id"]].append(c)
    rows_by_id = {t["task_id"]: t for t in task_rows}
    out = []
    for path, calls in by_task.items():
        task = _ir_task(plan, path)
        method = task.consensus.method if task is not None and task.consensus else "collaborative"
        result = rows_by_id.get(path, {})
        votes = []
        for c in sorted(calls, key=lambda c: (int(_PARTICIPANT_SLOT.search(c["slot"]).group(1)), c["id"])):
            text = c["response_text"] or ""
            votes.append({"model": c["model"], "slot": c["slot"], "status": c["status"],
                          "answer": text[:ANSWER_EXCERPT] + ("..." if len(text) > ANSWER_EXCERPT else ""),
                          "error": c["error"]})
        out.append({"task": path, "method": method, "winner": result.get("model"),
                    "quality": result.get("quality"), "status": result.get("status"),
                    "votes": votes})
    return out


def _quality(plan, task_rows: list[dict[str, Any]], call_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    floors = {t.id: (t.quality_floor, t.expected_quality) for _, t in _plan_tasks(plan)}
    judges: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in call_rows:
        if c["purpose"] == "judge":
            judges[c["task_id"]].append({"model": c["model"], "status": c["status"],
                                         "reply": (c["response_text"] or "")[:600]})
    out = []
    for t in task_rows:
        floor, expected = floors.get(_base_name(t["task_id"]), (None, None))
        if t["quality"] is None and floor is None and not judges.get(t["task_id"]):
            continue
        out.append({"task": t["task_id"], "quality": t["quality"], "floor": floor,
                    "expected": expected, "model": t["model"], "status": t["status"],
                    "met": None if t["quality"] is None or floor is None else t["quality"] >= floor,
                    "judges": judges.get(t["task_id"], [])})
    return out
