"""Parse .bmad text into a Lark tree, turning every syntax error into a Diagnostic.

The Lark parser is built once (LALR, contextual lexer, positions). Parsing never raises: bad bytes,
unexpected tokens, unterminated strings and runaway nesting all become diagnostics, and the parser
recovers past an unexpected token (Lark's `on_error`) so that one run reports several errors and
still hands a partial tree to lowering and the language server. Comments are collected through a
lexer callback so that the formatter can put them back.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from lark import Lark, Token, Tree
from lark.tree import Meta
from lark.exceptions import UnexpectedInput
from lark.parse_tree_builder import PropagatePositions

from bmad.compiler.diagnostics import Diagnostic, error, warning
from bmad.compiler.gc_pause import collection_paused
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
    max_depth: int = MAX_NESTING  # `nesting_depth` from compiler/limits.py


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
        if session.depth > session.max_depth:
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
    grammar = grammar_text()
    parser = Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks=callbacks,
        cache=grammar_cache_file(grammar),
    )
    _use_direct_positions(parser)
    return parser


def grammar_cache_file(grammar: str) -> str | bool:
    """Where Lark keeps its analysis of the grammar between runs (building the LALR tables is
    ~0.1 s of CPU at the start of every `bmad` command; loading them, ~0.015 s): a file named
    after the grammar's digest in `$BMAD_CACHE_DIR`, else `$XDG_CACHE_HOME/bmad`, else
    `~/.cache/bmad`. Lark checks the file's own digest of the grammar, its options and its
    version before using it, and rebuilds it otherwise. False (no cache) when `BMAD_CACHE_DIR`
    is set empty or the directory cannot be made."""
    configured = os.environ.get("BMAD_CACHE_DIR")
    if configured is not None:
        folder = configured
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "bmad")
    if not folder:
        return False
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return False
    if not os.access(folder, os.W_OK | os.R_OK):
        return False
    digest = hashlib.sha256(grammar.encode("utf-8")).hexdigest()[:16]
    return os.path.join(folder, f"grammar-{digest}.lark-cache")


class _DirectPositions(PropagatePositions):
    """Lark's position propagation with the same results, reading a token's or a child's position
    directly instead of through `getattr` fallbacks (it was a third of the parse on big files).

    A node starts where its first positioned child starts and ends where its last one ends; for a
    child tree that is its container's extent (the `container_*` fields Lark keeps for inlined
    rules), which every positioned tree built here has.
    """

    def __call__(self, children):
        res = self.node_builder(children)
        if not isinstance(res, Tree):
            return res
        first = last = None
        for c in children:
            if isinstance(c, Token):
                first = c
                break
            if isinstance(c, Tree) and c._meta is not None and not c._meta.empty:
                first = c._meta
                break
        if first is None:
            return res
        for c in reversed(children):
            if isinstance(c, Token):
                last = c
                break
            if isinstance(c, Tree) and c._meta is not None and not c._meta.empty:
                last = c._meta
                break
        if isinstance(first, Token):
            line, column, start = first.line, first.column, first.start_pos
        else:
            line, column, start = first.container_line, first.container_column, first.container_start_pos
        if isinstance(last, Token):
            end_line, end_column, end = last.end_line, last.end_column, last.end_pos
        else:
            end_line, end_column, end = last.container_end_line, last.container_end_column, last.container_end_pos
        meta = res._meta
        if meta is None or meta.empty:  # a new node: one dict for all its fields
            meta = res._meta = Meta.__new__(Meta)
            meta.__dict__ = {
                "empty": False, "line": line, "column": column, "start_pos": start,
                "end_line": end_line, "end_column": end_column, "end_pos": end,
                "container_line": line, "container_column": column, "container_start_pos": start,
                "container_end_line": end_line, "container_end_column": end_column, "container_end_pos": end}
        else:  # an inlined rule (`?rule`) handed up its child, which keeps its own extent
            meta.container_line, meta.container_column, meta.container_start_pos = line, column, start
            meta.container_end_line, meta.container_end_column, meta.container_end_pos = end_line, end_column, end
        return res


def _use_direct_positions(parser: Lark) -> None:
    """Swap Lark's position wrappers on the rule callbacks for `_DirectPositions` (left as they are
    if this Lark version lays its parser out differently)."""
    callbacks = getattr(getattr(getattr(parser.parser, "parser", None), "parser", None), "callbacks", None)
    if not isinstance(callbacks, dict):
        return
    for rule, callback in callbacks.items():
        if type(callback) is PropagatePositions and callback.node_filter is None:
            callbacks[rule] = _DirectPositions(callback.node_builder)


def decode_source(data: str | bytes) -> str:
    """Text from bytes (invalid UTF-8 replaced, a BOM dropped); line endings normalised to `\\n`."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, (bytes, bytearray)) else data
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def encoding_diagnostics(data: str | bytes, path: str) -> list[Diagnostic]:
    """BMAD-W050 when a file's bytes are not valid UTF-8 (they were read as U+FFFD), at the first
    invalid byte's line and column in the decoded text (characters, not bytes; after a BOM)."""
    if not isinstance(data, (bytes, bytearray)):
        return []
    try:
        bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        text = decode_source(data)
        offset = len(decode_source(bytes(data[:e.start])))  # where the byte is in the decoded text
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        span = Span(path, line, column, line, column + 1, offset, offset + 1)
        return [warning("BMAD-W050", span, "this file is not valid UTF-8",
                        "invalid bytes were read as U+FFFD; save the file as UTF-8")]
    return []


@collection_paused()
def parse_text(data: str | bytes, path: str = "<input>") -> ParseResult:
    """Parse one file's text. Never raises."""
    from bmad.compiler import syntax_errors  # its example table needs the parser built here

    from bmad.compiler.limits import current_limits

    limits = current_limits()
    text = decode_source(data)
    source_map = SourceMap(path, text)
    max_chars = min(MAX_SOURCE_CHARS, limits.source_chars)
    if len(text) > max_chars:
        diag = error("BMAD-E008", source_map.span(0, 0),
                     f"the file is too large to compile ({len(text):,} characters)",
                     f"split it into files of at most {max_chars:,} characters and `import` them"
                     " (or raise `source_chars` in bmad.toml's [limits])")
        return ParseResult(None, [diag], [], text, source_map, complete=False)

    parser = build_parser()
    diagnostics: list[Diagnostic] = []
    reported_lines: set[int] = set()

    skipped_openers = [0]
    last_error_state: list = [None]

    def on_error(e: UnexpectedInput) -> bool:
        if len(diagnostics) >= MAX_ERRORS:
            return False
        state = syntax_errors.error_state(e, text)  # the parser state's number, where the mistake is
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

    session = _Session(max_depth=limits.nesting_depth)
    previous = getattr(_local, "session", None)
    _local.session = session
    tree: Tree | None = None
    try:
        tree = parser.parse(text, on_error=on_error)
    except _NestingTooDeep as nested:
        diagnostics.append(error(
            "BMAD-E007", source_map.token_span(nested.token),
            f"brackets are nested more than {session.max_depth} deep",
            "flatten the structure; deeply nested JSON Schemas can usually be split "
            "(the limit is `nesting_depth` in bmad.toml's [limits])"))
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
