"""`bmad export RUN --format detailed`: the run report as text for a terminal (rich tables).

The same content as the HTML report (`runtime/report_html.py`): summary, inputs, outputs, a text
timeline, cost by task and by model, routing decisions, retries, escalations, consensus votes
and quality scores. Text from models and inputs is printed literally: rich markup is escaped,
and control characters (terminal escape sequences, carriage returns, bidi overrides) are shown as
`\x1b`-style escapes rather than sent to the terminal (`terminal_safe`).
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bmad.compiler.terminal_text import terminal_safe
from bmad.runtime.ledger import unpriced_note
from bmad.runtime.report_html import seconds, usd, value_text
from bmad.runtime.run_report import budget_owner, gate_event_row

BAR_WIDTH = 48
EXCERPT = 1200

def safe_markup(text: Any) -> str:
    """Untrusted text for `console.print`: terminal-safe, with rich markup escaped."""
    return escape(terminal_safe(str(text)))


def _clip(text: str, limit: int = EXCERPT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def _table(console: Console, title: str, headers: tuple[str, ...], rows: list[tuple]) -> None:
    console.print(f"\n[bold]{safe_markup(title)}[/bold]")
    if not rows:
        console.print("  none")
        return
    t = Table(box=None, pad_edge=False, show_edge=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*(safe_markup("" if c is None else str(c)) for c in r))
    console.print(t)


def render_run_text(report: dict[str, Any], *, width: int = 120, color: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, color_system="standard" if color else None,
                      highlight=False, soft_wrap=False)
    run, extra = report["run"], report["report"]
    calls = report["calls"]
    budget = f" of {usd(run['budget_usd'])}" if run["budget_usd"] is not None else ""
    console.print(f"[bold]Run {safe_markup(run['id'])}[/bold]: workflow {safe_markup(run['workflow'] or '?')}, "
                  f"{safe_markup(run['status'] or '?')}")
    unpriced = unpriced_note(run.get("unknown_cost_calls") or 0)  # not free, not in the dollars
    console.print(f"  spent {usd(run['spent_usd'] or 0.0)}{unpriced}{budget}, {run['tokens'] or 0:,} tokens, "
                  f"{seconds(extra['timeline']['duration_s'])}, tasks {run['done_tasks'] or 0}/{run['total_tasks'] or 0}, "
                  f"{len(calls)} calls ({sum(c['status'] != 'ok' for c in calls)} failed, "
                  f"{sum(bool(c['cached']) for c in calls)} reused)")
    console.print(f"  started {run['started_at']}, finished {run['finished_at'] or '-'}, source {safe_markup(run['source'] or '-')}")
    plan = extra.get("plan")
    if plan:
        console.print(f"  plan: objective {safe_markup(plan['objective'])}, strategy {safe_markup(plan['strategy'])}, expected "
                      f"{usd(plan['expected_usd'])}, worst {usd(plan['worst_usd'])}; critical path "
                      f"{safe_markup(' -> '.join(plan['critical_path']) or '-')}")
    if run["error"]:
        console.print(f"  error: {safe_markup(run['error'])}")

    console.print("\n[bold]Inputs[/bold]")
    for k, v in sorted((run["inputs"] or {}).items()):
        console.print(f"  {safe_markup(k)}: " + safe_markup(_clip(value_text(v), 300)))
    if not run["inputs"]:
        console.print("  none")
    console.print("\n[bold]Outputs[/bold]")
    for k, v in report["outputs"].items():
        console.print(f"  [bold]{safe_markup(k)}[/bold]:")
        for line in _clip("(none)" if v is None else value_text(v)).splitlines() or [""]:
            console.print("    " + safe_markup(line))
    if not report["outputs"]:
        console.print("  none recorded")

    timeline = extra["timeline"]
    console.print(f"\n[bold]Timeline[/bold] (0s to {timeline['duration_s']:.2f}s)")
    duration = max(timeline["duration_s"], 1e-3)
    for t in timeline["tasks"]:
        start, end = t["start"] or 0.0, t["end"] if t["end"] is not None else duration
        a = int(BAR_WIDTH * start / duration)
        b = max(a + 1, int(round(BAR_WIDTH * end / duration)))
        bar = " " * a + "#" * (b - a) + " " * (BAR_WIDTH - b)
        console.print(f"  {safe_markup(t['task'][:24]):<24} |{bar}| {start:6.2f}s-{end:6.2f}s {safe_markup(t['status'])}"
                      + (f" {safe_markup(t['model'])}" if t["model"] else ""))

    def cost_rows(groups):
        return [(g["name"], usd(g["cost_usd"]), g["calls"], g["failed_calls"], g["reused_calls"],
                 f"{g['tokens']:,}", g["unpriced_calls"]) for g in groups]

    headers = ("name", "cost", "calls", "failed", "reused", "tokens", "unpriced")
    _table(console, "Cost by task", headers, cost_rows(extra["cost_by_task"]))
    _table(console, "Cost by model", headers, cost_rows(extra["cost_by_model"]))
    _table(console, "Routing decisions", ("task", "planned", "rule", "reason", "fallbacks", "answered by"),
           [(r["task"], f"workflow {r['subworkflow']}" if r["kind"] == "call" else ", ".join(r["planned"]) or "-",
             r["rule"] or "-", r["reason"] or "-", " -> ".join(r["fallbacks"]) or "-",
             ", ".join(r["answered_by"]) or "-") for r in extra["routing"]])
    _table(console, "Re-routed while running", ("task", "from", "to", "reason"),
           [(e.get("task"), e.get("from_model"), e.get("to_model"), e.get("reason")) for e in extra["reroutes"]])
    _table(console, "Retries", ("task", "model", "attempt", "error kind", "error"),
           [(e.get("task"), e.get("model"), e.get("attempt"), e.get("error_kind"), e.get("error"))
            for e in extra["retries"]])
    _table(console, "Escalations", ("task", "from", "to", "reason"),
           [(e.get("task"), e.get("from_model"), e.get("to_model"), e.get("reason")) for e in extra["escalations"]])
    _table(console, "Skipped", ("task", "reason"), [(e.get("task"), e.get("reason")) for e in extra["skips"]])
    _table(console, "Budget alerts", ("whose", "budget", "threshold", "spent", "cap"),
           [(budget_owner(e), e.get("kind"), f"{100 * (e.get('threshold') or 0):.0f}%", e.get("spent"),
             e.get("budget")) for e in extra["budget_alerts"]])
    _table(console, "Quality gate events", ("task", "what", "model", "detail"),
           [gate_event_row(e) for e in extra.get("gate_events", [])])
    console.print("\n[bold]Consensus votes[/bold]")
    if not extra["consensus"]:
        console.print("  none")
    for item in extra["consensus"]:
        quality = "-" if item["quality"] is None else f"{item['quality']:.2f}"
        console.print(f"  {safe_markup(item['task'])}: {safe_markup(item['method'])}, winner {safe_markup(item['winner'] or '-')}, "
                      f"quality {quality}")
        for v in item["votes"]:
            answer = " ".join((v["answer"] or v["error"] or "").split())
            console.print(f"    {safe_markup(v['model'])} ({safe_markup(v['status'])}): " + safe_markup(_clip(answer, 200)))
    _table(console, "Quality scores", ("task", "model", "score", "floor", "planned", "met"),
           [(q["task"], q["model"] or "-", "-" if q["quality"] is None else f"{q['quality']:.2f}",
             "-" if q["floor"] is None else f"{q['floor']:.2f}",
             "-" if q["expected"] is None else f"{q['expected']:.2f}",
             "-" if q["met"] is None else ("yes" if q["met"] else "no")) for q in extra["quality"]])
    return buffer.getvalue()

