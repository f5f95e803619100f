"""Reduce prompts: a task that reduces a list must show it to the model (`{{ SOURCE }}`).

`reduce SOURCE [in chunks of N]` binds SOURCE, for each call the task makes, to the chunk (or, at
the last level, the list) being combined; the model sees it only where the task's `prompt` or
`system` interpolates it (`{{ SOURCE }}` or `{{ SOURCE.field }}`). Without that, every call sends
the same text and nothing is combined, so it is an error (BMAD-E194), reported at the `reduce`
clause.
"""

from __future__ import annotations

from bmad.compiler import ir
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, error


def check_reduce_prompts(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            reduce = task.reduce
            if reduce is None or task.prompt is None:
                continue
            if reduce.chunk_size is not None and reduce.chunk_size < 2:  # BMAD-E191 rejects the clause
                continue
            source = reduce.source.name
            target = scope.tasks.get(source)
            if target is None or target.for_each is None:  # BMAD-E100 / BMAD-E109 say why
                continue
            if _interpolates(task.prompt, source) or _interpolates(task.system, source):
                continue
            what = "no chunk reaches" if reduce.chunk_size is not None else "the list never reaches"
            span = reduce.span if reduce.span != ir.NO_SPAN else task.name_span
            out.append(error(
                "BMAD-E194", span,
                f"task `{task.name}` reduces `{source}` but its prompt never uses `{{{{ {source} }}}}`, "
                f"so {what} the model",
                f"use `{{{{ {source} }}}}` in the prompt, where the results to combine belong",
            ))
    return out


def _interpolates(template: ir.Template | None, name: str) -> bool:
    return template is not None and any(ref.root == name for ref in template.refs)
