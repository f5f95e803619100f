"""Diagnostics: the data model, collection, and rendering as text (rustc/Elm style) or JSON.

Every problem bmad reports about a user's files is a `Diagnostic` with a stable code
(`BMAD-E...` errors, `BMAD-W...` warnings, documented in docs/diagnostics.md), a span, a message in
plain words, a hint, and related spans. Nothing in the compiler raises on bad input: it reports.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Iterable, Literal

from bmad.compiler.credentials import mask_url_credentials
from bmad.compiler.ir import Span
from bmad.compiler.source_map import YAML_SUFFIXES
from bmad.compiler.terminal_text import terminal_safe

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, slots=True)
class Related:
    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: Severity
    span: Span
    message: str
    hint: str | None = None
    related: tuple[Related, ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def as_json(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "related": [
                {"message": r.message, "file": r.span.file, "line": r.span.line, "column": r.span.column}
                for r in self.related
            ],
        }


def error(code: str, span: Span, message: str, hint: str | None = None,
          related: Iterable[Related] = ()) -> Diagnostic:
    return Diagnostic(code, "error", span, message, hint, tuple(related))


def warning(code: str, span: Span, message: str, hint: str | None = None,
            related: Iterable[Related] = ()) -> Diagnostic:
    return Diagnostic(code, "warning", span, message, hint, tuple(related))


@dataclass
class DiagnosticBag:
    """Collects diagnostics across stages; de-duplicates identical reports."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        if diagnostic not in self.items:
            self.items.append(diagnostic)

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        for d in diagnostics:
            self.add(d)

    def error(self, code: str, span: Span, message: str, hint: str | None = None,
              related: Iterable[Related] = ()) -> None:
        self.add(error(code, span, message, hint, related))

    def warning(self, code: str, span: Span, message: str, hint: str | None = None,
                related: Iterable[Related] = ()) -> None:
        self.add(warning(code, span, message, hint, related))

    def sorted(self) -> list[Diagnostic]:
        return sort_diagnostics(self.items)


def sort_diagnostics(items: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(items, key=lambda d: (d.span.file, d.span.line, d.span.column, d.code, d.message))


# ----------------------------------------------------------------------------------------------
# Rendering


# Line breaks as the front ends count lines: `\n` for .bmad files (their text is normalised), and
# also NEL and the Unicode line/paragraph separators for YAML, whose reader breaks lines there too.
_YAML_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _source_lines(sources: dict[str, str], file: str) -> list[str] | None:
    text = sources.get(file)
    if text is None:
        return None
    if file.endswith(YAML_SUFFIXES):
        lines = _YAML_BREAKS.split(text)
    else:
        lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the empty text after a final newline is no line
    return lines


def _source_line(sources: dict[str, str], span: Span, line: int) -> str | None:
    lines = _source_lines(sources, span.file)
    if lines is None:
        return None
    if 1 <= line <= len(lines):
        return lines[line - 1].expandtabs(4) if "\t" in lines[line - 1] else lines[line - 1]
    if line == len(lines) + 1 and sources[span.file].endswith("\n"):
        return ""  # the end of a file after its final newline: an empty last line
    return None


def render_text(diagnostic: Diagnostic, sources: dict[str, str], *, color: bool = False) -> str:
    """`file:line:col: error[BMAD-E012]: message`, the source line, a caret under the span, the hint.

    Text from the user's files (the quoted line, and names in messages) is shown terminal-safe:
    control characters such as ESC and BEL appear as `\x1b`-style escapes, and the caret moves with
    them."""
    d = diagnostic
    s = d.span
    sev = d.severity
    file, message = terminal_safe(s.file), terminal_safe(d.message)
    if color:
        tint = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "info": "\x1b[1;36m"}[sev]
        head = f"\x1b[1m{file}:{s.line}:{s.column}:\x1b[0m {tint}{sev}[{d.code}]\x1b[0m\x1b[1m: {message}\x1b[0m"
    else:
        head = f"{file}:{s.line}:{s.column}: {sev}[{d.code}]: {message}"
    out = [head]
    src = _source_line(sources, s, s.line)
    if src is not None:
        gutter = str(s.line)
        pad = " " * len(gutter)
        column, end_column = s.column, s.end_column
        lines = _source_lines(sources, s.file) or []
        raw = lines[s.line - 1] if s.line <= len(lines) else ""
        if "\t" in raw:  # the line is shown with its tabs expanded: move the caret with it
            column = len(raw[:s.column - 1].expandtabs(4)) + 1
            end_column = len(raw[:max(s.end_column, s.column) - 1].expandtabs(4)) + 1
        width = (end_column - column) if s.end_line == s.line else len(src) - column + 1
        width = max(1, min(width, max(1, len(src) - column + 1)))
        # a URL password or key in the line is shown as `*`s of its length (BMAD-E163)
        shown = mask_url_credentials(src, keep_length=True)
        # control characters become visible escapes; measure the caret on the escaped text
        start = max(0, min(column - 1, len(shown)))
        before = terminal_safe(shown[:start])
        under = terminal_safe(shown[start:start + width])
        column, width = len(before) + 1, max(1, len(under))
        out.append(f"{pad} |")
        out.append(f"{gutter} | {terminal_safe(shown)}")
        out.append(f"{pad} | {' ' * (column - 1)}{'^' * width}")
    for r in d.related:
        out.append(f"  = note: {terminal_safe(r.span.file)}:{r.span.line}:{r.span.column}: "
                   f"{terminal_safe(r.message)}")
    if d.hint:
        out.append(f"  = help: {terminal_safe(d.hint)}")
    return "\n".join(out)


def render_all_text(diagnostics: Iterable[Diagnostic], sources: dict[str, str], *,
                    color: bool = False) -> str:
    items = list(diagnostics)
    parts = [render_text(d, sources, color=color) for d in items]
    errors = sum(1 for d in items if d.is_error)
    warnings = sum(1 for d in items if d.severity == "warning")
    if items:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}, "
                     f"{warnings} warning{'s' if warnings != 1 else ''}")
    return "\n\n".join(parts)


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([d.as_json() for d in diagnostics], indent=2, sort_keys=True)
