"""Where a run's OpenTelemetry spans go, set up from the standard OTEL_* environment variables.

bmad creates its spans through the OpenTelemetry API (`events.OpenTelemetrySink`). If the process
already has a tracer provider (bmad run under `opentelemetry-instrument`, or bmad used as a
library by an application that set one), the spans go there and nothing here applies. Otherwise
`bmad run` sets one up itself when the variables ask for export:

- `OTEL_TRACES_EXPORTER`: `otlp`, `console` (JSON spans on stderr, so `--json-events` keeps
  stdout), `none`, or several comma-separated; when unset, `otlp` if an OTLP endpoint
  (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, else no export.
- `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (the
  default, from the `otel` extra) or `grpc` (needs `opentelemetry-exporter-otlp-proto-grpc`).
  The exporter reads its endpoint, headers, timeout and certificates from the usual variables;
  without a timeout there, an export gives up after 4 s (a collector that is down doesn't hold
  the end of a run for long).
- `OTEL_SERVICE_NAME` (default `bmad`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED=true`.

Headers (`OTEL_EXPORTER_OTLP_HEADERS`, often an API key) go to the collector only: they are never
part of a span, an event or the journal.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Mapping


# How long an export (with its retries) may take when OTEL_EXPORTER_OTLP_TIMEOUT doesn't say.
DEFAULT_EXPORT_TIMEOUT_S = 4
# How long the end of a run waits for spans still queued (a collector that is down must not hold
# the command up).
FLUSH_TIMEOUT_MS = 5000


class TracingError(Exception):
    """The OTEL_* variables ask for something this installation can't do; the message says what."""


def wanted_exporters(environ: Mapping[str, str]) -> list[str]:
    """The exporters the variables ask for (`otlp` when only an endpoint is set)."""
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                      or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        names = ["otlp"]
    return [n for n in names if n != "none"]


def _otlp_exporter(environ: Mapping[str, str]):
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        elif protocol in ("http/protobuf", "http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            raise TracingError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported "
                               f"(use http/protobuf or grpc)")
    except ImportError:
        package = "opentelemetry-exporter-otlp-proto-" + ("grpc" if protocol == "grpc" else "http")
        raise TracingError(f"exporting spans over OTLP ({protocol}) needs {package}: "
                           f"pip install 'bmad[otel]'" + (f" {package}" if protocol == "grpc" else ""))
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or environ.get("OTEL_EXPORTER_OTLP_TIMEOUT"):
        return OTLPSpanExporter()  # it reads the timeout set there
    # A collector that is down must not hold the end of a run for the spec's 10 s of retries.
    return OTLPSpanExporter(timeout=DEFAULT_EXPORT_TIMEOUT_S)


def configure_export(environ: Mapping[str, str] | None = None) -> Callable[[], None] | None:
    """Install the SDK's tracer provider with the exporters the OTEL_* variables ask for, when
    the process has none yet; returns what flushes and stops it at the end of the run (None
    when there is nothing to set up). Raises `TracingError` for a request that can't be met."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    wanted = wanted_exporters(environ)
    if not wanted:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise TracingError("OTEL_TRACES_EXPORTER asks for spans, but the OpenTelemetry SDK is "
                           "not installed: pip install 'bmad[otel]'") from None
    unknown = [n for n in wanted if n not in ("otlp", "console")]
    if unknown:  # said even when the process is set up already: the variable is a mistake
        raise TracingError(f"OTEL_TRACES_EXPORTER={unknown[0]} is not supported here "
                           f"(use otlp, console or none)")
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return None  # someone set the process up already (opentelemetry-instrument, an app)
    exporters = [_otlp_exporter(environ) if name == "otlp" else ConsoleSpanExporter(out=sys.stderr)
                 for name in wanted]
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": "bmad"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    def flush_and_stop() -> None:
        provider.force_flush(timeout_millis=FLUSH_TIMEOUT_MS)
        provider.shutdown()

    return flush_and_stop


def start_tracing(sinks: list[Any], note: Callable[[str], Any]) -> Callable[[], None] | None:
    """What `bmad run` and a batch do: set up export from the variables (`configure_export`) and
    add an `OpenTelemetrySink` to `sinks` when its spans have somewhere to go (a provider set up
    here or before); returns what flushes them at the end, or None. Tracing never stops a run:
    a request that can't be met is said through `note`. Without a destination no sink is added,
    so a run with OpenTelemetry merely installed builds no spans and no call events."""
    from bmad.runtime.events import OpenTelemetrySink

    if not OpenTelemetrySink.available():
        if wanted_exporters(os.environ):
            note("note: OTEL_* variables ask for spans, but OpenTelemetry is not installed: "
                 "pip install 'bmad[otel]'\n")
        return None
    try:
        stop = configure_export()
    except TracingError as exc:
        note(f"note: no spans exported: {exc}\n")
        stop = None
    from opentelemetry import trace

    if stop is not None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        sinks.append(OpenTelemetrySink())
    return stop
