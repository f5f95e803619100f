"""Evaluates the small expression language of `when`, `for each ... in` and call arguments.

Literals, references (inputs, loop variables, task outputs and their JSON fields), lists, `not`,
unary minus, comparisons, `in`, `and`/`or`. A missing field reads as null, and a comparison that
cannot be made (a number against text, anything against null) is false rather than an error, so a
`when` over an optional field simply does not fire.
"""

from __future__ import annotations

from typing import Any, Mapping

from bmad.compiler import ir
from bmad.runtime.templates import TemplateError

_MISSING = object()


def evaluate(expr: ir.Expr, scope: Mapping[str, Any]) -> Any:
    if isinstance(expr, ir.Literal):
        return expr.value
    if isinstance(expr, ir.Ref):
        return _lookup(expr, scope)
    if isinstance(expr, ir.ListExpr):
        return [evaluate(item, scope) for item in expr.items]
    if isinstance(expr, ir.Unary):
        value = evaluate(expr.operand, scope)
        if expr.op == "not":
            return not truthy(value)
        return -value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if isinstance(expr, ir.Binary):
        if expr.op == "and":
            return truthy(evaluate(expr.left, scope)) and truthy(evaluate(expr.right, scope))
        if expr.op == "or":
            return truthy(evaluate(expr.left, scope)) or truthy(evaluate(expr.right, scope))
        return _compare(expr.op, evaluate(expr.left, scope), evaluate(expr.right, scope))
    raise TypeError(f"not an expression: {type(expr).__name__}")


def truthy(value: Any) -> bool:
    return bool(value)


def _lookup(ref: ir.Ref, scope: Mapping[str, Any]) -> Any:
    value = scope.get(ref.root, _MISSING)
    if value is _MISSING:
        raise TemplateError(f"`{ref.root}` is not an input, loop variable or task output here",
                            ref.span)
    for segment in ref.path[1:]:
        if isinstance(value, dict):
            value = value.get(segment)
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            return None
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # model output often carries numbers as text
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "in":
        if isinstance(right, (list, tuple)):
            return left in right or (isinstance(left, str) and
                                     left.strip().lower() in {str(r).strip().lower() for r in right})
        if isinstance(right, str) and isinstance(left, str):
            return left in right
        if isinstance(right, dict):
            return left in right
        return False
    if op in ("==", "!="):
        equal = _equal(left, right)
        return equal if op == "==" else not equal
    a, b = _number(left), _number(right)
    if a is None or b is None:
        if isinstance(left, str) and isinstance(right, str):
            a, b = left, right  # type: ignore[assignment]
        else:
            return False
    if op == "<":
        return a < b  # type: ignore[operator]
    if op == "<=":
        return a <= b  # type: ignore[operator]
    if op == ">":
        return a > b  # type: ignore[operator]
    if op == ">=":
        return a >= b  # type: ignore[operator]
    raise ValueError(f"unknown operator {op}")


def _equal(left: Any, right: Any) -> bool:
    if left == right:
        return True
    a, b = _number(left), _number(right)
    if a is not None and b is not None and not (isinstance(left, str) and isinstance(right, str)):
        return a == b
    if isinstance(left, str) and isinstance(right, str):
        # enum answers compare without case or surrounding whitespace
        return left.strip().casefold() == right.strip().casefold()
    return False
