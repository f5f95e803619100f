"""Input defaults: `input n: number = "three"` gives a default of the wrong type."""

from __future__ import annotations

from bmad.compiler.checks.expressions import show
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.checks.value_types import ANY, assignable, from_literal, from_type_ref, list_of
from bmad.compiler.diagnostics import Diagnostic, error
from bmad.compiler import ir


def literal_type(expr: ir.Expr):
    if isinstance(expr, ir.Literal):
        return from_literal(expr.value)
    if isinstance(expr, ir.ListExpr):
        items = [literal_type(i) for i in expr.items]
        known = [t for t in items if t.kind != "any"]
        return list_of(known[0] if known else ANY)
    return ANY  # defaults that are expressions are not something the lowering produces


def misfit_item(expr: ir.Expr, declared):
    """The first item of a list default (at any depth) that doesn't fit the declared item type,
    with its type; None when every item fits. `literal_type` types a list by its first item."""
    if not isinstance(expr, ir.ListExpr) or declared.kind != "list" or declared.item is None:
        return None
    for item in expr.items:
        given = literal_type(item)
        if not assignable(given, declared.item):
            return item, given
        deeper = misfit_item(item, declared.item)
        if deeper is not None:
            return deeper
    return None


def check_defaults(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for workflow in index.program.workflows:
        for inp in workflow.inputs:
            if inp.default is None:
                continue
            declared = from_type_ref(inp.type)
            given = literal_type(inp.default)
            if not assignable(given, declared):
                out.append(error(
                    "BMAD-E149", inp.default.span if inp.default.span != ir.NO_SPAN else inp.span,
                    f"input `{inp.name}` is {inp.type}, but its default `{show(inp.default)}` is {given.describe()}",
                    f"give a default of type {inp.type}, or change the type",
                ))
                continue
            misfit = misfit_item(inp.default, declared)
            if misfit is not None:
                item, item_type = misfit
                out.append(error(
                    "BMAD-E149", item.span if item.span != ir.NO_SPAN else inp.span,
                    f"input `{inp.name}` is {inp.type}, but its default `{show(inp.default)}` holds "
                    f"`{show(item)}`, which is {item_type.describe()}",
                    f"make every item of the default fit {inp.type}, or change the type",
                ))
    return out
