"""A planted API key appears nowhere bmad writes or shows: exceptions, reprs, logs, events (JSON
lines), OpenTelemetry spans, the journal's bytes, exports and reports, on success and under every
failure we can provoke (a server echoing the key in its error, retries, a provider bug whose
exception carries the key, a failed run). Keys are read from the environment only, and are sent
only over https or to this machine unless bmad.toml opts in."""

from __future__ import annotations

import io
import json
import logging

import anyio
import pytest

from bmad.compiler import ir
from bmad.compiler.compile import compile_source
from bmad.runtime.events import CallbackSink, JsonLinesSink, OpenTelemetrySink
from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.export import export_run
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.journal import Journal
from bmad.runtime.providers import base, keys
from bmad.runtime.providers.registry import ProviderOptions, build_provider
from bmad.runtime.report_html import render_run_html
from bmad.runtime.report_text import render_run_text
from bmad.runtime.run_report import build_run_report

from runtime_support import plan_source
from tests.servers.fault_server import FaultServer

from .conftest import PLANTED_KEY

KEY_VAR = "BMAD_HARDENING_PLANTED_KEY"


@pytest.fixture(scope="module")
def keyed_server():
    with FaultServer(expected_key=PLANTED_KEY, slow_s=3.0) as server:
        yield server


@pytest.fixture(scope="module")
def spans():
    """An in-memory OpenTelemetry exporter behind the global tracer provider."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def keyed_catalog(url: str) -> str:
    def model(name: str, model_id: str) -> str:
        return (f'model {name} {{ provider lab  id "{model_id}"  '
                'price input $1 output $2 per 1M  skills { writing 0.9 } }\n')
    return (f'provider lab {{ kind openai  base_url "{url}"  api_key env {KEY_VAR} }}\n'
            + model("good", "ok") + model("echo", "echo_key") + model("dead", "server_error"))


WORKFLOW = """
workflow leaky {
  task a { prompt "hello"  model good }
  task b { prompt "again {{ a }}"  model echo  fallback [good] }
  task c { prompt "retry me"  model dead  retry 2 backoff fixed 10ms to 10ms  on_error skip }
  task d { depends b, c  prompt "bug"  model good }
  output b
}
"""


class BuggyFor:
    """A provider that, for task `d`, fails with an exception carrying the key (a provider bug)."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self.name = wrapped.name

    async def complete(self, request, on_progress=None):
        if request.task_id == "d":
            raise RuntimeError(f"client exploded; headers were Authorization: Bearer {PLANTED_KEY}")
        return await self.wrapped.complete(request, on_progress)

    async def aclose(self):
        await self.wrapped.aclose()


def test_the_planted_key_is_in_no_artifact_of_a_failing_run(tmp_path, keyed_server, spans,
                                                             monkeypatch, caplog):
    monkeypatch.setenv(KEY_VAR, PLANTED_KEY)
    caplog.set_level(logging.DEBUG)
    plan = plan_source(tmp_path, WORKFLOW, catalog=keyed_catalog(keyed_server.base_url("openai")))
    spans.clear()
    lines = io.StringIO()
    events: list = []
    journal_path = tmp_path / "runs.db"
    options = ProviderOptions(models=plan.program.models)
    request = RunRequest(config=RunConfig(), journal_path=journal_path,
                         provider_factory=lambda decl: BuggyFor(build_provider(decl, options=options)),
                         sinks=[JsonLinesSink(lines), OpenTelemetrySink(), CallbackSink(events.append)])
    outcome = execute_plan(plan, request)
    assert outcome.status == "failed"  # task d: the provider bug, on every model

    journal = Journal(journal_path, readonly=True)
    exported = export_run(journal, outcome.run_id)
    report = build_run_report(journal, outcome.run_id)
    journal.db.close()
    statuses = {t["id"]: t["status"] for t in exported["tasks"]}
    assert (statuses["a"], statuses["b"], statuses["d"]) == ("completed", "completed", "failed")
    kinds = {c["error_kind"] for c in exported["calls"]}
    assert {"bad_request", "transient", "provider_error"} <= kinds  # every failure path was taken
    assert keyed_server.state.requests, "the key was sent and accepted"

    finished = spans.get_finished_spans()
    assert finished, "spans were exported"
    span_text = "\n".join(json.dumps({"name": s.name, "attributes": dict(s.attributes or {}),
                                      "events": [dict(e.attributes or {}) for e in s.events],
                                      "status": str(s.status.description)}, default=str)
                          for s in finished)
    raw_journal = b"".join(p.read_bytes() for p in tmp_path.glob("runs.db*"))
    artifacts = {
        "outcome": repr(outcome),
        "events": "\n".join(repr(e) for e in events),
        "json lines": lines.getvalue(),
        "spans": span_text,
        "logs": caplog.text,
        "export": json.dumps(exported, default=str),
        "report text": render_run_text(report),
        "report html": render_run_html(report),
    }
    for name, text in artifacts.items():
        assert PLANTED_KEY not in text, name
    assert PLANTED_KEY.encode() not in raw_journal
    assert keys.REDACTED in artifacts["export"]  # the echoed key was there, masked


def test_keys_come_from_the_environment_only(tmp_path, workdir):
    source = 'provider p { kind openai api_key "sk-live-abcdefghijklmnop" }\nworkflow w { task t { prompt "x" } output t }'
    result = compile_source(source, "w.bmad")
    assert "BMAD-E013" in [d.code for d in result.diagnostics]
    assert "sk-live-abcdefghijklmnop" not in "\n".join(d.message + (d.hint or "") for d in result.diagnostics)
    (workdir / "bmad.toml").write_text('[providers.p]\napi_key = "sk-live-abcdefghijklmnop"\n')
    with pytest.raises(base.Unavailable) as info:
        build_provider(ir.Provider(name="p", kind="openai"))
    assert "sk-live" not in str(info.value)


@pytest.mark.parametrize("url", ["ftp://models.example.com/v1", "file:///etc/passwd", "example.com/v1",
                                 "https:///nohost"])
def test_base_url_must_be_http_or_https(url):
    with pytest.raises(base.Unavailable, match="BMAD-E520"):
        build_provider(ir.Provider(name="p", kind="openai", base_url=url), options=ProviderOptions())


def _call(provider):
    return anyio.run(provider.complete, base.CompletionRequest(
        model_id="m", messages=(base.Message("user", "hi"),), timeout_s=5))


def test_a_key_over_plain_http_to_another_host_needs_an_opt_in(workdir, monkeypatch, caplog):
    monkeypatch.setenv(KEY_VAR, PLANTED_KEY)
    decl = ir.Provider(name="remote", kind="openai", base_url="http://models.invalid/v1",
                       api_key_env=KEY_VAR)
    with pytest.raises(base.Unavailable) as info:
        _call(build_provider(decl))
    assert "BMAD-E521" in info.value.message and "allow_insecure_http" in info.value.message
    (workdir / "bmad.toml").write_text("[providers.remote]\nallow_insecure_http = true\n")
    caplog.set_level(logging.WARNING, logger="bmad.providers")
    with pytest.raises(base.ProviderError) as info:  # now sent (and the host does not exist)
        _call(build_provider(decl))
    assert "BMAD-E521" not in info.value.message
    assert any("BMAD-W520" in r.getMessage() and "models.invalid" in r.getMessage()
               for r in caplog.records)
    assert PLANTED_KEY not in caplog.text


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1", "http://localhost:9/v1", "http://[::1]:9/v1"])
def test_plain_http_to_this_machine_needs_no_opt_in(url, monkeypatch):
    monkeypatch.setenv(KEY_VAR, PLANTED_KEY)
    provider = build_provider(ir.Provider(name="local", kind="openai", base_url=url,
                                          api_key_env=KEY_VAR), options=ProviderOptions())
    with pytest.raises(base.ProviderError) as info:  # nothing listens on port 9
        _call(provider)
    assert info.value.kind == "transient"


def test_a_key_without_a_key_needs_no_https(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = build_provider(ir.Provider(name="open", kind="openai", base_url="http://10.0.0.9/v1"),
                              options=ProviderOptions())
    assert "Authorization" not in provider.headers()
