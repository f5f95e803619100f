"""Type-check `when` conditions: every name defined, every comparison sensible, the whole true/false."""

from __future__ import annotations

from bmad.compiler.checks.expressions import expression_type, show
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, error


def check_conditions(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            if task.when is None:
                continue
            where = f"in the `when` condition of task `{task.name}`"
            kind = expression_type(task.when, task, index, scope, out, where=where)
            if kind.kind not in ("any", "bool"):
                out.append(error(
                    "BMAD-E145", task.when.span,
                    f"a `when` condition must be true or false, but `{show(task.when)}` is {kind.describe()}",
                    f"compare it to something, e.g. `when {show(task.when)} == ...`",
                ))
    return out
