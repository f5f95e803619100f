"""`bmad run` end to end against the fault-injecting server on 127.0.0.1: a 429 with Retry-After is
retried, a context-length error falls back, a dead model fails the run, and the planted key appears
in no artifact (journal, export, outputs) and no output stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.fault_server import FaultServer

KEY = "sk-e2e-PLANTED-KEY-00112233445566778899"
KEY_VAR = "BMAD_E2E_TEST_KEY"


@pytest.fixture(scope="module")
def server():
    with FaultServer(expected_key=KEY) as s:
        yield s


def workflow(server, kind: str, body: str) -> str:
    return (f'provider lab {{\n  kind {kind}\n  base_url "{server.base_url(kind)}"\n'
            f'  api_key env {KEY_VAR}\n}}\n'
            'model good {\n  provider lab\n  id "ok"\n  price input $1.00 output $2.00 per 1M\n}\n'
            'model once {\n  provider lab\n  id "ratelimit-once"\n'
            '  price input $1.00 output $2.00 per 1M\n}\n'
            'model long {\n  provider lab\n  id "context"\n  price input $1.00 output $2.00 per 1M\n}\n'
            'model dead {\n  provider lab\n  id "server_error"\n'
            '  price input $1.00 output $2.00 per 1M\n}\n' + body)


def run(tmp_path: Path, source: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    f = tmp_path / "wf.bmad"
    f.write_text(source)
    journal = tmp_path / "runs.db"
    env = {**os.environ, KEY_VAR: KEY}
    out = subprocess.run([sys.executable, "-m", "bmad", "run", str(f), "--journal", str(journal),
                          "-o", str(tmp_path / "outputs.json"), *args],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)
    run_id = None
    for line in (out.stdout + out.stderr).splitlines():
        for word in line.replace('"', " ").split():
            word = word.strip(":,")
            if word.count("-") >= 2 and word[:8].isdigit():
                run_id = word
                break
        if run_id:
            break
    exported: dict = {}
    if run_id:
        exp = subprocess.run([sys.executable, "-m", "bmad", "export", run_id, "--format", "json",
                              "--journal", str(journal)], capture_output=True, text=True,
                             env=env, cwd=tmp_path, timeout=60)
        if exp.returncode == 0:
            exported = json.loads(exp.stdout)
    return out, exported


def all_artifacts(tmp_path: Path) -> bytes:
    blob = b""
    for p in tmp_path.rglob("*"):
        if p.is_file():
            blob += p.read_bytes()
    return blob


# openai in the default run; the other protocols' request shapes are covered there by
# test_http_providers.py, and this whole-workflow run of them goes with the slow suite
@pytest.mark.parametrize("kind", ["openai", *(pytest.param(k, marks=pytest.mark.slow)
                                              for k in ("anthropic", "gemini", "ollama"))])
def test_retry_and_fallback_complete_and_the_key_stays_secret(server, tmp_path, kind):
    source = workflow(server, kind, """
workflow w {
  task first {
    prompt "Say hello to the tester"
    model once
    retry 3 backoff fixed 10ms to 10ms
  }
  task second {
    prompt "Summarise: {{ first }}"
    model long
    fallback [good]
  }
  output second
}
""")
    out, exported = run(tmp_path, source, "--json-events")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    assert outputs["second"].startswith("echo:")
    assert exported, "bmad export should describe the run"
    calls = exported["calls"]
    statuses = [(c["task"], c["model"], c["status"]) for c in calls]
    assert any(t == "first" and s != "ok" for t, _, s in statuses)  # the 429 was recorded
    assert any(t == "second" and m == "long" and s != "ok" for t, m, s in statuses)
    assert any(t == "second" and m == "good" and s == "ok" for t, m, s in statuses)
    assert KEY.encode() not in all_artifacts(tmp_path)
    assert KEY not in out.stdout + out.stderr


def test_a_dead_model_is_retried_then_replaced_and_every_failure_is_recorded(server, tmp_path):
    # The planner chains automatic fallbacks (other qualified models) after a task's own model.
    source = workflow(server, "openai", """
workflow w {
  task only {
    prompt "Say hello"
    model dead
    retry 1 backoff fixed 10ms to 10ms
  }
  output only
}
""")
    out, exported = run(tmp_path, source)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    dead = [c for c in exported["calls"] if c["model"] == "dead"]
    assert len(dead) == 2 and all(c["status"] != "ok" for c in dead)  # both attempts journaled
    assert any(c["model"] != "dead" and c["status"] == "ok" for c in exported["calls"])
    assert KEY.encode() not in all_artifacts(tmp_path)
    assert KEY not in out.stdout + out.stderr
