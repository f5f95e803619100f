"""Reads `bmad.toml`, the one settings file: found once, parsed once per change, shared by all.

The file is `$BMAD_CONFIG` when set, else `./bmad.toml` when present. The providers read their
`[providers.*]` tables from it (`runtime/providers/keys.py`), the compiler and runtime their
`[limits]` (`compiler/limits.py`), the journal its `[journal]` retention. This module only finds and
parses the file; each reader validates its own tables. Parsed once per (path, mtime, size), so a
long-lived process (the language server) sees edits without re-reading on every compile.
"""

from __future__ import annotations

import os
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

CONFIG_FILE = "bmad.toml"
CONFIG_ENV = "BMAD_CONFIG"


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
