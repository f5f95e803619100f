"""Position conversion: the only place that turns bmad spans and offsets into LSP ranges and back.

bmad spans (`compiler/ir.py` `Span`) are 1-based line/column (end exclusive) counted in code points,
with 0-based code-point offsets. LSP positions are 0-based lines and columns counted in the
negotiated encoding's code units (UTF-16 unless the client chose otherwise). A `LineIndex` holds the
line starts of one text so that every conversion is a bisect, not a scan (10,000-line files).

Lines end where the LSP spec and the compiler end them: at `\\n`, `\\r\\n` and `\\r`, nowhere else.
`str.splitlines()` also ends them at U+2028, U+2029, U+0085, form feed, vertical tab and U+001C-001E,
so it must never count lines of a document (`split_lines` is the spec's version).
"""

from __future__ import annotations

import re
from bisect import bisect_right

from lsprotocol import types

from bmad.compiler.ir import Span

UTF16 = types.PositionEncodingKind.Utf16
UTF32 = types.PositionEncodingKind.Utf32
UTF8 = types.PositionEncodingKind.Utf8


def _units(text: str, encoding: str) -> int:
    """How many code units `text` takes in the client's encoding."""
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8"))
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


LINE_END = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """`text`'s lines, each with its line end (`str.splitlines(keepends=True)` with the LSP's line
    ends only)."""
    lines = []
    start = 0
    for m in LINE_END.finditer(text):
        lines.append(text[start:m.end()])
        start = m.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def line_end_of(text: str) -> str:
    """The line end `text` uses (its first one), `\\n` when it has none."""
    m = LINE_END.search(text)
    return m.group() if m else "\n"


def line_start(text: str, pos: int) -> int:
    """The offset where the line holding `pos` starts."""
    return max(text.rfind("\n", 0, pos), text.rfind("\r", 0, pos)) + 1


def next_line_start(text: str, pos: int) -> int | None:
    """The offset just past the first line end at or after `pos`; None on the last line."""
    m = LINE_END.search(text, pos)
    return m.end() if m else None


class LineIndex:
    """Offsets <-> LSP positions for one text."""

    def __init__(self, text: str, encoding: str = UTF16) -> None:
        self.text = text
        self.encoding = encoding
        if "\r" in text:
            self.line_starts = [0] + [m.end() for m in LINE_END.finditer(text)]
            return
        starts = [0]
        find = text.find
        i = find("\n")
        while i != -1:
            starts.append(i + 1)
            i = find("\n", i + 1)
        self.line_starts = starts

    @property
    def line_count(self) -> int:
        return len(self.line_starts)

    def line_text(self, line: int) -> str:
        """The text of 0-based `line`, without its line end."""
        if not 0 <= line < len(self.line_starts):
            return ""
        start = self.line_starts[line]
        if line + 1 == len(self.line_starts):
            return self.text[start:]
        end = self.line_starts[line + 1]
        return self.text[start:end - 2 if self.text.startswith("\r\n", end - 2) else end - 1]

    def position(self, offset: int) -> types.Position:
        """A 0-based code-point offset -> an LSP position (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self.line_starts, offset) - 1
        start = self.line_starts[line]
        return types.Position(line=line, character=_units(self.text[start:offset], self.encoding))

    def offset(self, position: types.Position) -> int:
        """An LSP position -> a 0-based code-point offset (clamped to its line)."""
        if position.line < 0:
            return 0
        if position.line >= len(self.line_starts):
            return len(self.text)
        start = self.line_starts[position.line]
        line = self.line_text(position.line)
        if self.encoding == UTF32 or line.isascii():
            return start + max(0, min(position.character, len(line)))
        units = 0
        for i, ch in enumerate(line):
            if units >= position.character:
                return start + i
            units += _units(ch, self.encoding)
        return start + len(line)

    def range(self, start: int, end: int) -> types.Range:
        """Offsets [start, end) -> an LSP range."""
        return types.Range(start=self.position(start), end=self.position(max(start, end)))

    def line_block(self, first: int, last: int) -> types.Range:
        """1-based inclusive lines `first..last` (whole lines, with their newlines) -> an LSP range."""
        start = self.line_starts[max(0, min(first - 1, len(self.line_starts) - 1))]
        end = self.line_starts[last] if last < len(self.line_starts) else len(self.text)
        return self.range(start, end)

    def line_length(self, line: int) -> int:
        """The length of 0-based `line` in the client's code units."""
        return _units(self.line_text(line), self.encoding)

    def span_range(self, span: Span) -> types.Range:
        """A bmad span in this text -> an LSP range.

        Lines and columns are authoritative (offsets may be 0 for spans built by hand); columns are
        code points, so they go through the line text to reach the client's code units.
        """
        return types.Range(start=self._line_col(span.line, span.column),
                           end=self._line_col(span.end_line, span.end_column))

    def _line_col(self, line: int, column: int) -> types.Position:
        line0 = max(0, line - 1)
        if line0 >= len(self.line_starts):
            return self.position(len(self.text))
        text = self.line_text(line0)
        col0 = max(0, min(column - 1, len(text)))
        return types.Position(line=line0, character=_units(text[:col0], self.encoding))


def span_to_range(span: Span, text: str | None = None, encoding: str = UTF16) -> types.Range:
    """A span -> an LSP range; without the text, columns are taken as code units (ASCII lines)."""
    if text is not None:
        return LineIndex(text, encoding).span_range(span)
    return types.Range(
        start=types.Position(line=max(0, span.line - 1), character=max(0, span.column - 1)),
        end=types.Position(line=max(0, span.end_line - 1), character=max(0, span.end_column - 1)),
    )


def is_unknown(span: Span) -> bool:
    """A placeholder span (`Span.unknown()`): nothing in the source to point at."""
    return span.line == span.column == span.end_line == span.end_column == 1 and span.end == 0
