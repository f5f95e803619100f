"""Answers of odd shapes from the four HTTP protocols, over a real server on 127.0.0.1.

- An answer with no text (`content: null` or `""`, a tool call or tool_use block alone, no choices,
  no text block, Anthropic's `{"type": "text", "text": null}`, Gemini's `text: null`) is one kind
  of error in every protocol: `base.EmptyAnswer`, a retryable `transient` with a readable reason,
  never a TypeError and never a successful empty answer; a workflow retries it, then falls back.
- A usage count that is not a non-negative whole number (`"lots"`, `null`, `-5`, `1.5`, `true`,
  an object) is ignored and the tokens are estimated, as when a server reports no usage; the good
  answer is kept.

The server answers whatever canned body the model id names (`ShapeServer.bodies`)."""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import anyio
import pytest

from bmad.compiler import ir
from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.providers import base
from bmad.runtime.providers.registry import ProviderOptions, build_provider

from runtime_support import plan_source

KINDS = ("openai", "anthropic", "gemini", "ollama")
GOOD_TEXT = "a fine answer"


def answer_body(kind: str, text: Any = GOOD_TEXT, usage: Any = "default") -> dict[str, Any]:
    """A well-formed 200 body of `kind` holding `text`; `usage` replaces the usage numbers."""
    if kind == "openai":
        body: dict[str, Any] = {"id": "x", "object": "chat.completion", "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}
        body["usage"] = {"prompt_tokens": 10, "completion_tokens": 5} if usage == "default" else usage
    elif kind == "anthropic":
        body = {"id": "x", "type": "message", "role": "assistant", "model": "m",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn"}
        body["usage"] = {"input_tokens": 10, "output_tokens": 5} if usage == "default" else usage
    elif kind == "gemini":
        body = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                "finishReason": "STOP"}]}
        body["usageMetadata"] = {"promptTokenCount": 10, "candidatesTokenCount": 5} \
            if usage == "default" else usage
    else:
        body = {"model": "m", "message": {"role": "assistant", "content": text}, "done": True,
                "done_reason": "stop"}
        body.update({"prompt_eval_count": 10, "eval_count": 5} if usage == "default" else usage)
    return body


class ShapeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies: dict[tuple[str, str], Callable[[str], Any]] = {}  # (kind, model id) -> key -> body

    def do_POST(self):  # noqa: N802 (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        if "/v1beta/models/" in self.path:
            kind, model = "gemini", self.path.split("/v1beta/models/")[1].split(":")[0]
        elif self.path.endswith("/v1/messages"):
            kind, model = "anthropic", request.get("model", "")
        elif self.path.endswith("/api/chat"):
            kind, model = "ollama", request.get("model", "")
        else:
            kind, model = "openai", request.get("model", "")
        key = (self.headers.get("authorization") or "").removeprefix("Bearer ") \
            or self.headers.get("x-api-key") or self.headers.get("x-goog-api-key") or ""
        make = self.bodies.get((kind, model)) or (lambda key: answer_body(kind))
        payload = json.dumps(make(key)).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


class ShapeServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving the canned bodies of `ShapeHandler.bodies`."""

    def __init__(self) -> None:
        self.bodies: dict[tuple[str, str], Callable[[str], Any]] = {}
        handler = type("Handler", (ShapeHandler,), {"bodies": self.bodies})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "ShapeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def base_url(self, kind: str) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}/v1" if kind == "openai" else f"http://127.0.0.1:{port}"

    def serve(self, kind: str, model: str, body: Any) -> None:
        self.bodies[(kind, model)] = body if callable(body) else (lambda key: body)


@pytest.fixture(scope="module")
def shape_server():
    with ShapeServer() as server:
        yield server


def complete(server: ShapeServer, kind: str, model: str, **request: Any) -> base.CompletionResponse:
    provider = build_provider(ir.Provider(name=f"p_{kind}", kind=kind, base_url=server.base_url(kind)),
                              options=ProviderOptions(config=_no_config()))

    async def call() -> base.CompletionResponse:
        try:
            return await provider.complete(base.CompletionRequest(
                model_id=model, messages=(base.Message("user", "say something"),), timeout_s=10,
                **request))
        finally:
            await provider.aclose()

    return anyio.run(call)


def _no_config():
    from bmad.runtime.providers.keys import KeyConfig
    return KeyConfig()


# -- answers without text ------------------------------------------------------------------------

def _openai(message: dict[str, Any], finish: str = "stop", **extra: Any) -> dict[str, Any]:
    return {"id": "x", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", **message},
                                                  "finish_reason": finish}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}, **extra}


TOOL_CALL = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
_ANTHROPIC = {"id": "x", "type": "message", "role": "assistant", "model": "m",
              "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 5}}
_GEMINI_USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 5}

NO_TEXT = {
    "openai": {
        "null": _openai({"content": None}),
        "empty": _openai({"content": ""}),
        "blank": _openai({"content": "  \n "}),
        "toolcall": _openai({"content": None, "tool_calls": [TOOL_CALL]}, finish="tool_calls"),
        "nochoices": {"id": "x", "model": "m", "choices": [], "usage": {"prompt_tokens": 1}},
        "choicenotobject": {"id": "x", "choices": ["hello"]},
        "contentnumber": _openai({"content": 42}),
    },
    "anthropic": {
        "null": {**_ANTHROPIC, "content": [{"type": "text", "text": None}]},
        "empty": {**_ANTHROPIC, "content": [{"type": "text", "text": ""}]},
        "noblocks": {**_ANTHROPIC, "content": []},
        "tooluse": {**_ANTHROPIC, "stop_reason": "tool_use",
                    "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}]},
        "textnumber": {**_ANTHROPIC, "content": [{"type": "text", "text": 7}, "junk"]},
    },
    "gemini": {
        "null": {"candidates": [{"content": {"role": "model", "parts": [{"text": None}]},
                                 "finishReason": "STOP"}], "usageMetadata": _GEMINI_USAGE},
        "empty": answer_body("gemini", ""),
        "functioncall": {"candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "lookup", "args": {}}}]}, "finishReason": "STOP"}]},
        "noparts": {"candidates": [{"content": {"role": "model"}, "finishReason": "STOP"}]},
    },
    "ollama": {
        "null": answer_body("ollama", None),
        "empty": answer_body("ollama", ""),
        "toolcall": {"model": "m", "message": {"role": "assistant", "content": "",
                                               "tool_calls": [{"function": {"name": "lookup", "arguments": {}}}]},
                     "done": True, "done_reason": "stop"},
    },
}
NO_TEXT_CASES = [(kind, shape) for kind, shapes in NO_TEXT.items() for shape in shapes]


@pytest.mark.parametrize(("kind", "shape"), NO_TEXT_CASES, ids=[f"{k}-{s}" for k, s in NO_TEXT_CASES])
def test_an_answer_without_text_is_a_retryable_empty_answer(shape_server, kind, shape):
    model = f"notext-{shape}"
    shape_server.serve(kind, model, NO_TEXT[kind][shape])
    with pytest.raises(base.ProviderError) as info:
        complete(shape_server, kind, model)
    error = info.value
    assert type(error) is base.EmptyAnswer, repr(error)
    assert isinstance(error, base.Transient) and error.retryable and error.kind == "transient"
    assert "the answer has no text" in error.message and error.message.startswith(f"p_{kind}: ")
    assert "TypeError" not in error.message and "NoneType" not in error.message


def test_a_refusal_and_a_blocked_answer_stay_content_filtered(shape_server):
    shape_server.serve("openai", "refused", _openai({"content": None, "refusal": "I can't help with that."}))
    with pytest.raises(base.ContentFiltered):
        complete(shape_server, "openai", "refused")
    shape_server.serve("gemini", "blocked", {"candidates": [{"content": {"parts": []}, "finishReason": "SAFETY"}]})
    with pytest.raises(base.ContentFiltered):
        complete(shape_server, "gemini", "blocked")


@pytest.mark.parametrize("kind", KINDS)
def test_structured_and_list_answers_with_text_still_succeed(shape_server, kind):
    """The EmptyAnswer check looks at the final text: a JSON answer given through Anthropic's
    forced tool, or an OpenAI content list of text parts, is an answer."""
    if kind == "anthropic":
        body = {**_ANTHROPIC, "content": [{"type": "tool_use", "id": "t", "name": "emit_answer",
                                           "input": {"city": "Lisbon"}}]}
        shape_server.serve(kind, "structured", body)
        response = complete(shape_server, kind, "structured",
                            json_schema={"type": "object", "properties": {"city": {"type": "string"}}})
        assert json.loads(response.text) == {"city": "Lisbon"}
    elif kind == "openai":
        shape_server.serve(kind, "parts", _openai({"content": [{"type": "text", "text": "one "},
                                                               {"type": "text", "text": "two"}]}))
        assert complete(shape_server, kind, "parts").text == "one two"
    else:
        shape_server.serve(kind, "plain", answer_body(kind, "plain text"))
        assert complete(shape_server, kind, "plain").text == "plain text"


# -- usage numbers of the wrong type ----------------------------------------------------------

BAD_USAGE = {
    "openai": {"strings": {"prompt_tokens": "lots", "completion_tokens": None},
               "negative": {"prompt_tokens": -1000000, "completion_tokens": -5000000},
               "huge": {"prompt_tokens": 10**30, "completion_tokens": 1e300},
               "odd": {"prompt_tokens": 1.5, "completion_tokens": True,
                       "prompt_tokens_details": "x", "completion_tokens_details": {"reasoning_tokens": "many"}}},
    "anthropic": {"strings": {"input_tokens": "lots", "output_tokens": None,
                              "cache_read_input_tokens": "x"},
                  "negative": {"input_tokens": -10, "output_tokens": -5},
                  "huge": {"input_tokens": 10**20, "output_tokens": "9" * 18},
                  "odd": {"input_tokens": {"n": 1}, "output_tokens": [3]}},
    "gemini": {"strings": {"promptTokenCount": "lots", "candidatesTokenCount": None,
                           "thoughtsTokenCount": "some", "cachedContentTokenCount": "x"},
               "negative": {"promptTokenCount": -10, "candidatesTokenCount": -5},
               "odd": {"promptTokenCount": float("inf"), "candidatesTokenCount": False}},
    "ollama": {"strings": {"prompt_eval_count": "lots", "eval_count": None},
               "negative": {"prompt_eval_count": -10, "eval_count": -5},
               "odd": {"prompt_eval_count": 2.5, "eval_count": {"n": 1}}},
}
BAD_USAGE_CASES = [(kind, case) for kind, cases in BAD_USAGE.items() for case in cases]


@pytest.mark.parametrize(("kind", "case"), BAD_USAGE_CASES, ids=[f"{k}-{c}" for k, c in BAD_USAGE_CASES])
def test_unreadable_usage_is_ignored_and_estimated(shape_server, kind, case):
    model = f"usage-{case}"
    body = answer_body(kind, GOOD_TEXT, BAD_USAGE[kind][case])
    shape_server.serve(kind, model, body)
    response = complete(shape_server, kind, model)
    assert response.text == GOOD_TEXT
    assert response.raw is not None and response.raw.get("usage_estimated") is True
    assert response.input_tokens >= 1 and response.output_tokens >= 1
    assert response.output_tokens == max(1, len(GOOD_TEXT) // 4)
    assert response.cached_tokens >= 0 and response.reasoning_tokens >= 0


@pytest.mark.parametrize("kind", KINDS)
def test_readable_usage_is_still_read(shape_server, kind):
    usage = {"openai": {"prompt_tokens": 12, "completion_tokens": "7"},
             "anthropic": {"input_tokens": 12, "output_tokens": 7.0},
             "gemini": {"promptTokenCount": 12, "candidatesTokenCount": 7},
             "ollama": {"prompt_eval_count": 12, "eval_count": 7}}[kind]
    shape_server.serve(kind, "usage-good", answer_body(kind, GOOD_TEXT, usage))
    response = complete(shape_server, kind, "usage-good")
    assert (response.input_tokens, response.output_tokens) == (12, 7)
    assert not (response.raw or {}).get("usage_estimated")


# -- through a workflow ---------------------------------------------------------------------------

def catalog(server: ShapeServer, kind: str) -> str:
    return (f'provider p {{ kind {kind}  base_url "{server.base_url(kind)}" }}\n'
            'model bad { provider p  id "notext-null"  price input $1 output $2 per 1M  skills { writing 0.9 } }\n'
            'model strusage { provider p  id "usage-strings"  price input $1 output $2 per 1M  skills { writing 0.9 } }\n'
            'model good { provider p  id "good"  price input $1 output $2 per 1M  skills { writing 0.8 } }\n')


WORKFLOW = """
workflow shapes {
  task a { prompt "x"  model bad  retry 1 backoff fixed 10ms to 10ms  fallback [good] }
  task b { prompt "y"  model strusage  retry 1 backoff fixed 10ms to 10ms  fallback [good] }
  output a
  output b
}
"""


@pytest.mark.parametrize("kind", KINDS)
def test_a_workflow_retries_an_empty_answer_then_falls_back_and_keeps_answers_with_bad_usage(
        tmp_path, shape_server, kind, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BMAD_CONFIG", raising=False)
    shape_server.serve(kind, "notext-null", NO_TEXT[kind]["null"])
    shape_server.serve(kind, "usage-strings", answer_body(kind, "answer despite usage", BAD_USAGE[kind]["strings"]))
    shape_server.serve(kind, "good", answer_body(kind, "the fallback's answer"))
    plan = plan_source(tmp_path, WORKFLOW, catalog=catalog(shape_server, kind))
    options = ProviderOptions(models=plan.program.models, config=_no_config())
    journal_path = tmp_path / "runs.db"
    outcome = execute_plan(plan, RunRequest(
        config=RunConfig(), journal_path=journal_path,
        provider_factory=lambda decl: build_provider(decl, options=options)))
    assert outcome.status == "completed", outcome.error
    assert outcome.outputs == {"a": "the fallback's answer", "b": "answer despite usage"}

    db = sqlite3.connect(journal_path)
    try:
        rows = db.execute("SELECT task_id, model, status, error, error_kind, input_tokens, output_tokens "
                          "FROM calls WHERE run_id = ? ORDER BY id", (outcome.run_id,)).fetchall()
    finally:
        db.close()
    a_rows = [r for r in rows if r[0] == "a"]
    failed = [r for r in a_rows if r[1] == "bad"]
    assert len(failed) == 2  # retried once (retry 1), then the fallback
    for _, _, status, error, error_kind, _, _ in failed:
        assert (status, error_kind) == ("error", "transient")
        assert "the answer has no text" in error and "TypeError" not in error
    # an empty answer is billed all the same: its tokens and cost are journaled and spent
    db = sqlite3.connect(journal_path)
    try:
        billed = db.execute("SELECT input_tokens, cost_usd FROM calls WHERE run_id = ? AND model = 'bad'",
                            (outcome.run_id,)).fetchall()
        [(spent,)] = db.execute("SELECT spent_usd FROM runs WHERE id = ?", (outcome.run_id,)).fetchall()
    finally:
        db.close()
    assert len(billed) == 2 and all(tokens >= 1 and cost > 0 for tokens, cost in billed)
    assert spent >= sum(cost for _, cost in billed)
    assert [r[1:3] for r in a_rows if r[2] == "ok"] == [("good", "ok")]
    b_rows = [r for r in rows if r[0] == "b"]
    assert [r[1:3] for r in b_rows] == [("strusage", "ok")]  # answered at once, no ValueError
    assert b_rows[0][5] >= 1 and b_rows[0][6] >= 1  # estimated, not read from "lots"
