"""Name tables for one program, built once per check run: what each name means in each position.

The first declaration of a name wins (duplicates are reported by `duplicates.py`), so every other
check can look names up in constant time and stay linear in the size of the program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from bmad.compiler import ir


class WorkflowScope:
    """The tasks and inputs of one workflow, by name."""

    def __init__(self, workflow: ir.Workflow) -> None:
        self.workflow = workflow
        self.tasks: dict[str, ir.Task] = {}
        for task in workflow.tasks:
            self.tasks.setdefault(task.name, task)
        self.inputs: dict[str, ir.Input] = {}
        for inp in workflow.inputs:
            self.inputs.setdefault(inp.name, inp)

    def loop_var(self, task: ir.Task) -> str | None:
        return task.for_each.var if task.for_each is not None else None

    def visible_names(self, task: ir.Task, *, with_loop_var: bool = True) -> list[str]:
        """Names a reference inside `task` may use (the task itself excluded: that is a cycle)."""
        names = list(self.inputs)
        names += [n for n in self.tasks if n != task.name]
        var = self.loop_var(task)
        if with_loop_var and var is not None:
            names.append(var)
        return names

    @cached_property
    def edges(self):
        from bmad.compiler.checks.dependencies import workflow_edges

        return workflow_edges(self)


@dataclass
class ProgramIndex:
    program: ir.Program
    models: dict[str, ir.Model] = field(default_factory=dict)  # names and aliases
    providers: dict[str, ir.Provider] = field(default_factory=dict)
    workflows: dict[str, WorkflowScope] = field(default_factory=dict)
    capabilities: dict[str, list[ir.Model]] = field(default_factory=dict)
    stdlib_files: frozenset[str] = frozenset()
    # (workflow, task) -> the type of the task's result, filled in by `resolve.task_result_type`.
    result_types: dict = field(default_factory=dict)

    def in_stdlib(self, span: ir.Span) -> bool:
        return span.file in self.stdlib_files

    def model_names(self) -> list[str]:
        return list(self.models)


def build_index(program: ir.Program) -> ProgramIndex:
    index = ProgramIndex(program)
    index.stdlib_files = frozenset(f.path for f in program.files if f.role == "stdlib")
    for provider in program.providers:
        index.providers.setdefault(provider.name, provider)
    for model in program.models:
        index.models.setdefault(model.name, model)
    for model in program.models:
        for alias in model.aliases:
            index.models.setdefault(alias, model)
        for skill in model.skills:
            index.capabilities.setdefault(skill.name, []).append(model)
    for workflow in program.workflows:
        if workflow.name not in index.workflows:
            index.workflows[workflow.name] = WorkflowScope(workflow)
    return index
