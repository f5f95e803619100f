"""The four HTTP protocols against the fault-injecting server on 127.0.0.1: answers, usage, cost,
streaming, structured output, and each fault mapped to the right error class."""

from __future__ import annotations

import json
import socket

import anyio
import jsonschema
import pytest

from bmad.compiler import ir
from bmad.runtime.providers import base
from bmad.runtime.providers.registry import ProviderOptions, build_provider

PROTOCOLS = ("openai", "anthropic", "gemini", "ollama")
PRICES = {"ok": (1.0, 2.0)}


def provider_for(server, kind: str, **kw):
    decl = ir.Provider(name=f"test-{kind}", kind=kind, base_url=server.base_url(kind),
                       api_key_env=kw.pop("api_key_env", None), timeout_s=kw.pop("timeout_s", 10))
    models = (ir.Model(name="ok", provider=ir.Name(decl.name), id="ok", price=ir.Price(1.0, 2.0)),)
    return build_provider(decl, options=ProviderOptions(models=models, **kw))


def call(provider, model: str = "ok", prompt: str = "Say hello to the world please", **kw):
    req = base.CompletionRequest(model_id=model, model_name=model,
                                 messages=(base.Message("system", "Be brief."),
                                           base.Message("user", prompt)), **kw)
    progress: list[int] = []

    async def go():
        try:
            return await provider.complete(req, progress.append)
        finally:
            await provider.aclose()

    response = anyio.run(go)
    return response, progress


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_a_normal_answer_with_usage_and_cost(fault_server, kind):
    r, _ = call(provider_for(fault_server, kind), max_tokens=50, temperature=0.2)
    assert r.text == "echo: Be brief. Say hello to the world please"
    # Anthropic reports cache reads apart from input_tokens; they are input too.
    assert r.input_tokens == (8 + 3 if kind == "anthropic" else 8) and r.output_tokens >= 8
    assert r.cost_usd == pytest.approx((r.input_tokens * 1.0 + r.output_tokens * 2.0) / 1e6)
    assert r.finish_reason and r.latency_s > 0 and r.raw
    if kind == "openai":
        assert (r.cached_tokens, r.reasoning_tokens) == (2, 1)
        assert r.rate_limit.requests_limit == 600 and r.rate_limit.requests_reset_s == 0.1
    if kind == "anthropic":
        assert r.cached_tokens == 3
    if kind == "gemini":
        assert r.reasoning_tokens == 2 and r.output_tokens == 9 + 2  # thinking is billed output


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_streaming_gives_the_same_answer_and_reports_progress(fault_server, kind):
    plain, _ = call(provider_for(fault_server, kind))
    streamed, progress = call(provider_for(fault_server, kind), stream=True)
    assert streamed.text == plain.text
    assert streamed.input_tokens == plain.input_tokens
    assert len(progress) >= 3 and progress == sorted(progress)


SCHEMA = {"type": "object", "properties": {"title": {"type": "string"},
                                           "score": {"type": "integer", "minimum": 1,
                                                     "maximum": 5}},
          "required": ["title", "score"]}


@pytest.mark.parametrize("kind", PROTOCOLS)
@pytest.mark.parametrize("stream", [False, True])
def test_structured_output_is_requested_and_returned_as_json(fault_server, kind, stream):
    r, _ = call(provider_for(fault_server, kind), json_schema=SCHEMA, stream=stream)
    jsonschema.validate(json.loads(r.text), SCHEMA)
    sent = fault_server.requests[-1].body
    if kind == "openai":
        assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    elif kind == "anthropic":
        assert sent["tools"][0]["input_schema"] == SCHEMA and sent["tool_choice"]["type"] == "tool"
    elif kind == "gemini":
        assert sent["generationConfig"]["responseJsonSchema"] == SCHEMA
        assert sent["generationConfig"]["responseMimeType"] == "application/json"
    else:
        assert sent["format"] == SCHEMA


@pytest.mark.parametrize("kind", PROTOCOLS)
@pytest.mark.parametrize("stream", [False, True])
def test_an_enum_is_constrained_by_the_api_and_answered_as_its_value(fault_server, kind, stream):
    r, _ = call(provider_for(fault_server, kind), enum_values=("maybe", "no"), stream=stream)
    assert r.text in ("maybe", "no")  # the bare value: unwrapped from {"answer": ...} where wrapped
    sent = fault_server.requests[-1].body
    wrapped = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["maybe", "no"]}},
               "required": ["answer"], "additionalProperties": False}
    if kind == "openai":
        assert sent["response_format"]["json_schema"] == {"name": "answer", "schema": wrapped, "strict": True}
    elif kind == "anthropic":
        assert sent["tools"][0]["input_schema"] == wrapped and sent["tool_choice"]["type"] == "tool"
    elif kind == "gemini":
        assert sent["generationConfig"]["responseSchema"]["enum"] == ["maybe", "no"]
    else:
        assert sent["format"] == wrapped


@pytest.mark.parametrize("returns", ["json", "enum"])
def test_a_server_without_json_schema_is_asked_with_json_object_from_then_on(fault_server, returns):
    provider = provider_for(fault_server, "openai")
    ask = {"json_schema": SCHEMA} if returns == "json" else {"enum_values": ("maybe", "no")}

    async def twice():
        try:
            return [await provider.complete(base.CompletionRequest(
                model_id="json_object_only", model_name="m", messages=(base.Message("user", "Rate it"),), **ask))
                for _ in range(2)]
        finally:
            await provider.aclose()

    first, second = anyio.run(twice)
    for r in (first, second):
        if returns == "json":
            jsonschema.validate(json.loads(r.text), SCHEMA)
        else:
            assert r.text in ("maybe", "no")
    formats = [req.body["response_format"]["type"] for req in fault_server.requests[-3:]]
    assert formats == ["json_schema", "json_object", "json_object"]  # rejected once, then remembered


FAULTS = [
    ("rate_limited", base.RateLimited),
    ("server_error", base.Transient),
    ("unavailable", base.Transient),
    ("overloaded", base.Transient),
    ("malformed", base.Transient),
    ("truncated", base.Transient),
    ("context", base.ContextTooLong),
    ("content_filter", base.ContentFiltered),
]


@pytest.mark.parametrize("kind", PROTOCOLS)
@pytest.mark.parametrize("fault,error", FAULTS, ids=[f for f, _ in FAULTS])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_each_fault_maps_to_its_error_class(fault_server, kind, fault, error, stream):
    with pytest.raises(error) as info:
        call(provider_for(fault_server, kind), fault, stream=stream)
    exc = info.value
    assert exc.provider == f"test-{kind}" and exc.message
    assert exc.retryable == (error in (base.RateLimited, base.Transient))
    if fault == "rate_limited":
        assert exc.retry_after_s == (3.0 if kind == "gemini" else 2.0)


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_a_dropped_connection_mid_stream_is_transient(fault_server, kind):
    with pytest.raises(base.Transient):
        call(provider_for(fault_server, kind), "dropped", stream=True)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_an_error_event_mid_stream_is_classified(fault_server, kind):
    with pytest.raises(base.Transient):
        call(provider_for(fault_server, kind), "stream_error", stream=True)


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_a_slow_answer_past_the_timeout_is_a_timeout(fault_server, kind):
    with pytest.raises(base.Timeout):
        call(provider_for(fault_server, kind), "slow", timeout_s=0.3)


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_retry_after_a_flaky_server_succeeds_on_the_same_provider(fault_server, kind):
    provider = provider_for(fault_server, kind)
    prompt = f"flaky prompt for {kind}"
    for _ in range(2):
        with pytest.raises(base.Transient):
            call(provider, "flaky-2", prompt)
    r, _ = call(provider, "flaky-2", prompt)
    assert r.text.startswith("echo:")
    assert r.cost_usd is None  # flaky-2 has no price in the catalog: unknown, never $0


def test_an_unreachable_server_is_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    decl = ir.Provider(name="gone", kind="openai", base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(base.Transient, match="cannot connect"):
        call(build_provider(decl), "ok")


def test_a_declared_key_variable_that_is_unset_is_unavailable(fault_server, monkeypatch):
    monkeypatch.delenv("BMAD_TEST_UNSET_KEY", raising=False)
    provider = provider_for(fault_server, "openai", api_key_env="BMAD_TEST_UNSET_KEY")
    with pytest.raises(base.Unavailable, match="BMAD_TEST_UNSET_KEY"):
        call(provider)


@pytest.mark.parametrize("kind", PROTOCOLS)
def test_doctor_check_lists_models_without_a_completion(fault_server, kind):
    provider = provider_for(fault_server, kind)
    before = len(fault_server.requests)
    report = anyio.run(provider.check)
    assert report.ok and report.models and not report.spends_tokens
    assert len(fault_server.requests) == before  # listing models is not a completion


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_a_wrong_key_is_an_auth_failure(keyed_server, kind, monkeypatch):
    monkeypatch.setenv("BMAD_TEST_WRONG_KEY", "sk-wrong-key-000000000000")
    provider = provider_for(keyed_server, kind, api_key_env="BMAD_TEST_WRONG_KEY")
    with pytest.raises(base.Auth) as info:
        call(provider)
    assert "sk-wrong-key-000000000000" not in str(info.value)
    report = anyio.run(provider_for(keyed_server, kind, api_key_env="BMAD_TEST_WRONG_KEY").check)
    assert report.status == "auth"


def test_request_shapes_follow_each_protocol(fault_server):
    call(provider_for(fault_server, "anthropic"), max_tokens=40, stop=("END",))
    sent = fault_server.requests[-1]
    assert sent.path == "/anthropic/v1/messages"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body["system"] == "Be brief." and sent.body["max_tokens"] == 40
    assert sent.body["messages"] == [{"role": "user", "content": "Say hello to the world please"}]
    assert sent.body["stop_sequences"] == ["END"]

    call(provider_for(fault_server, "gemini"), max_tokens=40, temperature=0.5)
    sent = fault_server.requests[-1]
    assert sent.path == "/gemini/v1beta/models/ok:generateContent"
    assert sent.body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.body["contents"] == [{"role": "user",
                                      "parts": [{"text": "Say hello to the world please"}]}]
    assert sent.body["generationConfig"] == {"maxOutputTokens": 40, "temperature": 0.5}

    call(provider_for(fault_server, "gemini"), enum_values=("yes", "no"))
    config = fault_server.requests[-1].body["generationConfig"]
    assert config["responseMimeType"] == "text/x.enum"
    assert config["responseSchema"]["enum"] == ["yes", "no"]

    call(provider_for(fault_server, "ollama"), max_tokens=40)
    sent = fault_server.requests[-1]
    assert sent.body["stream"] is False and sent.body["options"] == {"num_predict": 40}

    call(provider_for(fault_server, "openai"), max_tokens=40, stream=True)
    sent = fault_server.requests[-1]
    assert sent.body["max_tokens"] == 40 and sent.body["stream_options"] == {"include_usage": True}
