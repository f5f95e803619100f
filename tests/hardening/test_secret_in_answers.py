"""A key a server echoes back in a *successful* answer is masked before the answer leaves the
provider layer: it reaches no output, journal row, event, export or stdout, in any of the four
HTTP protocols. Only the keys loaded in this process (and long enough prefixes of them) are masked
in answers; credential-shaped text that is not ours (an example `sk-...` in a code answer) stays.
Real HTTP servers on 127.0.0.1 (the canned-body server of tests/runtime/test_provider_answer_shapes)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from bmad.cli.run_export import render_export
from bmad.compiler import ir
from bmad.runtime.events import JsonLinesSink
from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.journal import Journal
from bmad.runtime.providers import base, keys
from bmad.runtime.providers.keys import KeyConfig
from bmad.runtime.providers.registry import ProviderOptions, build_provider

from runtime_support import plan_source
from test_provider_answer_shapes import KINDS, ShapeServer, answer_body

KEY_VAR = "BMAD_ANSWER_ECHO_KEY"
KEYS = {  # one per protocol, shaped like the real ones
    "openai": "sk-ECHOTEST-openai-Q7xK2mN9vB4Lw8",
    "anthropic": "sk-ant-ECHOTEST-Zt6Yr3Pq1Hs5Jd0",
    "gemini": "AIza9ECHOTESTgeminiQ7xK2mN9vB4Lw8Zt6",
    "ollama": "oll4ECHO7TESTq7xk2mn9vb4lw8",
}
EXAMPLE_TOKEN = "sk-example0123456789ABCDEFGH"  # credential-shaped, but not a loaded key


def echo(kind: str):
    return lambda key: answer_body(kind, f"your key is {key}; its head {key[:10]}...; "
                                         f"an example key: {EXAMPLE_TOKEN}")


@pytest.fixture(scope="module")
def echo_server():
    with ShapeServer() as server:
        for kind in KINDS:
            server.serve(kind, "echokey", echo(kind))
        yield server


def provider_for(server: ShapeServer, kind: str):
    return build_provider(ir.Provider(name=f"p_{kind}", kind=kind, base_url=server.base_url(kind),
                                      api_key_env=KEY_VAR), options=ProviderOptions(config=KeyConfig()))


@pytest.mark.parametrize("kind", KINDS)
def test_an_echoed_key_is_masked_in_a_successful_answer(echo_server, kind, monkeypatch):
    key = KEYS[kind]
    monkeypatch.setenv(KEY_VAR, key)
    provider = provider_for(echo_server, kind)

    async def call() -> base.CompletionResponse:
        try:
            return await provider.complete(base.CompletionRequest(
                model_id="echokey", messages=(base.Message("user", "what is my key?"),), timeout_s=10))
        finally:
            await provider.aclose()

    response = anyio.run(call)
    assert response.text.startswith("your key is ***; its head ***...")
    for text in (response.text, repr(response), json.dumps(response.raw)):
        assert key not in text and key[:8] not in text
    # Not a loaded key: an answer may rightly hold example tokens, and keeps them.
    assert EXAMPLE_TOKEN in response.text


def test_answer_masking_touches_only_loaded_secrets():
    secret = "sk-ONLYMINE-Q7xK2mN9vB4Lw8Zt6"
    keys.remember_secret(secret)
    assert keys.mask_loaded_secrets(f"a {secret} b") == "a *** b"
    assert keys.mask_loaded_secrets(f"head {secret[:9]}.") == "head ***."
    plain = "use `Authorization: Bearer abcdefgh12345678` and sk-notmine0123456789abcdef"
    assert keys.mask_loaded_secrets(plain) == plain
    assert not keys.holds_loaded_secret(plain)
    assert keys.mask_loaded_secrets("") == ""


CATALOG = """
provider p {{ kind {kind}  base_url "{url}"  api_key env {var} }}
model echo {{ provider p  id "echokey"  price input $1 output $2 per 1M  skills {{ writing 0.9 }} }}
"""
WORKFLOW = 'workflow leak { task t { prompt "what is my key?"  model echo } output t }'


@pytest.mark.parametrize("kind", KINDS)
def test_an_echoed_key_reaches_no_output_journal_event_or_export(tmp_path, echo_server, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BMAD_CONFIG", raising=False)
    key = KEYS[kind]
    monkeypatch.setenv(KEY_VAR, key)
    plan = plan_source(tmp_path, WORKFLOW, catalog=CATALOG.format(
        kind=kind, url=echo_server.base_url(kind), var=KEY_VAR))
    options = ProviderOptions(models=plan.program.models, config=KeyConfig())
    lines = io.StringIO()
    journal_path = tmp_path / "runs.db"
    outcome = execute_plan(plan, RunRequest(
        config=RunConfig(), journal_path=journal_path, sinks=[JsonLinesSink(lines)],
        provider_factory=lambda decl: build_provider(decl, options=options)))
    assert outcome.status == "completed", outcome.error
    assert outcome.outputs["t"].startswith("your key is ***")

    journal = Journal(journal_path, readonly=True)
    try:
        exports = [render_export(journal, outcome.run_id, fmt) for fmt in ("json", "detailed")]
    finally:
        journal.db.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("runs.db*")).decode("latin-1")
    assert "your key is ***" in stored
    for text in (json.dumps(outcome.outputs), repr(outcome), lines.getvalue(), stored, *exports):
        assert key not in text and key[:8] not in text


def test_bmad_run_prints_no_echoed_key(tmp_path, echo_server):
    key = KEYS["openai"]
    wf = tmp_path / "leak.bmad"
    wf.write_text(CATALOG.format(kind="openai", url=echo_server.base_url("openai"), var=KEY_VAR)
                  + WORKFLOW + "\n", encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1", KEY_VAR: key}
    env.pop("BMAD_CONFIG", None)
    env.pop("BMAD_HOME", None)
    done = subprocess.run([sys.executable, "-m", "bmad", "run", str(wf), "--journal", "j.db"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "your key is ***" in done.stdout
    stored = b"".join(p.read_bytes() for p in Path(tmp_path).glob("j.db*")).decode("latin-1")
    for text in (done.stdout, done.stderr, stored):
        assert key not in text and key[:8] not in text
