"""Lower a .bmad file while it is parsed: Lark's LALR parser calls the lowering methods as it
reduces each rule, so no parse tree is built and walked a second time.

This is the front end `bmad check`, `plan` and `run` use for a file (`load.read_file`); it gives
the same IR and the same diagnostics as parsing to a tree (`parse.parse_text`) and lowering it
(`lower.lower_tree`), because it runs the same `Lowerer` methods, in the same order (bottom-up,
left to right), on the same children, with the same spans:

- a node spans from the first token to the last token under it (anonymous tokens such as `{`
  included, empty nodes skipped), as Lark's `propagate_positions` computes it, and an inlined
  `?rule` widens the extent its parent sees without changing its own span (Lark's container
  extent);
- children are filtered as Lark's tree builder filters them (anonymous tokens dropped, `_rules`
  spliced into their parent, `None` for an absent `[optional]`).

Whenever the tree path would do anything but lower a clean parse, this path gives up and the
caller takes the tree path: a syntax error (the tree path recovers and reports several), a file
over the size or nesting limits, a tree deeper than `MAX_STREAM_DEPTH` (the tree path's recursive
walk may run out of stack there and says so), or an internal error. The formatter and the
language server keep reading the tree (they need comments, partial trees and error recovery).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Callable

from lark import Token, Tree
from lark.parse_tree_builder import maybe_create_child_filter
from lark.parsers.lalr_parser import _Parser
from lark.tree import Meta

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic
from bmad.compiler.gc_pause import collection_paused
from bmad.compiler.lower import FileUnit, Lowerer
from bmad.compiler.source_map import SourceMap

# Far below the depth at which the tree path's recursive walk could fail, far above real files
# (a task is 4-6 levels deep; expressions stop at 32 with BMAD-E020).
MAX_STREAM_DEPTH = 150


class _Node:
    """A lowered rule on the parser's stack: its value and the tokens its text runs between."""

    __slots__ = ("value", "first", "last", "depth")

    def __init__(self, value: Any, first: Token | None, last: Token | None, depth: int):
        self.value = value
        self.first = first  # None: no token under it (an empty rule)
        self.last = last
        self.depth = depth


class _GiveUp(Exception):
    """The file needs the tree path (see the module docstring)."""


class _StreamingLowerer(Lowerer):
    """The tree path's `Lowerer`, with node spans read from a `_Node`'s tokens instead of a Meta."""

    def span(self, node: _Node) -> ir.Span:
        first = node.first
        if first is None:
            return ir.Span(self.sm.path, 1, 1, 1, 1, 0, 0)
        last = node.last
        return ir.Span(self.sm.path, first.line, first.column, last.end_line, last.end_column,
                       first.start_pos, last.end_pos)


class _RuleShape:
    """How Lark's tree builder shapes one rule's children (read once from the parser's rules)."""

    __slots__ = ("rule", "name", "expand1", "include", "nones_at_end", "spliced")

    def __init__(self, rule: Any):
        options = rule.options
        self.rule = rule
        self.name = rule.alias or options.template_source or rule.origin.name
        self.expand1 = bool(options.expand1 and not rule.alias)  # `?rule` with one child: the child
        self.spliced = rule.origin.name.startswith("_")  # `_rule`s are spliced into their parent
        made = maybe_create_child_filter(rule.expansion, options.keep_all_tokens, False,
                                         options.empty_indices)
        if made is None:  # every child kept as it is
            self.include = None
            self.nones_at_end = 0
        elif len(made.args) == 2:  # ChildFilterLALR (placeholders): (index, splice, Nones before)
            self.include = tuple(made.args[0])
            self.nones_at_end = made.args[1]
        else:  # ChildFilterLALR_NoPlaceholders: (index, splice)
            self.include = tuple((i, splice, 0) for i, splice in made.args[0])
            self.nones_at_end = 0


@cache
def _shapes() -> tuple[Any, tuple[_RuleShape, ...]] | None:
    """The parse table and every rule's shape, or None if this Lark version is laid out otherwise."""
    from bmad.compiler.parse import build_parser

    lark = build_parser()
    try:
        table = lark.parser.parser.parser.parse_table
        rules = tuple(lark.parser.parser.parser.callbacks)
        shapes = tuple(_RuleShape(rule) for rule in rules)
        lark.parser._make_lexer_thread  # noqa: B018 - checked here, used per parse
    except (AttributeError, TypeError, ValueError):
        return None
    return table, shapes


def _callback(shape: _RuleShape, method: Callable[[Any, list], Any] | None,
              path: str) -> Callable[[list], Any]:
    """The parser's reduce action for one rule: positions, child filter, then the lowering method."""
    include = shape.include
    nones_at_end = shape.nones_at_end
    expand1 = shape.expand1
    spliced = shape.spliced
    name = shape.name
    node_type = _Node
    token_type = Token

    def reduce(children: list) -> Any:
        first = last = None
        depth = 0
        for c in children:
            kind = type(c)
            if kind is node_type:
                if c.first is not None:
                    if first is None:
                        first = c.first
                    last = c.last
                if c.depth > depth:
                    depth = c.depth
            elif kind is token_type:
                if first is None:
                    first = c
                last = c
        if include is None:
            kept = children
        else:
            kept = []
            for i, splice, nones in include:
                if nones:
                    kept += [None] * nones
                if splice:
                    spliced_values = children[i].value
                    if kept:
                        kept += spliced_values
                    else:  # left recursion (`x*`): reuse the list instead of copying it each time
                        kept = spliced_values
                else:
                    kept.append(children[i])
            if nones_at_end:
                kept += [None] * nones_at_end
        if spliced:  # not a node of the tree: its kept children go into its parent's
            return node_type(kept, first, last, depth)
        if expand1 and len(kept) == 1:
            only = kept[0]
            if type(only) is node_type:  # the inlined node keeps its span; its parent sees ours
                only.first, only.last = first, last
            return only
        if depth >= MAX_STREAM_DEPTH:
            raise _GiveUp
        values = [c.value if type(c) is node_type else c for c in kept]
        node = node_type(None, first, last, depth + 1)
        if method is not None:
            node.value = method(node, values)
        else:  # a rule lowering has no method for stays a tree, as in the tree path
            node.value = Tree(name, values, _meta(node))
        return node

    return reduce


def _meta(node: _Node) -> Meta:
    meta = Meta()
    if node.first is not None:
        first, last = node.first, node.last
        meta.empty = False
        meta.line, meta.column, meta.start_pos = first.line, first.column, first.start_pos
        meta.end_line, meta.end_column, meta.end_pos = last.end_line, last.end_column, last.end_pos
    return meta


@collection_paused()
def lower_while_parsing(data: str | bytes, display: str, base_dir: str | None
                        ) -> tuple[str, FileUnit, list[Diagnostic]] | None:
    """(decoded text, lowered file, lowering diagnostics) for a file that parses cleanly, or None
    when the file needs the tree path (a syntax error, a limit, a tree too deep)."""
    from bmad.compiler.limits import current_limits
    from bmad.compiler.parse import MAX_SOURCE_CHARS, build_parser, decode_source, lexing_session

    shaped = _shapes()
    if shaped is None:
        return None
    table, shapes = shaped
    limits = current_limits()
    text = decode_source(data)
    if len(text) > min(MAX_SOURCE_CHARS, limits.source_chars):
        return None
    lowerer = _StreamingLowerer(SourceMap(display, text), base_dir)
    callbacks = {s.rule: _callback(s, None if s.spliced else getattr(lowerer, s.name, None), display)
                 for s in shapes}
    frontend = build_parser().parser
    try:
        with lexing_session(limits.nesting_depth):
            result = _Parser(table, callbacks).parse(frontend._make_lexer_thread(text), "start")
    except Exception:  # noqa: BLE001 - any failure: the tree path reports it as it always has
        return None
    unit = result.value if type(result) is _Node else result
    if not isinstance(unit, FileUnit):
        unit = FileUnit(display)
    return text, unit, lowerer.diagnostics
