"""`for each` loops: the source must be a list, and the loop variable must not hide another name."""

from __future__ import annotations

from bmad.compiler.checks.expressions import expression_type, show
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, Related, error, warning


def check_loops(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            loop = task.for_each
            if loop is None:
                continue
            where = f"in the `for each` source of task `{task.name}`"
            source = expression_type(loop.source, task, index, scope, out, where=where, loop_var_visible=False)
            if source.kind not in ("any", "list") and not (source.kind == "object" and source.fields is None):
                out.append(error(
                    "BMAD-E146", loop.source.span,
                    f"`for each` needs a list, but `{show(loop.source)}` is {source.describe()}",
                    "loop over a `list<...>` input, a list literal, or a task that returns a JSON array",
                ))
            shadowed = scope.inputs.get(loop.var) or scope.tasks.get(loop.var)
            if shadowed is not None and not index.in_stdlib(task.span):
                what = "input" if loop.var in scope.inputs else "task"
                where_defined = shadowed.span if what == "input" else shadowed.name_span
                out.append(warning(
                    "BMAD-W104", loop.span,
                    f"loop variable `{loop.var}` hides the {what} `{loop.var}` inside task `{task.name}`",
                    "rename the loop variable; inside this task `{{ " + loop.var + " }}` means the current item",
                    [Related(where_defined, f"the {what} `{loop.var}` is defined here")],
                ))
    return out
