"""Resolve dependencies: explicit `depends` plus implicit edges from every reference to a task.

A task depends on each task it names in `depends`, in a `{{ ref }}` of its prompt or system text,
in its `when` condition, its `for each` list, its call arguments, or its `reduce` source. The graph
must be acyclic (BMAD-E201 prints the cycle); its topological generations are the parallel stages.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import networkx as nx

from bmad.compiler import ir
from bmad.compiler.diagnostics import error
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, revise


def expression_refs(expr: ir.Expr | None) -> Iterator[ir.Ref]:
    if expr is None:
        return
    if isinstance(expr, ir.Ref):
        yield expr
    elif isinstance(expr, ir.ListExpr):
        for item in expr.items:
            yield from expression_refs(item)
    elif isinstance(expr, ir.Unary):
        yield from expression_refs(expr.operand)
    elif isinstance(expr, ir.Binary):
        yield from expression_refs(expr.left)
        yield from expression_refs(expr.right)


def task_refs(task: ir.Task) -> Iterator[ir.Ref]:
    for template in (task.prompt, task.system):
        if template is not None:
            yield from template.refs
    yield from expression_refs(task.when)
    if task.for_each:
        yield from expression_refs(task.for_each.source)
    if task.call:
        for argument in task.call.arguments:
            yield from expression_refs(argument.value)


def referenced_tasks(task: ir.Task, task_names: set[str]) -> list[str]:
    """The tasks `task` depends on, in first-mention order, without duplicates."""
    loop_var = task.for_each.var if task.for_each else None
    names: Iterable[str] = [n.name for n in task.depends]
    names = list(names) + [r.root for r in task_refs(task) if r.root != loop_var]
    if task.reduce:
        names.append(task.reduce.source.name)
    seen: dict[str, None] = {}
    for name in names:
        if name in task_names and name != task.name:
            seen.setdefault(name, None)
    return list(seen)


def resolve_dependencies(draft: Draft, context: PassContext) -> Draft:
    for wd in draft.workflows.values():
        names = set(wd.tasks)
        graph = nx.DiGraph()
        graph.add_nodes_from(wd.tasks)
        edges = []
        for td in wd.tasks.values():
            depends = referenced_tasks(td.task, names)
            td.plan = revise(td.plan, depends=tuple(depends))
            edges.extend((d, td.id) for d in depends)
        graph.add_edges_from(edges)  # in bulk: one call instead of one per task
        wd.graph = graph
        position = {name: i for i, name in enumerate(wd.tasks)}.__getitem__
        try:
            wd.order = list(nx.lexicographical_topological_sort(graph, key=position))
            wd.generations = [sorted(g, key=position) for g in nx.topological_generations(graph)]
        except nx.NetworkXUnfeasible:
            cycle = [u for u, _v in nx.find_cycle(graph)]
            first = wd.tasks[cycle[0]].task
            draft.report(error(
                "BMAD-E201", first.name_span if first.name_span != ir.NO_SPAN else first.span,
                f"tasks depend on each other in a cycle: {' -> '.join(cycle + [cycle[0]])}",
                "remove one of these dependencies (a `depends` or a `{{ ref }}`)"))
            wd.order, wd.generations = [], []
    return draft
