"""Type an expression (a `when` condition, a `for each` source, an argument, a default) and report
what is certainly wrong: comparing text with a number (BMAD-E140), ordering non-numbers (BMAD-E141),
`in` on something that isn't a list (BMAD-E142), an enum compared with a value it can't have
(BMAD-E144), `and`/`or`/`not` on something that isn't true/false (BMAD-E145), `-` on a non-number
(BMAD-E148). Unknown types (`json`, unresolved names) are compatible with everything.
"""

from __future__ import annotations

import json

from bmad.compiler import ir
from bmad.compiler.checks.resolve import resolve_ref
from bmad.compiler.checks.scope import ProgramIndex, WorkflowScope
from bmad.compiler.checks.value_types import (
    ANY, BOOL, NUMBER, ValueType, comparable, from_literal, list_of,
)
from bmad.compiler.diagnostics import Diagnostic, error

ORDERING = ("<", "<=", ">", ">=")
EQUALITY = ("==", "!=")


def show(expr: ir.Expr) -> str:
    """The expression as an author would write it, for messages."""
    if isinstance(expr, ir.Ref):
        return str(expr)
    if isinstance(expr, ir.Literal):
        if isinstance(expr.value, str):
            return '"' + expr.value + '"'
        if isinstance(expr.value, bool):
            return "true" if expr.value else "false"
        if expr.value is None:
            return "null"
        if isinstance(expr.value, (dict, list)):  # a JSON object literal: show it as written
            return json.dumps(expr.value)
        return str(expr.value)
    if isinstance(expr, ir.ListExpr):
        return "[" + ", ".join(show(i) for i in expr.items) + "]"
    if isinstance(expr, ir.Unary):
        return f"{expr.op} {show(expr.operand)}" if expr.op == "not" else f"-{show(expr.operand)}"
    if isinstance(expr, ir.Binary):
        return f"{show(expr.left)} {expr.op} {show(expr.right)}"
    return "?"


def expression_type(expr: ir.Expr, task: ir.Task, index: ProgramIndex, scope: WorkflowScope,
                    out: list[Diagnostic] | None, *, where: str,
                    loop_var_visible: bool = True) -> ValueType:
    def visit(node: ir.Expr) -> ValueType:
        if isinstance(node, ir.Literal):
            return from_literal(node.value)
        if isinstance(node, ir.Ref):
            return resolve_ref(node, task, index, scope, out, where=where, loop_var_visible=loop_var_visible)
        if isinstance(node, ir.ListExpr):
            items = [visit(i) for i in node.items]
            known = [t for t in items if t.kind != "any"]
            return list_of(known[0] if known else ANY)
        if isinstance(node, ir.Unary):
            operand = visit(node.operand)
            if node.op == "not":
                require_bool(node.operand, operand, "not", out)
                return BOOL
            if operand.kind not in ("any", "number") and out is not None:
                out.append(error("BMAD-E148", node.span,
                                  f"`-` needs a number, but `{show(node.operand)}` is {operand.describe()}",
                                  "remove the minus sign, or negate a number"))
            return NUMBER
        if isinstance(node, ir.Binary):
            return visit_binary(node)
        return ANY

    def visit_binary(node: ir.Binary) -> ValueType:
        left = visit(node.left)
        right = visit(node.right)
        if node.op in ("and", "or"):
            require_bool(node.left, left, node.op, out)
            require_bool(node.right, right, node.op, out)
            return BOOL
        if out is None:
            return BOOL
        if node.op in EQUALITY:
            check_equality(node, left, right, out)
        elif node.op in ORDERING:
            check_ordering(node, left, right, out)
        elif node.op == "in":
            check_membership(node, left, right, out)
        return BOOL

    return visit(expr)


def require_bool(expr: ir.Expr, kind: ValueType, op: str, out: list[Diagnostic] | None) -> None:
    if out is None or kind.kind in ("any", "bool"):
        return
    out.append(error(
        "BMAD-E145", expr.span,
        f"`{op}` needs true/false, but `{show(expr)}` is {kind.describe()}",
        f"compare it to something, e.g. `{show(expr)} == ...`",
    ))


def check_equality(node: ir.Binary, left: ValueType, right: ValueType, out: list[Diagnostic]) -> None:
    if not comparable(left, right):
        out.append(error(
            "BMAD-E140", node.span,
            f"`{show(node)}` compares {left.describe()} with {right.describe()}, so it is never true",
            "compare values of the same type (write numbers without quotes, text in quotes)",
        ))
        return
    check_enum_value(node.left, left, node.right, out)
    check_enum_value(node.right, right, node.left, out)


def check_enum_value(enum_side: ir.Expr, enum_type: ValueType, other: ir.Expr,
                     out: list[Diagnostic]) -> None:
    if not enum_type.values or not isinstance(other, ir.Literal) or not isinstance(other.value, str):
        return
    if other.value not in enum_type.values:
        from bmad.compiler.checks.suggest import closest

        best = closest(other.value, enum_type.values)
        values = ", ".join(f'"{v}"' for v in enum_type.values)
        out.append(error(
            "BMAD-E144", other.span,
            f'`{show(enum_side)}` is one of {values}; it is never "{other.value}"',
            f'did you mean "{best}"?' if best else f"compare with one of {values}",
        ))


def check_ordering(node: ir.Binary, left: ValueType, right: ValueType, out: list[Diagnostic]) -> None:
    numeric = ("any", "number")
    if left.kind in numeric and right.kind in numeric:
        return
    if left.kind in numeric or right.kind in numeric:
        # One side is a number and the other is certainly not: a comparison across types.
        bad, other, bad_type, other_type = ((node.left, node.right, left, right) if left.kind not in numeric
                                            else (node.right, node.left, right, left))
        out.append(error(
            "BMAD-E140", node.span,
            f"`{show(node)}` compares {bad_type.describe()} (`{show(bad)}`) with {other_type.describe()}",
            f"declare `{show(bad)}` as a number, or compare it with text using `==` or `!=`"
            if isinstance(bad, ir.Ref) else "compare values of the same type",
        ))
        return
    out.append(error(
        "BMAD-E141", node.span,
        f"`{node.op}` orders numbers, but `{show(node)}` compares {left.describe()} with {right.describe()}",
        "use `==` or `!=` for text, or compare numbers",
    ))


def check_membership(node: ir.Binary, left: ValueType, right: ValueType, out: list[Diagnostic]) -> None:
    if right.kind == "any" or (right.kind == "object" and right.fields is None):
        return
    if right.kind != "list":
        out.append(error(
            "BMAD-E142", node.right.span,
            f"`in` looks inside a list, but `{show(node.right)}` is {right.describe()}",
            "use a list on the right of `in`, e.g. `x in [\"a\", \"b\"]` or a `list<...>` input",
        ))
        return
    item = right.item or ANY
    if not comparable(left, item):
        out.append(error(
            "BMAD-E140", node.span,
            f"`{show(node)}` looks for {left.describe()} in {right.describe()}, so it is never true",
            "compare values of the same type",
        ))
