"""The formatter behind `bmad fmt` and the language server: .bmad text in its canonical layout, comments kept.

The file is parsed with the compiler's own parser (`parse.py`, which also collects the comments),
described as a layout document (`format_layout.py`) and printed at 100 columns:

- 2-space indentation, one clause per line, a blank line between declarations (consecutive
  `import`/`use` lines stay together) and around every task and `parallel { }` block; elsewhere a
  blank line is kept where the author put one (at most one in a row).
- Lists (`[a, b]`, `limits { rpm 500, tpm 200k }`, `skills {...}`, `enum(A, B)`, call arguments)
  stay on one line when they fit and are wrapped one item per line (with a trailing comma) when
  they don't, or when a comment sits inside them. `depends`/`needs` names fill the line and wrap
  with a 4-space continuation.
- Literals keep their spelling (`200k`, `$0.50`, `30s`): only whitespace is normalised. Strings are
  kept exactly; a `\"\"\"` block is re-indented (content two columns in from the clause, closing
  quotes at the clause's column), which leaves its dedented value unchanged.
- JSON Schemas after `returns json` keep their text; an object or array written over several lines
  is laid out one member per line, one written on one line stays on one line while it fits.
- Comments: an own-line comment stays attached to the construct after it (or at the end of its
  block), a trailing comment stays at the end of its line. A comment inside a clause where no line
  can break (`retry 3 # why` ... `backoff ...`) moves to its own line above the clause.

The result is checked before it is returned: it must parse to the same tree (strings compared by
value) with the same comments, otherwise the file is left alone and BMAD-E590 is reported.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

from lark import Token, Tree

from bmad.compiler.diagnostics import Diagnostic, error
from bmad.compiler.format_layout import (BREAK_PARENT, HARD_LINE, LINE, SOFT_LINE, Doc, Fill, Group,
                                         IfBreak, Mark, Nest, Reindent, Text, Trailing, join,
                                         render_marked)
from bmad.compiler.nesting import too_deep
from bmad.compiler.parse import ParseResult, parse_text
from bmad.compiler.strings import common_margin, decode

INDENT = 2
CONTINUATION = 4  # wrapped `depends`/`needs` names
SELF_CHECK_CODE = "BMAD-E590"

Node = Tree | Token


# ----------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True, slots=True)
class RangeEdit:
    """Replace lines `start_line..end_line` (1-based, inclusive) of the original with `new_text`
    (whole lines, each ending in a newline)."""

    start_line: int
    end_line: int
    new_text: str


def format_source(text: str, path: str = "<input>") -> tuple[str | None, list[Diagnostic]]:
    """The canonical layout of `text`, or None and the diagnostics when it does not parse. Never raises."""
    layout = _layout(text, path)
    if layout.output is None:
        return None, layout.diagnostics
    return layout.output, layout.diagnostics


def format_range(text: str, path: str, start_line: int, end_line: int
                 ) -> tuple[RangeEdit | None, list[Diagnostic]]:
    """Format the smallest top-level declarations or tasks that cover lines `start_line..end_line`.

    Returns the edit (the original line span replaced and its new text), or None with the
    diagnostics when the file does not parse, or None and no diagnostics when the range covers
    nothing formattable (blank lines or comments between declarations)."""
    layout = _layout(text, path)
    if layout.output is None:
        return None, layout.diagnostics
    if start_line > end_line:
        start_line, end_line = end_line, start_line
    chosen = _choose_units(layout, start_line, end_line)
    if not chosen:
        return None, layout.diagnostics
    first, last = chosen[0], chosen[-1]
    span_start = layout.original_lines[first][0]
    span_end = layout.original_lines[last][1]
    out_start = layout.marks[(first, "start")]
    out_end = layout.marks[(last, "end")]
    out_lines = layout.output.split("\n")
    new_text = "".join(line + "\n" for line in out_lines[out_start - 1:out_end])
    return RangeEdit(span_start, span_end, new_text), layout.diagnostics


# ----------------------------------------------------------------------------------------------
# Running the formatter


@dataclass
class _Layout:
    output: str | None
    diagnostics: list[Diagnostic]
    tree: Tree | None = None
    marks: dict = field(default_factory=dict)  # (item start offset, "start"|"end") -> output line
    original_lines: dict = field(default_factory=dict)  # item start offset -> (first, last) line


def _layout(text: str, path: str) -> _Layout:
    try:
        parsed = parse_text(text, path)
    except Exception as e:  # noqa: BLE001 - parse_text never raises; a formatter must not either
        return _Layout(None, [_internal_error(path, f"the parser failed ({type(e).__name__})")])
    if parsed.tree is None or not parsed.complete or any(d.is_error for d in parsed.diagnostics):
        return _Layout(None, parsed.diagnostics)
    try:
        formatter = _Formatter(parsed)
        doc = formatter.file(parsed.tree)
        output, marks = render_marked(doc)
        output = output.rstrip("\n") + "\n" if output.strip() else ""
    except RecursionError:  # a generated file past Python's stack: say where, it is not a bug
        return _Layout(None, [too_deep(parsed.tree, parsed.source_map, "format")])
    except _Unformattable as e:
        return _Layout(None, [_internal_error(path, f"it has no layout for `{e}`")])
    problem = _self_check(parsed, output, path)
    if problem is not None:
        return _Layout(None, [_internal_error(path, problem)])
    return _Layout(output, parsed.diagnostics, parsed.tree, marks, formatter.original_lines)


def _choose_units(layout: _Layout, start_line: int, end_line: int) -> list[int]:
    """Start offsets of the declarations or tasks to reformat for a line range: the run of siblings
    the range touches, in the innermost workflow or `parallel` block that holds all of it."""
    def touched(items: list[Node]) -> list[Tree]:
        out = []
        for item in items:
            if isinstance(item, Tree) and _start(item) in layout.original_lines:
                first, last = layout.original_lines[_start(item)]
                if first <= end_line and last >= start_line:
                    out.append(item)
        return out

    hits = touched(_kids(layout.tree))
    while len(hits) == 1 and hits[0].data in ("workflow_decl", "parallel_block"):
        (item,) = hits
        if start_line <= item.meta.line or end_line >= item.meta.end_line:
            break  # the header or the closing brace is in the range
        inner = touched(_kids(item))
        if not inner or any(i.data not in WORKFLOW_SEPARATED for i in inner):
            break  # a workflow-level clause is in the range: the workflow is the unit
        hits = inner
    return [_start(item) for item in hits]


def _internal_error(path: str, reason: str) -> Diagnostic:
    from bmad.compiler.ir import Span

    return error(SELF_CHECK_CODE, Span(path, 1, 1, 1, 1, 0, 0),
                 f"the formatter could not lay this file out safely: {reason}; the file was left as it is",
                 "this is a bug in `bmad fmt`: please report it with the file")


def _self_check(parsed: ParseResult, output: str, path: str) -> str | None:
    """None when `output` parses to the same tree with the same comments as the original."""
    again = parse_text(output, path)
    if again.tree is None or not again.complete:
        return "its output did not parse"
    if _signature(again.tree) != _signature(parsed.tree):
        return "its output would mean something else"
    if Counter(c.text.rstrip() for c in again.comments) != Counter(c.text.rstrip() for c in parsed.comments):
        return "a comment would be lost"
    return None


def _signature(node: Node | None) -> object:
    """The tree without positions; `\"\"\"` blocks by their dedented value."""
    if node is None:
        return None
    if isinstance(node, Token):
        if node.type == "LONG_STRING":
            return ("LONG_STRING", decode(str(node), 0).text)
        return (node.type, str(node))
    return (str(node.data), tuple(_signature(child) for child in node.children))


# ----------------------------------------------------------------------------------------------
# Comments


@dataclass(slots=True)
class _Comment:
    text: str
    start: int
    end: int
    line: int
    own_line: bool  # nothing but whitespace before it on its line


class _CommentPool:
    """The file's comments, each handed out once, to the innermost construct that places it."""

    def __init__(self, comments: list[_Comment]):
        self.items = sorted(comments, key=lambda c: c.start)
        self.starts = [c.start for c in self.items]
        self.taken = [False] * len(self.items)

    def within(self, start: int, end: int) -> list[int]:
        """Indices of the comments not yet placed that start in [start, end)."""
        lo = bisect.bisect_left(self.starts, start)
        hi = bisect.bisect_left(self.starts, end)
        return [i for i in range(lo, hi) if not self.taken[i]]

    def take(self, indices: Iterable[int]) -> list[_Comment]:
        out = []
        for i in indices:
            self.taken[i] = True
            out.append(self.items[i])
        return out


@dataclass
class _Placed:
    """Where the comments of one container go."""

    head: _Comment | None = None  # at the end of the opening bracket's line
    leading: dict[int, list[_Comment]] = field(default_factory=dict)  # item index -> own-line above
    trailing: dict[int, _Comment] = field(default_factory=dict)  # item index -> end of its line
    end: list[_Comment] = field(default_factory=list)  # own-line, after the last item


# ----------------------------------------------------------------------------------------------
# Positions


def _start(node: Node) -> int:
    return node.start_pos if isinstance(node, Token) else node.meta.start_pos


def _end(node: Node) -> int:
    return node.end_pos if isinstance(node, Token) else node.meta.end_pos


def _kids(node: Tree) -> list[Node]:
    return [c for c in node.children if c is not None]


def _tree(node: Node | None, name: str) -> bool:
    return isinstance(node, Tree) and node.data == name


# ----------------------------------------------------------------------------------------------
# The formatter


WORKFLOW_SEPARATED = {"task_decl", "parallel_block"}
# the expression rules `_Formatter._expr` lays out (every other rule has an `r_<rule>` method)
EXPRESSION_RULES = {"or_op", "and_op", "not_op", "compare", "in_op", "not_in_op", "ref", "string_lit",
                    "number_lit", "negative_lit", "true_lit", "false_lit", "null_lit", "list_lit",
                    "object_lit"}
IMPORTS = {"import_decl", "use_decl"}
RUBRICS = {"rubric_decl"}  # one-line declarations that sit together, like imports


class _Formatter:
    def __init__(self, parsed: ParseResult):
        self.text = parsed.text
        self.line_starts = [0]
        for i, ch in enumerate(self.text):
            if ch == "\n":
                self.line_starts.append(i + 1)
        comments = []
        for c in parsed.comments:
            line_start = self.line_starts[self.line_of(c.span.start) - 1]
            own = self.text[line_start:c.span.start].strip() == ""
            comments.append(_Comment(c.text.rstrip(), c.span.start, c.span.end, self.line_of(c.span.start), own))
        self.pool = _CommentPool(comments)
        self.original_lines: dict[int, tuple[int, int]] = {}
        self.paren_match = self._match_parens()

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)

    # -- containers --------------------------------------------------------------------------

    def place(self, items: list[Node], start: int, end: int) -> _Placed:
        """Take the comments in [start, end) that lie between `items` and say where each goes."""
        placed = _Placed()
        starts = [_start(item) for item in items]
        between = []
        for i in self.pool.within(start, end):
            c = self.pool.items[i]
            k = bisect.bisect_right(starts, c.start) - 1  # the item starting before the comment
            if k >= 0 and c.start < _end(items[k]):
                continue  # inside an item: that item places it
            between.append(i)
        for c in self.pool.take(between):
            prev = bisect.bisect_right(starts, c.start) - 1
            # one comment fits at the end of a line; any further one goes on its own line
            if not c.own_line and prev >= 0 and prev not in placed.trailing:
                placed.trailing[prev] = c
            elif not c.own_line and prev < 0 and placed.head is None:
                placed.head = c
            elif prev + 1 < len(items):
                placed.leading.setdefault(prev + 1, []).append(c)
            else:
                placed.end.append(c)
        return placed

    def hoisted(self, item: Node) -> list[_Comment]:
        """Comments inside `item` that no inner construct placed: they move above it."""
        return self.pool.take(self.pool.within(_start(item), _end(item)))

    def block(self, header: Doc, items: list[Node], start: int, end: int,
              separated: Callable[[Node, Node], bool], *, braces: bool = True) -> Doc:
        """Clauses one per line inside `{ }` (or the whole file when `braces` is False).

        Rows are comment lines and items; a blank line is kept between two rows where the author
        had one, and forced before an item (and its leading comments) that `separated` asks for."""
        placed = self.place(items, start, end)
        rows: list[tuple[int, int, Doc, bool]] = []  # first line, last line, layout, forced blank
        for index, item in enumerate(items):
            doc = self.node(item)
            own = placed.leading.get(index, [])
            leading = own + self.hoisted(item)
            forced = index > 0 and separated(items[index - 1], item)
            first, last = self.line_of(_start(item)), self.line_of(_end(item))
            mark_start = Mark((_start(item), "start"))
            for n, c in enumerate(leading):
                # hoisted comments come from inside the item: they pack together above it
                rows.append((c.line if n < len(own) else -1, c.line,
                             [mark_start, Text(c.text)] if n == 0 else Text(c.text), forced and n == 0))
            trailing = placed.trailing.get(index)
            if trailing is not None:
                doc = [doc, Trailing("  " + trailing.text), BREAK_PARENT]
                last = max(last, trailing.line)
            doc = [doc, Mark((_start(item), "end"))]
            rows.append((first, last, doc if leading else [mark_start, doc], forced and not leading))
            self.original_lines[_start(item)] = (leading[0].line if leading else first, last)
        rows += [(c.line, c.line, Text(c.text), False) for c in placed.end]
        body: list[Doc] = []
        prev_last: int | None = None
        for first, last, doc, forced in rows:
            if body:
                body.append(HARD_LINE)
                if forced or (prev_last is not None and first >= 0 and first - prev_last >= 2):
                    body.append(HARD_LINE)
            body.append(doc)
            prev_last = last if prev_last is None else max(prev_last, last)
        head = [Trailing("  " + placed.head.text), BREAK_PARENT] if placed.head else []
        if not braces:
            return body
        if not body:
            return [header, "{", head, HARD_LINE, "}"] if head else [header, "{}"]
        return [header, "{", head, Nest(INDENT, [HARD_LINE, body]), HARD_LINE, "}"]

    def bracketed(self, open_: str, close: str, items: list[Node], start: int, end: int,
                  item_doc: Callable[[Node], Doc], *, padded: bool = False, trailing_comma: bool = True,
                  broken: bool = False) -> Doc:
        """Items on one line when they fit, else one per line (comments inside force that)."""
        placed = self.place(items, start, end)
        line = LINE if padded else SOFT_LINE
        parts: list[Doc] = []
        for index, item in enumerate(items):
            doc = item_doc(item)
            leading = placed.leading.get(index, []) + self.hoisted(item)
            if index:
                parts.append(LINE)
            for c in leading:
                parts.extend([Text(c.text), HARD_LINE])
            parts.append(doc)
            last = index == len(items) - 1
            if not last:
                parts.append(",")
            elif trailing_comma:
                parts.append(IfBreak(","))
            trailing = placed.trailing.get(index)
            if trailing is not None:
                parts.extend([Trailing("  " + trailing.text), BREAK_PARENT])
        for c in placed.end:
            parts.extend([HARD_LINE, Text(c.text)])
        head = [Trailing("  " + placed.head.text), BREAK_PARENT] if placed.head else []
        if not parts:
            return Group([open_, head, Nest(INDENT, []), SOFT_LINE, close]) if head else open_ + close
        if placed.end and not items:
            parts = parts[1:]  # no item before the first end comment: the opening line break does it
            return Group([open_, head, Nest(INDENT, [HARD_LINE, parts]), HARD_LINE, close], broken=True)
        return Group([open_, head, Nest(INDENT, [line, parts]), line, close], broken=broken)

    def names(self, keyword: str, names: list[Token]) -> Doc:
        """`depends a, b, c`: the names fill the line, then continue indented."""
        parts: list[Doc] = []
        for i, name in enumerate(names):
            if i:
                parts.append([",", LINE])
            parts.append(str(name))
        return [keyword, " ", Nest(CONTINUATION, Fill(tuple(parts)))]

    # -- dispatch ----------------------------------------------------------------------------

    def node(self, node: Node) -> Doc:
        if isinstance(node, Token):
            return str(node)
        method = getattr(self, "r_" + str(node.data), None)
        if method is None:  # every rule of the grammar has a method; see test_every_rule_is_formatted
            raise _Unformattable(str(node.data))
        return method(node)

    def file(self, tree: Tree) -> Doc:
        items = _kids(tree)

        def separated(prev: Node, item: Node) -> bool:
            return not (prev.data in IMPORTS and item.data in IMPORTS
                        or prev.data in RUBRICS and item.data in RUBRICS)

        return self.block("", items, 0, len(self.text) + 1, separated, braces=False)

    # -- declarations ------------------------------------------------------------------------

    def r_import_decl(self, n: Tree) -> Doc:
        return ["import ", str(n.children[0])]

    def r_use_decl(self, n: Tree) -> Doc:
        return ["use ", ".".join(str(t) for t in _kids(n))]

    def r_rubric_decl(self, n: Tree) -> Doc:
        name, text = n.children
        return ["rubric ", str(name), " ", self.node(text)]

    def decl_block(self, keyword: str, n: Tree, name: Node, clauses: list[Node],
                   separated: Callable[[Node, Node], bool] = lambda a, b: False) -> Doc:
        return self.block([keyword, " ", self.node(name), " "], clauses, _end(name), _end(n), separated)

    def r_provider_decl(self, n: Tree) -> Doc:
        kids = _kids(n)
        return self.decl_block("provider", n, kids[0], kids[1:])

    def r_model_decl(self, n: Tree) -> Doc:
        kids = _kids(n)
        return self.decl_block("model", n, kids[0], kids[1:])

    def r_workflow_decl(self, n: Tree) -> Doc:
        kids = _kids(n)

        def separated(prev: Node, item: Node) -> bool:
            return prev.data in WORKFLOW_SEPARATED or item.data in WORKFLOW_SEPARATED

        return self.decl_block("workflow", n, kids[0], kids[1:], separated)

    def r_parallel_block(self, n: Tree) -> Doc:
        tasks = _kids(n)
        return self.block("parallel ", tasks, _start(n) + len("parallel"), _end(n), lambda a, b: True)

    def r_model_name(self, n: Tree) -> Doc:
        return str(n.children[0])

    def r_string(self, n: Tree) -> Doc:
        token = n.children[0]
        return long_string(str(token)) if token.type == "LONG_STRING" else str(token)

    # -- provider and model clauses ----------------------------------------------------------

    def r_kind_clause(self, n: Tree) -> Doc:
        return ["kind ", str(n.children[0])]

    def r_base_url_clause(self, n: Tree) -> Doc:
        return ["base_url ", str(n.children[0])]

    def r_api_key_env(self, n: Tree) -> Doc:
        return ["api_key env ", str(n.children[0])]

    def r_api_key_literal(self, n: Tree) -> Doc:
        return ["api_key ", self.node(n.children[0])]

    def r_data_clause(self, n: Tree) -> Doc:
        return ["data ", str(n.children[0])]

    def entries(self, keyword: str, n: Tree) -> Doc:
        entries = _kids(n)
        body = self.bracketed("{", "}", entries, _start(n) + len(keyword), _end(n),
                              lambda e: [str(e.children[0]), " ", str(e.children[1])], padded=True)
        return [keyword, " ", body]

    def r_limits_clause(self, n: Tree) -> Doc:
        return self.entries("limits", n)

    def r_skills_clause(self, n: Tree) -> Doc:
        return self.entries("skills", n)

    def r_model_provider(self, n: Tree) -> Doc:
        return ["provider ", str(n.children[0])]

    def r_model_id(self, n: Tree) -> Doc:
        return ["id ", str(n.children[0])]

    def r_price_clause(self, n: Tree) -> Doc:
        i, o, per = (str(t) for t in n.children)
        return ["price input ", i, " output ", o, " per ", per]

    def r_context_clause(self, n: Tree) -> Doc:
        return ["context ", str(n.children[0])]

    def r_latency_clause(self, n: Tree) -> Doc:
        base, per_token = n.children
        return ["latency ", str(base)] + ([" + ", str(per_token), " per token"] if per_token is not None else [])

    def r_path_clause(self, n: Tree) -> Doc:
        return ["path ", str(n.children[0])]

    def r_aliases_clause(self, n: Tree) -> Doc:
        return ["aliases ", self.node(n.children[0])]

    def r_model_list(self, n: Tree) -> Doc:
        return self.bracketed("[", "]", _kids(n), _start(n), _end(n), self.node)

    # -- workflow clauses --------------------------------------------------------------------

    def r_about_clause(self, n: Tree) -> Doc:
        return ["about ", self.node(n.children[0])]

    def r_strategy_clause(self, n: Tree) -> Doc:
        return ["strategy ", str(n.children[0])]

    def r_optimize_clause(self, n: Tree) -> Doc:
        return ["optimize ", str(n.children[0])]

    def r_workflow_quality(self, n: Tree) -> Doc:
        return ["quality >= ", str(n.children[0])]

    def r_input_decl(self, n: Tree) -> Doc:
        name, type_ref, default = n.children
        doc: list[Doc] = ["input ", str(name), ": ", self.node(type_ref)]
        if default is not None:
            doc += [" = ", self.expr(default)]
        return doc

    def r_type_ref(self, n: Tree) -> Doc:
        name, inner = n.children
        return [str(name)] + (["<", self.node(inner), ">"] if inner is not None else [])

    def r_output_decl(self, n: Tree) -> Doc:
        return ["output ", str(n.children[0])]

    def r_budget_clause(self, n: Tree) -> Doc:
        return ["budget ", self.node(n.children[0])]

    def r_budget_money(self, n: Tree) -> Doc:
        money = n.children[0]
        # `per run` leaves no token in the tree: the node reaches past the amount when it is there
        return [str(money)] + ([" per run"] if _end(n) > _end(money) else [])

    def r_budget_tokens(self, n: Tree) -> Doc:
        return [str(n.children[0]), " tokens"]

    def r_budget_time(self, n: Tree) -> Doc:
        return str(n.children[0])

    # -- tasks -------------------------------------------------------------------------------

    def r_task_decl(self, n: Tree) -> Doc:
        name, for_each, when, body = n.children
        header: list[Doc] = ["task ", str(name)]
        if for_each is not None:
            var, source = for_each.children
            header += [" for each ", str(var), " in ", self.expr(source)]
        if when is not None:
            header += [" when ", self.expr(when.children[0])]
        if body.data == "task_call":
            return header + [" = ", self.node(body)]
        return self.block(header + [" "], _kids(body), _start(body), _end(body), lambda a, b: False)

    def r_task_call(self, n: Tree) -> Doc:
        name, *arguments = n.children
        arguments = [a for a in arguments if a is not None]
        open_at = _end(name)
        args = self.bracketed("(", ")", arguments, open_at, _end(n),
                              lambda a: [str(a.children[0]), ": ", self.expr(a.children[1])])
        return [str(name), args]

    def r_system_clause(self, n: Tree) -> Doc:
        return ["system ", self.node(n.children[0])]

    def r_prompt_clause(self, n: Tree) -> Doc:
        return ["prompt ", self.node(n.children[0])]

    def r_depends_clause(self, n: Tree) -> Doc:
        return self.names("depends", _kids(n))

    def r_needs_clause(self, n: Tree) -> Doc:
        return self.names("needs", _kids(n))

    def r_pin_model(self, n: Tree) -> Doc:
        return ["model ", self.node(n.children[0])]

    def r_route_clause(self, n: Tree) -> Doc:
        how, models = n.children
        return ["route ", str(how)] + ([" ", self.node(models)] if models is not None else [])

    def r_fallback_clause(self, n: Tree) -> Doc:
        return ["fallback ", self.node(n.children[0])]

    def r_fallback_only(self, n: Tree) -> Doc:
        return ["fallback only ", self.node(n.children[0])]

    def r_max_tokens_clause(self, n: Tree) -> Doc:
        return ["max_tokens ", str(n.children[0])]

    def r_temperature_clause(self, n: Tree) -> Doc:
        return ["temperature ", str(n.children[0])]

    def r_priority_clause(self, n: Tree) -> Doc:
        return ["priority ", str(n.children[0])]

    def r_timeout_clause(self, n: Tree) -> Doc:
        return ["timeout ", str(n.children[0])]

    def r_retry_clause(self, n: Tree) -> Doc:
        count, backoff, low, high = n.children
        doc: list[Doc] = ["retry ", str(count)]
        if backoff is not None:
            doc += [" backoff ", str(backoff)]
            if low is not None:
                doc += [" ", str(low), " to ", str(high)]
        return doc

    def r_on_error_clause(self, n: Tree) -> Doc:
        return ["on_error ", str(n.children[0])]

    def r_returns_text(self, n: Tree) -> Doc:
        return "returns text"

    def r_returns_json(self, n: Tree) -> Doc:
        schema = n.children[0] if n.children else None
        return ["returns json"] + ([" ", self.node(schema)] if schema is not None else [])

    def r_returns_enum(self, n: Tree) -> Doc:
        values = _kids(n)
        open_at = self._skip_forward(self._skip_forward(_start(n) + len("returns")) + len("enum"))
        return ["returns enum", self.bracketed("(", ")", values, open_at, _end(n),
                                               lambda v: str(v.children[0]))]

    def r_quality_clause(self, n: Tree) -> Doc:
        threshold, judged, rubric, otherwise = n.children
        if isinstance(threshold, Tree):  # `auto [P]`
            target = threshold.children[0]
            threshold = "auto" if target is None else f"auto {target}"
        doc: list[Doc] = ["quality >= ", str(threshold)]
        if judged is not None:
            doc += [" ", self.node(judged)]
        if rubric is not None:
            doc += [" ", self.node(rubric)]
        if otherwise is not None:
            doc += [" ", self.node(otherwise)]
        return doc

    def r_rubric(self, n: Tree) -> Doc:
        return ["rubric ", self.node(n.children[0])]

    def r_rubric_ref(self, n: Tree) -> Doc:
        return ["rubric ", str(n.children[0])]

    def r_judged_by(self, n: Tree) -> Doc:
        return ["judged by ", self.node(n.children[0])]

    def r_else_refine(self, n: Tree) -> Doc:
        return ["else refine max ", str(n.children[0])]

    def r_else_escalate(self, n: Tree) -> Doc:
        return "else escalate"

    def r_else_retry(self, n: Tree) -> Doc:
        return ["else retry ", str(n.children[0])]

    def r_else_fail(self, n: Tree) -> Doc:
        return "else fail"

    def r_else_accept(self, n: Tree) -> Doc:
        return "else accept"

    def r_consensus_vote(self, n: Tree) -> Doc:
        how, among, quorum = n.children
        doc: list[Doc] = ["consensus ", str(how), " among ", self.node(among)]
        return doc + ([" quorum ", str(quorum)] if quorum is not None else [])

    def r_consensus_judge(self, n: Tree) -> Doc:
        judge, among = n.children
        return ["consensus judge ", self.node(judge), " among ", self.node(among)]

    def r_consensus_ensemble(self, n: Tree) -> Doc:
        by, among = n.children
        return ["consensus ensemble by ", self.node(by), " among ", self.node(among)]

    def r_participants(self, n: Tree) -> Doc:
        child = n.children[0]
        return self.node(child) if isinstance(child, Tree) else [str(child), " models"]

    def r_best_of_clause(self, n: Tree) -> Doc:
        count, judged = n.children
        return ["best_of ", str(count)] + ([" ", self.node(judged)] if judged is not None else [])

    def r_peer_review_clause(self, n: Tree) -> Doc:
        among, rounds = n.children
        return ["peer_review among ", self.node(among)] + ([" rounds ", str(rounds)] if rounds is not None else [])

    def r_reduce_clause(self, n: Tree) -> Doc:
        source, chunks = n.children
        return ["reduce ", str(source)] + ([" in chunks of ", str(chunks)] if chunks is not None else [])

    # -- JSON --------------------------------------------------------------------------------

    def written_on_several_lines(self, n: Tree) -> bool:
        return self.line_of(_start(n)) != self.line_of(_end(n) - 1)

    def r_json_object(self, n: Tree) -> Doc:
        pairs = _kids(n)
        return self.bracketed("{", "}", pairs, _start(n), _end(n), self.node, padded=True,
                              trailing_comma=False, broken=self.written_on_several_lines(n) and bool(pairs))

    def r_json_pair(self, n: Tree) -> Doc:
        key, value = n.children
        return [str(key), ": ", self.node(value)]

    def r_json_array(self, n: Tree) -> Doc:
        values = _kids(n)
        return self.bracketed("[", "]", values, _start(n), _end(n), self.node, trailing_comma=False,
                              broken=self.written_on_several_lines(n) and bool(values))

    def r_json_string(self, n: Tree) -> Doc:
        return str(n.children[0])

    def r_json_number(self, n: Tree) -> Doc:
        return str(n.children[0])

    def r_true_lit(self, n: Tree) -> Doc:
        return "true"

    def r_false_lit(self, n: Tree) -> Doc:
        return "false"

    def r_null_lit(self, n: Tree) -> Doc:
        return "null"

    # -- expressions -------------------------------------------------------------------------

    def _match_parens(self) -> dict[int, int]:
        """Offsets of `(` -> their `)`, skipping strings and comments (for keeping the author's
        parentheses in expressions, which the tree does not record)."""
        import re

        matches: dict[int, int] = {}
        stack: list[int] = []
        skip = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|#[^\n]*', re.S)
        i, text = 0, self.text
        while i < len(text):
            ch = text[i]
            if ch in '"#':
                m = skip.match(text, i)
                if m:
                    i = m.end()
                    continue
            if ch == "(":
                stack.append(i)
            elif ch == ")" and stack:
                matches[stack.pop()] = i
            i += 1
        return matches

    def _skip_back(self, i: int) -> int:
        """The offset of the last character before `i` that is neither blank nor in a comment."""
        i -= 1
        while i >= 0:
            if self.text[i] in " \t\n":
                i -= 1
                continue
            k = bisect.bisect_right(self.pool.starts, i) - 1
            if k >= 0 and self.pool.items[k].start <= i < self.pool.items[k].end:
                i = self.pool.items[k].start - 1
                continue
            return i
        return i

    def _skip_forward(self, i: int) -> int:
        while i < len(self.text):
            ch = self.text[i]
            if ch in " \t\n":
                i += 1
            elif ch == "#":
                while i < len(self.text) and self.text[i] != "\n":
                    i += 1
            else:
                return i
        return i

    def expr(self, n: Node) -> Doc:
        doc, _, _ = self._expr(n)
        return doc

    def _expr(self, n: Node) -> tuple[Doc, int, int]:
        """The expression's layout and its extent in the source, including its own parentheses."""
        data = str(n.data)
        kids = n.children
        start, end = _start(n), _end(n)
        if data in ("or_op", "and_op"):
            left, ls, _ = self._expr(kids[0])
            right, _, re_ = self._expr(kids[1])
            doc: Doc = [left, " or " if data == "or_op" else " and ", right]
            start, end = min(start, ls), max(end, re_)
        elif data == "not_op":
            inner, _, ie = self._expr(kids[0])
            doc, end = ["not ", inner], max(end, ie)
        elif data in ("compare", "in_op", "not_in_op"):
            left, ls, _ = self._expr(kids[0])
            right, _, re_ = self._expr(kids[-1])
            op = {"in_op": "in", "not_in_op": "not in"}.get(data) or str(kids[1])
            doc, start, end = [left, f" {op} ", right], min(start, ls), max(end, re_)
        elif data == "ref":
            doc = ".".join(str(t) for t in kids)
        elif data in ("string_lit", "number_lit"):
            doc = str(kids[0])
        elif data == "negative_lit":
            doc = "-" + str(kids[0])
        elif data in ("true_lit", "false_lit", "null_lit"):
            doc = data[:-4]
        elif data == "list_lit":
            items = [k for k in kids if k is not None]
            doc = self.bracketed("[", "]", items, start, end, self.expr)
        elif data == "object_lit":
            doc = self.node(kids[0])
        else:
            raise _Unformattable(data)
        # the author's parentheses around this expression, kept as written
        while True:
            before = self._skip_back(start)
            after = self._skip_forward(end)
            if before >= 0 and self.paren_match.get(before) == after:
                doc, start, end = ["(", doc, ")"], before, after + 1
            else:
                break
        return doc, start, end


class _Unformattable(Exception):
    pass


def long_string(raw: str) -> Doc:
    """A `\"\"\"` block, re-indented to where it is printed without changing its dedented value.

    The value drops a blank first and last line and removes the lines' common indentation, so the
    content can move to any indentation: it goes two columns in from the clause, with the closing
    quotes at the clause's column. Blocks with text right after the opening quotes keep their
    layout (their first line takes part in the common indentation)."""
    body = raw[3:-3]
    lines = body.split("\n")
    if len(lines) < 2 or lines[0].strip(" \t"):
        return Reindent(lambda indent: raw, len(lines[0]) + 3, len(lines) > 1)
    kept = lines[1:]
    closing_alone = not kept[-1].strip(" \t")
    content = kept[:-1] if closing_alone else kept
    width = len(common_margin(line[:len(line) - len(line.lstrip(" \t"))]
                              for line in content if line.strip(" \t")))

    def render(indent: int) -> str:
        pad = " " * (indent + INDENT)
        out = [""]
        out += ["" if not line.strip(" \t") else pad + line[width:] for line in content]
        if closing_alone:
            out.append(" " * indent)
        return '"""' + "\n".join(out) + '"""'

    return Reindent(render, 3, True)
