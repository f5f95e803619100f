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

The tokens come from `_Lexer`, which runs Lark's own contextual lexer the way Lark does (per
parser state, the same compiled regular expressions in the same order, keywords retyped from
NAME by the same table, the same line and column arithmetic) in one loop with the LALR driver,
without Lark's per-token generator, line counter and Token constructor: lexing was four fifths
of Lark's parse. It feeds the reductions to the same parse table.

Whenever the tree path would do anything but lower a clean parse, this path gives up and the
caller takes the tree path: a syntax error (the tree path recovers and reports several), a file
over the size or nesting limits, a tree deeper than `MAX_STREAM_DEPTH` (the tree path's recursive
walk may run out of stack there and says so), or an internal error. The formatter and the
language server keep reading the tree (they need comments, partial trees and error recovery).
"""

from __future__ import annotations

from bisect import bisect_right
from functools import cache
from typing import Any, Callable

from lark import Token, Tree
from lark.lexer import UnlessCallback
from lark.parse_tree_builder import maybe_create_child_filter
from lark.parsers.lalr_analysis import Shift
from lark.tree import Meta

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic
from bmad.compiler.gc_pause import collection_paused
from bmad.compiler.lower import PLAIN_SPAN_MAPS, FileUnit, Lowerer
from bmad.compiler.parse import _CLOSERS, _OPENERS
from bmad.compiler.source_map import SourceMap

# Far below the depth at which the tree path's recursive walk could fail, far above real files
# (a task is 4-6 levels deep; expressions stop at 32 with BMAD-E020).
MAX_STREAM_DEPTH = 150
_OPENER_TYPES = frozenset(_OPENERS)
_CLOSER_TYPES = frozenset(_CLOSERS)


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


_new_span = object.__new__
_SPAN_SETTERS = tuple(getattr(ir.Span, name).__set__
                      for name in ("file", "line", "column", "end_line", "end_column", "start", "end"))


def _span(file: str, line: int, column: int, end_line: int, end_column: int, start: int, end: int) -> ir.Span:
    """`ir.Span(...)` at half the cost (the frozen dataclass's __init__ sets each slot through
    `object.__setattr__`; this sets them directly): a file of 1,000 tasks has ~20,000 spans."""
    span = _new_span(ir.Span)
    s0, s1, s2, s3, s4, s5, s6 = _SPAN_SETTERS
    s0(span, file)
    s1(span, line)
    s2(span, column)
    s3(span, end_line)
    s4(span, end_column)
    s5(span, start)
    s6(span, end)
    return span


class _QuickSourceMap(SourceMap):
    """`SourceMap.span` with the same arithmetic written out (interpolations ask for two each)."""

    def span(self, start: int, end: int) -> ir.Span:
        starts = self.line_starts
        size = len(self.text)
        stop = max(start, end)
        at = 0 if start < 0 else (size if start > size else start)
        line = bisect_right(starts, at)
        column = at - starts[line - 1] + 1
        to = 0 if stop < 0 else (size if stop > size else stop)
        end_line = bisect_right(starts, to)
        return _span(self.path, line, column, end_line, to - starts[end_line - 1] + 1, start, stop)


PLAIN_SPAN_MAPS.add(_QuickSourceMap)


class _StreamingLowerer(Lowerer):
    """The tree path's `Lowerer`, with node spans read from a `_Node`'s tokens instead of a Meta."""

    def span(self, node: _Node) -> ir.Span:
        first = node.first
        if first is None:
            return ir.Span(self.sm.path, 1, 1, 1, 1, 0, 0)
        last = node.last
        return _span(self.sm.path, first.line, first.column, last.end_line, last.end_column,
                     first.start_pos, last.end_pos)

    def tspan(self, token: Token) -> ir.Span:
        # `SourceMap.token_span` for a token of `_parse`, which sets every position
        return _span(self.sm.path, token.line, token.column, token.end_line, token.end_column,
                     token.start_pos, token.end_pos)


class _RuleShape:
    """How Lark's tree builder shapes one rule's children (read once from the parser's rules)."""

    __slots__ = ("rule", "name", "expand1", "include", "nones_at_end", "spliced", "arity")

    def __init__(self, rule: Any):
        options = rule.options
        self.rule = rule
        self.arity = len(rule.expansion)
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


class _StateLexer:
    """What Lark's contextual lexer does in one parser state: its regular expressions (tried in
    order, as `Scanner.match` tries them), the ignored types, and keywords lexed as a NAME-like
    terminal then retyped (Lark's `UnlessCallback`)."""

    __slots__ = ("patterns", "ignore", "keywords")

    def __init__(self, lexer: Any, brackets: frozenset[str]):
        scanner = lexer.scanner  # builds Lark's scanner (and its callbacks) if not yet built
        self.patterns = tuple(scanner._mres)
        self.ignore = frozenset(str(kind) for kind in lexer.ignore_types)
        self.keywords: dict[str, dict[str, str]] = {}
        for kind, callback in lexer.callback.items():
            if isinstance(callback, UnlessCallback):
                table: dict[str, str] = {}
                for terminal in callback.scanner.terminals:
                    pattern = terminal.pattern
                    if pattern.type != "str" or pattern.flags:
                        raise TypeError(f"keyword {terminal.name} is not a plain string")
                    table.setdefault(pattern.value, str(terminal.name))
                self.keywords[str(kind)] = table
            elif kind not in brackets and kind not in self.ignore:
                raise TypeError(f"unexpected lexer callback for {kind}")


class _Lexer:
    """Lark's contextual lexer for the .bmad parser, one `_StateLexer` per parser state."""

    def __init__(self, contextual: Any, brackets: frozenset[str]):
        shared: dict[int, _StateLexer] = {}
        self.by_state: dict[int, _StateLexer] = {}
        for state, lexer in contextual.lexers.items():
            made = shared.get(id(lexer))
            if made is None:
                made = shared[id(lexer)] = _StateLexer(lexer, brackets)
            self.by_state[state] = made


class _Grammar:
    """Lark's parse table for .bmad with plain-string keys, every rule's shape, and the lexer."""

    def __init__(self, table: Any, rules: tuple, lexer: _Lexer):
        self.shapes = tuple(_RuleShape(rule) for rule in rules)
        index = {rule: i for i, rule in enumerate(rules)}
        # state -> {terminal: (True, next state) | (False, rule index, children, rule name)}
        self.actions: dict[int, dict[str, tuple]] = {}
        self.gotos: dict[int, dict[str, int]] = {}  # state -> {rule name: next state}
        for state, row in table.states.items():
            actions, gotos = {}, {}
            for symbol, (action, arg) in row.items():
                symbol = str(symbol)
                if action is Shift and not symbol.isupper() and symbol != "$END":
                    gotos[symbol] = arg
                if action is Shift:
                    actions[symbol] = (True, arg)
                else:
                    actions[symbol] = (False, index[arg], len(arg.expansion), str(arg.origin.name))
            self.actions[state], self.gotos[state] = actions, gotos
        self.start_state = table.start_states["start"]
        self.end_state = table.end_states["start"]
        self.lexer = lexer


def _parse(text: str, grammar: _Grammar, reducers: list, max_nesting: int) -> Any:
    """Lex and parse `text` with Lark's parse table, calling `reducers[rule]` on each reduction
    (as Lark's `ParserState.feed_token` does); raises `_GiveUp` where Lark would raise (an
    unexpected character or token) or the brackets nest deeper than `max_nesting`."""
    actions, gotos, end_state = grammar.actions, grammar.gotos, grammar.end_state
    by_state = grammar.lexer.by_state
    openers, closers = _OPENER_TYPES, _CLOSER_TYPES
    state_stack = [grammar.start_state]
    value_stack: list = []
    new_str = str.__new__
    token_class = Token
    pos, size, line, line_start, mark, nesting = 0, len(text), 1, 0, 0, 0
    while True:
        match = None
        if pos < size:
            state_lexer = by_state[state_stack[-1]]
            patterns, ignore = state_lexer.patterns, state_lexer.ignore
            while pos < size:  # ignored tokens (blanks, comments) leave the parser state as it is
                for pattern in patterns:
                    match = pattern.match(text, pos)
                    if match is not None:
                        break
                else:
                    raise _GiveUp
                end = match.end()
                if end == pos:
                    raise _GiveUp
                kind = match.lastgroup
                if kind not in ignore:
                    break
                pos = end
                match = None
        if match is not None:
            value = match.group()
            keywords = state_lexer.keywords.get(kind)
            if keywords is not None:
                kind = keywords.get(value, kind)
            newlines = text.count("\n", mark, pos)
            if newlines:
                line += newlines
                line_start = text.rindex("\n", mark, pos) + 1
            token = new_str(token_class, value)
            token.type, token.value, token.start_pos = kind, value, pos
            token.line, token.column = line, pos - line_start + 1
            if "\n" in value:
                line += value.count("\n")
                line_start = pos + value.rindex("\n") + 1
            token.end_line, token.end_column, token.end_pos = line, end - line_start + 1, end
            pos = mark = end
            if kind in openers:
                nesting += 1
                if nesting > max_nesting:
                    raise _GiveUp
            elif kind in closers and nesting > 0:
                nesting -= 1
            at_end = False
        else:
            kind, token, at_end = "$END", None, True
        while True:
            action = actions[state_stack[-1]].get(kind)
            if action is None:
                raise _GiveUp
            if action[0]:  # shift
                if at_end:
                    raise _GiveUp
                state_stack.append(action[1])
                value_stack.append(token)
                break
            _, rule, count, name = action
            if count:
                children = value_stack[-count:]
                del state_stack[-count:]
                del value_stack[-count:]
            else:
                children = []
            value_stack.append(reducers[rule](children))
            state_stack.append(gotos[state_stack[-1]][name])
            if at_end and state_stack[-1] == end_state:
                return value_stack[-1]


@cache
def _grammar() -> _Grammar | None:
    """The .bmad parser's tables and lexer, unrolled (None if this Lark version lays them out
    otherwise: then every file takes the tree path)."""
    from bmad.compiler.parse import build_parser

    lark = build_parser()
    try:
        lexer = _Lexer(lark.parser.lexer, _OPENER_TYPES | _CLOSER_TYPES)
        parser = lark.parser.parser.parser
        return _Grammar(parser.parse_table, tuple(parser.callbacks), lexer)
    except (AttributeError, TypeError, KeyError, ValueError):
        return None


def _callback(shape: _RuleShape, method: Callable[[Any, list], Any] | None) -> Callable[[list], Any]:
    """The parser's reduce action for one rule: positions, child filter, then the lowering method."""
    if shape.spliced and shape.nones_at_end == 0:
        # the commonest reductions, written out: `_rule: a | b | ...` (one child, kept as it is)
        # and a repetition `__rule_star: __rule_star item` (the list so far, then one item)
        if shape.include is None and shape.arity == 1:
            return _pass_through
        if shape.arity == 2 and shape.include == ((0, True, 0), (1, True, 0)):
            return _extend
        if shape.arity == 2 and shape.include == ((0, True, 0), (1, False, 0)):
            return _append
    return _general_callback(shape, method)


def _pass_through(children: list) -> _Node:
    c = children[0]
    kind = type(c)
    if kind is _Node:
        return _Node(children, c.first, c.last, c.depth)
    if kind is Token:
        return _Node(children, c, c, 0)
    return _Node(children, None, None, 0)


def _extend(children: list) -> _Node:
    before, item = children  # both spliced `_Node`s
    kept = before.value
    kept += item.value
    first = before.first if before.first is not None else item.first
    last = item.last if item.last is not None else before.last
    return _Node(kept, first, last, before.depth if before.depth > item.depth else item.depth)


def _append(children: list) -> _Node:
    before, item = children  # the list so far (a spliced `_Node`), then one child kept as it is
    kept = before.value
    kept.append(item)
    kind = type(item)
    if kind is _Node:
        item_first, item_last, item_depth = item.first, item.last, item.depth
    elif kind is Token:
        item_first = item_last = item
        item_depth = 0
    else:
        item_first = item_last = None
        item_depth = 0
    first = before.first if before.first is not None else item_first
    last = item_last if item_last is not None else before.last
    return _Node(kept, first, last, before.depth if before.depth > item_depth else item_depth)


def _general_callback(shape: _RuleShape, method: Callable[[Any, list], Any] | None) -> Callable[[list], Any]:
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
    from bmad.compiler.parse import MAX_SOURCE_CHARS, decode_source

    grammar = _grammar()
    if grammar is None:
        return None
    limits = current_limits()
    text = decode_source(data)
    if len(text) > min(MAX_SOURCE_CHARS, limits.source_chars):
        return None
    lowerer = _StreamingLowerer(_QuickSourceMap(display, text), base_dir)
    reducers = [_callback(s, None if s.spliced else getattr(lowerer, s.name, None)) for s in grammar.shapes]
    try:
        result = _parse(text, grammar, reducers, limits.nesting_depth)
    except Exception:  # noqa: BLE001 - any failure: the tree path reports it as it always has
        return None
    unit = result.value if type(result) is _Node else result
    if not isinstance(unit, FileUnit):
        unit = FileUnit(display)
    return text, unit, lowerer.diagnostics
