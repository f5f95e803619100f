"""Hostile answers from real servers on 127.0.0.1 (`tests/servers/canned_server.py`), each a
classified, readable failure and never a traceback:

1. a 200 the server billed (it reports usage) but that can't be used (OpenAI `choices: []`,
   Anthropic `content: null`, Gemini without candidates, an error object, a filtered answer) is
   billed: its tokens go on the error, then in the journal and the run's spending;
2. a 200 carrying an error object gives the server's message and code, classified as an error
   response with that body would be (retried or not);
3. a redirect is not followed (the key never goes to another host) and says where it points, not
   retried, in calls and in `bmad doctor`'s check;
4. JSON nested too deep to parse is malformed JSON (Transient), in bodies, error bodies, streams and
   models lists;
5. any run of 8+ characters of a loaded key is masked, wherever in the key it starts;
6. an HTML error page gives its title (or its text without tags), not its markup.
"""

from __future__ import annotations

import json
import random
import sqlite3
import string

import anyio
import pytest

from bmad.compiler import ir
from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.providers import base, keys
from bmad.runtime.providers.keys import KeyConfig
from bmad.runtime.providers.registry import ProviderOptions, build_provider

from runtime_support import plan_source
from tests.servers.canned_server import Canned, CannedServer, answer_body

KINDS = ("openai", "anthropic", "gemini", "ollama")
KEY = "sk-qa-PLANTEDkey-0123456789abcdefXYZ"
KEY_VAR = "BMAD_HOSTILE_TEST_KEY"
USAGE = (1000, 2000)


@pytest.fixture(scope="module")
def server():
    with CannedServer() as s:
        yield s


@pytest.fixture(scope="module")
def elsewhere():
    """Another host (port) a redirect points to: it must never be asked anything."""
    with CannedServer() as s:
        yield s


def provider_for(server: CannedServer, kind: str, keyed: bool = False):
    decl = ir.Provider(name=f"p_{kind}", kind=kind, base_url=server.base_url(kind),
                       api_key_env=KEY_VAR if keyed else None, timeout_s=10)
    return build_provider(decl, options=ProviderOptions(config=KeyConfig()))


def complete(server: CannedServer, kind: str, model: str, keyed: bool = False, **request):
    provider = provider_for(server, kind, keyed)

    async def call():
        try:
            return await provider.complete(base.CompletionRequest(
                model_id=model, model_name=model, messages=(base.Message("user", "say something"),),
                timeout_s=10, **request))
        finally:
            await provider.aclose()

    return anyio.run(call)


def failure(server: CannedServer, kind: str, model: str, **request) -> base.ProviderError:
    with pytest.raises(base.ProviderError) as info:  # never a RecursionError, TypeError...
        complete(server, kind, model, **request)
    assert info.value.message.startswith(f"p_{kind}: "), info.value.message
    return info.value


def check(server: CannedServer, kind: str):
    provider = provider_for(server, kind)

    async def go():
        try:
            return await provider.check()
        finally:
            await provider.aclose()

    return anyio.run(go)


def sse(*events: str) -> str:
    return "".join(f"data: {e}\n\n" for e in events)


def stream_of(kind: str, payload: str) -> Canned:
    """A streamed answer whose one event (an NDJSON line for Ollama) is `payload`."""
    if kind == "ollama":
        return Canned(body=payload + "\n", content_type="application/x-ndjson")
    return Canned(body=sse(payload), content_type="text/event-stream")


# -- 1. an unusable 200 the server billed is billed ----------------------------------------------

UNUSABLE = {
    "openai": {
        "nochoices": {"id": "x", "model": "m", "choices": [],
                      "usage": {"prompt_tokens": USAGE[0], "completion_tokens": USAGE[1]}},
        "choicesnull": {"id": "x", "choices": None,
                        "usage": {"prompt_tokens": USAGE[0], "completion_tokens": USAGE[1]}},
    },
    "anthropic": {
        "contentnull": {"id": "x", "type": "message", "content": None, "stop_reason": "end_turn",
                        "usage": {"input_tokens": USAGE[0], "output_tokens": USAGE[1]}},
        "nocontent": {"id": "x", "type": "message",
                      "usage": {"input_tokens": USAGE[0], "output_tokens": USAGE[1]}},
    },
    "gemini": {
        "nocandidates": {"usageMetadata": {"promptTokenCount": USAGE[0],
                                           "candidatesTokenCount": USAGE[1]}},
        "emptycandidates": {"candidates": [], "usageMetadata": {
            "promptTokenCount": USAGE[0], "candidatesTokenCount": USAGE[1]}},
    },
    "ollama": {
        "nomessage": {"model": "m", "done": True, "prompt_eval_count": USAGE[0],
                      "eval_count": USAGE[1]},
    },
}
UNUSABLE_CASES = [(k, s) for k, shapes in UNUSABLE.items() for s in shapes]


@pytest.mark.parametrize(("kind", "shape"), UNUSABLE_CASES, ids=[f"{k}-{s}" for k, s in UNUSABLE_CASES])
def test_an_unusable_answer_with_usage_is_an_empty_answer_billed_its_usage(server, kind, shape):
    server.serve(kind, f"unusable-{shape}", Canned(body=UNUSABLE[kind][shape]))
    error = failure(server, kind, f"unusable-{shape}")
    assert type(error) is base.EmptyAnswer and error.retryable, repr(error)
    assert "the answer has no text" in error.message
    assert error.billed_tokens == USAGE


FILTERED = {
    "openai": {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": None},
                                       "finish_reason": "content_filter"}],
               "usage": {"prompt_tokens": USAGE[0], "completion_tokens": USAGE[1]}},
    "anthropic": {"id": "x", "type": "message", "content": [], "stop_reason": "refusal",
                  "usage": {"input_tokens": USAGE[0], "output_tokens": USAGE[1]}},
    "gemini": {"promptFeedback": {"blockReason": "SAFETY"},
               "usageMetadata": {"promptTokenCount": USAGE[0], "candidatesTokenCount": USAGE[1]}},
}


@pytest.mark.parametrize("kind", sorted(FILTERED))
def test_a_filtered_answer_that_reports_usage_is_billed(server, kind):
    server.serve(kind, "filtered-billed", Canned(body=FILTERED[kind]))
    error = failure(server, kind, "filtered-billed")
    assert isinstance(error, base.ContentFiltered) and error.billed_tokens == USAGE


def test_an_openai_refusal_is_billed_its_usage(server):
    body = {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                            "refusal": "I can't help with that."},
                                    "finish_reason": "stop"}],
            "usage": {"prompt_tokens": USAGE[0], "completion_tokens": USAGE[1]}}
    server.serve("openai", "refusal-billed", Canned(body=body))
    error = failure(server, "openai", "refusal-billed")
    assert isinstance(error, base.ContentFiltered) and error.billed_tokens == USAGE


STREAMS_FAILING_AFTER_USAGE = {
    # the usage chunk came, then the stream stopped before [DONE]
    "openai-truncated": ("openai", [
        {"choices": [{"index": 0, "delta": {"content": "half an ans"}, "finish_reason": None}]},
        {"choices": [], "usage": {"prompt_tokens": USAGE[0], "completion_tokens": USAGE[1]}}], USAGE),
    # message_start reports the input, then an error event
    "anthropic-error-event": ("anthropic", [
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": USAGE[0], "output_tokens": 1}}},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}], (USAGE[0], 1)),
    "anthropic-truncated": ("anthropic", [
        {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": USAGE[0], "output_tokens": 1}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "half"}}],
     (USAGE[0], 1)),
    # a blocked prompt, with the usage in the same chunk
    "gemini-blocked": ("gemini", [{"promptFeedback": {"blockReason": "SAFETY"},
                                   "usageMetadata": {"promptTokenCount": USAGE[0]}}], (USAGE[0], 0)),
}


@pytest.mark.parametrize("case", sorted(STREAMS_FAILING_AFTER_USAGE))
def test_a_stream_failing_after_it_reported_usage_is_billed_that_usage(server, case):
    kind, events, billed = STREAMS_FAILING_AFTER_USAGE[case]
    server.serve(kind, f"stream-{case}", Canned(body=sse(*map(json.dumps, events)),
                                                content_type="text/event-stream"))
    error = failure(server, kind, f"stream-{case}", stream=True)
    assert error.billed_tokens == billed, repr(error)
    server.serve(kind, f"stream-{case}-nousage", Canned(body=sse(json.dumps({"type": "ping"})),
                                                        content_type="text/event-stream"))
    assert failure(server, kind, f"stream-{case}-nousage", stream=True).billed_tokens is None


def test_a_failure_without_reported_usage_bills_nothing(server):
    """Providers don't bill errors: only a 200 reporting usage (or an empty answer) is billed."""
    server.serve("openai", "error200-nousage", Canned(body={"error": {"message": "boom", "type": "server_error"}}))
    assert failure(server, "openai", "error200-nousage").billed_tokens is None
    server.serve("openai", "notobject", Canned(body=[1, 2, 3]))
    assert failure(server, "openai", "notobject").billed_tokens is None


BILLING_WORKFLOW = """
workflow billed {
  task a { prompt "x"  model bad  retry 1 backoff fixed 10ms to 10ms  fallback [good] }
  output a
}
"""


@pytest.mark.parametrize("kind", KINDS)
def test_a_workflow_journals_and_spends_what_an_unusable_answer_was_billed(tmp_path, server, kind,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BMAD_CONFIG", raising=False)
    shape = next(iter(UNUSABLE[kind]))
    server.serve(kind, f"wf-unusable-{kind}", Canned(body=UNUSABLE[kind][shape]))
    server.serve(kind, f"wf-good-{kind}", Canned(body=answer_body(kind, "the fallback's answer")))
    catalog = (f'provider p {{ kind {kind}  base_url "{server.base_url(kind)}" }}\n'
               f'model bad {{ provider p  id "wf-unusable-{kind}"  price input $1 output $2 per 1M }}\n'
               f'model good {{ provider p  id "wf-good-{kind}"  price input $1 output $2 per 1M }}\n')
    plan = plan_source(tmp_path, BILLING_WORKFLOW, catalog=catalog)
    options = ProviderOptions(models=plan.program.models, config=KeyConfig())
    journal_path = tmp_path / "runs.db"
    outcome = execute_plan(plan, RunRequest(
        config=RunConfig(), journal_path=journal_path,
        provider_factory=lambda decl: build_provider(decl, options=options)))
    assert outcome.status == "completed", outcome.error
    db = sqlite3.connect(journal_path)
    try:
        bad = db.execute("SELECT input_tokens, output_tokens, cost_usd, error_kind FROM calls "
                         "WHERE run_id = ? AND model = 'bad'", (outcome.run_id,)).fetchall()
        [(spent,)] = db.execute("SELECT spent_usd FROM runs WHERE id = ?", (outcome.run_id,)).fetchall()
    finally:
        db.close()
    per_call = (USAGE[0] * 1 + USAGE[1] * 2) / 1e6
    assert len(bad) == 2  # retried once, then the fallback
    for input_tokens, output_tokens, cost, error_kind in bad:
        assert (input_tokens, output_tokens, error_kind) == (*USAGE, "transient")
        assert cost == pytest.approx(per_call)
    assert spent >= 2 * per_call


# -- 2. an error object in a 200 ---------------------------------------------------------------

ERROR_200 = [
    ("openai", "api-error", {"error": {"message": "internal problem reported in a 200",
                                       "type": "api_error", "code": None}}, base.Transient, "api_error"),
    ("openai", "bad-model", {"error": {"message": "The model `nope` does not exist",
                                       "type": "invalid_request_error", "code": "model_not_found"}},
     base.BadRequest, "model_not_found"),
    ("openai", "quota", {"error": {"message": "You exceeded your current quota",
                                   "type": "insufficient_quota", "code": "insufficient_quota"}},
     base.Unavailable, "insufficient_quota"),
    ("openai", "numeric-code", {"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-min"}},
     base.RateLimited, "429"),
    ("openai", "context", {"error": {"message": "This model's maximum context length is 8192 tokens",
                                     "type": "invalid_request_error", "code": "context_length_exceeded"}},
     base.ContextTooLong, "context_length_exceeded"),
    ("anthropic", "overloaded", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     base.Transient, "overloaded_error"),
    ("anthropic", "auth", {"type": "error", "error": {"type": "authentication_error",
                                                      "message": "invalid x-api-key"}},
     base.Auth, "authentication_error"),
    ("gemini", "exhausted", {"error": {"code": 429, "message": "Resource has been exhausted",
                                       "status": "RESOURCE_EXHAUSTED", "details": [
                                           {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                            "retryDelay": "7s"}]}},
     base.RateLimited, "RESOURCE_EXHAUSTED"),
    ("gemini", "badkey", {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                    "status": "INVALID_ARGUMENT", "details": [
                                        {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                         "reason": "API_KEY_INVALID"}]}},
     base.Auth, "API_KEY_INVALID"),
    ("gemini", "wrapped", [{"error": {"code": 503, "message": "The model is overloaded.",
                                      "status": "UNAVAILABLE"}}], base.Transient, "UNAVAILABLE"),
    ("ollama", "string", {"error": "llama runner process has terminated: signal: killed"},
     base.Transient, None),
]


@pytest.mark.parametrize(("kind", "name", "body", "cls", "code"), ERROR_200,
                         ids=[f"{k}-{n}" for k, n, *_ in ERROR_200])
def test_an_error_object_in_a_200_is_the_servers_error(server, kind, name, body, cls, code):
    server.serve(kind, f"e200-{name}", Canned(body=body))
    error = failure(server, kind, f"e200-{name}")
    assert type(error) is cls, repr(error)
    server_text = (body[0] if isinstance(body, list) else body)["error"]
    server_text = server_text if isinstance(server_text, str) else server_text["message"]
    assert server_text in error.message and "no text" not in error.message
    if code:
        assert code in error.message
    if name == "exhausted":
        assert error.retry_after_s == 7


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_an_error_event_with_an_odd_code_mid_stream_is_classified(server, kind):
    """An error event whose code is not a number (`"code": "oops"`) must not be a ValueError."""
    event = {"type": "error", "error": {"type": "weird", "code": "oops", "message": "stream broke"}}
    server.serve(kind, "stream-odd-error", stream_of(kind, json.dumps(event)))
    error = failure(server, kind, "stream-odd-error", stream=True)
    assert "stream broke" in error.message and error.retryable


@pytest.mark.parametrize("status", [200, 400, 429])
def test_an_error_code_that_is_not_a_string_is_shown_not_raised(server, monkeypatch, status):
    """A code or type that is an object, a list or the key itself: a short masked string."""
    monkeypatch.setenv(KEY_VAR, KEY)
    server.serve("anthropic", f"odd-code-{status}", Canned(status=status, body={"type": "error", "error": {
        "type": {"nested": [1, 2]}, "message": "odd"}}))
    error = failure(server, "anthropic", f"odd-code-{status}", keyed=True)
    assert "odd" in error.message and "nested" in error.message
    server.serve("openai", f"key-code-{status}", Canned(status=status, body={"error": {
        "message": "bad key", "code": KEY}}))
    error = failure(server, "openai", f"key-code-{status}", keyed=True)
    assert "bad key" in error.message and longest_run_of(KEY, error.message) < 8


def test_a_models_list_that_is_an_error_object_fails_the_check(server):
    server.serve_get("anthropic", Canned(body={"type": "error", "error": {
        "type": "authentication_error", "message": "invalid x-api-key"}}))
    report = check(server, "anthropic")
    assert report.status == "auth" and "invalid x-api-key" in report.detail


# -- 3. redirects --------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_says_where_it_points(server, elsewhere, status):
    asked_before = len(elsewhere.requests)
    target = elsewhere.base_url("openai") + "/chat/completions"
    server.serve("openai", f"redirect-{status}", Canned(status=status, headers={"Location": target}))
    error = failure(server, "openai", f"redirect-{status}")
    assert isinstance(error, base.Misconfigured) and not error.retryable and error.kind != "transient"
    assert f"redirected to {target} (HTTP {status})" in error.message
    assert "redirects are not followed" in error.message
    assert f"set base_url to {elsewhere.base_url('openai')}" in error.message  # the path trimmed
    assert "JSON" not in error.message
    assert len(elsewhere.requests) == asked_before  # the key never went to the other host


def test_a_redirect_loop_a_relative_location_and_no_location(server):
    server.serve("openai", "redirect-loop", lambda seen: Canned(status=302, headers={
        "Location": server.url + seen.path}))
    error = failure(server, "openai", "redirect-loop")
    assert "redirected to itself" in error.message and not error.retryable
    server.serve("openai", "redirect-relative", Canned(status=307, headers={"Location": "/v2/chat/completions"}))
    error = failure(server, "openai", "redirect-relative")
    assert f"redirected to {server.url}/v2/chat/completions (HTTP 307)" in error.message
    assert f"set base_url to {server.url}/v2" in error.message
    server.serve("openai", "redirect-nowhere", Canned(status=300))
    error = failure(server, "openai", "redirect-nowhere")
    assert "HTTP 300" in error.message and "no Location" in error.message and not error.retryable


@pytest.mark.parametrize("kind", KINDS)
def test_an_http_to_https_redirect_suggests_the_https_base_url(server, kind):
    def to_https(seen):
        return Canned(status=301, headers={"Location": "https://" + server.url.removeprefix("http://") + seen.path})
    server.serve(kind, "to-https", to_https)
    error = failure(server, kind, "to-https")
    https_base = "https://" + server.base_url(kind).removeprefix("http://")
    assert f"set base_url to {https_base}" in error.message and not error.retryable


def test_doctor_says_a_base_url_redirects(server):
    server.serve_get("ollama", Canned(status=308, headers={"Location": "https://ollama.example/api/tags"}))
    report = check(server, "ollama")
    assert report.status == "error"
    assert "redirected to https://ollama.example/api/tags (HTTP 308)" in report.detail
    assert "set base_url to https://ollama.example" in report.detail
    assert "not JSON" not in report.detail


REDIRECT_WORKFLOW = """
workflow moved {
  task a { prompt "x"  model bad  retry 3 backoff fixed 10ms to 10ms  fallback [good] }
  output a
}
"""


def test_a_workflow_does_not_retry_a_redirect(tmp_path, server, elsewhere, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BMAD_CONFIG", raising=False)
    server.serve("openai", "wf-redirect", Canned(status=301, headers={
        "Location": elsewhere.base_url("openai") + "/chat/completions"}))
    server.serve("openai", "wf-good", Canned(body=answer_body("openai", "answered")))
    catalog = (f'provider p {{ kind openai  base_url "{server.base_url("openai")}" }}\n'
               'model bad { provider p  id "wf-redirect"  price input $1 output $2 per 1M }\n'
               'model good { provider p  id "wf-good"  price input $1 output $2 per 1M }\n')
    plan = plan_source(tmp_path, REDIRECT_WORKFLOW, catalog=catalog)
    options = ProviderOptions(models=plan.program.models, config=KeyConfig())
    outcome = execute_plan(plan, RunRequest(
        config=RunConfig(), journal_path=tmp_path / "runs.db",
        provider_factory=lambda decl: build_provider(decl, options=options)))
    assert outcome.status == "completed" and outcome.outputs == {"a": "answered"}
    db = sqlite3.connect(tmp_path / "runs.db")
    try:
        rows = db.execute("SELECT error, error_kind FROM calls WHERE run_id = ? AND model = 'bad'",
                          (outcome.run_id,)).fetchall()
    finally:
        db.close()
    assert len(rows) == 1 and "redirects are not followed" in rows[0][0]  # asked once, not retried
    assert rows[0][1] not in ("transient", "provider_error")


# -- 4. JSON nested too deep ----------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["body", "stream"])
def test_json_nested_too_deep_is_malformed_json(server, kind, stream):
    server.serve(kind, "deep", stream_of(kind, DEEP) if stream else Canned(body=DEEP))
    error = failure(server, kind, "deep", stream=stream)
    assert type(error) is base.Transient and "malformed JSON" in error.message
    assert "Recursion" not in error.message


def test_json_nested_too_deep_in_an_error_body_or_models_list_or_enum_answer(server):
    server.serve("anthropic", "deep-500", Canned(status=500, body=DEEP))
    error = failure(server, "anthropic", "deep-500")
    assert type(error) is base.Transient and "HTTP 500" in error.message
    server.serve_get("gemini", Canned(body=DEEP))
    report = check(server, "gemini")
    assert report.status == "error" and "not JSON" in report.detail
    # an enum answer is unwrapped from {"answer": ...}: a deep one is kept as text, not raised
    server.serve("openai", "deep-enum", Canned(body=answer_body("openai", DEEP)))
    assert complete(server, "openai", "deep-enum", enum_values=("yes", "no")).text == DEEP


@pytest.mark.parametrize("depth", [600, 900])
def test_json_the_parser_reads_but_nested_too_deep_to_walk_is_malformed_json(server, monkeypatch, depth):
    """Deep enough to parse from a shallow stack, too deep for what walks it next (masking the
    echoed key in the raw body): malformed JSON, whatever the caller's stack depth."""
    monkeypatch.setenv(KEY_VAR, KEY)
    body = answer_body("openai", "hello")
    body["extra"] = json.loads("[" * depth + json.dumps(KEY) + "]" * depth)
    server.serve("openai", f"deep-{depth}", Canned(body=json.dumps(body)))
    error = failure(server, "openai", f"deep-{depth}", keyed=True)
    assert type(error) is base.Transient and "nested too deeply" in error.message


def test_json_nested_a_few_levels_is_read(server):
    answer = {"a": [[[[[[[[[[{"b": "c"}]]]]]]]]]]}  # a tool's input, the JSON answer: a few levels
    body = answer_body("anthropic", "")
    body["content"] = [{"type": "tool_use", "id": "t", "name": "emit_answer", "input": answer}]
    server.serve("anthropic", "nested-ok", Canned(body=body))
    response = complete(server, "anthropic", "nested-ok", json_schema={"type": "object"})
    assert json.loads(response.text) == answer


# -- 5. runs of a loaded key anywhere in it -------------------------------------------------------

def longest_run_of(secret: str, text: str) -> int:
    """The longest stretch of `text` that is also a stretch of `secret` (what a reader learns)."""
    best = 0
    for i in range(len(text)):
        for j in range(len(secret)):
            n = 0
            while i + n < len(text) and j + n < len(secret) and text[i + n] == secret[j + n]:
                n += 1
            best = max(best, n)
    return best


def test_any_run_of_8_characters_of_a_loaded_key_is_masked():
    keys.remember_secret(KEY)
    echo = f"key tail ...{KEY[-12:]} middle {KEY[4:20]}"
    for mask in (keys.redact, keys.mask_loaded_secrets):
        assert mask(echo) == "key tail ...*** middle ***", mask.__name__
        assert mask(f"a:{KEY[9:17]}.") == "a:***."  # 8 characters from the middle
        assert mask(f"a:{KEY[9:16]}.") == f"a:{KEY[9:16]}."  # 7 are left
        assert mask(f"two {KEY[3:13]}/{KEY[20:30]}") == "two ***/***"
    assert keys.holds_loaded_secret(echo) and keys.holds_loaded_secret(echo.encode())
    assert not keys.holds_loaded_secret(f"a:{KEY[9:16]}.")


def test_two_keys_sharing_characters_leave_no_tail_of_either():
    # another loaded key ends in the same `0123456789abcdef`: masked one key at a time, its
    # shorter run went first and left this key's `XYZ` (seen only when the suite ran in order)
    other = "sk-another-longer-test-key-0123456789abcdef"  # longer: masked first
    keys.remember_secret(other)
    keys.remember_secret(KEY)
    for mask in (keys.redact, keys.mask_loaded_secrets):
        assert mask(f"key tail ...{KEY[-12:]} end") == "key tail ...*** end", mask.__name__
        assert mask(f"x {other[-14:]}XYZ y") == "x *** y", mask.__name__  # runs of both: one mask


def test_runs_of_a_key_keep_the_rules_of_its_prefixes():
    keys.remember_secret("sk-hostile-Q7xK2mN9vB4-passwordsAndMore-77")
    # glued to a word before it: part of another token, left alone (as a prefix is)
    assert keys.redact("tokenQ7xK2mN9vB4-pass") == "tokenQ7xK2mN9vB4-pass"
    # a run of letters only is a word until 12 long
    assert keys.redact("our passwordsAn policy") == "our passwordsAn policy"  # 11 letters
    assert keys.redact("our passwordsAnd policy") == "our *** policy"  # 12
    # whole keys and prefixes are masked as before
    assert keys.redact("k=sk-hostile-Q7xK2mN9vB4-passwordsAndMore-77;") == "k=***;"
    assert keys.redact("sk-hostile-Q7x...") == "***..."


def test_masking_runs_in_a_long_text():
    # correctness on a long text with a long key (its speed is a figure, not an assertion here:
    # ~0.14 s for 5 MB with a 164-character key, measured when this was written)
    long_key = "sk-proj-" + "".join(random.Random(7).choice(string.ascii_letters + string.digits)
                                    for _ in range(156))  # OpenAI's project keys are this long
    keys.remember_secret(long_key)
    keys.remember_secret(KEY)
    rnd = random.Random(3)
    text = "".join(rnd.choice(string.ascii_lowercase + " \n") for _ in range(400_000))
    assert not keys.holds_loaded_secret(text.encode())
    assert keys.mask_loaded_secrets(text) == text
    planted = text[:200_000] + " " + long_key[60:90] + " " + KEY[-10:] + " " + text[200_000:]
    masked = keys.redact(planted)
    assert long_key[60:90] not in masked and KEY[-10:] not in masked and masked.count("***") == 2


def test_a_server_echoing_parts_of_the_key_shows_none_of_them(server, monkeypatch):
    monkeypatch.setenv(KEY_VAR, KEY)
    echo = f"key tail ...{KEY[-12:]} middle {KEY[4:20]}"
    server.serve("openai", "echo-parts-400", Canned(status=400, body={"error": {
        "message": echo, "type": "invalid_request_error"}}))
    error = failure(server, "openai", "echo-parts-400", keyed=True)
    assert longest_run_of(KEY, error.message + repr(error)) < 8, error.message
    server.serve("anthropic", "echo-parts-200", Canned(body=answer_body("anthropic", f"sure: {echo}")))
    answer = complete(server, "anthropic", "echo-parts-200", keyed=True)
    assert answer.text == "sure: key tail ...*** middle ***"
    assert longest_run_of(KEY, json.dumps(answer.raw)) < 8


# -- 6. HTML error pages ------------------------------------------------------------------------

BAD_GATEWAY = ("<html><head><title>502 Bad Gateway</title><style>body { color: red }</style></head>"
               "<body><h1>502 oops</h1>" + "<p>nginx</p>" * 50 + "</body></html>")


@pytest.mark.parametrize("kind", KINDS)
def test_an_html_error_page_gives_its_title(server, kind):
    server.serve(kind, "html502", Canned(status=502, body=BAD_GATEWAY, content_type="text/html"))
    error = failure(server, kind, "html502")
    assert type(error) is base.Transient
    assert error.message == f"p_{kind}: HTTP 502: 502 Bad Gateway"


def test_an_html_page_without_a_title_gives_its_text(server):
    server.serve("openai", "html413", Canned(status=413, body="<html>413 Request Entity Too Large</html>",
                                             content_type="text/html"))
    error = failure(server, "openai", "html413")
    assert isinstance(error, base.ContextTooLong)
    assert error.message == "p_openai: HTTP 413: 413 Request Entity Too Large"
    page = ("<!DOCTYPE html><html><head><script>var x = '<b>';</script></head><body>"
            "<div>Service &amp; gateway</div>\n\n<p>is down.</p>" + "<p>filler words</p>" * 200)
    server.serve("openai", "html503", Canned(status=503, body=page, content_type="text/html; charset=utf-8"))
    error = failure(server, "openai", "html503")
    assert error.message.startswith("p_openai: HTTP 503: Service & gateway is down. filler words")
    assert "<" not in error.message and "var x" not in error.message and len(error.message) < 340


def test_an_html_page_in_a_200_is_named_not_quoted(server, monkeypatch):
    monkeypatch.setenv(KEY_VAR, KEY)
    portal = ("<html><head><title>Sign in to the Wi-Fi</title></head><body>" + "<div>x</div>" * 100
              + "</body></html>")
    server.serve("gemini", "portal", Canned(body=portal, content_type="text/html"))
    error = failure(server, "gemini", "portal")
    assert type(error) is base.Transient and "not JSON" in error.message
    assert "Sign in to the Wi-Fi" in error.message and "<" not in error.message
    # a debug page that prints the request headers: its text is shown, the key masked
    server.serve("openai", "debug500", lambda seen: Canned(
        status=500, content_type="text/html",
        body=f"<html>debug: headers={json.dumps(seen.headers)}</html>"))
    error = failure(server, "openai", "debug500", keyed=True)
    assert "debug: headers=" in error.message and longest_run_of(KEY, error.message) < 8
