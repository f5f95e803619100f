"""Named rubrics: `rubric NAME "text"` declarations, and `quality >= X rubric NAME` resolved to them.

Rubric names are program-wide, like models: a file sees the rubrics of every file loaded with it
(its imports, and the stdlib modules a `use` brings in: `use std.quality` gives `grounded`,
`factual`, ...). A rubric declared in your own files replaces a stdlib rubric of the same name;
two of your own with one name are an error (BMAD-E126). Resolution puts the rubric's text in
`Quality.rubric` and keeps the name in `Quality.rubric_name`, so planning and the runtime read the
text whichever way it was written. A name that no loaded file declares is BMAD-E110.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic, Related, error
from bmad.compiler.lower import FileUnit, Rubric, RubricRef

QUALITY_MODULE = "quality"  # the stdlib module whose rubrics the hint of an unknown name points at


def declared_rubrics(units: Iterable[tuple[str, FileUnit]]) -> tuple[dict[str, Rubric], list[Diagnostic]]:
    """Rubrics by name from (role, unit) pairs, the user's over the stdlib's; duplicates reported."""
    units = list(units)
    mine: dict[str, Rubric] = {}
    problems: list[Diagnostic] = []
    for role, unit in units:
        if role == "stdlib":
            continue
        for rubric in unit.rubrics:
            first = mine.get(rubric.name)
            if first is None:
                mine[rubric.name] = rubric
                continue
            problems.append(error("BMAD-E126", rubric.name_span, f"rubric `{rubric.name}` is defined twice",
                                  "rename one of them, or remove this one",
                                  [Related(first.name_span, "first defined here")]))
    found: dict[str, Rubric] = {}
    for role, unit in units:
        if role == "stdlib":
            for rubric in unit.rubrics:
                found.setdefault(rubric.name, rubric)
    found.update(mine)
    return found, problems


def unknown_rubrics(refs: Iterable[RubricRef], rubrics: Mapping[str, Rubric]) -> list[Diagnostic]:
    """BMAD-E110 for each `rubric NAME` that names no declared rubric."""
    from bmad.compiler.checks.suggest import closest

    problems = []
    for ref in refs:
        if ref.name in rubrics:
            continue
        guess = closest(ref.name, rubrics)
        if guess is not None:
            hint = f"did you mean `{guess}`?"
        elif ref.name in std_rubric_names():
            hint = f"`use std.{QUALITY_MODULE}` brings the named rubric `{ref.name}`"
        else:
            hint = (f'declare it (`rubric {ref.name} "what the judge checks"`), write the text itself '
                    f'(`rubric "..."`), or `use std.{QUALITY_MODULE}` for the standard ones')
        problems.append(error("BMAD-E110", ref.span, f"no rubric named `{ref.name}`", hint))
    return problems


def resolve_rubrics(workflows: Iterable[ir.Workflow], rubrics: Mapping[str, Rubric]) -> list[ir.Workflow]:
    """The workflows with each named rubric's text filled in (unknown names are left as they are)."""
    resolved = []
    for workflow in workflows:
        tasks = tuple(_resolved_task(t, rubrics) for t in workflow.tasks)
        changed = any(a is not b for a, b in zip(tasks, workflow.tasks))
        resolved.append(ir.replace(workflow, tasks=tasks) if changed else workflow)
    return resolved


def _resolved_task(task: ir.Task, rubrics: Mapping[str, Rubric]) -> ir.Task:
    quality = task.quality
    if quality is None or quality.rubric_name is None or quality.rubric is not None:
        return task
    rubric = rubrics.get(quality.rubric_name)
    if rubric is None:
        return task
    return ir.replace(task, quality=ir.replace(quality, rubric=rubric.text))


def std_rubric_names() -> frozenset[str]:
    from bmad.compiler.load import stdlib_unit

    unit = stdlib_unit(QUALITY_MODULE)
    return frozenset(r.name for r in unit.rubrics) if unit is not None else frozenset()


__all__ = ["declared_rubrics", "resolve_rubrics", "std_rubric_names", "unknown_rubrics"]
