"""String literals: decoding escapes, dedenting `\"\"\"` blocks, and finding `{{ ref }}` templates.

Every decoded character remembers the source offset it came from, so an interpolation's span
points at the exact braces in the file even after escapes and dedenting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "'": "'", "{": "{", "}": "}",
            "0": "\0", "/": "/"}
_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True, slots=True)
class StringProblem:
    start: int  # source offsets
    end: int
    message: str
    hint: str


@dataclass
class DecodedString:
    text: str
    offsets: list[int]  # source offset of each character of `text`, plus one for the end
    escaped: set[int] = field(default_factory=set)  # indices of characters written as escapes
    problems: list[StringProblem] = field(default_factory=list)


def common_margin(indents: Iterable[str]) -> str:
    """The longest leading whitespace every one of `indents` starts with (textwrap.dedent's margin:
    a tab and a space never match); "" when there are none."""
    margin: str | None = None
    for indent in indents:
        if margin is None:
            margin = indent
            continue
        common = 0
        while common < min(len(margin), len(indent)) and margin[common] == indent[common]:
            common += 1
        margin = margin[:common]
    return margin or ""


def _leading_blanks(line: list[tuple[str, int]]) -> str:
    indent = ""
    for c, _ in line:
        if c not in " \t":
            break
        indent += c
    return indent


def _dedent(chars: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """textwrap.dedent over (char, offset) pairs, dropping a blank first and last line."""
    lines: list[list[tuple[str, int]]] = [[]]
    for pair in chars:
        if pair[0] == "\n":
            lines[-1].append(pair)
            lines.append([])
        else:
            lines[-1].append(pair)

    def blank(line: list[tuple[str, int]]) -> bool:
        return all(c in " \t\n" for c, _ in line)

    if len(lines) > 1 and blank(lines[0]):
        lines = lines[1:]
    if len(lines) > 1 and blank(lines[-1]):
        lines = lines[:-1]
        if lines and lines[-1] and lines[-1][-1][0] == "\n":
            lines[-1] = lines[-1][:-1]  # the newline before the dropped closing line
    width = len(common_margin(_leading_blanks(line) for line in lines if not blank(line)))
    out: list[tuple[str, int]] = []
    for line in lines:
        if blank(line):  # like textwrap: whitespace-only lines become empty
            out.extend(p for p in line if p[0] == "\n")
        else:
            out.extend(line[width:])
    return out


def decode(raw_token: str, start: int) -> DecodedString:
    """Decode a STRING or LONG_STRING token that begins at source offset `start`."""
    if raw_token.startswith('"""') and len(raw_token) >= 6:
        body = raw_token[3:-3]
        pairs = _dedent([(c, start + 3 + i) for i, c in enumerate(body)])
        end_offset = start + len(raw_token) - 3
    else:
        body = raw_token[1:-1] if len(raw_token) >= 2 else ""
        if "\\" not in body:  # the common case: every character is itself
            return DecodedString(body, list(range(start + 1, start + 2 + len(body))))
        pairs = [(c, start + 1 + i) for i, c in enumerate(body)]
        end_offset = start + len(raw_token) - 1
    text: list[str] = []
    offsets: list[int] = []
    escaped: set[int] = set()
    problems: list[StringProblem] = []
    i = 0
    while i < len(pairs):
        c, offset = pairs[i]
        if c != "\\" or i + 1 >= len(pairs):
            text.append(c)
            offsets.append(offset)
            i += 1
            continue
        nxt = pairs[i + 1][0]
        if nxt in _ESCAPES:
            escaped.add(len(text))
            text.append(_ESCAPES[nxt])
            offsets.append(offset)
            i += 2
        elif nxt == "u" and i + 5 < len(pairs) + 0 and re.fullmatch(r"[0-9a-fA-F]{4}", "".join(p[0] for p in pairs[i + 2:i + 6])):
            escaped.add(len(text))
            text.append(chr(int("".join(p[0] for p in pairs[i + 2:i + 6]), 16)))
            offsets.append(offset)
            i += 6
        elif nxt == "\n":  # a backslash at the end of a line joins the lines
            i += 2
        else:
            problems.append(StringProblem(offset, pairs[i + 1][1] + 1, f"`\\{nxt}` is not an escape",
                                          'use \\n, \\t, \\", \\\\, \\{, \\} or \\uXXXX; write `\\\\` for a backslash'))
            text.append(nxt)
            offsets.append(offset)
            i += 2
    offsets.append(end_offset if not pairs else max(end_offset, offsets[-1] + 1 if offsets else end_offset))
    return DecodedString("".join(text), offsets, escaped, problems)


@dataclass(frozen=True, slots=True)
class TemplatePiece:
    """Either literal text, or a reference with the source offsets of its braces and its name."""

    text: str | None = None
    ref: tuple[str, ...] | None = None
    start: int = 0  # `{{` in the source
    end: int = 0  # after `}}`
    ref_start: int = 0
    ref_end: int = 0


def split_template(decoded: DecodedString) -> tuple[list[TemplatePiece], list[StringProblem]]:
    """Split decoded text into literal text and `{{ ref }}` pieces (escaped braces are literal)."""
    text = decoded.text
    offsets = decoded.offsets
    pieces: list[TemplatePiece] = []
    problems: list[StringProblem] = []
    literal: list[str] = []
    i = 0

    def is_brace_pair(at: int, char: str) -> bool:
        return (text.startswith(char * 2, at) and at not in decoded.escaped
                and at + 1 not in decoded.escaped)

    if "{{" not in text:
        return ([TemplatePiece(text=text)] if text else []), problems
    while i < len(text):
        if not text.startswith("{{", i):
            nxt = text.find("{{", i + 1)
            nxt = len(text) if nxt == -1 else nxt
            literal.append(text[i:nxt])
            i = nxt
            continue
        if is_brace_pair(i, "{"):
            close = text.find("}}", i + 2)
            while close != -1 and not is_brace_pair(close, "}"):
                close = text.find("}}", close + 1)
            if close == -1:
                close = len(text)
            if close >= len(text):
                problems.append(StringProblem(offsets[i], offsets[i] + 2, "`{{` is never closed with `}}`",
                                              "write `{{ name }}`, or `\\{\\{` for literal braces"))
                literal.append(text[i:])
                break
            inner = text[i + 2:close]
            name = inner.strip()
            if not _REF.fullmatch(name):
                shown = inner if len(inner) <= 30 else inner[:27] + "..."
                problems.append(StringProblem(
                    offsets[i], offsets[close + 1] + 1,
                    f"`{{{{{shown}}}}}` is not a reference" if name else "`{{ }}` is empty",
                    "interpolate an input, a loop variable or a task: `{{ name }}` or `{{ task.field }}`"))
                literal.append(text[i:close + 2])
                i = close + 2
                continue
            if literal:
                pieces.append(TemplatePiece(text="".join(literal)))
                literal = []
            lead = len(inner) - len(inner.lstrip())
            name_start = i + 2 + lead
            pieces.append(TemplatePiece(
                ref=tuple(name.split(".")), start=offsets[i], end=offsets[close + 1] + 1,
                ref_start=offsets[name_start], ref_end=offsets[name_start + len(name) - 1] + 1))
            i = close + 2
        else:
            literal.append(text[i])
            i += 1
    if literal:
        pieces.append(TemplatePiece(text="".join(literal)))
    return pieces, problems
