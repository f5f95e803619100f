"""Providers: a replay provider needs its recorded `data`, and a `base_url` must be an http(s) URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, error


def check_providers(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for provider in index.program.providers:
        span = provider.name_span
        if provider.kind == "replay" and not provider.data:
            out.append(error(
                "BMAD-E161", span,
                f"replay provider `{provider.name}` has no `data` to replay",
                'add `data "recorded.jsonl"` (a CSV or JSONL file of recorded responses)',
            ))
        if provider.base_url is not None:
            try:
                parts = urlsplit(provider.base_url)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            except ValueError:
                ok = False
            if not ok:
                out.append(error(
                    "BMAD-E162", span,
                    f"provider `{provider.name}` has base_url \"{provider.base_url}\", which is not an http(s) URL",
                    'write the full address, e.g. `base_url "http://127.0.0.1:8080/v1"`',
                ))
    return out
