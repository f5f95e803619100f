"""Spans from character offsets, Lark tokens and Lark metas, for one source file."""

from __future__ import annotations

from bisect import bisect_right

from lark import Token

from bmad.compiler.ir import Span

# A file with one of these names is a seed-format YAML workflow; any other is `.bmad` source.
YAML_SUFFIXES = (".yaml", ".yml")


class SourceMap:
    """Turns 0-based offsets into 1-based line/column spans (end exclusive) of one file."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self._line_starts: list[int] | None = None

    @property
    def line_starts(self) -> list[int]:
        if self._line_starts is None:  # built lazily: most files never need an offset lookup
            starts = [0]
            find = self.text.find
            i = find("\n")
            while i != -1:
                starts.append(i + 1)
                i = find("\n", i + 1)
            self._line_starts = starts
        return self._line_starts

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def span(self, start: int, end: int) -> Span:
        line, column = self.position(start)
        end_line, end_column = self.position(max(start, end))
        return Span(self.path, line, column, end_line, end_column, start, max(start, end))

    def end_span(self) -> Span:
        """A zero-width span at the end of the file (where an unexpected end of file is reported)."""
        return self.span(len(self.text), len(self.text))

    def token_span(self, token: Token) -> Span:
        if token.line is None or token.start_pos is None:
            return self.end_span()
        return Span(self.path, token.line, token.column, token.end_line or token.line,
                    token.end_column or token.column, token.start_pos,
                    token.end_pos if token.end_pos is not None else token.start_pos)

    def meta_span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.path, 1, 1, 1, 1, 0, 0)
        return Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column,
                    meta.start_pos, meta.end_pos)
