"""OpenTelemetry: a run's spans (run -> task -> `chat MODEL` call, GenAI attribute names), in
process through the SDK, and from a real `bmad run` to a real OTLP/HTTP receiver on 127.0.0.1
configured by the standard OTEL_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import StatusCode  # noqa: E402

from bmad.runtime.events import OpenTelemetrySink  # noqa: E402
from bmad.runtime.otel_export import TracingError, configure_export  # noqa: E402

from runtime_support import failing_factory, plan_source, run_plan  # noqa: E402

WORKFLOW = """
workflow traced {
  task draft { prompt "Draft a note on bees" model cheap max_tokens 40 }
  task check { prompt "Check: {{ draft }}" model mid max_tokens 40 }
  output check
}
"""


def test_spans_nest_run_task_call_and_carry_the_genai_attributes(tmp_path):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plan = plan_source(tmp_path, WORKFLOW)
    outcome, _ = run_plan(plan, tmp_path, factory=failing_factory(plan, {"check"}),
                          sinks=[OpenTelemetrySink(tracer_provider=provider)])
    assert outcome.status == "failed"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    run, draft, check = spans["bmad.run traced"], spans["bmad.task draft"], spans["bmad.task check"]
    assert run.parent is None and run.attributes["bmad.run_id"] == outcome.run_id
    assert run.attributes["bmad.status"] == "failed" and run.status.status_code is StatusCode.ERROR
    assert draft.parent.span_id == run.context.span_id == check.parent.span_id
    calls = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    [answered] = [s for s in calls if s.parent.span_id == draft.context.span_id]
    refusals = [s for s in calls if s.parent.span_id == check.context.span_id]
    assert answered.name == "chat cheap"
    assert refusals[0].name == "chat mid" and len(refusals) >= 2  # then its fallbacks
    assert answered.attributes["gen_ai.operation.name"] == "chat"
    assert answered.attributes["gen_ai.system"] == answered.attributes["gen_ai.provider.name"] == "sim"
    assert answered.attributes["gen_ai.request.model"] == "cheap"
    assert answered.attributes["gen_ai.usage.input_tokens"] > 0
    assert answered.attributes["gen_ai.usage.output_tokens"] > 0
    assert answered.attributes["bmad.provider"] == "p1" and answered.attributes["bmad.cost_usd"] > 0
    assert "error.type" not in answered.attributes
    for refused in refusals:
        assert refused.attributes["error.type"] and refused.status.status_code is StatusCode.ERROR
    assert draft.attributes["bmad.status"] == "completed" and draft.attributes["bmad.model"] == "cheap"
    assert check.attributes["bmad.status"] == "failed" and check.status.status_code is StatusCode.ERROR
    assert len({s.context.trace_id for s in exporter.get_finished_spans()}) == 1


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        type(self).bodies.append((self.path, self.headers.get("Content-Type"), self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_bmad_run_exports_its_spans_to_an_otlp_collector_named_by_the_environment(tmp_path):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    _Collector.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    plan_source(tmp_path, WORKFLOW)  # writes tmp_path/wf.bmad
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
           "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer collector-secret-123"}
    env.pop("OTEL_TRACES_EXPORTER", None)
    env.pop("OTEL_SERVICE_NAME", None)
    try:
        done = subprocess.run([sys.executable, "-m", "bmad", "run", "wf.bmad", "--provider", "sim",
                               "--sim-latency-scale", "0", "--json-events"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith('{"event": "run_started"')  # stdout untouched
    assert _Collector.bodies, "no spans reached the collector"
    spans, services = [], set()
    for path, content_type, body in _Collector.bodies:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            services |= {a.value.string_value for a in resource_spans.resource.attributes
                         if a.key == "service.name"}
            for scope in resource_spans.scope_spans:
                spans.extend(scope.spans)
    assert services == {"bmad"}
    by_name = {s.name: s for s in spans}
    assert {"bmad.run traced", "bmad.task draft", "bmad.task check", "chat cheap", "chat mid"} \
        <= set(by_name)
    run = by_name["bmad.run traced"]
    assert by_name["bmad.task draft"].parent_span_id == run.span_id
    assert by_name["chat cheap"].parent_span_id == by_name["bmad.task draft"].span_id
    assert {s.trace_id for s in spans} == {run.trace_id}
    assert all(b"collector-secret-123" not in body for _, _, body in _Collector.bodies)


def test_what_the_environment_asks_for_is_set_up_or_refused_in_words():
    assert configure_export({}) is None  # nothing asked: spans go to the API's default (none)
    assert configure_export({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert configure_export({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}) is None
    with pytest.raises(TracingError, match="zipkin is not supported"):
        configure_export({"OTEL_TRACES_EXPORTER": "zipkin"})
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), TracerProvider):  # else nothing is built
        with pytest.raises(TracingError, match="not supported"):
            configure_export({"OTEL_TRACES_EXPORTER": "otlp",
                              "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"})


def test_a_batch_gives_each_rows_run_its_own_trace(tmp_path):
    from bmad.runtime.batch import BatchRequest, execute_batch
    from bmad.runtime.executors.local import RunRequest

    from runtime_support import sim_factory

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    plan = plan_source(tmp_path, WORKFLOW.replace('"Draft a note on bees"', '"Draft a note on {{ topic }}"')
                       .replace("workflow traced {", 'workflow traced {\n  input topic: text'))
    run = RunRequest(provider_factory=sim_factory(plan), provider_mode="sim",
                     journal_path=tmp_path / "runs.db", sinks=[OpenTelemetrySink(tracer_provider=provider)])
    outcome = execute_batch(plan, BatchRequest(run=run, rows=[{"topic": t} for t in ("bees", "ants", "owls")]))
    assert outcome.status == "completed"
    spans = exporter.get_finished_spans()
    runs = [s for s in spans if s.name == "bmad.run traced"]
    assert len(runs) == 3 and len({s.context.trace_id for s in runs}) == 3
    for run_span in runs:
        in_trace = [s for s in spans if s.context.trace_id == run_span.context.trace_id]
        tasks = [s for s in in_trace if s.name.startswith("bmad.task ")]
        assert sorted(s.name for s in tasks) == ["bmad.task check", "bmad.task draft"]
        assert all(s.parent.span_id == run_span.context.span_id for s in tasks)
        assert len([s for s in in_trace if s.name.startswith("chat ")]) == 2

