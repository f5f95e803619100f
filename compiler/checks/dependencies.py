"""The dependency edges of a workflow: explicit `depends` plus every implicit use of another task.

A task waits for another when it lists it in `depends`, interpolates it in a template (`{{ t }}`),
reads it in its `when` condition, loops over it (`for each x in t`), passes it to a subworkflow call,
or `reduce`s it. Names that are not tasks (inputs, the loop variable, unknown names) make no edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from bmad.compiler import ir
from bmad.compiler.checks.walk import expression_refs, ref_span, template_interpolations

if TYPE_CHECKING:
    from bmad.compiler.checks.scope import WorkflowScope

Via = Literal["depends", "template", "when", "for each", "argument", "reduce"]


@dataclass(frozen=True, slots=True)
class Edge:
    source: str  # the task that waits
    target: str  # the task it waits for
    span: ir.Span  # where the dependency is written
    via: Via


def refers_to_task(name: str, task: ir.Task, scope: "WorkflowScope", *, loop_var_visible: bool = True) -> bool:
    if loop_var_visible and task.for_each is not None and task.for_each.var == name:
        return False
    return name not in scope.inputs and name in scope.tasks


def task_edges(task: ir.Task, scope: "WorkflowScope") -> list[Edge]:
    edges: list[Edge] = []
    for dep in task.depends:
        if dep.name in scope.tasks:
            edges.append(Edge(task.name, dep.name, dep.span, "depends"))
    for part in template_interpolations(task):
        if refers_to_task(part.ref.root, task, scope):
            edges.append(Edge(task.name, part.ref.root, ref_span(part.ref, part.span), "template"))
    for ref in expression_refs(task.when):
        if refers_to_task(ref.root, task, scope):
            edges.append(Edge(task.name, ref.root, ref.span, "when"))
    if task.for_each is not None:
        for ref in expression_refs(task.for_each.source):
            if refers_to_task(ref.root, task, scope, loop_var_visible=False):
                edges.append(Edge(task.name, ref.root, ref.span, "for each"))
    if task.call is not None:
        for arg in task.call.arguments:
            for ref in expression_refs(arg.value):
                if refers_to_task(ref.root, task, scope):
                    edges.append(Edge(task.name, ref.root, ref.span, "argument"))
    if task.reduce is not None and task.reduce.source.name in scope.tasks:
        edges.append(Edge(task.name, task.reduce.source.name, task.reduce.source.span, "reduce"))
    return edges


def workflow_edges(scope: "WorkflowScope") -> dict[str, list[Edge]]:
    """Edges by the name of the task that waits (first definition of each name only)."""
    return {name: task_edges(task, scope) for name, task in scope.tasks.items()}
