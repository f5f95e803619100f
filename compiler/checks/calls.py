"""Subworkflow calls: the workflow exists, each argument names one of its inputs (with a value of
the input's type), and every input without a default gets an argument."""

from __future__ import annotations

from bmad.compiler import ir
from bmad.compiler.checks.defaults import literal_type
from bmad.compiler.checks.expressions import expression_type, show
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.checks.suggest import and_then, did_you_mean
from bmad.compiler.checks.value_types import ANY, ValueType, assignable, from_type_ref
from bmad.compiler.diagnostics import Diagnostic, Related, error


def check_calls(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            call = task.call
            if call is None:
                continue
            callee = index.workflows.get(call.workflow.name)
            for arg in call.arguments:
                where = f"in argument `{arg.name}` of task `{task.name}`"
                arg_type = expression_type(arg.value, task, index, scope, out, where=where)
                if callee is None:
                    continue
                target = callee.inputs.get(arg.name)
                if target is None:
                    continue
                wanted = from_type_ref(target.type)
                if not assignable(arg_type, wanted):
                    out.append(error(
                        "BMAD-E147", arg.value.span,
                        f"argument `{arg.name}` of `{call.workflow.name}` is {wanted.describe()}, "
                        f"but `{show(arg.value)}` is {arg_type.describe()}",
                        f"pass {wanted.describe()}" + (
                            "; to pass one item at a time, add `for each ITEM in LIST` to the task"
                            if arg_type.kind == "list" and wanted.kind != "list" else ""),
                        [Related(target.span, f"input `{arg.name}` is declared here")],
                    ))
                    continue
                misfit = certain_misfit(arg.value, arg_type, wanted)
                if misfit is not None:
                    part, part_type = misfit
                    if part is arg.value:  # null: it fits only a `json` input
                        message = f"but `{show(part)}` is null"
                        hint = f"pass {wanted.describe()}" + (
                            ", or leave the argument out to use the default"
                            if target.default is not None else "")
                    else:
                        message = (f"but `{show(arg.value)}` holds `{show(part)}`, which is "
                                   f"{part_type.describe()}")
                        hint = f"make every item {(wanted.item or ANY).describe()}"
                    out.append(error(
                        "BMAD-E147", part.span if part.span != ir.NO_SPAN else arg.value.span,
                        f"argument `{arg.name}` of `{call.workflow.name}` is {wanted.describe()}, "
                        + message, hint,
                        [Related(target.span, f"input `{arg.name}` is declared here")],
                    ))
            if callee is None:
                out.append(error(
                    "BMAD-E105", call.workflow.span,
                    f"task `{task.name}` calls workflow `{call.workflow.name}`, which is not declared",
                    and_then(did_you_mean(call.workflow.name, index.workflows, "workflows"),
                             'a workflow from another file needs `import "FILE.bmad"` (or `use std.NAME`)'),
                ))
                continue
            seen: dict[str, object] = {}
            for arg in call.arguments:
                if arg.name in seen:
                    continue  # an argument given twice is the front end's to report (BMAD-E017)
                seen[arg.name] = arg
                if arg.name not in callee.inputs:
                    out.append(error(
                        "BMAD-E106", arg.span,
                        f"workflow `{call.workflow.name}` has no input `{arg.name}`",
                        did_you_mean(arg.name, [n for n in callee.inputs if n not in seen], "inputs"),
                        [Related(callee.workflow.name_span, f"workflow `{call.workflow.name}` is declared here")],
                    ))
            for name, inp in callee.inputs.items():
                if inp.default is None and name not in seen:
                    out.append(error(
                        "BMAD-E107", call.workflow.span,
                        f"the call to `{call.workflow.name}` gives no value for its input `{name}`",
                        f"add `{name}: ...` to the arguments ({from_type_ref(inp.type).describe()})",
                        [Related(inp.span, f"input `{name}` is declared here, without a default")],
                    ))
    return out


def certain_misfit(expr: ir.Expr, given: ValueType, wanted: ValueType
                   ) -> tuple[ir.Expr, ValueType] | None:
    """The part of an argument that certainly won't fit `wanted` at run time, with its type:
    `null` where the input isn't `json` (the run refuses it, BMAD-E330, as `--input` does), or an
    item of a list literal (typed by its first item alone) that doesn't fit the item type."""
    if given.kind == "null" and wanted.kind != "any":
        return expr, given
    if not assignable(given, wanted):
        return expr, given
    if isinstance(expr, ir.ListExpr) and wanted.kind == "list":
        for item in expr.items:
            found = certain_misfit(item, literal_type(item), wanted.item or ANY)
            if found is not None:
                return found
    return None
