"""Measure prompts: the token shape of one call of each task, in dependency order.

Input tokens are the rendered prompt's size: the template's own text (system and prompt, counted
with `bmad.compiler.tokens`), plus, for every `{{ ref }}`:
- an input: its default's size when it has one, else `DEFAULT_INPUT_TOKENS` (500) for text/json
  (a list input counts per item, times the fan-out size), `SCALAR_TOKENS` for number/bool;
- a task: that task's expected (worst: maximum) output, times its fan-out when it is a list;
- a loop variable: one item of the list it iterates.
A `reduce ... in chunks of N` call sees N items at a time. An input of the entry workflow whose
value the context knows (`PassContext.inputs`, a run's inputs) counts as that value renders in a
prompt (a list per item). The worst input also counts the line the runtime appends for `returns
enum|json` (the answer's form, `format_instruction`). Output tokens: worst = `max_tokens` (else
`DEFAULT_MAX_TOKENS`, 1024); expected = `EXPECTED_OUTPUT_FRACTION` (0.5) of that, or the longest
value plus a few tokens for `returns enum`.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Mapping

from bmad.compiler import ir
from bmad.compiler.call_shapes import (DEFAULT_MAX_TOKENS, EXPECTED_OUTPUT_FRACTION, format_instruction,
                                       render_value)
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import CallShape, Draft, TaskDraft, WorkflowDraft
from bmad.compiler.tokens import count_tokens

DEFAULT_INPUT_TOKENS = 500
SCALAR_TOKENS = 4
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators per message
ENUM_EXTRA_TOKENS = 4
_NO_INPUTS: Mapping[str, Any] = MappingProxyType({})


def _template_text_tokens(template: ir.Template | None) -> int:
    if template is None:
        return 0
    text = "".join(p.text for p in template.parts if isinstance(p, ir.TextPart))
    return count_tokens(text) + MESSAGE_OVERHEAD_TOKENS


def _literal_tokens(expr: ir.Expr) -> float:
    if isinstance(expr, ir.Literal):
        return max(1, count_tokens(expr.value if isinstance(expr.value, str) else str(expr.value)))
    if isinstance(expr, ir.ListExpr):
        return sum(_literal_tokens(i) for i in expr.items)
    return DEFAULT_INPUT_TOKENS


def _list_items(expr: ir.Expr | None) -> list[ir.Expr] | None:
    if isinstance(expr, ir.ListExpr):
        return list(expr.items)
    if isinstance(expr, ir.Literal) and isinstance(expr.value, (list, tuple)):
        return [ir.Literal(v) for v in expr.value]
    return None


def value_tokens(value: Any) -> float:
    return max(1, count_tokens(render_value(value)))


def instruction_tokens(returns: ir.Returns | None) -> int:
    text = format_instruction(returns)
    return 0 if text is None else count_tokens(text) + 1  # after a blank line


def _known(wd: WorkflowDraft, name: str, inputs: Mapping[str, Any]) -> tuple[bool, Any]:
    """(whether the value of `wd`'s input `name` is known, the value)."""
    if name in inputs and wd.workflow.input(name) is not None:
        return True, inputs[name]
    return False, None


def _input_tokens(declared: ir.Input, whole_list_size: int | None) -> float:
    """Tokens of an input as interpolated (a whole list, or a scalar)."""
    kind = declared.type.name
    items = _list_items(declared.default)
    if kind == "list":
        if items:
            return sum(_literal_tokens(i) for i in items)
        item = SCALAR_TOKENS if declared.type.item and declared.type.item.name in ("number", "bool") \
            else DEFAULT_INPUT_TOKENS
        return item * (whole_list_size or 1)
    if kind in ("number", "bool"):
        return SCALAR_TOKENS
    if declared.default is not None:
        return _literal_tokens(declared.default)
    return DEFAULT_INPUT_TOKENS


def _item_tokens(source: ir.Expr, wd: WorkflowDraft,
                 inputs: Mapping[str, Any] = _NO_INPUTS) -> tuple[float, float]:
    """(expected, worst) tokens of one item of a `for each` list."""
    if isinstance(source, ir.Ref):
        upstream = wd.tasks.get(source.root)
        if upstream is not None:
            return upstream.item_expected, upstream.item_worst
        known, value = _known(wd, source.root, inputs)
        if known and len(source.path) == 1 and isinstance(value, (list, tuple)) and value:
            sizes = [value_tokens(v) for v in value]
            return sum(sizes) / len(sizes), max(sizes)
        declared = wd.workflow.input(source.root)
        if declared is not None:
            items = _list_items(declared.default)
            if items:
                sizes = [_literal_tokens(i) for i in items]
                return sum(sizes) / len(sizes), max(sizes)
            if declared.type.item and declared.type.item.name in ("number", "bool"):
                return SCALAR_TOKENS, SCALAR_TOKENS
    items = _list_items(source)
    if items:
        sizes = [_literal_tokens(i) for i in items]
        return sum(sizes) / len(sizes), max(sizes)
    return DEFAULT_INPUT_TOKENS, DEFAULT_INPUT_TOKENS


def _ref_tokens(ref: ir.Ref, td: TaskDraft, wd: WorkflowDraft,
                inputs: Mapping[str, Any] = _NO_INPUTS) -> tuple[float, float]:
    task = td.task
    if task.for_each and ref.root == task.for_each.var:
        return _item_tokens(task.for_each.source, wd, inputs)
    upstream = wd.tasks.get(ref.root)
    if upstream is not None:
        if task.reduce and task.reduce.source.name == ref.root and task.reduce.chunk_size:
            items = min(task.reduce.chunk_size, upstream.plan.fan_out or 1)
            return upstream.item_expected * items, upstream.item_worst * items
        return upstream.yield_expected, upstream.yield_worst
    known, value = _known(wd, ref.root, inputs)
    if known and len(ref.path) == 1:
        tokens = value_tokens(value)
        return tokens, tokens
    declared = wd.workflow.input(ref.root)
    if declared is not None:
        tokens = _input_tokens(declared, None)
        return tokens, tokens
    return DEFAULT_INPUT_TOKENS, DEFAULT_INPUT_TOKENS


def output_tokens(task: ir.Task) -> tuple[float, float]:
    worst = task.max_tokens or DEFAULT_MAX_TOKENS
    if task.returns is not None and task.returns.kind == "enum" and task.returns.values:
        longest = max(count_tokens(v) for v in task.returns.values) + ENUM_EXTRA_TOKENS
        return min(worst, longest), worst
    return worst * EXPECTED_OUTPUT_FRACTION, worst


def reduce_calls(items: int, chunk: int | None) -> tuple[int, int]:
    """(calls, levels) of a tree reduction of `items` in chunks of `chunk` (one call unchunked)."""
    per_level = reduce_levels(items, chunk)
    return sum(per_level), len(per_level)


def reduce_levels(items: int, chunk: int | None) -> tuple[int, ...]:
    """The calls of each level of a tree reduction of `items` in chunks of `chunk`, first to last."""
    if not chunk or chunk < 2 or items <= chunk:
        return (1,)
    out, level = [], items
    while level > 1:
        level = math.ceil(level / chunk)
        out.append(level)
    return tuple(out)


def reduce_waves(per_level: tuple[int, ...], concurrency: int) -> int:
    """How many calls in a row a tree reduction takes: a level's chunks run side by side,
    `concurrency` at a time (the provider's), and a level starts once the one below is done."""
    return sum(math.ceil(n / max(1, concurrency)) for n in per_level)


def _measure_call(td: TaskDraft, draft: Draft) -> None:
    callee = draft.workflows.get(td.plan.subworkflow or "")
    per_item_exp = per_item_worst = 0.0
    if callee is not None:
        for output in callee.workflow.outputs:
            out = callee.tasks.get(output.name)
            if out is not None:
                per_item_exp += out.yield_expected
                per_item_worst += out.yield_worst
    _set_yield(td, per_item_exp, per_item_worst)


def _set_yield(td: TaskDraft, per_item_exp: float, per_item_worst: float) -> None:
    fan = td.plan.fan_out or 1
    td.item_expected, td.item_worst = per_item_exp, per_item_worst
    td.yield_expected, td.yield_worst = per_item_exp * fan, per_item_worst * fan


def measure_task(td: TaskDraft, wd: WorkflowDraft, inputs: Mapping[str, Any] = _NO_INPUTS) -> CallShape:
    """`inputs`: the known values of `wd`'s inputs (none: their assumed sizes)."""
    task = td.task
    static = _template_text_tokens(task.system) + _template_text_tokens(task.prompt)
    refs_exp = refs_worst = 0.0
    for template in (task.system, task.prompt):
        if template is None:
            continue
        for ref in template.refs:
            e, w = _ref_tokens(ref, td, wd, inputs)
            refs_exp += e
            refs_worst += w
    out_exp, out_worst = output_tokens(task)
    return CallShape(static + refs_exp, static + refs_worst + instruction_tokens(task.returns),
                     out_exp, out_worst)


def measure_prompts(draft: Draft, context: PassContext) -> Draft:
    for wd in draft.workflows.values():
        # known input values are the entry workflow's (a callee's come from its call's arguments)
        inputs = context.inputs if wd.name == draft.entry else {}
        for name in wd.order:
            td = wd.tasks[name]
            if td.plan.kind == "call":
                _measure_call(td, draft)
                continue
            td.shape = measure_task(td, wd, inputs)
            _set_yield(td, td.shape.output_expected, td.shape.output_worst)
            if td.task.reduce:  # a reduction yields one result whatever its input size
                source = wd.tasks.get(td.task.reduce.source.name)
                td.reduce_items = (source.plan.fan_out or 1) if source else 1
                td.yield_expected, td.yield_worst = td.item_expected, td.item_worst
    return draft
