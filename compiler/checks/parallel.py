"""`parallel { ... }` blocks: a task that waits for another task of the same block can't run
beside it, which the block promises (a warning: the dependency wins)."""

from __future__ import annotations

from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, Related, warning


def check_parallel(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            group = task.parallel_group
            if group is None:
                continue
            reported: set[str] = set()
            for edge in scope.edges.get(task.name, []):
                other = scope.tasks[edge.target]
                if other.parallel_group == group and edge.target != task.name and edge.target not in reported:
                    reported.add(edge.target)
                    out.append(warning(
                        "BMAD-W109", edge.span,
                        f"task `{task.name}` waits for `{edge.target}`, which is in the same `parallel` block",
                        f"the two run one after the other; move `{task.name}` after the block, "
                        "or drop the dependency",
                        [Related(other.name_span, f"`{edge.target}` is defined here")],
                    ))
    return out
