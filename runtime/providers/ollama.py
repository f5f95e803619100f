"""Ollama's native chat API (`kind ollama`): `POST {base_url}/api/chat` (default 127.0.0.1:11434).

Settings go in `options` (`num_predict`, `temperature`, `stop`); structured output sends the JSON
Schema as `format`. `stream` is always set explicitly (Ollama streams by default): a stream is
newline-delimited JSON objects, the last with `"done": true` and the counts `prompt_eval_count`
(input) and `eval_count` (output). Errors are `{"error": "..."}`; a stream that stops before
`done` is a truncated (transient) failure. `bmad doctor` lists models with `GET /api/tags`.
For Ollama's OpenAI-compatible `/v1`, declare `kind openai` instead.
"""

from __future__ import annotations

from typing import Any

import httpx

from bmad.runtime.providers import base
from bmad.runtime.providers.http_common import (HttpProvider, ParsedCompletion, billed_on_failure, enum_answer_schema,
                                                loads_event, sampling_settings, StreamedText, object_at, text_or_none,
                                                truncated, usage_count)


class OllamaProvider(HttpProvider):
    kind = "ollama"
    wraps_enum = True
    answer_field = "message"
    default_base_url = "http://127.0.0.1:11434"
    models_path = "/api/tags"

    def request_path(self, request: base.CompletionRequest) -> str:
        return "/api/chat"

    def request_body(self, request: base.CompletionRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model_id,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": bool(request.stream),
        }
        options = sampling_settings(request, max_tokens="num_predict", temperature="temperature", stop="stop")
        if options:
            body["options"] = options
        if request.json_schema is not None:
            body["format"] = request.json_schema
        elif (enum_schema := enum_answer_schema(request)) is not None:
            body["format"] = enum_schema
        return body

    def list_models(self, data: Any) -> tuple[str, ...]:
        items = data.get("models", []) if isinstance(data, dict) else []
        return tuple(str(m.get("name") or m.get("model")) for m in items
                     if isinstance(m, dict) and (m.get("name") or m.get("model")))

    def read_usage(self, parsed: ParsedCompletion, data: dict[str, Any]) -> None:
        _apply_counts(parsed, data)

    def parse_body(self, request: base.CompletionRequest, data: Any) -> ParsedCompletion:
        if not isinstance(data, dict):
            raise self.fail(base.Transient, "the response is not a JSON object")
        parsed = ParsedCompletion(raw=data)
        _merge(parsed, data)  # its counts too: billed even when the answer is unusable
        if not isinstance(data.get("message"), dict):
            parsed.why_empty = "the response has no message"  # an EmptyAnswer in `complete`
            return parsed
        # `content: null`, `""` or a tool call alone: no text (an EmptyAnswer in `complete`).
        parsed.text = text_or_none(data["message"].get("content")) or ""
        return parsed

    async def read_stream(self, request: base.CompletionRequest, response: httpx.Response,
                          on_progress: base.ProgressCallback | None) -> ParsedCompletion:
        parsed = ParsedCompletion(raw={"stream": True})
        # Usage a stream reported before it failed (a truncated stream, an error event) was
        # billed: the error carries it.
        with billed_on_failure(request, parsed):
            streamed = StreamedText(on_progress)
            done = False
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                data = loads_event(self, line)
                if not isinstance(data, dict):
                    continue
                if data.get("error"):
                    raise self.error_from_body(data, where="in the stream")
                message = object_at(data, "message")
                content = text_or_none(message.get("content"))
                if content:
                    streamed.add(content)
                if data.get("done"):
                    _merge(parsed, data)
                    done = True
                    break
            if not done:
                raise truncated(self)
            parsed.text = streamed.text
        return parsed


def _merge(parsed: ParsedCompletion, data: dict[str, Any]) -> None:
    parsed.model_id = text_or_none(data.get("model")) or parsed.model_id
    parsed.finish_reason = text_or_none(data.get("done_reason")) or parsed.finish_reason
    _apply_counts(parsed, data)
    if data.get("done"):
        parsed.raw = {**parsed.raw, **{k: v for k, v in data.items() if k != "message"}}



def _apply_counts(parsed: ParsedCompletion, data: dict[str, Any]) -> None:
    """Counts that aren't non-negative whole numbers are ignored (then estimated), never raised."""
    if (prompt := usage_count(data.get("prompt_eval_count"))) is not None:
        parsed.input_tokens = prompt
    if (output := usage_count(data.get("eval_count"))) is not None:
        parsed.output_tokens = output
