"""Anthropic Messages (`kind anthropic`): `POST {base_url}/v1/messages`.

The system prompt goes in the top-level `system` field; `max_tokens` is required by the API (1024
when the task sets none). Structured output uses the documented tool-use pattern: one tool whose
`input_schema` is the task's schema, forced with `tool_choice`, and the tool input becomes the JSON
answer. Usage maps `input_tokens`, `output_tokens` and `cache_read_input_tokens` (cached); streams
are SSE events `message_start` (input usage), `content_block_delta` (`text_delta` /
`input_json_delta`), `message_delta` (stop reason, output usage) and `message_stop`; an `error`
event mid-stream (e.g. `overloaded_error`) is classified like an HTTP error. 529 overloaded is
transient; `anthropic-ratelimit-*` headers feed rate limits.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from bmad.runtime.providers import base
from bmad.runtime.providers.http_common import (HttpProvider, ParsedCompletion, billed_on_failure, enum_answer_schema,
                                                iter_sse, loads_event, sampling_settings, object_at, text_or_none, truncated,
                                                usage_count, usage_sum)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
JSON_TOOL = "emit_answer"


class AnthropicProvider(HttpProvider):
    kind = "anthropic"
    wraps_enum = True
    answer_field = "content"
    default_base_url = "https://api.anthropic.com"
    models_path = "/v1/models"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def extra_headers(self) -> dict[str, str]:
        return {"anthropic-version": API_VERSION}

    def request_path(self, request: base.CompletionRequest) -> str:
        return "/v1/messages"

    def request_body(self, request: base.CompletionRequest) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        messages = [{"role": m.role, "content": m.content}
                    for m in request.messages if m.role != "system"]
        if not messages:
            messages = [{"role": "user", "content": system or "."}]
            system = ""
        body: dict[str, Any] = {
            "model": request.model_id,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": messages,
        }
        if system:
            body["system"] = system
        body.update(sampling_settings(request, max_tokens=None, temperature="temperature",
                                      stop="stop_sequences"))
        if request.json_schema is not None or request.enum_values:
            schema = request.json_schema or enum_answer_schema(request)
            if schema.get("type") != "object":  # tool inputs are objects: wrap other shapes
                schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
            body["tools"] = [{"name": JSON_TOOL, "description": "Return the answer as structured "
                              "data matching the schema.", "input_schema": schema}]
            body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
        if request.stream:
            body["stream"] = True
        return body

    def error_details(self, data: Any) -> tuple[str, str | None, float | None]:
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            err = data["error"]
            return str(err.get("message", "")), err.get("type"), None
        return super().error_details(data)

    def read_usage(self, parsed: ParsedCompletion, data: dict[str, Any]) -> None:
        _apply_usage(parsed, data.get("usage"))

    def parse_body(self, request: base.CompletionRequest, data: Any) -> ParsedCompletion:
        if not isinstance(data, dict):
            raise self.fail(base.Transient, "the response is not a JSON object")
        parsed = ParsedCompletion(finish_reason=text_or_none(data.get("stop_reason")),
                                  model_id=text_or_none(data.get("model")), raw=data)
        self.read_usage(parsed, data)  # billed even when the answer is unusable
        if not isinstance(data.get("content"), list):  # `content: null`, missing: billed, empty
            parsed.why_empty = "the response has no content blocks"
            return parsed
        # No text block (`content: []`, a tool_use alone, `text: null`): an EmptyAnswer in `complete`.
        parsed.text = _text_of(request, data["content"])
        return parsed

    async def read_stream(self, request: base.CompletionRequest, response: httpx.Response,
                          on_progress: base.ProgressCallback | None) -> ParsedCompletion:
        parsed = ParsedCompletion(raw={"stream": True})
        # Usage a stream reported before it failed (a truncated stream, an error event) was
        # billed: the error carries it.
        with billed_on_failure(request, parsed):
            text: list[str] = []
            tool_json: list[str] = []
            deltas = 0
            stopped = False
            async for event in iter_sse(response):
                data = loads_event(self, event.data)
                kind = data.get("type") if isinstance(data, dict) else None
                if kind == "message_start":
                    message = object_at(data, "message")
                    parsed.model_id = text_or_none(message.get("model"))
                    _apply_usage(parsed, message.get("usage"))
                elif kind == "content_block_delta":
                    delta = object_at(data, "delta")
                    if delta.get("type") == "text_delta":
                        text.append(text_or_none(delta.get("text")) or "")
                    elif delta.get("type") == "input_json_delta":
                        tool_json.append(text_or_none(delta.get("partial_json")) or "")
                    deltas += 1
                    if on_progress is not None:
                        on_progress(deltas)
                elif kind == "message_delta":
                    delta = object_at(data, "delta")
                    parsed.finish_reason = text_or_none(delta.get("stop_reason")) or parsed.finish_reason
                    usage = object_at(data, "usage")
                    if (output := usage_count(usage.get("output_tokens"))) is not None:
                        parsed.output_tokens = output
                elif kind == "message_stop":
                    stopped = True
                    break
                elif kind == "error":
                    raise self.error_from_body(data, where="in the stream")
            if not stopped:
                raise truncated(self)
            if (request.json_schema is not None or request.enum_values) and tool_json:
                value = loads_event(self, "".join(tool_json) or "{}")
                parsed.text = json.dumps(_unwrap(request, value))
            else:
                parsed.text = "".join(text)
        return parsed


def _text_of(request: base.CompletionRequest, blocks: list[Any]) -> str:
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "tool_use" \
                and block.get("name") == JSON_TOOL:
            return json.dumps(_unwrap(request, block.get("input")))
    return "".join(b["text"] for b in blocks
                   if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str))


def _unwrap(request: base.CompletionRequest, value: Any) -> Any:
    schema = request.json_schema or {}
    if schema.get("type") != "object" and isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def _apply_usage(parsed: ParsedCompletion, usage: Any) -> None:
    """Counts that aren't non-negative whole numbers are ignored (then estimated), never raised."""
    if not isinstance(usage, dict):
        return
    if (input_tokens := usage_count(usage.get("input_tokens"))) is not None:
        # Cache writes and reads are input tokens too (billed at their own rates).
        parsed.input_tokens = input_tokens + usage_sum(usage.get("cache_creation_input_tokens"),
                                                       usage.get("cache_read_input_tokens"))
        parsed.cached_tokens = usage_sum(usage.get("cache_read_input_tokens"))
    if (output := usage_count(usage.get("output_tokens"))) is not None:
        parsed.output_tokens = output
