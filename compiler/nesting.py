"""Where a parse tree nests too deeply to walk: the lowerer and the formatter walk trees
recursively, and a generated file (a `when` of 5,000 `or` terms) can nest deeper than Python's
stack. Instead of blaming line 1, the diagnostic points at the expression where the nesting
starts, found with an iterative walk that no depth can break."""

from __future__ import annotations

from lark import Tree

from bmad.compiler.diagnostics import Diagnostic, error
from bmad.compiler.source_map import SourceMap

MAX_EXPRESSION_DEPTH = 32  # operators in one `when`; deeper is refused (E020) before it can hurt
TOO_DEEP_CODE = "BMAD-E020"
TOO_DEEP_HINT = ("split the condition: say it shorter (`x in [a, b, c]` for a chain of `or`), or "
                 "compute part of it in an earlier task")
_REPEAT_WINDOW = 4  # a rule that comes back within this many levels is recursing (a or b or c...)


def _heights(tree: Tree) -> dict[int, int]:
    """Each subtree's height, keyed by id, computed without recursion."""
    heights: dict[int, int] = {}
    stack: list[tuple[Tree, bool]] = [(tree, False)]
    while stack:
        node, children_done = stack.pop()
        kids = [c for c in node.children if isinstance(c, Tree)]
        if children_done:
            heights[id(node)] = 1 + max((heights[id(k)] for k in kids), default=0)
        else:
            stack.append((node, True))
            stack.extend((k, False) for k in kids)
    return heights


def deep_nesting(tree: Tree) -> tuple[Tree, int] | None:
    """The outermost node of the deepest branch where a rule starts repeating into itself (the
    first `or` of a long chain), and how deep it goes; None for a tree with no such branch."""
    heights = _heights(tree)
    branch = [tree]
    while True:
        kids = [c for c in branch[-1].children if isinstance(c, Tree)]
        if not kids:
            break
        branch.append(max(kids, key=lambda k: heights[id(k)]))
    for i, node in enumerate(branch):
        if any(later.data == node.data for later in branch[i + 1:i + 1 + _REPEAT_WINDOW]):
            return node, heights[id(node)]
    return None


def too_deep(tree: Tree, source_map: SourceMap, what: str) -> Diagnostic:
    """BMAD-E020 at the start of the deepest nesting (line 1 only if the tree has no positions)."""
    found = deep_nesting(tree)
    meta = getattr(found[0], "meta", None) if found else None
    if meta is None or getattr(meta, "empty", True):
        return error(TOO_DEEP_CODE, source_map.span(0, 0), f"the file is nested too deeply to {what}",
                     TOO_DEEP_HINT)
    # Underline the first line of the expression only: the caret line shows one source line.
    start = meta.start_pos
    line_end = source_map.text.find("\n", start)
    end = meta.end_pos if line_end < 0 else min(meta.end_pos, line_end)
    return error(TOO_DEEP_CODE, source_map.span(start, end),
                 f"this expression is nested more than {MAX_EXPRESSION_DEPTH} deep ({found[1]} levels): too deep "
                 f"to {what}", TOO_DEEP_HINT)
