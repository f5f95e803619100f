"""Things written but never used: inputs no task reads, tasks whose result nothing uses, a workflow
without outputs, and `depends` entries that repeat a dependency a template already makes (info)."""

from __future__ import annotations

from bmad.compiler import ir
from bmad.compiler.checks.scope import ProgramIndex, WorkflowScope
from bmad.compiler.checks.walk import expression_refs, template_interpolations
from bmad.compiler.diagnostics import Diagnostic, Related, warning


def input_uses(task: ir.Task) -> set[str]:
    """Names `task` reads that may be inputs (its loop variable hides an input of the same name)."""
    var = task.for_each.var if task.for_each is not None else None
    names = {p.ref.root for p in template_interpolations(task)}
    names.update(r.root for r in expression_refs(task.when))
    if task.call is not None:
        for arg in task.call.arguments:
            names.update(r.root for r in expression_refs(arg.value))
    names.discard(var)
    if task.for_each is not None:
        names.update(r.root for r in expression_refs(task.for_each.source))
    return names


def check_workflow(scope: WorkflowScope, out: list[Diagnostic]) -> None:
    workflow = scope.workflow
    outputs = {o.name for o in workflow.outputs}
    used_inputs: set[str] = set(outputs)
    used_tasks: set[str] = set(outputs)
    # A misspelt name may be the missing use: then "unused" would mislead.
    unresolved = any(o.name not in scope.tasks and o.name not in scope.inputs for o in workflow.outputs)
    for task in scope.tasks.values():
        uses = input_uses(task)
        used_inputs |= uses
        if not unresolved:
            unresolved = any(n not in scope.inputs and n not in scope.tasks for n in uses) or any(
                d.name not in scope.tasks for d in task.depends) or (
                task.reduce is not None and task.reduce.source.name not in scope.tasks)
        edges = scope.edges.get(task.name, [])
        implicit: dict[str, ir.Span] = {}
        for edge in edges:
            used_tasks.add(edge.target)
            if edge.via != "depends":
                implicit.setdefault(edge.target, edge.span)
        for dep in task.depends:
            # A front end that derives both from the same words (the seed's `dependencies`) is no repeat.
            if dep.name in implicit and implicit[dep.name] != dep.span:
                out.append(Diagnostic(
                    "BMAD-W103", "info", dep.span,
                    f"`depends {dep.name}` is implied: task `{task.name}` already uses `{dep.name}`",
                    f"you may remove `{dep.name}` from `depends`",
                    (Related(implicit[dep.name], f"`{dep.name}` is used here"),),
                ))
    if not workflow.outputs:
        out.append(warning(
            "BMAD-W102", workflow.name_span,
            f"workflow `{workflow.name}` has no outputs, so its results are not returned",
            "add `output TASK` for each result the caller needs",
        ))
    if unresolved:
        return
    for name, inp in scope.inputs.items():
        if name not in used_inputs:
            out.append(warning(
                "BMAD-W100", inp.span,
                f"input `{name}` of workflow `{workflow.name}` is never used",
                f"use it in a prompt as `{{{{ {name} }}}}`, or remove it",
            ))
    if not workflow.outputs:
        return  # every task would be "unused": BMAD-W102 says it once
    for name, task in scope.tasks.items():
        if name not in used_tasks and name not in scope.inputs:  # a clash with an input is BMAD-E128
            out.append(warning(
                "BMAD-W101", task.name_span,
                f"the result of task `{name}` is never used",
                f"add `output {name}`, or use `{{{{ {name} }}}}` in another task, or remove it",
            ))


def check_usage(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        if not index.in_stdlib(scope.workflow.span):
            check_workflow(scope, out)
    return out
