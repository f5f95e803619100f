"""Parse .bmad text into a Lark tree, turning every syntax error into a Diagnostic.

The Lark parser is built once (LALR, contextual lexer, positions). Parsing never raises: bad bytes,
unexpected tokens, unterminated strings and runaway nesting all become diagnostics, and the parser
recovers past an unexpected token (Lark's `on_error`) so that one run reports several errors and
still hands a partial tree to lowering and the language server. Comments are collected through a
lexer callback so that the formatter can put them back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from bmad.compiler.diagnostics import Diagnostic, error
from bmad.compiler.ir import Span
from bmad.compiler.source_map import SourceMap

MAX_NESTING = 64  # brackets of any kind; deeper input is refused before it can exhaust the stack
MAX_ERRORS = 20  # after this many syntax errors in one file the rest is noise
MAX_SOURCE_CHARS = 16_000_000

_OPENERS = {"LBRACE": "RBRACE", "LSQB": "RSQB", "LPAR": "RPAR"}
_CLOSERS = set(_OPENERS.values())


@dataclass(frozen=True, slots=True)
class Comment:
    """A `# ...` comment (text includes the `#`), kept for the formatter."""

    text: str
    span: Span


@dataclass
class ParseResult:
    """The tree (None when nothing usable could be parsed), the diagnostics, and the comments."""

    tree: Tree | None
    diagnostics: list[Diagnostic]
    comments: list[Comment]
    text: str
    source_map: SourceMap
    complete: bool = True  # False when errors were recovered from (the tree is partial)


class _NestingTooDeep(Exception):
    def __init__(self, token: Token):
        self.token = token


@dataclass
class _Session:
    """Per-parse state the lexer callbacks write into (the parser itself is shared)."""

    comments: list[Token] = field(default_factory=list)
    depth: int = 0


_local = threading.local()


def _on_comment(token: Token) -> Token:
    session = getattr(_local, "session", None)
    if session is not None:
        session.comments.append(token)
    return token


def _on_open(token: Token) -> Token:
    session = getattr(_local, "session", None)
    if session is not None:
        session.depth += 1
        if session.depth > MAX_NESTING:
            raise _NestingTooDeep(token)
    return token


def _on_close(token: Token) -> Token:
    session = getattr(_local, "session", None)
    if session is not None and session.depth > 0:
        session.depth -= 1
    return token


def grammar_text() -> str:
    return resources.files("bmad.grammar").joinpath("bmad.lark").read_text(encoding="utf-8")


@cache
def build_parser() -> Lark:
    """The one Lark parser for .bmad (built on first use, then shared)."""
    callbacks = {"COMMENT": _on_comment}
    callbacks.update({name: _on_open for name in _OPENERS})
    callbacks.update({name: _on_close for name in _CLOSERS})
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks=callbacks,
    )


def decode_source(data: str | bytes) -> str:
    """Text from bytes (invalid UTF-8 replaced, a BOM dropped); line endings normalised to `\\n`."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, (bytes, bytearray)) else data
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def parse_text(data: str | bytes, path: str = "<input>") -> ParseResult:
    """Parse one file's text. Never raises."""
    from bmad.compiler import syntax_errors  # its example table needs the parser built here

    text = decode_source(data)
    source_map = SourceMap(path, text)
    if len(text) > MAX_SOURCE_CHARS:
        diag = error("BMAD-E008", source_map.span(0, 0),
                     f"the file is too large to compile ({len(text):,} characters)",
                     f"split it into files of at most {MAX_SOURCE_CHARS:,} characters and `import` them")
        return ParseResult(None, [diag], [], text, source_map, complete=False)

    parser = build_parser()
    diagnostics: list[Diagnostic] = []
    reported_lines: set[int] = set()

    skipped_openers = [0]
    last_error_state: list = [None]

    def on_error(e: UnexpectedInput) -> bool:
        if len(diagnostics) >= MAX_ERRORS:
            return False
        state = getattr(e, "state", None)
        state = getattr(state, "position", state)  # Lark hands the live parser state: keep its number
        # the same parser state failing again is the same mistake continuing: report it once
        if state is None or state != last_error_state[0]:
            diag = syntax_errors.describe(e, text, source_map)
            if diag.span.line not in reported_lines:  # one report per line
                reported_lines.add(diag.span.line)
                diagnostics.append(diag)
        last_error_state[0] = state
        recovered = syntax_errors.recover(e, text, skipped_openers)
        # closers we inserted never pass the lexer: keep the nesting count honest
        session.depth = max(0, session.depth - getattr(e, "_bmad_fed_closers", 0))
        return recovered

    session = _Session()
    previous = getattr(_local, "session", None)
    _local.session = session
    tree: Tree | None = None
    try:
        tree = parser.parse(text, on_error=on_error)
    except _NestingTooDeep as nested:
        diagnostics.append(error(
            "BMAD-E007", source_map.token_span(nested.token),
            f"brackets are nested more than {MAX_NESTING} deep",
            "flatten the structure; deeply nested JSON Schemas can usually be split"))
    except UnexpectedInput as e:
        state = getattr(e, "state", None)
        if len(diagnostics) < MAX_ERRORS and getattr(state, "position", state) != last_error_state[0]:
            diag = syntax_errors.describe(e, text, source_map)
            if diag.span.line not in reported_lines:
                diagnostics.append(diag)
        if not diagnostics:
            diagnostics.append(syntax_errors.describe(e, text, source_map))
    except RecursionError:
        diagnostics.append(error("BMAD-E007", source_map.span(0, 0),
                                 "the file is nested too deeply to parse",
                                 "flatten the structure"))
    finally:
        _local.session = previous

    comments = [Comment(str(t), source_map.token_span(t)) for t in session.comments]
    return ParseResult(tree, diagnostics, comments, text, source_map, complete=not diagnostics)


def parse_comments(data: str | bytes, path: str = "<input>") -> list[Comment]:
    """The comments of a file, in order (for the formatter)."""
    return parse_text(data, path).comments
