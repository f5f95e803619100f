"""Names declared twice: tasks and inputs and outputs of a workflow, workflows, models, providers,
and values of an enum. The second declaration is the error; a note points at the first."""

from __future__ import annotations

from typing import Iterable

from bmad.compiler import ir
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, Related, error


def find_duplicates(items: Iterable[tuple[str, ir.Span]], code: str, what: str, scope_text: str,
                    out: list[Diagnostic]) -> None:
    first: dict[str, ir.Span] = {}
    for name, span in items:
        seen = first.get(name)
        if seen is None:
            first[name] = span
        elif seen != span:  # the same declaration reached twice (a file imported twice) is no clash
            out.append(error(
                code, span,
                f"{what} `{name}` is defined twice{scope_text}",
                "rename one of them, or remove this one",
                [Related(seen, "first defined here")],
            ))


def check_duplicates(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    program = index.program
    find_duplicates(((w.name, w.name_span) for w in program.workflows), "BMAD-E123", "workflow", "", out)
    model_names = []
    for m in program.models:
        model_names.append((m.name, m.name_span))
        model_names.extend((alias, m.name_span) for alias in m.aliases if alias != m.name)
    find_duplicates(model_names, "BMAD-E124", "model", "", out)
    find_duplicates(((p.name, p.name_span) for p in program.providers), "BMAD-E125", "provider", "", out)
    for wf in program.workflows:
        in_wf = f" in workflow `{wf.name}`"
        find_duplicates(((t.name, t.name_span) for t in wf.tasks), "BMAD-E120", "task", in_wf, out)
        find_duplicates(((i.name, i.span) for i in wf.inputs), "BMAD-E121", "input", in_wf, out)
        find_duplicates(((o.name, o.span) for o in wf.outputs), "BMAD-E122", "output", in_wf, out)
        inputs = {i.name: i for i in wf.inputs}
        for task in wf.tasks:
            clash = inputs.get(task.name)
            if clash is not None:
                out.append(error(
                    "BMAD-E128", task.name_span,
                    f"task `{task.name}` has the same name as an input of workflow `{wf.name}`",
                    f"rename the task: `{{{{ {task.name} }}}}` must mean one thing",
                    [Related(clash.span, f"input `{task.name}` is declared here")],
                ))
            returns = task.returns
            if returns is not None and returns.kind == "enum":
                seen: set[str] = set()
                for value in returns.values:
                    if value in seen:
                        out.append(error(
                            "BMAD-E127", returns.span,
                            f"`returns enum` of task `{task.name}` lists `{value}` twice",
                            "list each value once",
                        ))
                    seen.add(value)
                if not returns.values:
                    out.append(error(
                        "BMAD-E171", returns.span,
                        f"`returns enum` of task `{task.name}` lists no values",
                        "list the answers the task may give, e.g. `returns enum(YES, NO)`",
                    ))
    return out
