"""Expand: pick the workflows to plan, apply strategy defaults, size fan-outs, hook stdlib patterns.

`import`/`use std.*` are already merged by the loader. This pass
- collects the entry workflow and every workflow it calls (transitively), callees first, and
  reports a call cycle (BMAD-E200);
- under `strategy collaborative`, gives each prompt task without a consensus clause the seed's
  default, `consensus vote among 3 models` (marked implicit), unless the task pins a model or
  routes itself (`model`, `route`: the author's explicit choice wins; `route_models` makes a
  routed task a panel of its route's models, and a pinned one stays with its model) or says
  `fallback none` (it must not reach another model) or `fallback only [...]` (only the written
  ones may: a panel of three would ask models from outside the group);
- turns a task whose `pattern` (the seed's task_type) names a workflow of the program, and that has
  no prompt or call of its own, into a call of that workflow (the stdlib pattern hook);
- sizes each `for each`: the list's length when known (a literal list, a value of the entry
  workflow's inputs in the context's `inputs`, or an input's default), else the context's
  `default_fan_out` (10), with the plan risk BMAD-W234 saying the size is assumed;
- records the run's strategy (the context's override, else the entry workflow's): under
  `sequential` every workflow of the run runs one task at a time.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from bmad.compiler import ir
from bmad.compiler.diagnostics import error
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, TaskDraft, WorkflowDraft
from bmad.compiler.plan import TaskPlan
from bmad.compiler.prices import PRICE_NOTE_CODE, price_note

COLLABORATIVE_DEFAULT = ir.Consensus(method="vote", count=3, implicit=True)


def apply_pattern(task: ir.Task, program: ir.Program) -> ir.Task:
    """The stdlib pattern hook: a prompt-less task whose pattern names a workflow calls it."""
    if task.pattern and task.prompt is None and task.call is None:
        target = program.workflow(task.pattern)
        if target is not None:
            return replace(task, call=ir.Call(workflow=ir.Name(task.pattern, task.span), span=task.span))
    return task


def apply_strategy_defaults(workflow: ir.Workflow) -> ir.Workflow:
    if workflow.strategy != "collaborative":
        return workflow
    tasks = tuple(
        replace(t, consensus=replace(COLLABORATIVE_DEFAULT, span=t.span))
        if t.consensus is None and t.call is None and t.model is None and t.route is None
        and not t.no_fallback else t
        for t in workflow.tasks
    )
    return replace(workflow, tasks=tasks)


def _literal_length(value: Any) -> int | None:
    return len(value) if isinstance(value, (list, tuple)) else None


def known_fan_out(for_each: ir.ForEach, workflow: ir.Workflow,
                  inputs: Mapping[str, Any]) -> int | None:
    """The length of the list a `for each` walks when the plan can know it: a literal list, a
    known input value (`inputs`: the values of `workflow`'s inputs, when known), an input's
    default. None: it depends on what the run is given or computes."""
    source = for_each.source
    if isinstance(source, ir.ListExpr):
        return len(source.items)
    if isinstance(source, ir.Literal):
        size = _literal_length(source.value)
        if size is not None:
            return size
    if isinstance(source, ir.Ref) and len(source.path) == 1:
        if source.root in inputs and workflow.input(source.root) is not None:
            size = _literal_length(inputs[source.root])
            if size is not None:
                return size
        declared = workflow.input(source.root)
        if declared is not None and declared.default is not None:
            default = declared.default
            size = (len(default.items) if isinstance(default, ir.ListExpr)
                    else _literal_length(default.value) if isinstance(default, ir.Literal) else None)
            if size:  # an empty default list says nothing about real runs
                return size
    return None


def _assumed_fan_out_note(draft: Draft, task: ir.Task, workflow: ir.Workflow, size: int) -> None:
    """BMAD-W234: the plan sized a `for each` it can't know the length of."""
    source = task.for_each.source  # type: ignore[union-attr]
    if isinstance(source, ir.Ref) and workflow.input(source.root) is not None:
        what = f"the input `{source}`"
    elif isinstance(source, ir.Ref):
        what = f"the result of `{source}`"
    else:
        what = "a list computed at run time"
    where = task.name if workflow.name == draft.entry else f"{workflow.name}.{task.name}"
    draft.note("BMAD-W234", "warning",
               f"`{where}` fans out over {what}, whose length the plan can't know: it assumes "
               f"{size} items, and its cost, tokens and calls scale with the real count",
               task.name, kind="risk")


def _called(workflow: ir.Workflow) -> list[ir.Call]:
    return [t.call for t in workflow.tasks if t.call is not None]


def _workflows_to_plan(draft: Draft, entry: ir.Workflow) -> list[ir.Workflow]:
    """Entry plus callees, callees first; reports call cycles."""
    program = draft.program
    ordered: list[ir.Workflow] = []
    state: dict[str, str] = {}  # name -> "visiting" | "done"

    def visit(workflow: ir.Workflow, trail: list[str]) -> None:
        state[workflow.name] = "visiting"
        for call in _called(workflow):
            callee = program.workflow(call.workflow.name)
            if callee is None:
                continue  # checks report unknown workflows
            if state.get(callee.name) == "visiting":
                cycle = " -> ".join(trail + [workflow.name, callee.name])
                draft.report(error("BMAD-E200", call.span,
                                   f"workflow `{callee.name}` calls itself through {cycle}",
                                   "a workflow cannot call itself, directly or through others"))
                continue
            if callee.name not in state:
                visit(callee, trail + [workflow.name])
        state[workflow.name] = "done"
        ordered.append(workflow)

    visit(entry, [])
    return ordered


def expand(draft: Draft, context: PassContext) -> Draft:
    program = draft.program
    priced_from = price_note(program)  # the user-level price override, when it priced this program
    if priced_from:
        draft.note(PRICE_NOTE_CODE, "info", priced_from, kind="info")
    # Patterns and strategy defaults change the program the runtime will execute.
    workflows = tuple(
        apply_strategy_defaults(replace(w, tasks=tuple(apply_pattern(t, program) for t in w.tasks)))
        for w in program.workflows
    )
    draft.program = program = replace(program, workflows=workflows)
    entry = program.workflow(draft.entry)
    if entry is None:
        draft.report(error("BMAD-E230", ir.Span.unknown(program.files[0].path if program.files else "<input>"),
                           f"there is no workflow `{draft.entry}` to plan" if draft.entry
                           else "this program declares no workflow to plan",
                           "declare a `workflow NAME { ... }` in the main file"))
        return draft
    draft.strategy = context.strategy or entry.strategy or "parallel"
    for workflow in _workflows_to_plan(draft, entry):
        wd = WorkflowDraft(workflow=workflow, sequential=draft.strategy == "sequential")
        # known input values are the entry workflow's (a callee's inputs are its call's arguments)
        inputs = context.inputs if workflow.name == draft.entry else {}
        for task in workflow.tasks:
            fan_out = None
            if task.for_each:
                fan_out = known_fan_out(task.for_each, workflow, inputs)
                if fan_out is None:
                    fan_out = context.default_fan_out
                    _assumed_fan_out_note(draft, task, workflow, fan_out)
            wd.tasks[task.name] = TaskDraft(
                task=task,
                plan=TaskPlan(id=task.name, kind="call" if task.call else "prompt", fan_out=fan_out,
                              subworkflow=task.call.workflow.name if task.call else None),
                needs=tuple(n.name for n in task.needs),
                pinned=task.model is not None,
            )
        draft.workflows[workflow.name] = wd
    return draft
