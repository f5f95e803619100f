"""The shared HTTP layer of the protocol modules: one pooled httpx client, errors, SSE, rate limits.

Each protocol module (openai, anthropic, gemini, ollama) subclasses `HttpProvider` and supplies
four hooks: the request path and body, how to read a finished body, how to read a stream, and how
to find the message and error code in an error body (plus where a body reports its usage, and the
field an answer is in). Everything else lives here once:

- one `httpx.AsyncClient` per provider (connection pooling, split connect/read timeouts; a new
  client if the event loop changed, since pooled connections belong to a loop);
- transport failures and HTTP statuses mapped to the runtime's error classes (`classify_status`);
  an error object in a 200 or mid-stream classified by the status its body names
  (`implied_status`); redirects not followed, and said where they point (`redirect_error`); an
  HTML error page read for its title (`html_page_text`); JSON parsed in one place (`loads_json`,
  which takes JSON nested too deep for malformed JSON);
- a failed answer the server reported usage for (no text, no choices, filtered, an error object,
  a stream that broke off) billed that usage (`billed_tokens` on the error);
- `Retry-After` / `retry-after-ms` / `x-ratelimit-*` / `anthropic-ratelimit-*` header parsing into
  `retry_after_s` and `base.RateLimitInfo`;
- a small SSE reader (`iter_sse`);
- cost from catalog prices (unknown price: None, never $0);
- keys read from the environment on first use and never put in messages: every error text passes
  through `keys.redact`, and errors are raised outside `except` blocks so no httpx exception (which
  holds the request and its headers) hangs off them.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, AsyncIterator, Iterator, Mapping

import anyio
import httpx

from bmad.compiler.limits import CODES as LIMIT_CODES, current_limits
from bmad.compiler.literals import TOKEN_BUDGET_CEILING
from bmad.runtime.providers import base, keys
from bmad.runtime.providers.health import HealthReport
from bmad.runtime.providers.transport import key_transport_problem

USER_AGENT = "bmad-runtime"
_ERROR_TEXT_LIMIT = 300
_LOCATION_LIMIT = 200  # of a redirect's Location quoted in its error
_PAGE_READ_LIMIT = 64 * 1024  # of an HTML error page read for its title or text


@dataclass(slots=True)
class ParsedCompletion:
    """What a protocol module extracts from a body or a stream."""

    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str | None = None
    model_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    why_empty: str | None = None  # what the answer lacks, said by an EmptyAnswer ("no choices")


class HttpProvider:
    """Base class of the HTTP protocols: implements `base.Provider` around four hooks."""

    kind = "http"
    default_base_url = ""
    models_path = "/models"  # GET here lists models without spending tokens (bmad doctor)
    # The protocol asks for `returns enum(...)` as `{"answer": VALUE}` (enum_answer_schema): the
    # answer is unwrapped before anything else reads it.
    wraps_enum = False
    # The field of a 200 body holding the answer: a body with an `error` and without this is an
    # error object (`is_error_body`).
    answer_field = "choices"

    def __init__(self, name: str, base_url: str | None = None, key_variables: tuple[str, ...] = (),
                 connect_timeout_s: float = 10.0, read_timeout_s: float = 120.0,
                 prices: Mapping[str, tuple[float, float]] | None = None,
                 key_required: bool = False, environ: Mapping[str, str] | None = None,
                 allow_insecure_http: bool = False):
        self.name = name
        self.allow_insecure_http = allow_insecure_http  # bmad.toml opt-in (transport.py)
        url = (base_url or self.default_base_url).strip()
        keys.remember_url_credentials(url)  # a `user:password@` in it is masked like a key
        # Keep a query string (Azure's ?api-version=...) apart, to append after the path.
        url, _, self._query = url.partition("?")
        self.base_url = url.rstrip("/")
        self.key_variables = tuple(key_variables)
        self.key_required = key_required
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.prices = dict(prices or {})
        self._environ = environ
        self._key: str | None = None
        self._key_loaded = False
        self._client: httpx.AsyncClient | None = None
        self._client_loop: int | None = None
        self.last_rate_limit: base.RateLimitInfo | None = None
        self.max_response_bytes = current_limits().response_bytes  # [limits] response_bytes

    def __repr__(self) -> str:
        return keys.redact(f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r}, "
                           f"key_from={'|'.join(self.key_variables) or None!r})")

    # -- hooks the protocol modules implement ------------------------------------------------

    def request_path(self, request: base.CompletionRequest) -> str:
        raise NotImplementedError

    def request_body(self, request: base.CompletionRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse_body(self, request: base.CompletionRequest, data: Any) -> ParsedCompletion:
        raise NotImplementedError

    async def read_stream(self, request: base.CompletionRequest, response: httpx.Response,
                          on_progress: base.ProgressCallback | None) -> ParsedCompletion:
        raise NotImplementedError

    def read_usage(self, parsed: ParsedCompletion, data: dict[str, Any]) -> None:
        """Put the token counts a body (a JSON object) reports into `parsed`."""

    def is_error_body(self, data: Any) -> bool:
        """Whether a 200 body is the protocol's error object rather than an answer (a gateway or
        compatible server answering `{"error": {...}}` with 200)."""
        return isinstance(data, dict) and isinstance(data.get("error"), (dict, str)) \
            and bool(data["error"]) and not data.get(self.answer_field)

    def error_details(self, data: Any) -> tuple[str, str | None, float | None]:
        """(message, provider error code/type, retry-after from the body) of an error body."""
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict):
                code = err.get("code") or err.get("type") or err.get("status")
                return str(err.get("message") or err), (str(code) if code else None), None
            if isinstance(err, str):
                return err, None, None
            if "message" in data:
                return str(data["message"]), None, None
        return (str(data) if data else ""), None, None

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def extra_headers(self) -> dict[str, str]:
        return {}

    def list_models(self, data: Any) -> tuple[str, ...]:
        """Model ids out of the `models_path` body (OpenAI-style `{"data": [{"id": ...}]}`)."""
        items = data.get("data", []) if isinstance(data, dict) else []
        return tuple(str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id"))

    # -- the shared machinery ----------------------------------------------------------------

    def api_key(self) -> str | None:
        if not self._key_loaded:
            self._key, _ = keys.read_key(self.key_variables, self._environ)
            self._key_loaded = True
        if self._key is None and self.key_required:
            raise base.Unavailable(
                f"provider {self.name!r} needs an API key: set the environment variable "
                f"{' or '.join(self.key_variables)}", provider=self.name)
        return self._key

    def headers(self) -> dict[str, str]:
        h = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        key = self.api_key()
        if key:
            problem = key_transport_problem(self.name, self.base_url, self.allow_insecure_http)
            if problem is not None:
                raise base.Unavailable(problem, provider=self.name)
            h.update(self.auth_headers(key))
        h.update(self.extra_headers())
        return h

    def url(self, path: str) -> str:
        full = self.base_url + path
        if self._query:
            full += ("&" if "?" in full else "?") + self._query
        return full

    def client(self) -> httpx.AsyncClient:
        try:
            loop = id(asyncio.get_running_loop())
        except RuntimeError:
            loop = None
        if self._client is None or self._client.is_closed or loop != self._client_loop:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.read_timeout_s, connect=self.connect_timeout_s),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
                follow_redirects=False)
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and not self._client.is_closed:
            client, self._client = self._client, None
            try:
                await client.aclose()
            except RuntimeError:  # closed from another loop: the pool is gone with it
                pass

    def cost(self, request: base.CompletionRequest, input_tokens: int,
             output_tokens: int) -> float | None:
        price = self.prices.get(request.model_name) or self.prices.get(request.model_id)
        if price is None:
            return None  # unknown, never $0
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000

    def fail(self, cls: type[base.ProviderError], message: str, **kw: Any) -> base.ProviderError:
        return cls(keys.redact(f"{self.name}: {message}"), provider=self.name, **kw)

    async def complete(self, request: base.CompletionRequest,
                       on_progress: base.ProgressCallback | None = None) -> base.CompletionResponse:
        deadline = request.timeout_s
        started = time.perf_counter()
        error: base.ProviderError | None = None
        parsed: ParsedCompletion | None = None
        headers: httpx.Headers | None = None
        try:
            with anyio.fail_after(deadline) if deadline else _no_deadline():
                parsed, headers = await self._exchange(request, on_progress)
        except base.ProviderError as exc:
            error = exc
        except TimeoutError:
            error = self.fail(base.Timeout, f"no complete answer within {deadline:g}s")
        except httpx.TimeoutException as exc:
            error = self.fail(base.Timeout, f"timed out ({type(exc).__name__})")
        except httpx.RemoteProtocolError as exc:
            error = self.fail(base.Transient, f"connection broke off mid-response ({exc})")
        except httpx.ConnectError:
            error = self.fail(base.Transient, f"cannot connect to {self.base_url}")
        except httpx.HTTPError as exc:
            error = self.fail(base.Transient, f"transport error {type(exc).__name__}: {exc}")
        if error is not None:
            raise _detached(error)
        assert parsed is not None
        latency = time.perf_counter() - started
        if parsed.finish_reason in ("content_filter", "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST",
                                    "SPII", "refusal") and not parsed.text.strip():
            filtered = self.fail(base.ContentFiltered,
                                 f"the answer was withheld by the provider's filter "
                                 f"({parsed.finish_reason})")
            if reports_usage(parsed):  # the server says it billed the answer: so do we
                filtered.billed_tokens = billed_tokens(request, parsed)
            raise _detached(filtered)
        if not parsed.text.strip():
            # `content: null`, `""`, a tool call or tool_use block alone, no text block, no
            # choices: nothing to hand on. Retried (a new draw may answer), then the fallback.
            out_of_tokens = str(parsed.finish_reason) in OUT_OF_TOKENS_REASONS
            empty = self.fail(base.OutOfTokensEmpty if out_of_tokens else base.EmptyAnswer,
                              no_text_reason(parsed.finish_reason, parsed.why_empty))
            # billed all the same: the prompt was read, and any output tokens were written
            empty.billed_tokens = billed_tokens(request, parsed)
            raise _detached(empty)
        input_tokens = parsed.input_tokens if parsed.input_tokens is not None \
            else max(1, len(request.prompt_text) // 4)
        output_tokens = parsed.output_tokens if parsed.output_tokens is not None \
            else max(1, len(parsed.text) // 4)
        if parsed.input_tokens is None or parsed.output_tokens is None:
            parsed.raw = {**parsed.raw, "usage_estimated": True}
        rate_limit = parse_rate_limit(headers) if headers is not None else None
        if rate_limit is not None:
            self.last_rate_limit = rate_limit
        return base.CompletionResponse(
            text=parsed.text, input_tokens=input_tokens, output_tokens=output_tokens,
            latency_s=latency, cost_usd=self.cost(request, input_tokens, output_tokens),
            cached_tokens=parsed.cached_tokens, reasoning_tokens=parsed.reasoning_tokens,
            finish_reason=parsed.finish_reason, model_id=parsed.model_id or request.model_id,
            raw=parsed.raw, rate_limit=rate_limit)

    async def _exchange(self, request: base.CompletionRequest,
                        on_progress: base.ProgressCallback | None
                        ) -> tuple[ParsedCompletion, httpx.Headers]:
        body = self.request_body(request)
        url = self.url(self.request_path(request))
        client = self.client()
        timeout = httpx.Timeout(request.timeout_s or self.read_timeout_s,
                                connect=self.connect_timeout_s)
        http_request = client.build_request("POST", url, json=body, headers=self.headers(),
                                            timeout=timeout)
        response = await client.send(http_request, stream=True)
        try:
            cap_response_body(response, self.max_response_bytes, self)
            if response.status_code >= 400:
                await response.aread()
                raise self.error_from_response(response)
            if 300 <= response.status_code < 400:  # not followed: the key stays with base_url
                raise self.redirect_error(response, self.request_path(request))
            if request.stream:
                parsed = await self.read_stream(request, response, on_progress)
            else:
                await response.aread()
                data = self.json_body(response)
                try:
                    if self.is_error_body(data):
                        raise self.error_from_body(data, where="in an HTTP 200 answer",
                                                   headers=response.headers)
                    parsed = self.parse_body(request, data)
                except base.ProviderError as exc:
                    # A 200 reporting usage was billed, whatever made it unusable: so is the call.
                    if exc.billed_tokens is None and isinstance(data, dict):
                        probe = ParsedCompletion()
                        self.read_usage(probe, data)
                        if reports_usage(probe):
                            exc.billed_tokens = billed_tokens(request, probe)
                    raise
                if on_progress is not None and parsed.output_tokens:
                    on_progress(parsed.output_tokens)
            if self.wraps_enum:
                parsed.text = unwrap_enum_answer(request, parsed.text)
            if not isinstance(parsed.text, str):  # a protocol module's slip must not be a TypeError
                parsed.text = ""
            # A server may echo our key in a successful answer: mask every loaded key (and long
            # enough prefixes of one) before the answer reaches outputs or the journal. A
            # substring check per loaded key on the success path; the body is masked alike.
            if keys.holds_loaded_secret(parsed.text):
                parsed.text = keys.mask_loaded_secrets(parsed.text)
            if parsed.raw and (request.stream or keys.holds_loaded_secret(response.content)):
                parsed.raw = keys.mask_loaded_secrets_in(parsed.raw)
            if parsed.model_id is not None and not isinstance(parsed.model_id, str):
                parsed.model_id = None
            return parsed, response.headers
        finally:
            await response.aclose()

    def json_body(self, response: httpx.Response) -> Any:
        try:
            return loads_json(response.content)
        except ValueError as exc:
            if isinstance(exc, JsonTooDeep):
                raise self.fail(base.Transient, f"malformed JSON in the response body (HTTP "
                                                f"{response.status_code}): nested too deeply") from None
            page = html_page_text(response)
            if page is not None:  # a proxy's or captive portal's page: named, not quoted
                raise self.fail(base.Transient, f"the response body is an HTML page, not JSON "
                                                f"(HTTP {response.status_code}): {page[:80]!r}") from None
            snippet = response.content[:80].decode("utf-8", "replace")
            raise self.fail(base.Transient, f"malformed JSON in the response body "
                                            f"(HTTP {response.status_code}): {snippet!r}") from None

    def error_from_response(self, response: httpx.Response) -> base.ProviderError:
        try:
            data: Any = loads_json(response.content) if response.content else None
        except ValueError:
            data = html_page_text(response)  # an HTML error page: its title, or its text
            if data is None:
                data = response.content[:_ERROR_TEXT_LIMIT * 4].decode("utf-8", "replace")
        message, code, body_retry = self.error_details(data)
        return classify_status(response.status_code, message, code=code,
                               headers=response.headers, provider=self.name,
                               body_retry_after_s=body_retry)

    def error_from_body(self, data: Any, *, where: str,
                        headers: Mapping[str, str] | None = None) -> base.ProviderError:
        """An error object that came without an error status (in a 200 answer, as an event mid-
        stream): the server's message and code, classified as an error response with this body
        would be, its status from the body (`implied_status`)."""
        message, code, body_retry = self.error_details(data)
        return classify_status(implied_status(data, code), message, code=code, headers=headers,
                               provider=self.name, body_retry_after_s=body_retry, where=where)

    def redirect_error(self, response: httpx.Response, path: str) -> base.ProviderError:
        """A 3xx, not followed (the key would go wherever it points, perhaps another host): where
        it points, and the base_url that reaches it (http -> https is the common case). The
        configuration is wrong: not retried."""
        status = response.status_code
        location = response.headers.get("location", "").strip()
        if not location:
            return self.fail(Redirected, f"the server answered HTTP {status} (a redirect) with no "
                                         "Location; redirects are not followed: check base_url",
                             status=status)
        asked = str(response.request.url)
        try:
            target = str(response.request.url.join(location))
        except (httpx.InvalidURL, ValueError, TypeError):
            target = location
        target = target[:_LOCATION_LIMIT]
        if target == asked:
            return self.fail(Redirected, f"the server redirected to itself ({target}, HTTP "
                                         f"{status}); redirects are not followed: check base_url",
                             status=status)
        bare, bare_path = target.split("?")[0].split("#")[0], path.split("?")[0]
        fix = (f"set base_url to {bare[:-len(bare_path)]}" if bare_path and bare.endswith(bare_path)
               and len(bare) > len(bare_path) else "set base_url to where it points")
        return self.fail(Redirected, f"the server redirected to {target} (HTTP {status}); "
                                     f"redirects are not followed: {fix}", status=status)

    async def check(self) -> HealthReport:
        """Reachability and auth without spending tokens: GET the models list."""
        started = time.perf_counter()
        try:
            key_headers = self.headers()
        except base.Unavailable as exc:
            return HealthReport(self.name, self.kind, "no_key", exc.message)
        outcome: HealthReport | None = None
        try:
            response = await self.client().get(self.url(self.models_path), headers=key_headers)
        except httpx.TimeoutException:
            outcome = HealthReport(self.name, self.kind, "unreachable",
                                   keys.redact(f"{self.base_url} did not answer in time"))
        except httpx.HTTPError as exc:
            outcome = HealthReport(self.name, self.kind, "unreachable",
                                   keys.redact(f"cannot reach {self.base_url}: "
                                               f"{type(exc).__name__}"))
        if outcome is not None:
            return outcome
        latency = time.perf_counter() - started
        if response.status_code >= 400:
            err = self.error_from_response(response)
            status = "auth" if isinstance(err, base.Auth) else "error"
            return HealthReport(self.name, self.kind, status, err.message, latency_s=latency)
        if 300 <= response.status_code < 400:
            err = self.redirect_error(response, self.models_path)
            return HealthReport(self.name, self.kind, "error", err.message, latency_s=latency)
        try:
            data = loads_json(response.content)
        except ValueError:
            page = html_page_text(response)
            detail = "the models list is not JSON" + (f" (an HTML page: {page[:80]!r})" if page else "")
            return HealthReport(self.name, self.kind, "error", keys.redact(detail), latency_s=latency)
        if self.is_error_body(data):
            err = self.error_from_body(data, where="in an HTTP 200 answer")
            status = "auth" if isinstance(err, base.Auth) else "error"
            return HealthReport(self.name, self.kind, status, err.message, latency_s=latency)
        models = self.list_models(data)
        detail = f"reachable, {len(models)} model(s) listed"
        if not self.api_key() and self.key_variables:
            detail += f" (no key: {' / '.join(self.key_variables)} not set)"
        return HealthReport(self.name, self.kind, "ok", detail, models=models, latency_s=latency)


# Finish reasons saying the output allowance ran out (OpenAI and Ollama, Anthropic, Gemini).
OUT_OF_TOKENS_REASONS = frozenset({"length", "max_tokens", "MAX_TOKENS"})


def no_text_reason(finish_reason: Any, why: str | None = None) -> str:
    """The message of an answer without text (`base.EmptyAnswer`)."""
    reason = f" (finish reason {str(finish_reason)[:40]!r})" if finish_reason \
        else f" ({why})" if why else ""
    if str(finish_reason) in OUT_OF_TOKENS_REASONS:
        return (f"the answer has no text{reason}: max_tokens ran out before any text was written; "
                "not retried (raise the task's max_tokens)")
    return f"the answer has no text{reason}"


@contextmanager
def billed_on_failure(request: base.CompletionRequest, parsed: ParsedCompletion) -> Iterator[None]:
    """Around a stream's reading: a ProviderError raised after the stream reported usage (Anthropic's
    `message_start`, Gemini's chunks) carries those tokens, billed by the server all the same."""
    try:
        yield
    except base.ProviderError as exc:
        if exc.billed_tokens is None and reports_usage(parsed):
            exc.billed_tokens = billed_tokens(request, parsed)
        raise


def reports_usage(parsed: ParsedCompletion) -> bool:
    return parsed.input_tokens is not None or parsed.output_tokens is not None


def billed_tokens(request: base.CompletionRequest, parsed: ParsedCompletion) -> tuple[int, int]:
    """(input, output) tokens of an answer that failed after the server made it: its usage,
    input estimated from the prompt when not reported."""
    return (parsed.input_tokens if parsed.input_tokens is not None
            else max(1, len(request.prompt_text) // 4), parsed.output_tokens or 0)


# No answer, error or event of any protocol nests deeper than a few levels (a tool's input, the
# JSON answer itself, a dozen or two). Deeper is a hostile body: parsed, it would break whatever
# walks it recursively next (masking, the journal), and the parser's own limit depends on how deep
# the caller's stack already is.
JSON_DEPTH_LIMIT = 128


class JsonTooDeep(ValueError):
    """JSON nested deeper than JSON_DEPTH_LIMIT (or than the parser can go)."""


def loads_json(raw: str | bytes) -> Any:
    """`json.loads`, the one place the HTTP protocols parse JSON: JSON nested too deep (`[[[[...`,
    a RecursionError in the parser, or past JSON_DEPTH_LIMIT) is malformed JSON like any other
    (a ValueError)."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JsonTooDeep("JSON nested too deeply") from None
    if isinstance(value, (dict, list)):
        stack: list[tuple[Any, int]] = [(value, 1)]
        while stack:  # a walk without recursion: it must not fail the way it guards against
            node, depth = stack.pop()
            if depth > JSON_DEPTH_LIMIT:
                raise JsonTooDeep("JSON nested too deeply")
            for child in node.values() if isinstance(node, dict) else node:
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1))
    return value


class _PageText(HTMLParser):
    """The title and the visible text of an HTML page (scripts and styles left out)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: list[str] = []
        self.text: list[str] = []
        self._where: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("title", "script", "style"):
            self._where.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._where and self._where[-1] == tag:
            self._where.pop()

    def handle_data(self, data: str) -> None:
        if not self._where:
            self.text.append(data)
        elif self._where[-1] == "title":
            self.title.append(data)


_HTML_START = re.compile(rb"\s*(<!--.*?-->\s*)?<(!doctype\s+html|html|head|body|title)\b", re.I | re.S)


def html_page_text(response: httpx.Response) -> str | None:
    """A readable line for an HTML body (a proxy's 502 page, a login page): its <title>, else
    its text without tags, whitespace collapsed; None when the body is not HTML."""
    content_type = response.headers.get("content-type", "").lower()
    head = response.content[:_PAGE_READ_LIMIT]
    if "html" not in content_type and not _HTML_START.match(head[:1024]):
        return None
    page = _PageText()
    try:
        page.feed(head.decode("utf-8", "replace"))
        page.close()
    except Exception:  # noqa: BLE001 (the stdlib parser on hostile markup: keep what it read)
        pass
    title = " ".join("".join(page.title).split())
    return title or " ".join(" ".join(page.text).split())[:_ERROR_TEXT_LIMIT * 4]


def usage_count(value: Any) -> int | None:
    """A token count out of a usage field: a whole number from 0 to 10^15 (an int, an integral
    float or a string of digits), else None (unreadable, negative or absurd: ignored, and the
    runtime estimates the tokens as when a server reports none)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 18:
        value = int(value.strip())
    # Beyond any real call (and past what SQLite's integers hold): a broken server, not usage.
    if isinstance(value, int) and 0 <= value <= TOKEN_BUDGET_CEILING:
        return value
    return None


def usage_sum(*values: Any) -> int:
    """Counts added up, unreadable ones as 0 (cached, reasoning and cache-write counts)."""
    return sum(usage_count(v) or 0 for v in values)


def object_at(data: dict[str, Any], key: str) -> dict[str, Any]:
    """`data[key]` when it is a JSON object, else {} (missing, `null`, a string, a list...)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def text_or_none(value: Any) -> str | None:
    """A string field of an answer: the string, else None (`null`, a number, an object...)."""
    return value if isinstance(value, str) else None


class Redirected(base.Misconfigured):
    """A 3xx answer: redirects are not followed, since the key would go wherever one points
    (another host, plain http). The base URL is wrong: not retried; a fallback may answer."""


class ResponseTooLarge(base.BadRequest):
    """The body (or stream) grew past `[limits] response_bytes`: cut off, not retried (the same
    request would only grow as large again); a fallback model may answer."""


def cap_response_body(response: httpx.Response, limit: int, provider: "HttpProvider") -> None:
    """Make every read of this response (whole body, text, SSE or NDJSON lines) stop with
    `ResponseTooLarge` once its decoded bytes pass `limit`; a declared larger length stops at once."""
    declared = response.headers.get("content-length", "")
    message = (f"[{LIMIT_CODES['response_bytes']}] the response is larger than {limit:,} bytes "
               "(`response_bytes` in bmad.toml's [limits]); cut off")
    if declared.isdigit() and int(declared) > limit:
        raise provider.fail(ResponseTooLarge, message, status=response.status_code)
    read_bytes = response.aiter_bytes

    async def capped(chunk_size: int | None = None) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in read_bytes(chunk_size):
            seen += len(chunk)
            if seen > limit:
                raise provider.fail(ResponseTooLarge, message, status=response.status_code)
            yield chunk

    response.aiter_bytes = capped  # type: ignore[method-assign]  # aread/aiter_text/aiter_lines use it


class _no_deadline:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _detached(error: base.ProviderError) -> base.ProviderError:
    """The error without links to the transport exception (which holds request headers)."""
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    error.__traceback__ = None
    return error


# ----------------------------------------------------------------------------------------------
# Status codes and error bodies -> error classes

_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length|context window|maximum context|context size|prompt is too long|"
    r"too many tokens|token count .* exceeds|exceeds the maximum number of tokens|"
    r"input is too long|reduce the length|string_above_max_length|max_tokens_exceeded",
    re.IGNORECASE)
_FILTER_PATTERNS = re.compile(
    r"content[_ ]filter|content[_ ]policy|safety|responsibleaipolicy|prohibited_content|"
    r"blocked by|moderation", re.IGNORECASE)
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}

# The HTTP status an error body implies when it came without one (an error object in a 200, an
# error event mid-stream), from its type or code: OpenAI's and Anthropic's types and codes, and
# Google's statuses. One table for every protocol.
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400, "context_length_exceeded": 400, "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "authentication_error": 401, "invalid_api_key": 401, "UNAUTHENTICATED": 401,
    "permission_error": 403, "PERMISSION_DENIED": 403,
    "not_found_error": 404, "model_not_found": 404, "NOT_FOUND": 404,
    "request_too_large": 413,
    "rate_limit_error": 429, "rate_limit_exceeded": 429, "insufficient_quota": 429,
    "RESOURCE_EXHAUSTED": 429,
    "api_error": 500, "server_error": 500, "INTERNAL": 500, "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504, "overloaded_error": 529,
}


def implied_status(data: Any, code: str | None) -> int:
    """The status an error body without one stands for: a 4xx/5xx number in its error object
    (`code` or `status`, as Google and OpenRouter write it), else its type or code by name
    (ERROR_TYPE_STATUS), else 500 (a server-side failure, retried)."""
    err = data[0] if isinstance(data, list) and data else data
    err = err.get("error") if isinstance(err, dict) and isinstance(err.get("error"), dict) else err
    names: list[Any] = [code]
    if isinstance(err, dict):
        for field_name in ("code", "status"):
            value = err.get(field_name)
            if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) == 3:
                value = int(value)
            if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
                return value
        names += [err.get("type"), err.get("code"), err.get("status")]
    for name in names:
        if isinstance(name, str) and name in ERROR_TYPE_STATUS:
            return ERROR_TYPE_STATUS[name]
    return 500


def classify_status(status: int, message: str, *, code: str | None = None,
                    headers: Mapping[str, str] | None = None, provider: str | None = None,
                    body_retry_after_s: float | None = None,
                    where: str | None = None) -> base.ProviderError:
    """The error class for an HTTP error response, from its status, message and code. With
    `where` ("in the stream"), an error body that came without that status: the message says
    where it came, not a status the server never sent."""
    headers = headers or {}
    # A code is whatever the body held there (a number, an object...): a short string, or none.
    code = keys.redact(" ".join(str(code).split())[:80]) or None if code is not None else None
    # Masked before the cut as well as after: a key cut in two would leave its head unmasked.
    text = " ".join(keys.redact(str(message)[:_ERROR_TEXT_LIMIT * 4]).split())
    text = keys.redact(text[:_ERROR_TEXT_LIMIT]) or f"HTTP {status}"
    prefix = f"{provider}: " if provider else ""
    if where:
        label = f"{prefix}an error {where}" + (f" ({code})" if code else "") + f": {text}"
    else:
        label = f"{prefix}HTTP {status}" + (f" {code}" if code else "") + f": {text}"
    retry_after = parse_retry_after(headers)
    if retry_after is None:
        retry_after = body_retry_after_s
    rate_limit = parse_rate_limit(headers)
    kw: dict[str, Any] = dict(status=status, provider=provider, rate_limit=rate_limit)
    haystack = f"{code or ''} {message}"
    if status == 413 or (status in (400, 422) and _CONTEXT_PATTERNS.search(haystack)):
        return base.ContextTooLong(label, **kw)
    if status in (400, 403, 422) and _FILTER_PATTERNS.search(haystack):
        return base.ContentFiltered(label, **kw)
    if status == 429:
        if code in _QUOTA_CODES:
            return base.Unavailable(label, **kw)
        return base.RateLimited(label, retry_after_s=retry_after, **kw)
    if status in (401, 403) or (code and "api_key" in code.lower()):
        return base.Auth(label, **kw)
    if status == 408:
        return base.Timeout(label, **kw)
    if status >= 500:  # 500, 502, 503, 504, Anthropic's 529 overloaded
        return base.Transient(label, retry_after_s=retry_after, **kw)
    return base.BadRequest(label, **kw)


# ----------------------------------------------------------------------------------------------
# Rate-limit headers

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6,
                   "ns": 1e-9}


def parse_duration(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from '20', '1.5', '6m0s', '250ms', an RFC 3339 timestamp or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    now = time.time() if now is None else now
    try:  # RFC 3339 (anthropic-ratelimit-*-reset)
        from datetime import datetime
        return max(0.0, datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() - now)
    except ValueError:
        pass
    try:  # HTTP date (Retry-After)
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """How long the server asks us to wait, from Retry-After and its variants."""
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = parse_duration(_header(headers, "retry-after"))
    if value is not None:
        return value
    resets = [parse_duration(_header(headers, h)) for h in (
        "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset")]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def parse_rate_limit(headers: Mapping[str, str] | None) -> base.RateLimitInfo | None:
    """Limits and what remains of them, from OpenAI-style or Anthropic-style headers."""
    if not headers:
        return None

    def number(*names: str) -> int | None:
        for n in names:
            v = _header(headers, n)
            if v is not None:
                try:
                    return int(float(v))
                except ValueError:
                    continue
        return None

    def duration(*names: str) -> float | None:
        for n in names:
            v = parse_duration(_header(headers, n))
            if v is not None:
                return v
        return None

    info = base.RateLimitInfo(
        requests_limit=number("x-ratelimit-limit-requests", "anthropic-ratelimit-requests-limit",
                              "ratelimit-limit"),
        requests_remaining=number("x-ratelimit-remaining-requests",
                                  "anthropic-ratelimit-requests-remaining", "ratelimit-remaining"),
        requests_reset_s=duration("x-ratelimit-reset-requests",
                                  "anthropic-ratelimit-requests-reset", "ratelimit-reset"),
        tokens_limit=number("x-ratelimit-limit-tokens", "anthropic-ratelimit-tokens-limit"),
        tokens_remaining=number("x-ratelimit-remaining-tokens",
                                "anthropic-ratelimit-tokens-remaining"),
        tokens_reset_s=duration("x-ratelimit-reset-tokens", "anthropic-ratelimit-tokens-reset"),
    )
    return None if info == base.RateLimitInfo() else info


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and not isinstance(headers, httpx.Headers):
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return value


# ----------------------------------------------------------------------------------------------
# Server-sent events


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str | None
    data: str


async def iter_sse(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Events of a `text/event-stream` body (comments skipped, multi-line data joined)."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SseEvent(event, "\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SseEvent(event, "\n".join(data))


def sampling_settings(request: base.CompletionRequest, *, max_tokens: str | None, temperature: str,
                      stop: str) -> dict[str, Any]:
    """The request's sampling settings that are set, under one protocol's field names
    (`max_tokens=None`: the protocol module sets the token cap itself)."""
    settings: dict[str, Any] = {}
    if max_tokens is not None and request.max_tokens is not None:
        settings[max_tokens] = request.max_tokens
    if request.temperature is not None:
        settings[temperature] = request.temperature
    if request.stop:
        settings[stop] = list(request.stop)
    return settings


ENUM_FIELD = "answer"


def enum_answer_schema(request: base.CompletionRequest) -> dict[str, Any] | None:
    """`returns enum(...)` as a structured-output schema, for APIs whose schemas must be objects:
    `{"answer": one of the values}`. None when the request has no enum (or asks for JSON itself)."""
    if not request.enum_values or request.json_schema is not None:
        return None
    return {"type": "object", "properties": {ENUM_FIELD: {"type": "string", "enum": list(request.enum_values)}},
            "required": [ENUM_FIELD], "additionalProperties": False}


def unwrap_enum_answer(request: base.CompletionRequest, text: str) -> str:
    """The enum value out of `{"answer": "..."}`; any other text is returned as it came (the
    runtime's enum normalisation then judges it)."""
    if not request.enum_values or request.json_schema is not None:
        return text
    try:
        value = loads_json(text)
    except ValueError:
        return text
    if isinstance(value, dict) and isinstance(value.get(ENUM_FIELD), str):
        return value[ENUM_FIELD]
    return text


class StreamedText:
    """A streamed answer's text as its pieces arrive, reporting each piece to `on_progress`."""

    def __init__(self, on_progress: base.ProgressCallback | None):
        self.on_progress = on_progress
        self.pieces: list[str] = []
        self.chunks = 0

    def add(self, piece: str) -> None:
        self.pieces.append(piece)
        self.chunks += 1
        if self.on_progress is not None:
            self.on_progress(self.chunks)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def loads_event(provider: HttpProvider, data: str) -> Any:
    """One event's JSON payload; a malformed one is a transient failure (a garbled stream)."""
    try:
        return loads_json(data)
    except ValueError as exc:
        what = "nested too deeply" if isinstance(exc, JsonTooDeep) else repr(data[:80])
        raise provider.fail(base.Transient, f"malformed JSON in the stream: {what}") from None


def truncated(provider: HttpProvider) -> base.ProviderError:
    return provider.fail(base.Transient, "the stream ended before the answer was complete")
