"""When `bmad run` traces: a sink only where spans have somewhere to go, and a note (never a
failure) when the OTEL_* variables ask for what this installation can't do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bmad.runtime.otel_export import start_tracing

from runtime_support import plan_source

WORKFLOW = """
workflow hello {
  task greet { prompt "Say hello" model cheap max_tokens 20 }
  output greet
}
"""


def test_no_sink_when_spans_would_go_nowhere(monkeypatch):
    otel = pytest.importorskip("opentelemetry.trace")
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    sinks, notes = [], []
    assert start_tracing(sinks, notes.append) is None and notes == []
    # A provider set up before (another test, an application) is a destination; the default is not.
    has_destination = not isinstance(otel.get_tracer_provider(), otel.ProxyTracerProvider)
    assert len(sinks) == int(has_destination)


def test_a_run_asked_for_spans_without_opentelemetry_says_so_and_runs(tmp_path: Path):
    shim = tmp_path / "shim" / "opentelemetry"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("No module named \'opentelemetry\'")\n')
    plan_source(tmp_path, WORKFLOW)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "shim"),
                                                        os.environ.get("PYTHONPATH", "")]),
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:9/v1/traces"}
    done = subprocess.run([sys.executable, "-m", "bmad", "run", "wf.bmad", "--provider", "sim",
                           "--sim-latency-scale", "0", "--journal", "runs.db"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "OpenTelemetry is not installed: pip install 'bmad[otel]'" in done.stderr
