"""`when` on a `for each` task: evaluated once for the whole task, so it can't read the loop variable."""

from __future__ import annotations

from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.checks.walk import expression_refs, ref_span
from bmad.compiler.diagnostics import Diagnostic, error


def check_loop_conditions(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            loop = task.for_each
            if loop is None or task.when is None:
                continue
            used = next((r for r in expression_refs(task.when) if r.root == loop.var), None)
            if used is None:
                continue
            out.append(error(
                "BMAD-E132", ref_span(used, task.when.span),
                f"the `when` of task `{task.name}` can't use its loop variable `{loop.var}`: it is "
                "evaluated once for the whole task, before the items",
                "filter the list before (a task that returns the items to keep), or test the item "
                "in the prompt",
            ))
    return out
