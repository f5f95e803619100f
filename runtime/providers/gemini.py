"""Google Gemini generateContent (`kind gemini`): `POST {base}/v1beta/models/{id}:generateContent`.

Messages become `contents` with roles `user`/`model`; system text goes in `systemInstruction`;
settings in `generationConfig` (`maxOutputTokens`, `temperature`, `stopSequences`). Structured output
uses `responseMimeType: application/json` with `responseJsonSchema`; an enum answer uses
`text/x.enum` with a string enum `responseSchema`. Usage maps `promptTokenCount`,
`candidatesTokenCount` + `thoughtsTokenCount` (thinking is billed as output; also reported as
reasoning tokens) and `cachedContentTokenCount`. Streams use `:streamGenerateContent?alt=sse`, each
event a partial response; the one with a `finishReason` ends it. A prompt blocked by
`promptFeedback.blockReason` or a candidate stopped for SAFETY is ContentFiltered. Error bodies
(`{"error": {"code", "message", "status", "details"}}`) give `RetryInfo.retryDelay` for 429s and
`ErrorInfo.reason` (API_KEY_INVALID is an auth failure, though sent as 400).
"""

from __future__ import annotations

from typing import Any

import httpx

from bmad.runtime.providers import base
from bmad.runtime.providers.http_common import (HttpProvider, ParsedCompletion, billed_on_failure,
                                                iter_sse, loads_event, parse_duration, sampling_settings,
                                                object_at, text_or_none, truncated, usage_count, usage_sum)

_BLOCKING_FINISH = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
                    "IMAGE_SAFETY"}


class GeminiProvider(HttpProvider):
    kind = "gemini"
    answer_field = "candidates"
    default_base_url = "https://generativelanguage.googleapis.com"

    @property
    def api_root(self) -> str:
        return "" if self.base_url.rstrip("/").endswith(("/v1beta", "/v1")) else "/v1beta"

    @property
    def models_path(self) -> str:  # type: ignore[override]
        return f"{self.api_root}/models"

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}  # a header, never the `?key=` query (URLs end up in logs)

    def request_path(self, request: base.CompletionRequest) -> str:
        model = request.model_id.removeprefix("models/")
        if request.stream:
            return f"{self.api_root}/models/{model}:streamGenerateContent?alt=sse"
        return f"{self.api_root}/models/{model}:generateContent"

    def request_body(self, request: base.CompletionRequest) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        contents = [{"role": "model" if m.role == "assistant" else "user",
                     "parts": [{"text": m.content}]}
                    for m in request.messages if m.role != "system"]
        if not contents:
            contents = [{"role": "user", "parts": [{"text": system or "."}]}]
            system = ""
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config = sampling_settings(request, max_tokens="maxOutputTokens", temperature="temperature",
                                   stop="stopSequences")
        if request.json_schema is not None:
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = request.json_schema
        elif request.enum_values:
            config["responseMimeType"] = "text/x.enum"
            config["responseSchema"] = {"type": "STRING", "enum": list(request.enum_values)}
        if config:
            body["generationConfig"] = config
        return body

    def error_details(self, data: Any) -> tuple[str, str | None, float | None]:
        if isinstance(data, list) and data:  # some proxies wrap the error in a list
            data = data[0]
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            err = data["error"]
            code = err.get("status")
            retry: float | None = None
            for detail in err.get("details") or []:
                if not isinstance(detail, dict):
                    continue
                kind = str(detail.get("@type", ""))
                if kind.endswith("RetryInfo"):
                    retry = parse_duration(str(detail.get("retryDelay", "")))
                elif kind.endswith("ErrorInfo") and detail.get("reason"):
                    code = str(detail["reason"])
            return str(err.get("message", "")), code, retry
        return super().error_details(data)

    def is_error_body(self, data: Any) -> bool:
        if isinstance(data, list) and len(data) == 1:  # some proxies wrap the error in a list
            data = data[0]
        return super().is_error_body(data)

    def read_usage(self, parsed: ParsedCompletion, data: dict[str, Any]) -> None:
        _apply_usage(parsed, data.get("usageMetadata"))

    def list_models(self, data: Any) -> tuple[str, ...]:
        items = data.get("models", []) if isinstance(data, dict) else []
        return tuple(str(m["name"]).removeprefix("models/") for m in items
                     if isinstance(m, dict) and m.get("name"))

    def parse_body(self, request: base.CompletionRequest, data: Any) -> ParsedCompletion:
        if not isinstance(data, dict):
            raise self.fail(base.Transient, "the response is not a JSON object")
        parsed = ParsedCompletion(raw=data, model_id=text_or_none(data.get("modelVersion")))
        self._merge_chunk(parsed, data, [])
        if parsed.finish_reason is None and not data.get("candidates"):
            parsed.why_empty = "the response has no candidates"  # billed, an EmptyAnswer
        return parsed

    def _merge_chunk(self, parsed: ParsedCompletion, data: dict[str, Any],
                     pieces: list[str]) -> None:
        _apply_usage(parsed, data.get("usageMetadata"))  # first: a blocked prompt was billed too
        feedback = object_at(data, "promptFeedback")
        if feedback.get("blockReason"):
            raise self.fail(base.ContentFiltered,
                            f"the prompt was blocked ({feedback['blockReason']})", status=400)
        candidates = data.get("candidates") if isinstance(data.get("candidates"), list) else []
        if candidates and isinstance(candidates[0], dict):
            cand = candidates[0]
            content = object_at(cand, "content")
            parts = content.get("parts") if isinstance(content.get("parts"), list) else []
            for part in parts:  # `text: null`, a functionCall alone: no text (EmptyAnswer)
                if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"] \
                        and not part.get("thought"):
                    pieces.append(part["text"])
            if text_or_none(cand.get("finishReason")):
                parsed.finish_reason = cand["finishReason"]
        parsed.text = "".join(pieces)
        if text_or_none(data.get("modelVersion")):
            parsed.model_id = data["modelVersion"]
        if parsed.finish_reason in _BLOCKING_FINISH and not parsed.text.strip():
            raise self.fail(base.ContentFiltered,
                            f"the answer was withheld ({parsed.finish_reason})", status=200)

    async def read_stream(self, request: base.CompletionRequest, response: httpx.Response,
                          on_progress: base.ProgressCallback | None) -> ParsedCompletion:
        parsed = ParsedCompletion(raw={"stream": True})
        # Usage a stream reported before it failed (a truncated stream, an error event) was
        # billed: the error carries it.
        with billed_on_failure(request, parsed):
            pieces: list[str] = []
            chunks = 0
            async for event in iter_sse(response):
                data = loads_event(self, event.data)
                if isinstance(data, dict) and isinstance(data.get("error"), dict):
                    raise self.error_from_body(data, where="in the stream")
                if not isinstance(data, dict):
                    continue
                self._merge_chunk(parsed, data, pieces)
                chunks += 1
                if on_progress is not None:
                    on_progress(parsed.output_tokens or chunks)
            if parsed.finish_reason is None:
                raise truncated(self)
        return parsed


def _apply_usage(parsed: ParsedCompletion, usage: Any) -> None:
    """Counts that aren't non-negative whole numbers are ignored (then estimated), never raised."""
    if not isinstance(usage, dict):
        return
    if (prompt := usage_count(usage.get("promptTokenCount"))) is not None:
        parsed.input_tokens = prompt
    thoughts = usage_sum(usage.get("thoughtsTokenCount"))
    candidates_count = usage_count(usage.get("candidatesTokenCount"))
    if candidates_count is not None or thoughts:
        parsed.output_tokens = (candidates_count or 0) + thoughts
    parsed.reasoning_tokens = thoughts
    parsed.cached_tokens = usage_sum(usage.get("cachedContentTokenCount"))
