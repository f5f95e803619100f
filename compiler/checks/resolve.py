"""Resolve `name` and `name.field` inside a task: what the name is, and the type of the value.

Inside a task a name is, in this order, the task's loop variable, an input of the workflow, or
another task of the workflow (its result). Anything else is undefined (BMAD-E101). Fields are read
from JSON results: a field the schema doesn't declare is BMAD-E108, a field of a value that has no
fields (text, a number) is BMAD-E143, a field of a `for each` task's list is read from every item
(BMAD-W106, info).
"""

from __future__ import annotations

from bmad.compiler import ir
from bmad.compiler.checks.scope import ProgramIndex, WorkflowScope
from bmad.compiler.checks.suggest import and_then, did_you_mean
from bmad.compiler.checks.value_types import (
    ANY, TEXT, ValueType, from_schema, from_type_ref, list_of,
)
from bmad.compiler.diagnostics import Diagnostic, error


def task_result_type(task: ir.Task, index: ProgramIndex, scope: WorkflowScope) -> ValueType:
    """What `{{ task }}` gives another task: its returns type, a list of them for `for each`."""
    cache = index.result_types
    key = (scope.workflow.name, task.name)
    cached = cache.get(key)
    if cached is not None:
        return cached
    cache[key] = ANY  # a placeholder, should a call chain come back here
    one = single_result_type(task, index)
    result = list_of(one) if task.for_each is not None else one
    cache[key] = result
    return result


def single_result_type(task: ir.Task, index: ProgramIndex) -> ValueType:
    if task.call is not None:
        callee = index.workflows.get(task.call.workflow.name)
        if callee is None:
            return ANY
        fields = {}
        for out in callee.workflow.outputs:
            inner = callee.tasks.get(out.name)
            if inner is not None:
                fields[out.name] = task_result_type(inner, index, callee)
            elif out.name in callee.inputs:
                fields[out.name] = from_type_ref(callee.inputs[out.name].type)
            else:
                fields[out.name] = ANY
        return ValueType("object", fields=fields)
    returns = task.returns
    if returns is None or returns.kind == "text":
        return TEXT
    if returns.kind == "enum":
        return ValueType("text", values=tuple(returns.values))
    if returns.schema is None:
        return ValueType("object")
    return from_schema(returns.schema)


def loop_var_type(task: ir.Task, index: ProgramIndex, scope: WorkflowScope) -> ValueType:
    from bmad.compiler.checks.expressions import expression_type

    assert task.for_each is not None
    source = expression_type(task.for_each.source, task, index, scope, None, where="", loop_var_visible=False)
    return source.item or ANY if source.kind == "list" else ANY


def resolve_ref(ref: ir.Ref, task: ir.Task, index: ProgramIndex, scope: WorkflowScope,
                out: list[Diagnostic] | None, *, where: str, span: ir.Span | None = None,
                loop_var_visible: bool = True) -> ValueType:
    """The type of `ref` inside `task`; reports into `out` (when given) what can't be resolved."""
    span = span if span is not None and ref.span is ir.NO_SPAN else ref.span
    root = ref.root
    origin: str
    if loop_var_visible and task.for_each is not None and task.for_each.var == root:
        current = loop_var_type(task, index, scope)
        origin = "loop variable"
    elif root in scope.inputs:
        current = from_type_ref(scope.inputs[root].type)
        origin = "input"
    elif root in scope.tasks:
        current = task_result_type(scope.tasks[root], index, scope)
        origin = "task"
    else:
        if out is not None:
            names = scope.visible_names(task, with_loop_var=loop_var_visible)
            kinds = "an input, the loop variable or a task" if loop_var_visible and task.for_each else "an input or a task"
            out.append(error(
                "BMAD-E101", span,
                f"`{root}` is not defined {where}".rstrip(),
                and_then(did_you_mean(root, names, "inputs and tasks"),
                         f"a name here must be {kinds} of workflow `{scope.workflow.name}`"),
            ))
        return ANY
    is_fan_out = origin == "task" and scope.tasks[root].for_each is not None
    walked = root
    for field_name in ref.path[1:]:
        if current.kind == "any" or (current.kind == "object" and current.fields is None):
            return ANY
        if current.kind == "list" and (current.item or ANY).kind in ("object", "any"):
            item = current.item or ANY
            if is_fan_out and out is not None:
                out.append(Diagnostic(
                    "BMAD-W106", "info", span,
                    f"`{root}` runs once per item, so `{ref}` is a list with the `{field_name}` of every item",
                    f"that is fine to show in a prompt; to use one item, loop over `{root}` with `for each`",
                ))
            inner = read_field(item, field_name, walked, ref, span, out, origin, root)
            if inner is None:
                return ANY
            current = list_of(inner)
            is_fan_out = False
        elif current.kind == "object":
            inner = read_field(current, field_name, walked, ref, span, out, origin, root)
            if inner is None:
                return ANY
            current = inner
        else:
            if out is not None:
                if origin == "task" and walked == root:
                    hint = (f"task `{root}` returns {current.describe()}; to read fields, give it "
                            f"`returns json {{ \"type\": \"object\", \"properties\": {{ \"{field_name}\": ... }} }}`")
                elif origin == "input" and walked == root:
                    hint = f"declare the input as `input {root}: json` to read its fields"
                else:
                    hint = f"use `{walked}` itself"
                out.append(error(
                    "BMAD-E143", span,
                    f"`{walked}` is {current.describe()}, which has no field `{field_name}`", hint,
                ))
            return ANY
        walked += "." + field_name
    return current


def read_field(obj: ValueType, field_name: str, walked: str, ref: ir.Ref, span: ir.Span,
               out: list[Diagnostic] | None, origin: str, root: str) -> ValueType | None:
    if obj.kind == "any" or obj.fields is None:
        return ANY
    if field_name in obj.fields:
        return obj.fields[field_name]
    if out is not None:
        where = f"the JSON schema of task `{root}`" if origin == "task" else f"`{walked}`"
        out.append(error(
            "BMAD-E108", span,
            f"`{walked}` has no field `{field_name}`",
            did_you_mean(field_name, obj.fields, f"fields in {where}"),
        ))
    return None
