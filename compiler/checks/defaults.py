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
    return out
