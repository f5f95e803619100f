"""Dependency cycles between tasks (explicit and implicit edges), and workflows that call
themselves, directly or through others. Each cycle is printed as a path with a note per edge."""

from __future__ import annotations

import networkx as nx

from bmad.compiler import ir
from bmad.compiler.checks.dependencies import Edge
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, Related, error

VIA_TEXT = {
    "depends": "depends on",
    "template": "uses the result of",
    "when": "reads in its `when` condition",
    "for each": "loops over",
    "argument": "passes as an argument",
    "reduce": "reduces",
}


def cycle_through(graph: nx.DiGraph, component: set, start) -> list:
    """The shortest cycle through `start` inside one strongly connected component (one BFS)."""
    if graph.has_edge(start, start):
        return [start, start]
    parent = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in graph.successors(node):
                if succ == start:
                    path = [node]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if succ in component and succ not in parent:
                    parent[succ] = node
                    following.append(succ)
        frontier = following
    return [start, start]  # unreachable for a real component


def ordered_cycles(graph: nx.DiGraph, order: dict) -> list[list]:
    """One cycle per strongly connected component that has one, starting at its earliest node."""
    cycles = []
    for component in nx.strongly_connected_components(graph):
        start = min(component, key=lambda n: order[n])
        if len(component) > 1 or graph.has_edge(start, start):
            cycles.append(cycle_through(graph, component, start))
    cycles.sort(key=lambda c: order[c[0]])
    return cycles


def check_task_cycles(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        first_edge: dict[tuple[str, str], Edge] = {}  # where each dependency is first written
        for edges in scope.edges.values():
            for edge in edges:
                first_edge.setdefault((edge.source, edge.target), edge)
        order = {name: position for position, name in enumerate(scope.edges)}
        graph = nx.DiGraph()
        graph.add_nodes_from(order)
        graph.add_edges_from(first_edge)
        for cycle in ordered_cycles(graph, order):
            edges: list[Edge] = [first_edge[a, b] for a, b in zip(cycle, cycle[1:])]
            path = " -> ".join(cycle)
            if len(cycle) == 2 and cycle[0] == cycle[1]:
                message = f"task `{cycle[0]}` depends on itself: {path}"
                hint = f"a task can't use its own result; remove the reference to `{cycle[0]}`"
            else:
                message = f"dependency cycle: {path}"
                hint = ("each task waits for the next, so none can start; "
                        "remove one of these references or `depends`")
            out.append(error(
                "BMAD-E130", edges[0].span, message, hint,
                [Related(e.span, f"`{e.source}` {VIA_TEXT[e.via]} `{e.target}` here") for e in edges],
            ))
    return out


def check_workflow_cycles(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    graph = nx.DiGraph()
    order = {}
    for position, (name, scope) in enumerate(index.workflows.items()):
        graph.add_node(name)
        order[name] = position
        for task in scope.tasks.values():
            if task.call is not None and task.call.workflow.name in index.workflows:
                if not graph.has_edge(name, task.call.workflow.name):
                    graph.add_edge(name, task.call.workflow.name, call=task.call.workflow, task=task.name)
    for cycle in ordered_cycles(graph, order):
        steps = [(a, b, graph.edges[a, b]) for a, b in zip(cycle, cycle[1:])]
        first: ir.Name = steps[0][2]["call"]
        out.append(error(
            "BMAD-E131", first.span,
            f"workflow `{cycle[0]}` calls itself: {' -> '.join(cycle)}",
            "a workflow can't run inside itself; call a different workflow, or use `for each` to repeat work",
            [Related(data["call"].span, f"task `{data['task']}` of `{a}` calls `{b}` here") for a, b, data in steps],
        ))
    return out
