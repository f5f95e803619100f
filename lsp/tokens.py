"""A tolerant tokenizer for .bmad text: never fails, whatever the editor holds mid-keystroke.

The compiler's Lark parser stops at the first syntax error; the language server still needs to know
where the names, strings, `{{ }}` interpolations and braces are in a half-typed document (for
completion, symbols, navigation and semantic tokens). This scanner classifies every character run
into a token and keeps going: an unterminated string ends at the line end, an unknown character
becomes an `error` token. Lines end at `\\n`, `\\r\\n` and `\\r`, as in the compiler and the LSP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Model names may contain `-` and `.` (`gpt-4o-mini`, `gemini-2.5-flash`); dotted refs
# (`risks.score`, `std.code_review`) come out as one name and are split by whoever needs the parts.
NAME_RE = r"[A-Za-z_][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*"
_TOKEN_RE = re.compile(
    r"""
    (?P<newline>\r\n|\r|\n)
  | (?P<space>[ \t\f\v]+)
  | (?P<comment>\#[^\r\n]*)
  | (?P<block_string>\"\"\"(?:[^"\\]|\\.|"(?!""))*(?:\"\"\"|\Z))
  | (?P<string>"(?:[^"\\\r\n]|\\.)*(?:"|(?=[\r\n])|\Z))
  | (?P<number>\$?[0-9]+(?:\.[0-9]+)?[A-Za-z]*|\$[A-Za-z0-9_.]*)
  | (?P<name>""" + NAME_RE + r""")
  | (?P<op>>=|<=|==|!=|[{}\[\]().,:=<>!+\-*/;|])
  | (?P<error>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_INTERPOLATION_RE = re.compile(r"\{\{(?P<inner>(?:(?!\}\}|\{\{).)*)(?P<close>\}\})?", re.DOTALL)


@dataclass(slots=True)
class Interpolation:
    """`{{ ref }}` inside a string: offsets of the braces and of the reference text."""

    start: int  # the first `{`
    end: int  # after the closing `}}`, or the end of the string when unclosed
    inner_start: int
    inner_end: int
    closed: bool
    ref: str  # the stripped inner text
    ref_start: int


@dataclass(slots=True)
class Token:
    kind: str  # newline name number string block_string comment op error
    text: str
    start: int
    end: int
    line_start: bool = False  # first significant token on its line
    interpolations: list[Interpolation] = field(default_factory=list)

    @property
    def is_string(self) -> bool:
        return self.kind in ("string", "block_string")

    @property
    def closed(self) -> bool:
        """A string token that has its closing quote(s)."""
        if self.kind == "block_string":
            return len(self.text) >= 6 and self.text.endswith('"""')
        if self.kind == "string":
            return len(self.text) >= 2 and self.text.endswith('"') and not self.text.endswith('\\"')
        return True


def tokenize(text: str, *, keep_comments: bool = True) -> list[Token]:
    """Every significant token of `text` (spaces and newlines dropped, `line_start` marks lines)."""
    out: list[Token] = []
    at_line_start = True
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup or "error"
        if kind == "space":
            continue
        if kind == "newline":
            at_line_start = True
            continue
        tok = Token(kind, m.group(), m.start(), m.end(), at_line_start)
        if kind != "comment":
            at_line_start = False
        elif not keep_comments:
            continue
        if tok.is_string and "{{" in tok.text:
            tok.interpolations = _interpolations(tok)
        out.append(tok)
    return out


def _interpolations(tok: Token) -> list[Interpolation]:
    found = []
    for m in _INTERPOLATION_RE.finditer(tok.text):
        inner = m.group("inner")
        stripped = inner.strip()
        inner_start = tok.start + m.start("inner")
        ref_start = inner_start + (len(inner) - len(inner.lstrip()))
        found.append(Interpolation(
            start=tok.start + m.start(), end=tok.start + m.end(),
            inner_start=inner_start, inner_end=tok.start + m.end("inner"),
            closed=m.group("close") is not None, ref=stripped, ref_start=ref_start,
        ))
    return found


def token_at(tokens: list[Token], offset: int) -> int | None:
    """The index of the token containing `offset` (or ending right at it), by bisection."""
    lo, hi = 0, len(tokens)
    while lo < hi:
        mid = (lo + hi) // 2
        if tokens[mid].end < offset:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(tokens) and tokens[lo].start <= offset <= tokens[lo].end:
        return lo
    return None


def tokens_before(tokens: list[Token], offset: int) -> int:
    """How many tokens end at or before `offset`."""
    lo, hi = 0, len(tokens)
    while lo < hi:
        mid = (lo + hi) // 2
        if tokens[mid].end <= offset:
            lo = mid + 1
        else:
            hi = mid
    return lo
