"""API keys: read from environment variables only, and scrubbed from any text that might carry one.

A provider's key comes from the variable its declaration names (`api_key env VAR`), else from the
variable a `bmad.toml` names for that provider, else from the protocol's conventional variable
(`OPENAI_API_KEY`, ...). Files never hold keys: a `bmad.toml` holds variable *names*.

A key variable whose value holds a control character (a line break, a tab, ...) or a character
outside printable ASCII is refused (BMAD-E401), naming the variable and never the value: such a
key can't go in an HTTP header, and the transport's own error would quote it.

`redact(text)` replaces every key currently loaded, any run of 8 or more of its consecutive
characters wherever in the key it starts (a server echoing part of a key: its head, its tail, a
slice), and anything shaped like a credential (a bearer token, a `key=` query parameter, an
`sk-...` key, the password in a URL's `user:password@`) with `***`; error messages, reprs, logs
and journals pass through it. `mask_loaded_secrets(text)` masks only the loaded keys (and runs of
8+ of their characters): every answer an HTTP provider returns passes through it, so a
server echoing our key in a successful answer puts it in no output or journal. Both also mask a
loaded key written in an encoded form, whole or its long enough prefix: percent-encoded (any
character of it, either hex case, `+` for a space: a server echoing it URL-encoded) and
backslash-escaped as `repr()` or JSON write it (`\\n`, `\\x01`, `\\u00e9`: an exception's repr).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import unquote, urlsplit

from bmad.compiler.credentials import MASK, QUERY_KEY, mask_url_credentials
from bmad.runtime.providers import base

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
# A run of this many consecutive characters of a loaded key, or more, is masked wherever it
# appears and wherever in the key it starts (a server may echo the head of a key it refused, its
# tail `...wxyz`, or any slice of it); a key shorter than the next constant is only masked whole.
PARTIAL_KEY_MIN = 8
_PARTIAL_KEY_FROM = 12
# A matched run made only of letters (an ordinary word) is masked from this length on.
_PARTIAL_WORD_MIN = 12
# Runs are found from the key's pieces of this many characters at every (PARTIAL_KEY_MIN -
# _ANCHOR + 1)th offset: any run of PARTIAL_KEY_MIN characters holds one (see `_run_index`).
_ANCHOR = 4
_ANCHOR_STEP = PARTIAL_KEY_MIN - _ANCHOR + 1

_loaded_lock = threading.Lock()
_loaded_keys: set[str] = set()
# Per loaded secret: the patterns of its encoded forms (see `_encoded_parts`), built on first use.
_encoded_patterns: dict[str, tuple[re.Pattern[str], tuple[re.Pattern[str], ...]]] = {}
# Per loaded secret: its windows and anchors (see `_run_index`), built on first use.
_run_indexes: dict[str, tuple[dict[str, tuple[int, ...]], tuple[str, ...]]] = {}

E_BAD_KEY = "BMAD-E401"  # a key variable holds a character a key can't have


class KeyConfigError(ValueError):
    """A `bmad.toml` that can't be read; the message names the file and the problem."""


class RefusedProvider(base.Misconfigured):
    """A provider refused for a reason with its own code, fixed where the hint says (not by
    setting a key variable, as for a plain `Unavailable`). The message is `where` (`provider
    'NAME': `), the code in brackets and `detail`; a run that reports any unavailable provider as
    BMAD-E306 still shows the code."""

    code = "BMAD-E306"

    def __init__(self, detail: str, *, provider: str | None = None, where: str = "",
                 hint: str | None = None):
        super().__init__(f"{where}[{self.code}] {detail}", provider=provider)
        self.detail = f"{where}{detail}"
        self.hint = hint


class ConfigUnusable(RefusedProvider):
    """`bmad.toml` can't be used for the providers (BMAD-E400): it holds a key, or its
    `[providers]` tables are malformed."""

    code = "BMAD-E400"


class BadKeyValue(RefusedProvider):
    """A key variable whose value can't be a key (BMAD-E401): a line break, a control character
    or a character outside printable ASCII in it. The message names the variable, never the
    value."""

    code = E_BAD_KEY


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
        from bmad.compiler.settings import providers_problem  # one check, shared with the compiler

        problem = providers_problem(data, path)
        if problem is not None:
            raise KeyConfigError(problem)
        key_vars: dict[str, str] = {}
        base_urls: dict[str, str] = {}
        insecure_http: set[str] = set()
        for name, table in data.get("providers", {}).items():
            var = table.get("api_key_env")
            if var is not None:
                key_vars[name] = var
            url = table.get("base_url")
            if isinstance(url, str):
                base_urls[name] = url
            if table.get("allow_insecure_http", False):
                insecure_http.add(name)
        return KeyConfig(key_vars=key_vars, base_urls=base_urls, path=path,
                         insecure_http=frozenset(insecure_http))


def key_variables(provider_name: str, kind: str, declared: str | None,
                  config: KeyConfig | None = None) -> tuple[str, ...]:
    """The environment variables to look in, in order: the one bmad.toml names for the provider
    (this machine's setting wins, as for `base_url`), else the declaration's, else the protocol's
    conventional ones."""
    if config is not None and provider_name in config.key_vars:
        return (config.key_vars[provider_name],)
    if declared:
        return (declared,)
    return CONVENTIONAL_KEY_VARS.get(kind, ())


def key_value_problem(variable: str, value: str) -> str | None:
    """Why the (stripped) value of `variable` can't be a key, naming the variable and never the
    value; None when it can. A key goes in an HTTP header: printable ASCII on one line."""
    bad = next((c for c in value if not " " <= c <= "~"), None)
    if bad is None:
        return None
    if bad < " " or "\x7f" <= bad <= "\x9f":
        what = ("a line break" if bad in "\r\n" else "a tab" if bad == "\t"
                else "a control character")
    else:
        what = "a character outside printable ASCII"
    return (f"the environment variable {variable} holds {what}, which an API key can't have (a "
            "key is one line of printable ASCII)")


def bad_key_hint(variable: str) -> str:
    return f"set {variable} again to the key alone (one line, no line break)"


def check_key_variables(variables: tuple[str, ...], environ: Mapping[str, str] | None = None,
                        *, provider: str | None = None) -> None:
    """Raise `BadKeyValue` when the variable `read_key` would read the key from holds a value that
    can't be a key (checked when a provider is built, before any call)."""
    env = os.environ if environ is None else environ
    for var in variables:
        value = env.get(var)
        if value:
            value = value.strip()
            remember_secret(value)  # masked even though it is never sent
            problem = key_value_problem(var, value)
            if problem is not None:
                raise BadKeyValue(problem, provider=provider, hint=bad_key_hint(var),
                                  where=f"provider {provider!r}: " if provider else "")
            return


def read_key(variables: tuple[str, ...],
             environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """(key, variable it came from), or (None, None). Remembers the key so `redact` hides it.
    A value that can't be a key (`key_value_problem`) raises `BadKeyValue` (BMAD-E401)."""
    env = os.environ if environ is None else environ
    for var in variables:
        value = env.get(var)
        if value:
            value = value.strip()
            remember_secret(value)
            problem = key_value_problem(var, value)
            if problem is not None:
                raise BadKeyValue(problem, hint=bad_key_hint(var))
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


def _run_index(secret: str) -> tuple[dict[str, tuple[int, ...]], tuple[str, ...]]:
    """(each PARTIAL_KEY_MIN-character window of `secret` -> the offsets it starts at, the
    anchors: its _ANCHOR-character pieces at offsets 0, _ANCHOR_STEP, 2 x _ANCHOR_STEP...).

    A run of PARTIAL_KEY_MIN characters of the secret spans _ANCHOR_STEP consecutive pieces, one
    of them at a multiple of _ANCHOR_STEP: a text holding no anchor holds no run, which a few
    substring searches (in C) tell, however long the text, instead of a scan per window."""
    with _loaded_lock:
        index = _run_indexes.get(secret)
    if index is not None:
        return index
    windows: dict[str, list[int]] = {}
    for offset in range(len(secret) - PARTIAL_KEY_MIN + 1):
        windows.setdefault(secret[offset:offset + PARTIAL_KEY_MIN], []).append(offset)
    anchors = dict.fromkeys(secret[offset:offset + _ANCHOR]
                            for offset in range(0, len(secret) - _ANCHOR + 1, _ANCHOR_STEP))
    index = ({w: tuple(offsets) for w, offsets in windows.items()}, tuple(anchors))
    with _loaded_lock:
        _run_indexes[secret] = index
    return index


def _iter_run_starts(text: str, secret: str) -> Iterator[int]:
    """Positions of `text` where PARTIAL_KEY_MIN characters of `secret` start (each once per
    anchor; not in order). Around each anchor found, the windows it can lie in are checked."""
    windows, anchors = _run_index(secret)
    for anchor in anchors:
        checked = -1  # positions up to here were checked for this anchor
        at = text.find(anchor)
        while at >= 0:
            for start in range(max(at - _ANCHOR_STEP + 1, checked + 1, 0), at + 1):
                if text[start:start + PARTIAL_KEY_MIN] in windows:
                    yield start
            checked = at
            at = text.find(anchor, at + 1)


def _run_length(text: str, start: int, secret: str, offsets: tuple[int, ...]) -> int:
    """How far from `start` the text follows the secret, from the best of `offsets`."""
    best = 0
    for offset in offsets:
        n, limit = PARTIAL_KEY_MIN, min(len(text) - start, len(secret) - offset)
        while n < limit and text[start + n] == secret[offset + n]:
            n += 1
        best = max(best, n)
    return best


def _run_end(text: str, start: int, secret: str, windows: dict[str, tuple[int, ...]],
             after_mask: bool = False) -> int | None:
    """Where the run of `secret` starting at `start` ends, if it is one to mask; None for a run
    glued to a word before it (part of another token) or made only of letters and shorter than
    _PARTIAL_WORD_MIN (a word), left alone as a prefix of the key always was. A run right after
    a mask (`after_mask`) is not glued to anything."""
    before = text[start - 1] if start and not after_mask else " "
    if before.isalnum() or before in "_-":
        return None
    end = start + _run_length(text, start, secret, windows[text[start:start + PARTIAL_KEY_MIN]])
    if len(text[start:end]) < _PARTIAL_WORD_MIN and text[start:end].isalpha():
        return None
    return end


def _mask_runs(text: str, secrets: list[str]) -> str:
    """`text` with every run of PARTIAL_KEY_MIN or more consecutive characters of any of `secrets`
    masked, wherever in a secret it starts, leftmost and longest first (`_run_end` says which).
    All secrets are matched on the same text, so where two share characters (test keys often end
    in `0123456789abcdef`) the longer run wins and a run overlapping a mask grows it: masking one
    secret at a time left the other's tail (`***XYZ`)."""
    starts: dict[int, list[str]] = {}
    for secret in secrets:
        if len(secret) >= _PARTIAL_KEY_FROM:
            for start in _iter_run_starts(text, secret):
                starts.setdefault(start, []).append(secret)
    if not starts:
        return text
    out: list[str] = []
    done = 0
    for start in sorted(starts):
        after_mask = start < done or (bool(out) and start == done)
        ends = [end for secret in starts[start]
                if (end := _run_end(text, start, secret, _run_index(secret)[0], after_mask)) is not None]
        if not ends:
            continue
        if start < done:  # overlaps the last mask: the mask grows to cover it
            done = max(done, max(ends))
            continue
        out.append(text[done:start])
        out.append(REDACTED)
        done = max(ends)
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _holds_run(text: str, secret: str) -> bool:
    """Whether `_mask_runs` would mask something."""
    if len(secret) < _PARTIAL_KEY_FROM:
        return False
    windows = _run_index(secret)[0]
    return any(_run_end(text, start, secret, windows) is not None
               for start in _iter_run_starts(text, secret))


def _char_forms(c: str) -> str:
    """A regex matching the character `c` as written or encoded: percent-encoded (each UTF-8 byte,
    either hex case; `+` for a space), or escaped as `repr()` of a str or of bytes, or JSON,
    would write it."""
    forms = {re.escape(c)}
    data = c.encode("utf-8", "surrogateescape")
    forms.add("".join(f"%[{b >> 4:X}{b >> 4:x}][{b & 15:X}{b & 15:x}]" for b in data))
    if c == " ":
        forms.add(r"\+")
    for escaped in (repr(c)[1:-1], json.dumps(c)[1:-1], repr(data)[2:-1]):
        if escaped != c:
            forms.add(re.escape(escaped))
    return "(?:" + "|".join(sorted(forms, key=len, reverse=True)) + ")"


def _encoded_parts(secret: str) -> tuple[re.Pattern[str], tuple[re.Pattern[str], ...]]:
    """(the pattern of `secret`'s head, the pattern of each character after it), each character
    as written or encoded (`_char_forms`). The head is its first PARTIAL_KEY_MIN characters, or
    all of a secret too short for its prefixes to be masked. Flat patterns: one nested group a
    character would overflow the regex parser on a long secret."""
    with _loaded_lock:
        parts = _encoded_patterns.get(secret)
    if parts is not None:
        return parts
    head = secret if len(secret) < _PARTIAL_KEY_FROM else secret[:PARTIAL_KEY_MIN]
    parts = (re.compile("".join(_char_forms(c) for c in head)),
             tuple(re.compile(_char_forms(c)) for c in secret[len(head):]))
    with _loaded_lock:
        _encoded_patterns[secret] = parts
    return parts


def _may_hold_encoded(text: str, secret: str) -> bool:
    return "%" in text or "\\" in text or (" " in secret and "+" in text)


def _mask_encoded(text: str, secrets: list[str]) -> str:
    """`text` with every secret written in an encoded form masked: whole, or (secrets long
    enough) a prefix of PARTIAL_KEY_MIN characters or more, not glued to a word before it. A
    secret as written (no character encoded) is left to the plain passes."""
    for secret in secrets:
        if not _may_hold_encoded(text, secret):
            continue
        head, rest = _encoded_parts(secret)
        out: list[str] = []
        done = pos = 0
        while (m := head.search(text, pos)) is not None:
            end, matched = m.end(), len(secret) - len(rest)
            for char in rest:  # as far along the secret as the text follows it
                step = char.match(text, end)
                if step is None:
                    break
                end, matched = step.end(), matched + 1
            found = text[m.start():end]
            before = text[m.start() - 1] if m.start() else " "
            if secret.startswith(found) or (
                    matched < len(secret) and (before.isalnum() or before in "_-")):
                pos = m.start() + 1  # as written, or glued to a word: not ours to mask here
                continue
            out.append(text[done:m.start()])
            out.append(REDACTED)
            done = pos = end
        if out:
            out.append(text[done:])
            text = "".join(out)
    return text


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` with every loaded key, every `extra` secret, runs of 8+ of their characters
    (`_mask_runs`) and credential-shaped strings masked."""
    if not text:
        return text
    with _loaded_lock:
        secrets = sorted(_loaded_keys.union(s for s in extra if s), key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _mask_encoded(text, secrets)  # before the shapes: they would take only its head
    text = mask_url_credentials(text)  # `user:password@`, `?key=`
    for shape in _CREDENTIAL_SHAPES:  # before the runs: a whole token goes, not just its head
        text = shape.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
    return _mask_runs(text, secrets)


def holds_loaded_secret(text: str | bytes) -> bool:
    """Whether `text` (or a raw body) holds a loaded key (or URL password), whole, a run of
    PARTIAL_KEY_MIN of its characters or an encoded prefix: a few substring searches per loaded
    secret, cheap enough for every answer. True means "may hold": masking decides."""
    if not text:
        return False
    with _loaded_lock:
        secrets = tuple(_loaded_keys)
    if not secrets:
        return False
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")  # ~1 ms a MB; keys are printable ASCII
    return any(s in text or _holds_run(text, s)
               or (_may_hold_encoded(text, s) and _encoded_parts(s)[0].search(text) is not None)
               for s in secrets)


def mask_loaded_secrets(text: str) -> str:
    """`text` (a model's answer) with every loaded key and run of 8+ of its characters masked.

    Unlike `redact`, credential *shapes* we never loaded (`sk-...`, `Bearer ...`) are left alone:
    an answer may rightly hold example tokens. Only our own secrets are taken out of it."""
    if not holds_loaded_secret(text):
        return text
    with _loaded_lock:
        secrets = sorted(_loaded_keys, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _mask_encoded(text, secrets)
    return _mask_runs(text, secrets)


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
