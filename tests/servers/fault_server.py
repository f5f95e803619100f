"""A fault-injecting ASGI app that speaks OpenAI, Anthropic, Gemini and Ollama, run under uvicorn.

Each protocol lives under its own prefix, so one server serves all four:

    OpenAI     base_url = {url}/openai/v1     POST /chat/completions, GET /models
    Anthropic  base_url = {url}/anthropic     POST /v1/messages, GET /v1/models
    Gemini     base_url = {url}/gemini        POST /v1beta/models/{m}:generateContent (and
                                              :streamGenerateContent?alt=sse), GET /v1beta/models
    Ollama     base_url = {url}/ollama        POST /api/chat, GET /api/tags

The *model id* picks the behaviour, so a workflow can mix healthy and faulty models:

    ok (or any other id)  a normal answer: "echo: <first words of the prompt>"
    rate_limited          429 with Retry-After (RETRY_AFTER_S) and rate-limit headers
    server_error          500                    unavailable   503        overloaded  529
    slow                  answers after `slow_s` seconds (past a short client timeout)
    malformed             200 with a body that is not JSON (garbled events when streaming)
    truncated             a stream that stops without its end marker (non-streaming: cut JSON)
    dropped               a stream whose connection breaks mid-body
    context               the protocol's context-length error
    content_filter        the protocol's content-filter answer
    stream_error          an error event in the middle of a stream (Anthropic/OpenAI shapes)
    echo_key              a 400 whose message repeats the API key it received (redaction test)
    flaky-N               503 for the first N calls of each prompt, then answers
    ratelimit-once        429 (Retry-After 1) on the first call of each prompt, then answers
    json_object_only      like llama-cpp-python's server: a 500 for `response_format` type
                          `json_schema`; takes `json_object` with a `schema`

With `expected_key` set, a request without that key gets the protocol's 401 (whose message, like
some real APIs, echoes the key it received). Every request is recorded in `server.requests`.
Answers honour `returns`: JSON (from the schema) and enum values when asked.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bmad.runtime.providers.schema_sample import sample_json

RETRY_AFTER_S = 2


@dataclass
class RecordedRequest:
    protocol: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FaultState:
    expected_key: str | None = None
    slow_s: float = 3.0
    requests: list[RecordedRequest] = field(default_factory=list)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def seen(self, model: str, prompt: str) -> int:
        with self.lock:
            n = self.counts.get((model, prompt), 0)
            self.counts[(model, prompt)] = n + 1
            return n


def words_in(text: str) -> int:
    return max(1, len(text.split()))


def effective_behaviour(state: FaultState, model: str, prompt: str, protocol: str) -> str:
    """The fault to inject for this call ("ok" when none); counts are per protocol and prompt."""
    if model.startswith("flaky-"):
        n = int(model.split("-", 1)[1])
        return "unavailable" if state.seen(f"{protocol}:{model}", prompt) < n else "ok"
    if model == "ratelimit-once":
        return "rate_limited" if state.seen(f"{protocol}:{model}", prompt) < 1 else "ok"
    return model


def answer_text(prompt: str, schema: Any, enum_values: list[str] | None, seed: str) -> str:
    if schema is not None:
        return json.dumps(sample_json(schema, random.Random(seed)))
    if enum_values:
        return enum_values[0]
    first = " ".join(prompt.split()[:12])
    return f"echo: {first}"


# ----------------------------------------------------------------------------------------------
# One small class per protocol: shapes of answers, streams and errors


class Protocol:
    name = ""

    def __init__(self, state: FaultState):
        self.state = state

    def key_of(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    def error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
              ) -> Response:
        raise NotImplementedError

    async def handle(self, request: Request, model: str, body: dict[str, Any]) -> Response:
        prompt = self.prompt_of(body)
        self.state.requests.append(RecordedRequest(self.name, request.url.path,
                                                   dict(request.headers), body))
        key = self.key_of(request)
        if self.state.expected_key is not None and key != self.state.expected_key:
            return self.error(401, "auth", f"Incorrect API key provided: {key}.")
        behaviour = effective_behaviour(self.state, model, prompt, self.name)
        stream = self.wants_stream(request, body)
        if behaviour == "rate_limited":
            return self.error(429, "rate_limited", "Rate limit reached; slow down.", {
                "retry-after": str(RETRY_AFTER_S), "x-ratelimit-limit-requests": "60",
                "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"})
        if behaviour == "server_error":
            return self.error(500, "server", "Internal server error.")
        if behaviour == "unavailable":
            return self.error(503, "unavailable", "The service is temporarily unavailable.")
        if behaviour == "overloaded":
            return self.error(529, "overloaded", "Overloaded")
        if behaviour == "context":
            return self.error(400, "context", "")
        if behaviour == "echo_key":
            return self.error(400, "bad", f"Bad request from key {key} to model {model}")
        if behaviour == "json_object_only" and (body.get("response_format") or {}).get("type") == "json_schema":
            return self.error(500, "server", "1 validation error: ('body', 'response_format', 'type'): "
                                             "Input should be 'text' or 'json_object'")
        if behaviour == "slow":
            await asyncio.sleep(self.state.slow_s)
        if behaviour == "malformed" and not stream:
            return Response(b'{"choices": [ {"message": oops', media_type="application/json")
        if behaviour == "truncated" and not stream:
            return Response(b'{"id": "x", "choices": [', media_type="application/json")
        text = answer_text(prompt, self.schema_of(body), self.enum_of(body),
                           f"{model}:{prompt}")
        usage = (words_in(prompt), words_in(text))
        if behaviour == "content_filter":
            if stream and hasattr(self, "filtered_events"):
                return StreamingResponse(iter(list(self.filtered_events(model, usage))),
                                         media_type=self.stream_media_type)
            return self.filtered(model, usage)
        if stream:
            return StreamingResponse(self.stream(model, body, text, usage, behaviour),
                                     media_type=self.stream_media_type)
        return JSONResponse(self.answer(model, body, text, usage),
                            headers={"x-ratelimit-limit-requests": "600",
                                     "x-ratelimit-remaining-requests": "599",
                                     "x-ratelimit-reset-requests": "100ms"})

    stream_media_type = "text/event-stream"

    def wants_stream(self, request: Request, body: dict[str, Any]) -> bool:
        return bool(body.get("stream"))

    def schema_of(self, body: dict[str, Any]) -> Any:
        return None

    def enum_of(self, body: dict[str, Any]) -> list[str] | None:
        return None

    async def stream(self, model: str, body: dict[str, Any], text: str, usage: tuple[int, int],
                     behaviour: str) -> AsyncIterator[bytes]:
        pieces = [w + " " for w in text.split(" ")]
        pieces[-1] = pieces[-1].rstrip(" ")
        for i, event in enumerate(self.events(model, body, pieces, usage)):
            if behaviour == "malformed" and i == 1:
                yield b"data: {garbled\n\n"
                continue
            if behaviour in ("truncated", "dropped") and i == 2:
                if behaviour == "dropped":
                    raise ConnectionResetError("dropped on purpose")
                return
            if behaviour == "stream_error" and i == 2:
                yield self.stream_error_event()
                return
            yield event
            await asyncio.sleep(0)

    def stream_error_event(self) -> bytes:
        return b""


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {payload}\n\n".encode()


class OpenAI(Protocol):
    name = "openai"

    def prompt_of(self, body: dict[str, Any]) -> str:
        return "\n\n".join(str(m.get("content", "")) for m in body.get("messages", []))

    def schema_of(self, body: dict[str, Any]) -> Any:
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_object":
            return fmt.get("schema")
        return (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" \
            else None

    def error(self, status, kind, message, headers=None):
        code = {"auth": "invalid_api_key", "rate_limited": "rate_limit_exceeded",
                "context": "context_length_exceeded"}.get(kind)
        if kind == "context":
            message = ("This model's maximum context length is 8192 tokens. However, your "
                       "messages resulted in 9000 tokens. Please reduce the length of the messages.")
        body = {"error": {"message": message, "type": "invalid_request_error" if status < 500
                          else "server_error", "param": None, "code": code}}
        return JSONResponse(body, status_code=status, headers=headers)

    def filtered(self, model, usage):
        body = {"error": {"message": "The response was filtered due to the prompt triggering the "
                                     "content management policy.", "type": None,
                          "param": "prompt", "code": "content_filter", "status": 400}}
        return JSONResponse(body, status_code=400)

    def answer(self, model, body, text, usage):
        return {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "message": {
                    "role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                          "total_tokens": sum(usage), "prompt_tokens_details": {"cached_tokens": 2},
                          "completion_tokens_details": {"reasoning_tokens": 1}}}

    def events(self, model, body, pieces, usage):
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0,
                "model": model}
        yield sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}]})
        for p in pieces:
            yield sse({**base, "choices": [{"index": 0, "delta": {"content": p},
                                            "finish_reason": None}]})
        yield sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            yield sse({**base, "choices": [], "usage": {"prompt_tokens": usage[0],
                                                        "completion_tokens": usage[1],
                                                        "total_tokens": sum(usage)}})
        yield sse("[DONE]")

    def stream_error_event(self):
        return sse({"error": {"message": "The server had an error while processing your request.",
                              "type": "server_error", "code": None}})

    def models(self):
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test"}
                                           for m in ("ok", "slow", "rate_limited")]}


class Anthropic(Protocol):
    name = "anthropic"

    def key_of(self, request):
        return request.headers.get("x-api-key")

    def prompt_of(self, body):
        return "\n\n".join([str(body.get("system", ""))] + [
            str(m.get("content", "")) for m in body.get("messages", [])]).strip()

    def schema_of(self, body):
        tools = body.get("tools") or []
        return tools[0].get("input_schema") if tools else None

    def error(self, status, kind, message, headers=None):
        kinds = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                 503: "api_error", 529: "overloaded_error"}
        if kind == "context":
            message = "prompt is too long: 208310 tokens > 200000 maximum"
        if headers:
            headers = {**headers, "anthropic-ratelimit-requests-limit": "50",
                       "anthropic-ratelimit-requests-remaining": "0",
                       "anthropic-ratelimit-requests-reset": "2030-01-01T00:00:00Z"}
        body = {"type": "error", "error": {"type": kinds.get(status, "invalid_request_error"),
                                           "message": message}, "request_id": "req_test"}
        return JSONResponse(body, status_code=status, headers=headers)

    def filtered(self, model, usage):
        return JSONResponse({"id": "msg_test", "type": "message", "role": "assistant",
                             "model": model, "content": [], "stop_reason": "refusal",
                             "stop_sequence": None,
                             "usage": {"input_tokens": usage[0], "output_tokens": 0}})

    def filtered_events(self, model, usage):
        yield sse({"type": "message_start", "message": {
            "id": "msg_test", "type": "message", "role": "assistant", "content": [],
            "model": model, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": 0}}}, "message_start")
        yield sse({"type": "message_delta", "delta": {"stop_reason": "refusal",
                                                      "stop_sequence": None},
                   "usage": {"output_tokens": 0}}, "message_delta")
        yield sse({"type": "message_stop"}, "message_stop")

    def answer(self, model, body, text, usage):
        if body.get("tools"):
            content = [{"type": "tool_use", "id": "toolu_test", "name": body["tools"][0]["name"],
                        "input": json.loads(text)}]
            stop = "tool_use"
        else:
            content, stop = [{"type": "text", "text": text}], "end_turn"
        return {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
                "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": {"input_tokens": usage[0], "output_tokens": usage[1],
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3}}

    def events(self, model, body, pieces, usage):
        yield sse({"type": "message_start", "message": {
            "id": "msg_test", "type": "message", "role": "assistant", "content": [],
            "model": model, "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3}}},
            "message_start")
        tool = bool(body.get("tools"))
        block = {"type": "tool_use", "id": "toolu_test", "name": body["tools"][0]["name"],
                 "input": {}} if tool else {"type": "text", "text": ""}
        yield sse({"type": "content_block_start", "index": 0, "content_block": block},
                  "content_block_start")
        yield sse({"type": "ping"}, "ping")
        for p in pieces:
            delta = {"type": "input_json_delta", "partial_json": p} if tool \
                else {"type": "text_delta", "text": p}
            yield sse({"type": "content_block_delta", "index": 0, "delta": delta},
                      "content_block_delta")
        yield sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        yield sse({"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                      "stop_sequence": None},
                   "usage": {"output_tokens": usage[1]}}, "message_delta")
        yield sse({"type": "message_stop"}, "message_stop")

    def stream_error_event(self):
        return sse({"type": "error", "error": {"type": "overloaded_error",
                                               "message": "Overloaded"}}, "error")

    def models(self):
        return {"data": [{"type": "model", "id": "claude-test", "display_name": "Claude Test",
                          "created_at": "2025-01-01T00:00:00Z"}], "has_more": False,
                "first_id": "claude-test", "last_id": "claude-test"}


class Gemini(Protocol):
    name = "gemini"

    def key_of(self, request):
        return request.headers.get("x-goog-api-key") or request.query_params.get("key")

    def wants_stream(self, request, body):
        return request.url.path.endswith(":streamGenerateContent")

    def prompt_of(self, body):
        texts = [p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", [])]
        for c in body.get("contents", []):
            texts += [p.get("text", "") for p in c.get("parts", [])]
        return "\n\n".join(texts)

    def schema_of(self, body):
        config = body.get("generationConfig") or {}
        return config.get("responseJsonSchema")

    def enum_of(self, body):
        config = body.get("generationConfig") or {}
        if config.get("responseMimeType") == "text/x.enum":
            return list((config.get("responseSchema") or {}).get("enum") or [])
        return None

    def error(self, status, kind, message, headers=None):
        statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                    529: "UNAVAILABLE"}
        details: list[dict[str, Any]] = []
        if kind == "auth":  # Gemini answers a bad key with 400 + ErrorInfo API_KEY_INVALID
            status, message = 400, f"API key not valid. Please pass a valid API key. ({message})"
            details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
        if kind == "context":
            message = ("The input token count (1200000) exceeds the maximum number of tokens "
                       "allowed (1048576).")
        if status == 429:
            message = "Resource has been exhausted (e.g. check quota)."
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}]
            headers = None  # Gemini says when to retry in the body, not in headers
        body = {"error": {"code": status, "message": message,
                          "status": statuses.get(status, "UNKNOWN"), "details": details}}
        return JSONResponse(body, status_code=status, headers=headers)

    def filtered(self, model, usage):
        return JSONResponse({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
            "usageMetadata": {"promptTokenCount": usage[0], "totalTokenCount": usage[0]},
            "modelVersion": model})

    def filtered_events(self, model, usage):
        yield sse({"promptFeedback": {"blockReason": "SAFETY"},
                   "usageMetadata": {"promptTokenCount": usage[0]}, "modelVersion": model})

    def answer(self, model, body, text, usage):
        return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1],
                                  "totalTokenCount": sum(usage) + 2, "thoughtsTokenCount": 2},
                "modelVersion": model, "responseId": "resp-test"}

    def events(self, model, body, pieces, usage):
        for i, p in enumerate(pieces):
            last = i == len(pieces) - 1
            cand: dict[str, Any] = {"content": {"parts": [{"text": p}], "role": "model"},
                                    "index": 0}
            if last:
                cand["finishReason"] = "STOP"
            yield sse({"candidates": [cand], "usageMetadata": {
                "promptTokenCount": usage[0], "candidatesTokenCount": i + 1 if not last
                else usage[1], "totalTokenCount": usage[0] + i + 1}, "modelVersion": model})

    def models(self):
        return {"models": [{"name": "models/gemini-test", "displayName": "Gemini Test",
                            "inputTokenLimit": 1048576, "outputTokenLimit": 8192,
                            "supportedGenerationMethods": ["generateContent"]}]}


class Ollama(Protocol):
    name = "ollama"
    stream_media_type = "application/x-ndjson"

    def prompt_of(self, body):
        return "\n\n".join(str(m.get("content", "")) for m in body.get("messages", []))

    def wants_stream(self, request, body):
        return body.get("stream", True)  # Ollama streams unless told not to

    def schema_of(self, body):
        fmt = body.get("format")
        return fmt if isinstance(fmt, dict) else None

    def error(self, status, kind, message, headers=None):
        if kind == "context":
            message = "the input length exceeds the context length"
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    def filtered(self, model, usage):
        return self.error(400, "filter", "content policy violation")

    def answer(self, model, body, text, usage):
        return {"model": model, "created_at": "2025-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": text}, "done_reason": "stop",
                "done": True, "total_duration": 1000, "prompt_eval_count": usage[0],
                "eval_count": usage[1]}

    def events(self, model, body, pieces, usage):
        for p in pieces:
            yield (json.dumps({"model": model, "created_at": "2025-01-01T00:00:00Z",
                               "message": {"role": "assistant", "content": p},
                               "done": False}) + "\n").encode()
        yield (json.dumps({"model": model, "created_at": "2025-01-01T00:00:00Z",
                           "message": {"role": "assistant", "content": ""}, "done": True,
                           "done_reason": "stop", "prompt_eval_count": usage[0],
                           "eval_count": usage[1]}) + "\n").encode()

    async def stream(self, model, body, text, usage, behaviour):
        async for chunk in super().stream(model, body, text, usage, behaviour):
            if chunk.startswith(b"data: {garbled"):
                chunk = b"{garbled\n"
            yield chunk

    def models(self):
        return {"models": [{"name": "llama3:latest", "model": "llama3:latest", "size": 1}]}


# ----------------------------------------------------------------------------------------------


def build_app(state: FaultState) -> Starlette:
    openai, anthropic, gemini, ollama = (OpenAI(state), Anthropic(state), Gemini(state),
                                         Ollama(state))

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            return {}

    async def openai_chat(request: Request) -> Response:
        body = await body_of(request)
        return await openai.handle(request, str(body.get("model", "ok")), body)

    async def anthropic_messages(request: Request) -> Response:
        body = await body_of(request)
        if "max_tokens" not in body:  # the real API requires it
            return anthropic.error(400, "bad", "max_tokens: Field required")
        return await anthropic.handle(request, str(body.get("model", "ok")), body)

    async def gemini_generate(request: Request) -> Response:
        body = await body_of(request)
        model, _, _method = request.path_params["call"].partition(":")
        return await gemini.handle(request, model, body)

    async def ollama_chat(request: Request) -> Response:
        body = await body_of(request)
        return await ollama.handle(request, str(body.get("model", "ok")), body)

    def lister(proto: Protocol):
        async def list_models(request: Request) -> Response:
            key = proto.key_of(request)
            if state.expected_key is not None and key != state.expected_key:
                return proto.error(401, "auth", f"Incorrect API key provided: {key}.")
            return JSONResponse(proto.models())
        return list_models

    return Starlette(routes=[
        Route("/openai/v1/chat/completions", openai_chat, methods=["POST"]),
        Route("/openai/v1/models", lister(openai), methods=["GET"]),
        Route("/anthropic/v1/messages", anthropic_messages, methods=["POST"]),
        Route("/anthropic/v1/models", lister(anthropic), methods=["GET"]),
        Route("/gemini/v1beta/models/{call:path}", gemini_generate, methods=["POST"]),
        Route("/gemini/v1beta/models", lister(gemini), methods=["GET"]),
        Route("/ollama/api/chat", ollama_chat, methods=["POST"]),
        Route("/ollama/api/tags", lister(ollama), methods=["GET"]),
    ])


class FaultServer:
    """`with FaultServer() as server:` runs the app on a free 127.0.0.1 port in a thread."""

    def __init__(self, expected_key: str | None = None, slow_s: float = 3.0):
        self.state = FaultState(expected_key=expected_key, slow_s=slow_s)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(build_app(self.state), log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1, access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True)

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.state.requests

    def base_url(self, protocol: str) -> str:
        return {"openai": f"{self.url}/openai/v1", "anthropic": f"{self.url}/anthropic",
                "gemini": f"{self.url}/gemini", "ollama": f"{self.url}/ollama"}[protocol]

    def __enter__(self) -> "FaultServer":
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fault server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


def main() -> None:  # `python -m tests.servers.fault_server [--key K]`: run it by hand
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(build_app(FaultState(expected_key=args.key)), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
