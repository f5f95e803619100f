"""`bmad export RUN_ID --format json`: a run, its tasks, its calls and its outputs, by public names.

The field names are a contract: `run` {id, status, workflow, plan_hash, spent_usd, budget_usd,
tokens, started_at, finished_at}, `tasks` [{id, status, model, attempts, cost_usd, quality,
output}], `calls` [{task, model, status, input_tokens, output_tokens, cost_usd, latency_s,
cached, attempt}], `outputs` {name: value}. Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bmad.runtime.journal import Journal
from bmad.runtime.providers.keys import redact


def _masked(text: str | None) -> str | None:
    """An error text as stored, with credential shapes masked (journals written before a shape
    was known, or by another tool, may still hold one)."""
    return redact(text) if isinstance(text, str) else text


def _masked_event(event: dict[str, Any]) -> dict[str, Any]:
    for name in ("error", "reason", "reply"):  # reply: a judge's, as `judge_unreadable` keeps it
        if isinstance(event.get(name), str):
            event[name] = redact(event[name])
    return event


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds")


def export_run(journal: Journal, run_id: str) -> dict[str, Any] | None:
    row = journal.run(run_id)
    if row is None:
        return None
    run_id = row["id"]
    tasks = [{
        "id": t["task_id"], "status": t["status"], "model": t["model"], "attempts": t["attempts"],
        "cost_usd": t["cost_usd"], "quality": t["quality"],
        "output": json.loads(t["output_json"]) if t["output_json"] is not None else None,
        "error": _masked(t["error"]), "cached": bool(t["cached"]),
    } for t in journal.task_rows(run_id)]
    calls = [{
        "task": c["task_id"], "model": c["model"], "status": c["status"], "purpose": c["purpose"],
        "slot": c["slot"], "input_tokens": c["input_tokens"], "output_tokens": c["output_tokens"],
        "cost_usd": c["cost_usd"], "latency_s": c["latency_s"], "cached": bool(c["cached"]),
        "request_hash": c["request_hash"], "error": _masked(c["error"]), "error_kind": c["error_kind"],
        "attempt": c.get("attempt"),  # the task's try number (answering calls; journal schema 3)
    } for c in journal.call_rows(run_id)]
    return {
        "run": {
            "id": run_id, "status": row["status"], "workflow": row["workflow"],
            "plan_hash": row["plan_hash"], "spent_usd": row["spent_usd"],
            "budget_usd": row["budget_usd"], "budget_tokens": row["budget_tokens"],
            "budget_time_s": row["budget_time_s"], "tokens": row["tokens"],
            "unknown_cost_calls": row["unknown_cost_calls"],
            "started_at": iso(row["started_at"]), "finished_at": iso(row["finished_at"]),
            "total_tasks": row["total_tasks"], "done_tasks": row["done_tasks"],
            "error": _masked(row["error"]), "source": row["source"],
            "inputs": json.loads(row["inputs_json"] or "{}"),
        },
        "tasks": tasks,
        "calls": calls,
        "events": [_masked_event(e) for e in journal.event_rows(run_id)],
        "outputs": journal.outputs(run_id),
    }
