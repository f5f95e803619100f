"""API keys: read from environment variables only, and scrubbed from any text that might carry one.

A provider's key comes from the variable its declaration names (`api_key env VAR`), else from the
variable a `bmad.toml` names for that provider, else from the protocol's conventional variable
(`OPENAI_API_KEY`, ...). Files never hold keys: a `bmad.toml` holds variable *names*.

`redact(text)` replaces every key currently loaded, any long enough prefix of one (a server
echoing part of a key), and anything shaped like a credential (a bearer token, a `key=` query
parameter, an `sk-...` key, the password in a URL's `user:password@`) with `***`; error messages,
reprs, logs and journals pass through it. `mask_loaded_secrets(text)` masks only the loaded keys
(and long enough prefixes of them): every answer an HTTP provider returns passes through it, so a
server echoing our key in a successful answer puts it in no output or journal.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import unquote, urlsplit

from bmad.compiler.credentials import MASK, QUERY_KEY, mask_url_credentials

CONVENTIONAL_KEY_VARS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "ollama": ("OLLAMA_API_KEY",),
}
CONFIG_FILE = "bmad.toml"
REDACTED = MASK

# Shapes that look like credentials, scrubbed even when we never loaded them ourselves.
_CREDENTIAL_SHAPES = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    QUERY_KEY,
    re.compile(r"(?i)((?:x-api-key|x-goog-api-key|api-key|authorization)[\"']?\s*[:=]\s*[\"']?)"
               r"[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{12,}"),
    # A shorter `sk-` token (a key cut short in an echo) when it has a capital or a digit, so
    # words such as `sk-learn` stay.
    re.compile(r"\bsk-(?=[a-z_-]*[A-Z0-9])[A-Za-z0-9_-]{6,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"),
)
# A URL password shorter than this is masked in URLs only (remembered, it would mask words).
_URL_SECRET_MIN = 6
# A prefix of a loaded key this long, or longer, is masked wherever it appears (a server may
# echo the first characters of a key it refused); a key shorter than the next constant is only
# masked whole.
PARTIAL_KEY_MIN = 8
_PARTIAL_KEY_FROM = 12
# A matched prefix made only of letters (an ordinary word) is masked from this length on.
_PARTIAL_WORD_MIN = 12

_loaded_lock = threading.Lock()
_loaded_keys: set[str] = set()


class KeyConfigError(ValueError):
    """A `bmad.toml` that can't be read; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """Per-provider settings from `bmad.toml`: `[providers.NAME] api_key_env = "VAR"`."""

    key_vars: Mapping[str, str] = field(default_factory=dict)
    base_urls: Mapping[str, str] = field(default_factory=dict)
    path: str | None = None
    insecure_http: frozenset[str] = frozenset()  # providers with `allow_insecure_http = true`

    @staticmethod
    def load(path: str | os.PathLike[str] | None = None) -> "KeyConfig":
        """Read `bmad.toml` (the given path, else `$BMAD_CONFIG`, else ./bmad.toml if present)."""
        from bmad.compiler.settings import SettingsError, read_settings  # the one bmad.toml reader

        try:
            settings = read_settings(path)
        except SettingsError as exc:
            raise KeyConfigError(str(exc)) from None
        if settings.path is None:
            return KeyConfig()
        return KeyConfig.from_mapping(settings.data, path=settings.path)

    @staticmethod
    def from_mapping(data: Mapping[str, Any], path: str | None = None) -> "KeyConfig":
        providers = data.get("providers", {})
        if not isinstance(providers, Mapping):
            raise KeyConfigError(f"{path or CONFIG_FILE}: [providers] must be a table")
        key_vars: dict[str, str] = {}
        base_urls: dict[str, str] = {}
        insecure_http: set[str] = set()
        for name, table in providers.items():
            if not isinstance(table, Mapping):
                raise KeyConfigError(f"{path or CONFIG_FILE}: [providers.{name}] must be a table")
            if "api_key" in table:
                raise KeyConfigError(
                    f"{path or CONFIG_FILE}: [providers.{name}] holds a key; write "
                    "`api_key_env = \"VARIABLE\"` and put the key in that environment variable")
            var = table.get("api_key_env")
            if var is not None:
                if not isinstance(var, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
                    raise KeyConfigError(f"{path or CONFIG_FILE}: [providers.{name}] api_key_env "
                                         "must name an environment variable")
                key_vars[name] = var
            url = table.get("base_url")
            if isinstance(url, str):
                base_urls[name] = url
            insecure = table.get("allow_insecure_http", False)
            if not isinstance(insecure, bool):
                raise KeyConfigError(f"{path or CONFIG_FILE}: [providers.{name}] "
                                     "allow_insecure_http must be true or false")
            if insecure:
                insecure_http.add(name)
        return KeyConfig(key_vars=key_vars, base_urls=base_urls, path=path,
                         insecure_http=frozenset(insecure_http))


def key_variables(provider_name: str, kind: str, declared: str | None,
                  config: KeyConfig | None = None) -> tuple[str, ...]:
    """The environment variables to look in, in order."""
    if declared:
        return (declared,)
    if config is not None and provider_name in config.key_vars:
        return (config.key_vars[provider_name],)
    return CONVENTIONAL_KEY_VARS.get(kind, ())


def read_key(variables: tuple[str, ...],
             environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(key, variable it came from), or (None, None). Remembers the key so `redact` hides it."""
    env = os.environ if environ is None else environ
    for var in variables:
        value = env.get(var)
        if value:
            value = value.strip()
            remember_secret(value)
            return value, var
    return None, None


def remember_secret(value: str) -> None:
    if value and len(value) >= 4:
        with _loaded_lock:
            _loaded_keys.add(value)


def remember_url_credentials(url: str | None) -> None:
    """Remember the password (or lone user part) in `url`'s `user:password@`, as written and
    decoded, so `redact` hides it wherever it turns up (even outside a URL)."""
    if not url or "@" not in url:
        return
    try:
        parts = urlsplit(url.strip())
        user, password = parts.username, parts.password
    except ValueError:
        return
    # A lone user part is remembered only when long enough to be a token, not a name (`admin`);
    # a very short password is masked inside URLs only (the `user:***@` shape), not as a word.
    secret = password if password is not None else (user if user and len(user) >= 16 else None)
    if secret and len(secret) >= _URL_SECRET_MIN:
        remember_secret(secret)
        remember_secret(unquote(secret))


def _mask_prefixes(text: str, secret: str) -> str:
    """`text` with every run of at least PARTIAL_KEY_MIN leading characters of `secret` masked."""
    head = secret[:PARTIAL_KEY_MIN]
    start = text.find(head)
    if start < 0:
        return text
    out: list[str] = []
    done = 0
    while start >= 0:
        end = start + PARTIAL_KEY_MIN
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        before = text[start - 1] if start else " "
        matched = text[start:end]
        if not (before.isalnum() or before in "_-") and \
                (not matched.isalpha() or len(matched) >= _PARTIAL_WORD_MIN):
            out.append(text[done:start])
            out.append(REDACTED)
            done = end
        start = text.find(head, end if done == end else start + 1)
    out.append(text[done:])
    return "".join(out)


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` with every loaded key, every `extra` secret, long enough prefixes of them and
    credential-shaped strings masked."""
    if not text:
        return text
    with _loaded_lock:
        secrets = sorted(_loaded_keys.union(s for s in extra if s), key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = mask_url_credentials(text)  # `user:password@`, `?key=`
    for shape in _CREDENTIAL_SHAPES:  # before the prefixes: a whole token goes, not just its head
        text = shape.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    for secret in secrets:
        if len(secret) >= _PARTIAL_KEY_FROM:
            text = _mask_prefixes(text, secret)
    return text


def holds_loaded_secret(text: str | bytes) -> bool:
    """Whether `text` (or a raw body) holds a loaded key (or URL password), whole or its first
    PARTIAL_KEY_MIN characters: a substring check per loaded secret, cheap enough for every answer."""
    if not text:
        return False
    with _loaded_lock:
        secrets = tuple(_loaded_keys)
    if isinstance(text, (bytes, bytearray)):
        return any(s[:PARTIAL_KEY_MIN].encode("utf-8", "replace") in text for s in secrets)
    return any(s in text or (len(s) >= _PARTIAL_KEY_FROM and s[:PARTIAL_KEY_MIN] in text)
               for s in secrets)


def mask_loaded_secrets(text: str) -> str:
    """`text` (a model's answer) with every loaded key and long enough prefix of one masked.

    Unlike `redact`, credential *shapes* we never loaded (`sk-...`, `Bearer ...`) are left alone:
    an answer may rightly hold example tokens. Only our own secrets are taken out of it."""
    if not holds_loaded_secret(text):
        return text
    with _loaded_lock:
        secrets = sorted(_loaded_keys, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for secret in secrets:
        if len(secret) >= _PARTIAL_KEY_FROM:
            text = _mask_prefixes(text, secret)
    return text


def _each_string(value: Any, mask: Callable[[str], str]) -> Any:
    """`mask` applied to every string inside dicts and lists (a raw JSON body)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _each_string(v, mask) for k, v in value.items()}
    if isinstance(value, list):
        return [_each_string(v, mask) for v in value]
    return value


def mask_loaded_secrets_in(value: Any) -> Any:
    """`mask_loaded_secrets` applied through a raw answer body."""
    return _each_string(value, mask_loaded_secrets)


def redact_value(value: Any) -> Any:
    """`redact` applied through a raw response body."""
    return _each_string(value, redact)
