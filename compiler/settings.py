"""Reads `bmad.toml`, the one settings file: found once, parsed once per change, shared by all.

The file is `$BMAD_CONFIG` when set, else `./bmad.toml` when present. The providers read their
`[providers.*]` tables from it (`runtime/providers/keys.py`), the compiler and runtime their
`[limits]` (`compiler/limits.py`), the journal its `[journal]` retention. This module only finds and
parses the file; each reader validates its own tables. Parsed once per (path, mtime, size), so a
long-lived process (the language server) sees edits without re-reading on every compile.

`providers_problem` is the one check of the `[providers.*]` tables: the providers refuse a file it
finds a problem in, and the compiler reports the same problem as BMAD-E400 (`bmad check`,
`bmad plan`, `bmad run`, the language server), so a plan never shows as runnable a configuration
a run would refuse. A key written in the file (`api_key = "..."`) is the problem it exists for:
`bmad.toml` names environment variables, keys live in them. Messages never repeat a value.
"""

from __future__ import annotations

import os
import re
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

CONFIG_FILE = "bmad.toml"
CONFIG_ENV = "BMAD_CONFIG"
E_CONFIG = "BMAD-E400"  # bmad.toml can't be used: it holds a key, or [providers] is malformed
KEY_IN_FILE_HINT = ("edit bmad.toml: name the environment variable instead (`api_key_env = "
                    "\"VARIABLE\"`) and put the key in that variable; keys never go in files")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SettingsError(ValueError):
    """A `bmad.toml` that can't be read or parsed; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The parsed file (empty when there is none) and where it came from."""

    data: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None

    def table(self, name: str) -> Mapping[str, Any]:
        """A top-level table, or {} when absent; a non-table value is a `SettingsError`."""
        value = self.data.get(name, {})
        if not isinstance(value, Mapping):
            raise SettingsError(f"{self.path or CONFIG_FILE}: [{name}] must be a table")
        return value


_lock = threading.Lock()
_cache: dict[tuple[str, int, int], Settings] = {}


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The file to read: the given path, else `$BMAD_CONFIG`, else ./bmad.toml."""
    return Path(path) if path else Path(os.environ.get(CONFIG_ENV) or CONFIG_FILE)


def read_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """The settings; an absent default file gives empty settings, an absent named one an error."""
    candidate = config_path(path)
    try:
        stat = candidate.stat()
    except OSError:
        if path:
            raise SettingsError(f"{candidate}: no such configuration file") from None
        return Settings()
    if not candidate.is_file():
        raise SettingsError(f"{candidate}: not a file")
    key = (str(candidate.resolve()), stat.st_mtime_ns, stat.st_size)
    with _lock:
        hit = _cache.get(key)
    if hit is not None:
        return hit
    try:
        data = tomllib.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{candidate}: {exc}") from None
    settings = Settings(data, str(candidate))
    with _lock:
        _cache.clear()  # one file in use at a time; keep only its latest version
        _cache[key] = settings
    return settings


def providers_issue(data: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(what is wrong with the `[providers.*]` tables of parsed settings, the fix when there is a
    short one), naming tables but never a value; None when nothing is."""
    providers = data.get("providers", {})
    if not isinstance(providers, Mapping):
        return "[providers] must be a table", None
    for name, table in providers.items():
        if not isinstance(table, Mapping):
            return f"[providers.{name}] must be a table", None
        if "api_key" in table:
            return (f"[providers.{name}] holds a key", "write `api_key_env = \"VARIABLE\"` and "
                    "put the key in that environment variable")
        var = table.get("api_key_env")
        if var is not None and (not isinstance(var, str) or not _VARIABLE_NAME.fullmatch(var)):
            return f"[providers.{name}] api_key_env must name an environment variable", None
        if not isinstance(table.get("allow_insecure_http", False), bool):
            return f"[providers.{name}] allow_insecure_http must be true or false", None
    return None


def providers_problem(data: Mapping[str, Any], path: str | None = None) -> str | None:
    """`providers_issue` as one sentence naming the file; None when nothing is wrong."""
    issue = providers_issue(data)
    if issue is None:
        return None
    problem, fix = issue
    return f"{path or CONFIG_FILE}: {problem}" + (f"; {fix}" if fix else "")


def config_hint(problem: str) -> str:
    """The help line for a `bmad.toml` the providers can't use (BMAD-E400)."""
    if " holds a key" in problem:
        return KEY_IN_FILE_HINT
    return "fix bmad.toml where the message points (see docs/providers.md)"


def key_line(path: str | None) -> int:
    """The line of the file's first `api_key =` (1 when there is none, or it can't be read): where
    a BMAD-E400 about a key in the file points. Only the line number is taken from the file."""
    try:
        text = Path(path or config_path()).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 1
    for number, line in enumerate(text.splitlines(), start=1):
        if re.search(r"""(?:^|[\s.{,])["']?api_key["']?\s*=""", line):
            return number
    return 1
