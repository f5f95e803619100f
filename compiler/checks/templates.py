"""Templates: every `{{ name }}` is an input, the task's loop variable or a task, and every
`{{ task.field }}` is a field the task's JSON schema declares."""

from __future__ import annotations

from bmad.compiler.checks.resolve import resolve_ref
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic
from bmad.compiler import ir


def check_templates(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            # A front end that writes one `depends` and one `{{ }}` from the same words (the seed's
            # `dependencies`) gets one report, from `depends` (BMAD-E100).
            derived = {(d.name, d.span) for d in task.depends}
            for clause, template in (("system", task.system), ("prompt", task.prompt)):
                if template is None:
                    continue
                where = f"in the {clause} of task `{task.name}`"
                for part in template.parts:
                    if isinstance(part, ir.Interpolation) and (part.ref.root, part.ref.span) not in derived:
                        resolve_ref(part.ref, task, index, scope, out, where=where, span=part.span)
    return out
