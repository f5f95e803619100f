"""The provider interface: one async call in, one response (or a classified error) out.

Providers speak their protocol and know no IR: the runtime hands them a `CompletionRequest` and
gets a `CompletionResponse` back, or one of the error classes below, which the retry, fallback and
circuit-breaker logic understands. Keys are read from the environment by the provider itself and
never appear in requests, responses, errors or reprs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Literal, Protocol


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model_id: str  # the provider's model id
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    json_schema: dict[str, Any] | None = None  # ask for structured JSON output where supported
    enum_values: tuple[str, ...] = ()  # the answer must be one of these (returns enum)
    stream: bool = False
    timeout_s: float | None = None
    stop: tuple[str, ...] = ()
    # Not sent to the provider: lets deterministic providers (sim, replay) key their answers.
    task_id: str = ""
    model_name: str = ""  # the catalog name (the runtime's name for the model)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        return "\n\n".join(m.content for m in self.messages)


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a provider's response headers said about its rate limits (None: not reported)."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_s: float | None = None  # seconds until the request window resets
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None


@dataclass(frozen=True, slots=True)
class CompletionResponse:
    text: str
    input_tokens: int
    output_tokens: int
    latency_s: float
    cost_usd: float | None = None  # None: the provider can't tell; the runtime prices from the catalog
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str | None = None
    model_id: str | None = None
    simulated: bool = False
    raw: dict[str, Any] | None = None  # the provider's response body (no headers, no keys)
    rate_limit: RateLimitInfo | None = None  # from response headers, for adaptive rate limiting


# ----------------------------------------------------------------------------------------------
# Errors the runtime's retry, fallback and circuit-breaker logic understand


class ProviderError(Exception):
    """Base class. `retryable` says whether the same call may succeed if tried again."""

    retryable = False
    kind = "provider_error"

    def __init__(self, message: str, *, status: int | None = None, provider: str | None = None,
                 retry_after_s: float | None = None, rate_limit: RateLimitInfo | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.provider = provider
        self.retry_after_s = retry_after_s
        self.rate_limit = rate_limit
        # (input, output) tokens the server billed for this failed answer (an empty answer is
        # still billed); None for errors that cost nothing
        self.billed_tokens: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status})"


class RateLimited(ProviderError):
    retryable = True
    kind = "rate_limited"


class Transient(ProviderError):
    """5xx, connection resets, truncated streams: worth another try."""

    retryable = True
    kind = "transient"


class EmptyAnswer(Transient):
    """A 200 answer with no text in it (`content: null`, `""`, no text block, only a tool call, no
    choices or candidates): worth another try, then a fallback; journaled as `transient`."""


class OutOfTokensEmpty(EmptyAnswer):
    """No text because the answer hit `max_tokens` first (finish reason `length`; e.g. a reasoning
    model thinking through its whole allowance): the same request would do it again, so the
    fallback is asked at once, without retrying."""

    retryable = False


class Timeout(ProviderError):
    retryable = True
    kind = "timeout"


class BadRequest(ProviderError):
    kind = "bad_request"


class Auth(ProviderError):
    kind = "auth"


class ContextTooLong(ProviderError):
    """The prompt does not fit this model: a fallback with a larger context may work."""

    kind = "context_too_long"


class ContentFiltered(ProviderError):
    kind = "content_filtered"


class Unavailable(ProviderError):
    """The provider can't be used at all here (missing key, missing extra, unreachable)."""

    kind = "unavailable"


class Misconfigured(Unavailable):
    """Unavailable because its configuration is wrong (a bad base URL, a key variable no key can
    hold, a key in bmad.toml), not merely absent: `bmad doctor` fails on it instead of skipping."""


ERROR_CLASSES: dict[str, type[ProviderError]] = {
    cls.kind: cls
    for cls in (ProviderError, RateLimited, Transient, Timeout, BadRequest, Auth, ContextTooLong,
                ContentFiltered, Unavailable)
}

ProgressCallback = Callable[[int], None]  # called with output tokens so far while streaming


class Provider(Protocol):
    """What every provider module implements."""

    name: str

    async def complete(self, request: CompletionRequest,
                       on_progress: ProgressCallback | None = None) -> CompletionResponse: ...

    async def aclose(self) -> None: ...


class StreamingProvider(Protocol):
    def stream(self, request: CompletionRequest) -> AsyncIterator[str]: ...
