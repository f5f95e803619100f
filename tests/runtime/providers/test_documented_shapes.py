"""Anthropic and Gemini shapes checked against fixtures built from their public API references:
the requests we build, the documented responses and streams we read, and their error bodies."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from bmad.runtime.providers import base
from bmad.runtime.providers.anthropic import AnthropicProvider
from bmad.runtime.providers.gemini import GeminiProvider

FIXTURES = Path(__file__).parent / "fixtures"
ANTHROPIC = json.loads((FIXTURES / "anthropic_documented.json").read_text())
GEMINI = json.loads((FIXTURES / "gemini_documented.json").read_text())


def request(**kw) -> base.CompletionRequest:
    return base.CompletionRequest(model_id=kw.pop("model_id", "claude-sonnet-4-5"),
                                  messages=(base.Message("system", "You are terse."),
                                            base.Message("user", "Hello, world")), **kw)


def shape(value):
    """The structure of a JSON value: keys and types, not contents."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_anthropic_request_matches_the_documented_shape():
    body = AnthropicProvider("a").request_body(request(max_tokens=1024, temperature=0.5,
                                                       stop=("END",)))
    assert shape(body) == shape(ANTHROPIC["request"])
    assert body["messages"] == ANTHROPIC["request"]["messages"]


def test_gemini_request_matches_the_documented_shape():
    body = GeminiProvider("g").request_body(request(model_id="gemini-2.5-flash", max_tokens=800,
                                                    temperature=0.5, stop=("END",)))
    assert shape(body) == shape(GEMINI["request"])
    assert body == GEMINI["request"]


def test_anthropic_documented_responses_are_read():
    p = AnthropicProvider("a")
    parsed = p.parse_body(request(), ANTHROPIC["response"])
    assert parsed.text == "Hi! My name is Claude."
    assert (parsed.input_tokens, parsed.output_tokens, parsed.cached_tokens) == (2195, 503, 100)
    assert parsed.finish_reason == "end_turn"
    tool = p.parse_body(request(json_schema={"type": "object"}), ANTHROPIC["tool_response"])
    assert json.loads(tool.text) == {"location": "San Francisco, CA", "unit": "celsius"}


def test_gemini_documented_responses_are_read():
    p = GeminiProvider("g")
    parsed = p.parse_body(request(), GEMINI["response"])
    assert parsed.text == "Hello there! How can I help?"
    assert parsed.input_tokens == 4 and parsed.output_tokens == 9 + 1020
    assert parsed.reasoning_tokens == 1020 and parsed.cached_tokens == 2
    with pytest.raises(base.ContentFiltered, match="SAFETY"):
        p.parse_body(request(), GEMINI["blocked_response"])


def read_stream(provider, body: bytes, media: str):
    response = httpx.Response(200, content=body, headers={"content-type": media})
    seen: list[int] = []
    parsed = anyio.run(provider.read_stream, request(stream=True), response, seen.append)
    return parsed, seen


def test_anthropic_documented_stream_is_read():
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n"
                   for name, data in ANTHROPIC["stream"]).encode()
    parsed, seen = read_stream(AnthropicProvider("a"), body, "text/event-stream")
    assert parsed.text == "Hello!" and parsed.input_tokens == 25 and parsed.output_tokens == 15
    assert seen == [1, 2]
    cut = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n"
                  for name, data in ANTHROPIC["stream"][:5]).encode()
    with pytest.raises(base.Transient, match="stream ended"):
        read_stream(AnthropicProvider("a"), cut, "text/event-stream")


def test_gemini_documented_stream_is_read():
    body = "".join(f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in GEMINI["stream"]).encode()
    parsed, seen = read_stream(GeminiProvider("g"), body, "text/event-stream")
    assert parsed.text == "Hello there!" and parsed.output_tokens == 3
    assert parsed.finish_reason == "STOP" and len(seen) == 2


@pytest.mark.parametrize("provider_cls,case", [
    *[(AnthropicProvider, c) for c in ANTHROPIC["errors"]],
    *[(GeminiProvider, c) for c in GEMINI["errors"]],
], ids=lambda v: v.__name__ if isinstance(v, type) else f"{v['status']}-{v['class']}")
def test_documented_error_bodies_map_to_error_classes(provider_cls, case):
    response = httpx.Response(case["status"], json=case["body"], headers=case.get("headers", {}))
    err = provider_cls("p").error_from_response(response)
    assert err.kind == case["class"], err.message
    assert err.status == case["status"] and err.provider == "p"
    if "retry_after_s" in case:
        assert err.retry_after_s == case["retry_after_s"]
