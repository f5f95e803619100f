"""Walk the references in expressions and templates, in source order."""

from __future__ import annotations

from typing import Iterator

from bmad.compiler import ir


def expression_refs(expr: ir.Expr | None) -> Iterator[ir.Ref]:
    stack = [expr] if expr is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, ir.Ref):
            yield node
        elif isinstance(node, ir.Binary):
            stack.append(node.right)
            stack.append(node.left)
        elif isinstance(node, ir.Unary):
            stack.append(node.operand)
        elif isinstance(node, ir.ListExpr):
            stack.extend(reversed(node.items))


def template_interpolations(task: ir.Task) -> Iterator[ir.Interpolation]:
    for template in (task.system, task.prompt):
        if template is None:
            continue
        for part in template.parts:
            if isinstance(part, ir.Interpolation):
                yield part


def ref_span(ref: ir.Ref, fallback: ir.Span) -> ir.Span:
    return fallback if ref.span is ir.NO_SPAN else ref.span
