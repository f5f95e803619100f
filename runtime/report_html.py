"""`bmad export RUN --format html`: one self-contained HTML page about a run, drawn from the journal.

Sections (each an element with a stable id, so tests and people can find them): `summary`,
`inputs`, `outputs`, `timeline` (an SVG Gantt chart, `gantt`, of tasks and their model calls),
`costs` (`cost-by-task`, `cost-by-model`, with bar charts), `routing` (with `reroutes`),
`retries`, `escalations`, `consensus` (each participant's vote), `quality` and `tasks`.
Model outputs are untrusted text: everything is escaped, and the page loads nothing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bmad.compiler.html_page import (STATUS_COLOURS, bar_chart, cards, colour_map, esc, legend, num, page,
                                     section, status_html, table)
from bmad.runtime.run_report import budget_owner, gate_event_row

GANTT_WIDTH = 1180
GANTT_LABEL = 200
TASK_BAR = 12
LANE = 8


def usd(value: float | None) -> str:
    if value is None:
        return "?"
    return f"${value:.6f}" if value < 1 else f"${value:,.4f}"


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def render_run_html(report: dict[str, Any]) -> str:
    run, extra = report["run"], report["report"]
    models = colour_map([c["model"] for c in extra["timeline"]["calls"] if c["model"]]
                        + [r["name"] for r in extra["cost_by_model"]])
    body = [f'<h1>Run {esc(run["id"])}: workflow {esc(run["workflow"])}</h1>',
            f'<p class="sub">{status_html(run["status"])} &middot; started {esc(run["started_at"])}'
            f' &middot; finished {esc(run["finished_at"] or "-")} &middot; source {esc(run["source"] or "-")}'
            f' &middot; plan {esc((run["plan_hash"] or "")[:16])}</p>',
            section("summary", "Summary", _summary(report)),
            section("inputs", "Inputs", _inputs(run["inputs"])),
            section("outputs", "Outputs", _outputs(report["outputs"])),
            section("timeline", "Timeline", _gantt(extra["timeline"], models)),
            section("costs", "Cost", _costs(extra, models)),
            section("routing", "Routing decisions", _routing(extra)),
            section("retries", "Retries", _retries(extra["retries"])),
            section("escalations", "Escalations and skips", _escalations(extra)),
            section("consensus", "Consensus votes", _consensus(extra["consensus"])),
            section("quality", "Quality scores", _quality(extra["quality"])
                    + "<h3>Quality gate events</h3>"
                    + table(("task", "what", "model", "detail"),
                            [gate_event_row(e) for e in extra.get("gate_events", [])],
                            table_id="gate-events-table")),
            section("tasks", "Tasks", _tasks(report["tasks"]))]
    return page(f"bmad run {run['id']} ({run['workflow']})", "\n".join(body))


def _summary(report: dict[str, Any]) -> str:
    run, extra = report["run"], report["report"]
    calls = report["calls"]
    budget = f" of {usd(run['budget_usd'])}" if run["budget_usd"] is not None else ""
    items = [("status", run["status"] or "?"), ("spent", usd(run["spent_usd"] or 0.0) + budget),
             ("tokens", f"{run['tokens'] or 0:,}"), ("duration", seconds(extra["timeline"]["duration_s"])),
             ("tasks", f"{run['done_tasks'] or 0}/{run['total_tasks'] or 0}"),
             ("model calls", f"{len(calls)} ({sum(c['status'] != 'ok' for c in calls)} failed, "
                             f"{sum(bool(c['cached']) for c in calls)} reused)")]
    plan = extra.get("plan")
    if plan:
        items.append(("plan estimate", f"{usd(plan['expected_usd'])} expected, {usd(plan['worst_usd'])} worst"))
    out = cards(items)
    if run["unknown_cost_calls"]:
        out += f'<p class="status-failed">{esc(run["unknown_cost_calls"])} call(s) had no known price.</p>'
    if run["error"]:
        out += f'<h3>Error</h3><pre id="run-error">{esc(run["error"])}</pre>'
    if plan:
        out += (f'<p>Objective {esc(plan["objective"])}, strategy {esc(plan["strategy"])}; critical path: '
                f'{esc(" -> ".join(plan["critical_path"]) or "-")}</p>')
    return out


def _inputs(inputs: dict[str, Any]) -> str:
    if not inputs:
        return '<p class="empty">no inputs</p>'
    return "".join(f"<h3>{esc(k)}</h3><pre>{esc(value_text(v))}</pre>" for k, v in sorted(inputs.items()))


def _outputs(outputs: dict[str, Any]) -> str:
    if not outputs:
        return '<p class="empty">no outputs recorded</p>'
    return "".join(f'<h3>{esc(k)}</h3><pre class="output">{esc("(none)" if v is None else value_text(v))}</pre>'
                   for k, v in outputs.items())


def _tick_step(duration: float) -> float:
    raw = max(duration, 1e-3) / 8
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        if raw <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _lanes(calls: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Greedy lane assignment so overlapping calls of one task sit on separate lines."""
    ends: list[float] = []
    out = []
    for c in sorted(calls, key=lambda c: c["start"]):
        for i, end in enumerate(ends):
            if c["start"] >= end:
                ends[i] = c["end"]
                out.append((i, c))
                break
        else:
            ends.append(c["end"])
            out.append((len(ends) - 1, c))
    return out


def _gantt(timeline: dict[str, Any], models: dict[str, str]) -> str:
    tasks = timeline["tasks"]
    if not tasks:
        return '<p class="empty">no task ran</p>'
    duration = max(timeline["duration_s"], 1e-3)
    span = GANTT_WIDTH - GANTT_LABEL - 20
    scale = span / duration
    calls_by_task: dict[str, list[dict[str, Any]]] = {}
    for c in timeline["calls"]:
        calls_by_task.setdefault(c["task"], []).append(c)
    top, y = 24, 24
    rows = []
    for t in tasks:
        lanes = _lanes(calls_by_task.get(t["task"], []))
        height = TASK_BAR + 4 + LANE * (max((i for i, _ in lanes), default=-1) + 1) + 8
        rows.append((y, t, lanes, height))
        y += height
    total_h = y + 10
    parts = [f'<svg id="gantt" xmlns="http://www.w3.org/2000/svg" width="{GANTT_WIDTH}" height="{num(total_h)}" '
             f'viewBox="0 0 {GANTT_WIDTH} {num(total_h)}" role="img" aria-label="Timeline of tasks and calls">']
    step = _tick_step(duration)
    tick = 0.0
    while tick <= duration + 1e-9:
        x = GANTT_LABEL + tick * scale
        parts.append(f'<line x1="{num(x)}" y1="{top - 6}" x2="{num(x)}" y2="{num(total_h - 6)}" stroke="#e3e6ec"/>')
        parts.append(f'<text class="muted" x="{num(x)}" y="{top - 10}" text-anchor="middle">{esc(f"{tick:g}s")}</text>')
        tick += step
    for i, (row_y, t, lanes, height) in enumerate(rows):
        if i % 2:
            parts.append(f'<rect x="0" y="{num(row_y - 2)}" width="{GANTT_WIDTH}" height="{num(height)}" fill="#f7f8fa"/>')
        start, end = t["start"] or 0.0, t["end"] if t["end"] is not None else duration
        x, w = GANTT_LABEL + start * scale, max(2.0, (end - start) * scale)
        colour = STATUS_COLOURS.get(t["status"], "#7f8c8d")
        label = t["task"] if len(t["task"]) <= 28 else t["task"][:27] + "..."
        parts.append(f'<text x="{GANTT_LABEL - 8}" y="{num(row_y + TASK_BAR - 1)}" text-anchor="end">{esc(label)}</text>')
        parts.append(f'<rect class="task-bar" x="{num(x)}" y="{num(row_y)}" width="{num(w)}" height="{TASK_BAR}" '
                     f'fill="{colour}" fill-opacity="0.35" stroke="{colour}" rx="2"><title>{esc(t["task"])}: '
                     f'{esc(t["status"])}, {esc(t["model"] or "-")}, {start:.2f}s to {end:.2f}s'
                     f'{" (reused)" if t["cached"] else ""}</title></rect>')
        for lane, c in lanes:
            cx, cw = GANTT_LABEL + c["start"] * scale, max(1.5, (c["end"] - c["start"]) * scale)
            cy = row_y + TASK_BAR + 3 + lane * LANE
            fill = models.get(c["model"], "#7f8c8d")
            dash = ' stroke="#c0392b" stroke-width="1.5"' if c["status"] != "ok" else ""
            parts.append(f'<rect class="call-bar" x="{num(cx)}" y="{num(cy)}" width="{num(cw)}" height="{LANE - 2}" '
                         f'fill="{fill}"{dash}><title>{esc(c["model"])} ({esc(c["purpose"])}, {esc(c["slot"])}): '
                         f'{esc(c["status"])}, {c["end"] - c["start"]:.2f}s, {esc(usd(c["cost_usd"]))}'
                         f'{" (reused)" if c["cached"] else ""}</title></rect>')
    parts.append("</svg>")
    return ("<p>Each row is a task (light bar, coloured by status); the thin bars beneath are its model "
            "calls, coloured by model (a red outline marks a failed call). Hover for details.</p>"
            + legend(models) + "".join(parts))


def _costs(extra: dict[str, Any], models: dict[str, str]) -> str:
    by_task, by_model = extra["cost_by_task"], extra["cost_by_model"]

    def rows(groups):
        return [(g["name"], usd(g["cost_usd"]), g["calls"], g["failed_calls"], g["reused_calls"],
                 f"{g['tokens']:,}", g["unpriced_calls"]) for g in groups]

    headers = ("name", "cost", "calls", "failed", "reused", "tokens", "unpriced")
    return ("<h3>By task</h3>" + table(headers, rows(by_task), table_id="cost-by-task", numeric=(1, 2, 3, 4, 5, 6))
            + bar_chart("cost-by-task-chart", [(g["name"], g["cost_usd"], "#2f6fdf") for g in by_task])
            + "<h3>By model</h3>" + table(headers, rows(by_model), table_id="cost-by-model", numeric=(1, 2, 3, 4, 5, 6))
            + bar_chart("cost-by-model-chart", [(g["name"], g["cost_usd"], models.get(g["name"], "#7f8c8d"))
                                                for g in by_model]))


def _routing(extra: dict[str, Any]) -> str:
    routing = extra["routing"]
    if not routing:
        out = '<p class="empty">the run recorded no plan</p>'
    else:
        rows = []
        for r in routing:
            planned = f"workflow {r['subworkflow']}" if r["kind"] == "call" else ", ".join(r["planned"]) or "-"
            considered = "; ".join(
                f"{c['model']}: {'qualified' if c['qualified'] else 'not qualified'}"
                f"{'' if c['available'] else ', unavailable'}, {usd(c['cost_usd_expected'])}"
                f"{'' if not c['reason'] else ' (' + c['reason'] + ')'}" for c in r["candidates"]) or "-"
            rows.append((r["task"], planned, r["rule"] or "-", r["reason"] or "-", considered,
                         " -> ".join(r["fallbacks"]) or "-", ", ".join(r["answered_by"]) or "-"))
        out = table(("task", "planned", "rule", "reason", "candidates", "fallbacks", "answered by"), rows,
                    table_id="routing-table")
    reroutes = [(e.get("task"), e.get("from_model"), e.get("to_model"), e.get("reason")) for e in extra["reroutes"]]
    return out + '<h3 id="reroutes">Re-routed while running</h3>' + table(("task", "from", "to", "reason"), reroutes)


def _retries(retries: list[dict[str, Any]]) -> str:
    return table(("task", "model", "attempt", "error kind", "error", "waited"),
                 [(e.get("task"), e.get("model"), e.get("attempt"), e.get("error_kind") or "-",
                   e.get("error") or "-", seconds(e.get("delay_s"))) for e in retries], table_id="retries-table")


def _escalations(extra: dict[str, Any]) -> str:
    return (table(("task", "from", "to", "reason"),
                  [(e.get("task"), e.get("from_model"), e.get("to_model"), e.get("reason"))
                   for e in extra["escalations"]], table_id="escalations-table")
            + "<h3>Skipped tasks</h3>"
            + table(("task", "reason"), [(e.get("task"), e.get("reason")) for e in extra["skips"]])
            + "<h3>Budget alerts</h3>"
            + table(("whose", "budget", "threshold", "spent", "cap"),
                    [(budget_owner(e), e.get("kind"), f"{100 * (e.get('threshold') or 0):.0f}%", e.get("spent"),
                      e.get("budget")) for e in extra["budget_alerts"]]))


def _consensus(items: list[dict[str, Any]]) -> str:
    if not items:
        return '<p class="empty">no task was answered by several models</p>'
    out = []
    for item in items:
        quality = "-" if item["quality"] is None else f"{item['quality']:.2f}"
        out.append(f'<div class="consensus-task"><h3>{esc(item["task"])}: {esc(item["method"])}, '
                   f'winner {esc(item["winner"] or "-")}, quality {esc(quality)}</h3>')
        out.append(table(("participant", "status", "answer"),
                         [(v["model"] + (" (winner)" if v["model"] == item["winner"] else ""), v["status"],
                           f'<pre>{esc(v["answer"] or v["error"] or "")}</pre>') for v in item["votes"]],
                         raw=(2,)))
        out.append("</div>")
    return "".join(out)


def _quality(items: list[dict[str, Any]]) -> str:
    rows = []
    for q in items:
        met = "-" if q["met"] is None else ("met" if q["met"] else "below floor")
        judged = "; ".join(f"{j['model']}: {j['reply'][:200]}" for j in q["judges"]) or "-"
        rows.append((q["task"], q["model"] or "-", "-" if q["quality"] is None else f"{q['quality']:.2f}",
                     "-" if q["floor"] is None else f"{q['floor']:.2f}",
                     "-" if q["expected"] is None else f"{q['expected']:.2f}", met, judged))
    return table(("task", "model", "score", "floor", "planned", "", "judges"), rows, table_id="quality-table",
                 numeric=(2, 3, 4))


def _tasks(tasks: list[dict[str, Any]]) -> str:
    return table(("task", "status", "model", "attempts", "cost", "quality", "error"),
                 [(t["id"], status_html(t["status"]), t["model"] or "-", t["attempts"] or 0, usd(t["cost_usd"]),
                   "-" if t["quality"] is None else f"{t['quality']:.2f}", t["error"] or "")
                  for t in tasks], table_id="tasks-table", raw=(1,), numeric=(3, 4, 5))
