"""Names of tasks in `depends`, `reduce` and `output`: each must name something in the workflow."""

from __future__ import annotations

from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.checks.suggest import did_you_mean
from bmad.compiler.diagnostics import Diagnostic, Related, error


def check_references(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        wf = scope.workflow.name
        for task in scope.tasks.values():
            def others() -> list[str]:  # only built when something is wrong: keeps the check linear
                return [n for n in scope.tasks if n != task.name]

            for dep in task.depends:
                if dep.name not in scope.tasks:
                    hint = did_you_mean(dep.name, others(), "tasks")
                    if dep.name in scope.inputs:
                        hint = f"`{dep.name}` is an input, which is always ready: remove it from `depends`"
                    out.append(error("BMAD-E100", dep.span,
                                     f"task `{task.name}` depends on `{dep.name}`, which is not a task of workflow `{wf}`",
                                     hint))
            if task.reduce is not None:
                source = task.reduce.source
                target = scope.tasks.get(source.name)
                if target is None:
                    out.append(error("BMAD-E100", source.span,
                                     f"task `{task.name}` reduces `{source.name}`, which is not a task of workflow `{wf}`",
                                     did_you_mean(source.name, [n for n in others() if scope.tasks[n].for_each],
                                                  "`for each` tasks")))
                elif target.for_each is None:
                    out.append(error("BMAD-E109", source.span,
                                     f"`reduce {source.name}`: task `{source.name}` has no `for each`, so there is no list to reduce",
                                     f"add `for each ITEM in LIST` to task `{source.name}`, or use `{{{{ {source.name} }}}}` in the prompt instead of `reduce`",
                                     [Related(target.name_span, f"task `{source.name}` is defined here")]))
        names = list(scope.tasks) + list(scope.inputs)
        for output in scope.workflow.outputs:
            if output.name not in scope.tasks and output.name not in scope.inputs:
                out.append(error("BMAD-E102", output.span,
                                 f"output `{output.name}` names no task or input of workflow `{wf}`",
                                 did_you_mean(output.name, names, "tasks and inputs")))
    return out
