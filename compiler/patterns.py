"""How a seed task whose `task_type` names a stdlib pattern becomes a call of that pattern.

The seed's YAML tasks have `inputs: {key: value}` and `dependencies`; a pattern (`stdlib/NAME.bmad`,
workflow NAME) has typed inputs. The task calls the pattern with:

1. each YAML input whose key is an input of the pattern, by name: text as a literal, a value that
   is exactly one `{{ task }}` / `{{ task.field }}` as that reference;
2. then the other sources, in order (the remaining YAML inputs, then the dependencies that no
   input already refers to), one each to the pattern's inputs that still have no value: first
   those without a default, in declaration order, then `context`.

When that cannot be done faithfully (an input mixes text and references, a required input of the
pattern gets no value, sources are left over), the task stays a plain prompt task and a warning
(BMAD-W083) says why and how to map the inputs by name. The task keeps its built prompt either way,
so `bmad plan` can show it; the runtime runs the call.
"""

from __future__ import annotations

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic, warning

W_PATTERN_NOT_APPLIED = "BMAD-W083"
CONTEXT_INPUT = "context"

Parts = list[ir.TextPart | ir.Interpolation]


def pattern_module_name(task_type: str) -> str:
    """`code-review` and `Code Review` name the module `code_review`."""
    return "_".join(task_type.strip().lower().replace("-", " ").split())


def pattern_workflow(task_type: str) -> ir.Workflow | None:
    """The stdlib pattern a task_type names, if the standard library has one."""
    from bmad.compiler.load import stdlib_unit  # the loader imports the front ends, not the reverse

    name = pattern_module_name(task_type)
    unit = stdlib_unit(name)
    if unit is None:
        return None
    return next((w for w in unit.workflows if w.name == name), None)


def _argument_value(parts: Parts, span: ir.Span) -> ir.Expr | None:
    """Text as a literal; exactly one interpolation (blanks around it allowed) as its reference."""
    refs = [p for p in parts if isinstance(p, ir.Interpolation)]
    if not refs:
        return ir.Literal("".join(p.text for p in parts if isinstance(p, ir.TextPart)), span)
    text = "".join(p.text for p in parts if isinstance(p, ir.TextPart))
    if len(refs) == 1 and not text.strip():
        return ir.Ref(refs[0].ref.path, refs[0].span)
    return None


def seed_pattern_call(task_name: str, task_type: str, inputs: list[tuple[str, Parts]],
                      depends: tuple[ir.Name, ...], span: ir.Span
                      ) -> tuple[ir.Call | None, list[Diagnostic]]:
    """The call of the pattern `task_type` names, or None (with the reason as a warning)."""
    target = pattern_workflow(task_type)
    if target is None:
        return None, []
    module = target.name

    def not_applied(message: str, hint: str) -> tuple[None, list[Diagnostic]]:
        return None, [warning(W_PATTERN_NOT_APPLIED, span,
                              f"task `{task_name}` runs as a plain prompt, not as std.{module}: {message}",
                              hint)]

    declared = {i.name: i for i in target.inputs}
    arguments: dict[str, ir.Argument] = {}
    leftovers: list[ir.Argument] = []
    referenced: set[str] = set()
    for key, parts in inputs:
        value = _argument_value(parts, span)
        if value is None:
            return not_applied(f"its input `{key}` mixes text with `{{{{ }}}}` references",
                               f"give `{key}` either plain text or exactly one `{{{{ task }}}}`")
        if isinstance(value, ir.Ref):
            referenced.add(value.root)
        argument = ir.Argument(key, value, span)
        if key in declared and key not in arguments:
            arguments[key] = argument
        else:
            leftovers.append(argument)
    for dep in depends:
        if dep.name not in referenced:
            leftovers.append(ir.Argument(dep.name, ir.Ref((dep.name,), dep.span), dep.span))
    open_slots = [i.name for i in target.inputs if i.default is None and i.name not in arguments]
    if CONTEXT_INPUT in declared and CONTEXT_INPUT not in arguments:
        open_slots.append(CONTEXT_INPUT)
    for slot, source in zip(open_slots, list(leftovers)):
        arguments[slot] = ir.Argument(slot, source.value, source.span)
        leftovers.remove(source)
    inputs_text = ", ".join(f"`{i.name}`" for i in target.inputs)
    missing = [i.name for i in target.inputs if i.default is None and i.name not in arguments]
    if missing:
        return not_applied(f"std.{module} needs `{missing[0]}` and nothing gives it",
                           f"add `{missing[0]}:` to the task's `inputs` (std.{module} takes {inputs_text})")
    if leftovers:
        names = ", ".join(f"`{a.name}`" for a in leftovers)
        return not_applied(f"{names} would have no input of std.{module} to go to",
                           f"name the pattern's inputs in `inputs:` ({inputs_text}), "
                           "e.g. `context: \"{{ other_task }}\"`")
    ordered = tuple(arguments[i.name] for i in target.inputs if i.name in arguments)
    return ir.Call(workflow=ir.Name(module, span), arguments=ordered, span=span), []


def read_primary_outputs(program: ir.Program) -> ir.Program:
    """An argument that names a task which itself calls a pattern reads that pattern's first
    output (its main result: `analyze.brief`), not the object of all its outputs."""

    def primary(workflow: ir.Workflow, ref: ir.Ref) -> ir.Ref:
        source = workflow.task(ref.root) if len(ref.path) == 1 else None
        callee = program.workflow(source.call.workflow.name) if source and source.call else None
        if callee is None or not callee.outputs:
            return ref
        return ir.Ref((ref.root, callee.outputs[0].name), ref.span)

    workflows = []
    for workflow in program.workflows:
        tasks = []
        for task in workflow.tasks:
            if task.call is not None and task.pattern:
                arguments = tuple(ir.replace(a, value=primary(workflow, a.value))
                                  if isinstance(a.value, ir.Ref) else a for a in task.call.arguments)
                task = ir.replace(task, call=ir.replace(task.call, arguments=arguments))
            tasks.append(task)
        workflows.append(ir.replace(workflow, tasks=tuple(tasks)))
    return ir.replace(program, workflows=tuple(workflows))


__all__ = ["read_primary_outputs", "W_PATTERN_NOT_APPLIED", "pattern_module_name", "pattern_workflow", "seed_pattern_call"]
