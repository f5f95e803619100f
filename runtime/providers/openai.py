"""OpenAI-compatible chat completions (`kind openai`): OpenAI, Azure OpenAI, vLLM, llama.cpp's
server, Ollama's /v1, LM Studio, OpenRouter, Together... anything serving `POST {base_url}/chat/completions`.

Structured output asks for `response_format: {type: json_schema}`, and `returns enum(...)` for a
strict `{"answer": VALUE}` schema (unwrapped before the runtime reads it). A server that rejects
`json_schema` (llama-cpp-python's) is asked again with `json_object` and the schema, then without
a `response_format`: the runtime validates answers either way. Usage maps `prompt_tokens`,
`completion_tokens`, `prompt_tokens_details.cached_tokens` and
`completion_tokens_details.reasoning_tokens`; streams are SSE `data:` chunks ending in `[DONE]`, with
`stream_options.include_usage` so the last chunk carries usage. A server that rejects `max_tokens`
in favour of `max_completion_tokens` (OpenAI's reasoning models) is answered once more with it.
Azure: a base_url on `*.openai.azure.com` (with `?api-version=...`) sends the key as `api-key`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from bmad.runtime.providers import base
from bmad.runtime.providers.http_common import (HttpProvider, ParsedCompletion, billed_on_failure, enum_answer_schema,
                                                iter_sse, loads_event, sampling_settings, StreamedText, object_at, text_or_none,
                                                truncated, usage_count, usage_sum)


STRUCTURED_FORMATS = ("json_schema", "json_object", "none")


def _response_format(request: base.CompletionRequest, form: str) -> dict[str, Any] | None:
    """`response_format` for `returns json` (its schema) or `returns enum` (`{"answer": VALUE}`)."""
    schema, name, strict = request.json_schema, "output", False
    if schema is None:
        schema, name, strict = enum_answer_schema(request), "answer", True
    if schema is None or form == "none":
        return None
    if form == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}


class OpenAIProvider(HttpProvider):
    kind = "openai"
    wraps_enum = True
    default_base_url = "https://api.openai.com/v1"
    models_path = "/models"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._use_max_completion_tokens = False
        # How this server takes a schema: OpenAI's `json_schema`, else `json_object` with a
        # `schema` (llama-cpp-python's server), else not at all (the runtime still validates).
        self._schema_format = STRUCTURED_FORMATS[0]

    @property
    def is_azure(self) -> bool:
        return (urlsplit(self.base_url).hostname or "").endswith(".openai.azure.com")

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"api-key": key} if self.is_azure else {"Authorization": f"Bearer {key}"}

    def request_path(self, request: base.CompletionRequest) -> str:
        return "/chat/completions"

    def request_body(self, request: base.CompletionRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        body.update(sampling_settings(
            request, max_tokens="max_completion_tokens" if self._use_max_completion_tokens else "max_tokens",
            temperature="temperature", stop="stop"))
        response_format = _response_format(request, self._schema_format)
        if response_format is not None:
            body["response_format"] = response_format
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, request: base.CompletionRequest,
                       on_progress: base.ProgressCallback | None = None) -> base.CompletionResponse:
        while True:
            try:
                return await super().complete(request, on_progress)
            except (base.BadRequest, base.Transient) as exc:
                if (isinstance(exc, base.BadRequest) and "max_completion_tokens" in exc.message
                        and request.max_tokens is not None and not self._use_max_completion_tokens):
                    self._use_max_completion_tokens = True
                elif "response_format" in exc.message and self._schema_format != STRUCTURED_FORMATS[-1] \
                        and _response_format(request, self._schema_format) is not None:
                    # The server doesn't take this form of structured output (llama-cpp-python's
                    # rejects `json_schema` with a 500): ask the way the next form says, from now on.
                    self._schema_format = STRUCTURED_FORMATS[STRUCTURED_FORMATS.index(self._schema_format) + 1]
                else:
                    raise

    def read_usage(self, parsed: ParsedCompletion, data: dict[str, Any]) -> None:
        _apply_usage(parsed, data.get("usage"))

    def parse_body(self, request: base.CompletionRequest, data: Any) -> ParsedCompletion:
        if not isinstance(data, dict):
            raise self.fail(base.Transient, "the response is not a JSON object")
        # Usage first: an answer without text (`choices: []` too) was billed all the same.
        parsed = ParsedCompletion(model_id=text_or_none(data.get("model")), raw=data)
        self.read_usage(parsed, data)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            parsed.why_empty = "the response has no choices"  # an EmptyAnswer in `complete`
            return parsed
        choice = choices[0]
        message = object_at(choice, "message")
        text = _content_text(message.get("content"))
        if text is None and message.get("refusal"):
            parsed.finish_reason = "refusal"
            return parsed
        # No text (`content: null`, `""`, a tool call alone): `complete` makes it an EmptyAnswer.
        parsed.text = text or ""
        parsed.finish_reason = text_or_none(choice.get("finish_reason"))
        return parsed

    async def read_stream(self, request: base.CompletionRequest, response: httpx.Response,
                          on_progress: base.ProgressCallback | None) -> ParsedCompletion:
        parsed = ParsedCompletion(raw={"stream": True})
        # Usage a stream reported before it failed (a truncated stream, an error event) was
        # billed: the error carries it.
        with billed_on_failure(request, parsed):
            streamed = StreamedText(on_progress)
            done = False
            async for event in iter_sse(response):
                if event.data.strip() == "[DONE]":
                    done = True
                    break
                data = loads_event(self, event.data)
                if isinstance(data, dict) and data.get("error"):
                    raise self.error_from_body(data, where="in the stream")
                if not isinstance(data, dict):
                    continue
                parsed.model_id = text_or_none(data.get("model")) or parsed.model_id
                choices = data.get("choices")
                for choice in choices if isinstance(choices, list) else []:
                    if not isinstance(choice, dict):
                        continue
                    delta = object_at(choice, "delta")
                    if isinstance(delta.get("content"), str) and delta["content"]:
                        streamed.add(delta["content"])
                    if text_or_none(choice.get("finish_reason")):
                        parsed.finish_reason = choice["finish_reason"]
                if data.get("usage"):
                    _apply_usage(parsed, data["usage"])
            if not done:
                raise truncated(self)
            parsed.text = streamed.text
            if parsed.output_tokens is None and streamed.chunks:
                parsed.output_tokens = streamed.chunks  # one chunk is one token on the servers that omit usage
        return parsed


def _content_text(content: Any) -> str | None:
    """`message.content`: a string, or (some compatible servers) a list of `{type: text, text}`
    parts; None when it holds no text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = [p["text"] for p in content
                  if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(pieces) if pieces else None
    return None


def _apply_usage(parsed: ParsedCompletion, usage: Any) -> None:
    """Counts that aren't non-negative whole numbers are ignored (then estimated), never raised."""
    if not isinstance(usage, dict):
        return
    if (prompt := usage_count(usage.get("prompt_tokens"))) is not None:
        parsed.input_tokens = prompt
    if (completion := usage_count(usage.get("completion_tokens"))) is not None:
        parsed.output_tokens = completion
    details = usage.get("prompt_tokens_details")
    parsed.cached_tokens = usage_sum(details.get("cached_tokens")) if isinstance(details, dict) else 0
    out_details = usage.get("completion_tokens_details")
    parsed.reasoning_tokens = usage_sum(out_details.get("reasoning_tokens")) \
        if isinstance(out_details, dict) else 0
