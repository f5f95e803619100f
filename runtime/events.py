"""The typed event stream of a run, and its sinks: JSON lines, a rich live display, the journal,
and OpenTelemetry spans (when opentelemetry is importable).

Every event is `{"event": KIND, "run_id": ..., "ts": ..., "task": ..., **fields}`; the kinds and their
fields are listed in `EVENT_FIELDS`. Emitting is free when nothing listens (`EventBus.active`), so the
hot path checks that first.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Protocol, TextIO

from bmad.runtime.providers.keys import redact

EventKind = Literal["run_started", "task_started", "task_finished", "task_retried",
                    "task_escalated", "task_rerouted", "task_skipped", "call_finished",
                    "budget_alert", "cache_decision", "judge_unreadable", "quality_below_bar",
                    "run_finished"]

# What each event carries besides event/run_id/ts/task.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "run_started": ("workflow", "plan_hash", "budget_usd", "budget_tokens", "budget_time_s",
                    "tasks", "resumed"),
    "task_started": ("model",),
    "task_finished": ("status", "model", "attempts", "cost_usd", "quality", "error", "cached"),
    "task_retried": ("model", "attempt", "error", "error_kind", "delay_s"),
    "task_escalated": ("from_model", "to_model", "reason"),
    "task_rerouted": ("from_model", "to_model", "reason"),
    "task_skipped": ("reason",),
    "call_finished": ("model", "provider", "provider_kind", "slot", "purpose", "status",
                      "input_tokens", "output_tokens", "cost_usd", "latency_s", "cached", "error"),
    "budget_alert": ("kind", "threshold", "spent", "budget"),
    "cache_decision": ("hit", "key", "reason"),
    "judge_unreadable": ("judge", "model", "reply", "action"),
    "quality_below_bar": ("model", "quality", "bar", "reason"),
    "run_finished": ("status", "spent_usd", "tokens", "elapsed_s", "error"),
}

# Events the journal keeps in its `events` table (the rest live in the tasks and calls tables).
JOURNALED = frozenset({"run_started", "task_retried", "task_escalated", "task_rerouted",
                       "task_skipped", "budget_alert", "cache_decision", "judge_unreadable",
                       "quality_below_bar", "run_finished"})
ALL_KINDS = frozenset(EVENT_FIELDS)
# Fields holding free text (error messages, reasons quoting them), masked by `keys.redact`.
_FREE_TEXT_FIELDS = ("error", "reason", "reply")


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    run_id: str
    ts: float
    task: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out = {"event": self.kind, "run_id": self.run_id, "ts": round(self.ts, 6)}
        if self.task is not None:
            out["task"] = self.task
        out.update(self.data)
        return out


class Sink(Protocol):
    def handle(self, event: Event) -> None: ...

    def close(self) -> None: ...


class EventBus:
    def __init__(self, run_id: str = "") -> None:
        self.run_id = run_id
        self.sinks: list[Sink] = []
        # The kinds some sink wants: the hot path asks `KIND in bus.wanted` before building an
        # event (a sink with a `kinds` attribute takes only those, e.g. the journal's).
        self.wanted: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return bool(self.sinks)

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)
        self.wanted = self.wanted | getattr(sink, "kinds", ALL_KINDS)

    def emit(self, kind: str, task: str | None = None, /, **data: Any) -> None:
        if kind not in self.wanted:
            return
        for name in _FREE_TEXT_FIELDS:  # error texts may quote a URL or a key: masked here too
            value = data.get(name)
            if value and isinstance(value, str):
                data[name] = redact(value)
        event = Event(kind, self.run_id, time.time(), task, data)
        for sink in self.sinks:
            if kind in getattr(sink, "kinds", ALL_KINDS):
                sink.handle(event)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # a broken sink must not hide the run's result
                pass


class JsonLinesSink:
    """`--json-events`: one JSON object per line; the first is `run_started` with the run id."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def handle(self, event: Event) -> None:
        self.stream.write(json.dumps(event.as_json(), default=str, ensure_ascii=False) + "\n")
        if event.kind in ("run_started", "run_finished", "task_finished"):
            self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class CallbackSink:
    def __init__(self, callback: Callable[[Event], None]):
        self.callback = callback

    def handle(self, event: Event) -> None:
        self.callback(event)

    def close(self) -> None:
        pass


class JournalSink:
    """Writes the significant events into the journal's buffered `events` table."""

    kinds = JOURNALED

    def __init__(self, journal: Any):
        self.journal = journal

    def handle(self, event: Event) -> None:
        if event.kind in JOURNALED:
            self.journal.add_event(event.run_id, event.kind, event.task, event.data)

    def close(self) -> None:
        pass


class LiveDisplay:
    """A rich live view on stderr: one line per running task, spend against the budget."""

    def __init__(self, budget_usd: float | None, console: Any = None):
        from rich.console import Console
        from rich.live import Live

        self.console = console or Console(stderr=True)
        self.budget = budget_usd
        self.running: dict[str, tuple[str, float]] = {}
        self.spent = 0.0
        self.done = 0
        self.failed = 0
        self.total = 0
        self.workflow = ""
        self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                         transient=True)
        self.live.start()

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        budget = f" / ${self.budget:.4f}" if self.budget is not None else ""
        table.add_row(f"[bold]{self.workflow}[/]",
                      f"{self.done}/{self.total} tasks" + (f", {self.failed} failed" if self.failed else ""),
                      f"spent ${self.spent:.4f}{budget}")
        now = time.time()
        for task, (model, since) in list(self.running.items())[:20]:
            table.add_row(f"  [cyan]{task}[/]", model or "", f"{now - since:5.1f}s")
        if len(self.running) > 20:
            table.add_row(f"  ... {len(self.running) - 20} more running", "", "")
        return table

    def handle(self, event: Event) -> None:
        d = event.data
        if event.kind == "run_started":
            self.workflow = d.get("workflow", "")
            self.total = d.get("tasks", 0)
        elif event.kind == "task_started" and event.task:
            self.running[event.task] = (d.get("model") or "", event.ts)
        elif event.kind == "task_finished" and event.task:
            self.running.pop(event.task, None)
            self.done += 1
            self.failed += d.get("status") == "failed"
        elif event.kind == "call_finished":
            self.spent += d.get("cost_usd") or 0.0
        elif event.kind == "budget_alert":
            whose = f"task {event.task}'s" if event.task else "the run's"
            self.console.print(f"[yellow]budget alert:[/] {int(d['threshold'] * 100)}% of {whose} "
                               f"{d['kind']} budget spent")
        elif event.kind == "task_retried":
            self.console.print(f"[dim]retry {event.task} ({d.get('model')}): {d.get('error')}[/]")
        self.live.update(self._render())

    def close(self) -> None:
        self.live.stop()


# `gen_ai.system` (now also `gen_ai.provider.name`) as the GenAI semantic conventions name the
# providers; other kinds (sim, replay, llama_cpp) are named by their kind.
GENAI_SYSTEMS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini",
                 "ollama": "ollama"}


class OpenTelemetrySink:
    """Spans per run, task and call with the GenAI semantic conventions' attribute names: a run
    span, a span per task under it, and a `chat MODEL` span per model call under its task.
    Spans go to the tracer provider given, else the process's global one (see
    `runtime/otel_export.py` for how `bmad run` sets that up from the OTEL_* variables)."""

    def __init__(self, tracer_provider: Any = None) -> None:
        from opentelemetry import trace

        self.trace = trace
        self.tracer = trace.get_tracer("bmad.runtime", tracer_provider=tracer_provider)
        # By run: a batch's rows run side by side, each its own trace.
        self.run_spans: dict[str, Any] = {}
        self.task_spans: dict[tuple[str, str], Any] = {}

    @staticmethod
    def available() -> bool:
        try:
            import opentelemetry.trace  # noqa: F401
        except ImportError:
            return False
        return True

    def handle(self, event: Event) -> None:
        d = event.data
        ns = int(event.ts * 1e9)
        if event.kind == "run_started":
            self.run_spans[event.run_id] = self.tracer.start_span(
                f"bmad.run {d.get('workflow')}", start_time=ns,
                attributes={"bmad.run_id": event.run_id, "bmad.workflow": d.get("workflow") or "",
                            "bmad.plan_hash": d.get("plan_hash") or "",
                            "bmad.resumed": bool(d.get("resumed"))})
        elif event.kind == "task_started" and event.task:
            run_span = self.run_spans.get(event.run_id)
            ctx = self.trace.set_span_in_context(run_span) if run_span else None
            self.task_spans[(event.run_id, event.task)] = self.tracer.start_span(
                f"bmad.task {event.task}", context=ctx, start_time=ns,
                attributes={"bmad.task": event.task, "gen_ai.request.model": d.get("model") or ""})
        elif event.kind == "call_finished":
            parent = self.task_spans.get((event.run_id, event.task or "")) \
                or self.run_spans.get(event.run_id)
            ctx = self.trace.set_span_in_context(parent) if parent else None
            start = ns - int((d.get("latency_s") or 0.0) * 1e9)
            kind = d.get("provider_kind") or ""
            system = GENAI_SYSTEMS.get(kind, kind or "_OTHER")
            span = self.tracer.start_span(
                f"chat {d.get('model')}", context=ctx, start_time=start,
                attributes={"gen_ai.operation.name": "chat", "gen_ai.system": system,
                            "gen_ai.provider.name": system,
                            "gen_ai.request.model": d.get("model") or "",
                            "gen_ai.usage.input_tokens": d.get("input_tokens") or 0,
                            "gen_ai.usage.output_tokens": d.get("output_tokens") or 0,
                            "bmad.provider": d.get("provider") or "",
                            "bmad.purpose": d.get("purpose") or "",
                            "bmad.cost_usd": d.get("cost_usd") or 0.0,
                            "bmad.cached": bool(d.get("cached"))})
            if d.get("status") != "ok":
                span.set_attribute("error.type", str(d.get("error") or "error"))
                span.set_status(self.trace.Status(self.trace.StatusCode.ERROR))
            span.end(end_time=ns)
        elif event.kind == "task_finished" and event.task:
            span = self.task_spans.pop((event.run_id, event.task), None)
            if span is not None:
                status = d.get("status") or ""
                span.set_attribute("bmad.status", status)
                for key, value in (("bmad.model", d.get("model")), ("bmad.cost_usd", d.get("cost_usd")),
                                   ("bmad.quality", d.get("quality")), ("bmad.attempts", d.get("attempts"))):
                    if value is not None:
                        span.set_attribute(key, value)
                if status == "failed":
                    span.set_attribute("error.type", str(d.get("error") or "failed"))
                    span.set_status(self.trace.Status(self.trace.StatusCode.ERROR))
                span.end(end_time=ns)
        elif event.kind == "run_finished" and event.run_id in self.run_spans:
            run_span = self.run_spans.pop(event.run_id)
            status = d.get("status") or ""
            run_span.set_attribute("bmad.status", status)
            run_span.set_attribute("bmad.spent_usd", d.get("spent_usd") or 0.0)
            if status == "failed":
                run_span.set_status(self.trace.Status(self.trace.StatusCode.ERROR))
            run_span.end(end_time=ns)

    def close(self) -> None:
        for span in [*self.task_spans.values(), *self.run_spans.values()]:
            span.end()
        self.task_spans.clear()
        self.run_spans.clear()
