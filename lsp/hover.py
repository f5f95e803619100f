"""Hover: a task's routed model, estimated cost and dependencies; a model's price, context and
skills; a provider, input, loop variable, workflow or rubric; a keyword's documentation with an example."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from bmad.compiler import ir
from bmad.lsp.definition import Target, target_at
from bmad.lsp.documents import Document
from bmad.lsp.estimates import format_usd, task_plan
from bmad.lsp.keywords import KEYWORDS
from bmad.lsp.tokens import token_at

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer


def hover(ls: "BmadLanguageServer", doc: Document, position: types.Position) -> types.Hover | None:
    lines = doc.lines(ls.encoding)
    offset = lines.offset(position)
    index = doc.index
    here = index.symbol_at(offset) or index.reference_at(offset)
    target = target_at(ls, doc, offset)
    if target is not None and here is not None:
        text = _rubric(ls, target) if target.kind == "rubric" else describe(doc, target)
        if text:
            return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                               range=lines.range(here.start, here.end))
    i = token_at(index.tokens, offset)
    if i is not None:
        tok = index.tokens[i]
        if tok.kind == "name" and tok.text in KEYWORDS:
            kw = KEYWORDS[tok.text]
            text = f"**{kw.name}** (keyword)\n\n{kw.summary}\n\n```bmad\n{kw.example}\n```"
            return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                               range=lines.range(tok.start, tok.end))
    return None


def describe(doc: Document, target: Target) -> str | None:
    program = doc.program
    if target.kind == "task":
        return _task(doc, program, target)
    if target.kind == "model":
        model = program.model(target.name) if program else None
        return _model(model, target)
    if target.kind == "provider":
        provider = program.provider(target.name) if program else None
        return _provider(provider, target)
    if target.kind == "input":
        wf = program.workflow(target.workflow) if program and target.workflow else None
        inp = wf.input(target.name) if wf else None
        if inp is None:
            return f"**input** `{target.name}`"
        default = f" = {_expr(inp.default)}" if inp.default is not None else ""
        return f"**input** `{inp.name}: {inp.type}{default}`\n\nof workflow `{target.workflow}`"
    if target.kind == "loop":
        wf = program.workflow(target.workflow) if program and target.workflow else None
        task = wf.task(target.task) if wf and target.task else None
        source = f" in `{_expr(task.for_each.source)}`" if task and task.for_each else ""
        return f"**loop variable** `{target.name}`{source}\n\none item per run of task `{target.task}`"
    if target.kind == "workflow":
        wf = program.workflow(target.name) if program else None
        if wf is None:
            return f"**workflow** `{target.name}`"
        parts = [f"**workflow** `{wf.name}`"]
        if wf.about:
            parts.append(wf.about)
        if wf.inputs:
            parts.append("inputs: " + ", ".join(f"`{i.name}: {i.type}`" for i in wf.inputs))
        parts.append(f"{len(wf.tasks)} task(s); outputs: " + (", ".join(f"`{o.name}`" for o in wf.outputs) or "none"))
        return "\n\n".join(parts)
    if target.kind == "capability":
        if program is None:
            return f"**capability** `{target.name}`"
        rows = [(m.name, m.skill(target.name)) for m in program.models]
        rows = [(n, s) for n, s in rows if s is not None]
        body = "\n".join(f"- `{n}`: {s:.2f}" for n, s in sorted(rows, key=lambda r: -r[1]))
        return f"**capability** `{target.name}`\n\n" + (body or "no declared model has this skill")
    if target.kind == "file":
        return f"**import** `{target.path}`"
    return None


def _rubric(ls: "BmadLanguageServer", target: Target) -> str:
    """A named rubric: its text, which is what the quality judge is asked to check."""
    found = ls.store.index_for_path(target.path)
    sym = found[0].declared("rubric", target.name) if found is not None else None
    text = f"\n\n{sym.text}" if sym is not None and sym.text else ""
    return f"**rubric** `{target.name}`{text}\n\nwhat the quality judge checks"


def _task(doc: Document, program: ir.Program | None, target: Target) -> str:
    wf = program.workflow(target.workflow) if program and target.workflow else None
    task = wf.task(target.name) if wf else None
    parts = [f"**task** `{target.name}`" + (f" in workflow `{target.workflow}`" if target.workflow else "")]
    if task is not None and task.about:
        parts.append(task.about)
    tp = task_plan(doc, target.workflow, target.name)
    if tp is not None:
        if tp.participants:
            parts.append("models: " + ", ".join(f"`{m}`" for m in tp.participants)
                         + (f" (judge `{tp.judge}`)" if tp.judge else ""))
        elif tp.model:
            parts.append(f"routed model: `{tp.model}`" + (f" ({tp.route_reason})" if tp.route_reason else ""))
        if tp.subworkflow:
            parts.append(f"calls workflow `{tp.subworkflow}`")
        est = tp.estimate
        parts.append(f"estimated cost: {format_usd(est.cost_usd_expected)} expected, "
                     f"{format_usd(est.cost_usd_worst)} worst case; ~{est.tokens_expected} tokens, "
                     f"~{est.latency_s:.1f}s")
        if tp.fallbacks:
            parts.append("fallbacks: " + ", ".join(f"`{m}`" for m in tp.fallbacks))
        depends = tp.depends
    elif task is not None:
        if task.model is not None:
            parts.append(f"pinned model: `{task.model.name}`")
        depends = tuple(n.name for n in task.depends) + tuple(
            r.root for t in (task.prompt, task.system) if t for r in t.refs
            if wf and wf.task(r.root) is not None and r.root not in {n.name for n in task.depends})
    else:
        depends = ()
    parts.append("depends on: " + (", ".join(f"`{d}`" for d in dict.fromkeys(depends)) or "nothing"))
    return "\n\n".join(parts)


def _model(model: ir.Model | None, target: Target) -> str:
    if model is None:
        return f"**model** `{target.name}`"
    parts = [f"**model** `{model.name}`" + (f" (`{model.id}`)" if model.id and model.id != model.name else "")]
    parts.append(f"provider: `{model.provider.name}`")
    if model.price is not None:
        parts.append(f"price: ${model.price.input_per_m:g} input / ${model.price.output_per_m:g} output per 1M tokens")
    else:
        parts.append("price: unknown")
    if model.context:
        parts.append(f"context: {model.context:,} tokens")
    if model.latency is not None:
        parts.append(f"latency: {model.latency.base_s * 1000:.0f}ms + {model.latency.per_token_s * 1000:g}ms per token")
    if model.skills:
        parts.append("skills: " + ", ".join(f"{s.name} {s.score:.2f}" for s in model.skills))
    return "\n\n".join(parts)


def _provider(provider: ir.Provider | None, target: Target) -> str:
    if provider is None:
        return f"**provider** `{target.name}`"
    parts = [f"**provider** `{provider.name}` (kind `{provider.kind}`)"]
    if provider.base_url:
        parts.append(f"base url: {provider.base_url}")
    if provider.api_key_env:
        parts.append(f"key from the environment variable `{provider.api_key_env}`")
    if provider.limits is not None:
        lim = provider.limits
        bits = [f"{k} {v}" for k, v in (("rpm", lim.rpm), ("tpm", lim.tpm), ("concurrent", lim.concurrent)) if v]
        if bits:
            parts.append("limits: " + ", ".join(bits))
    return "\n\n".join(parts)


def _expr(expr: ir.Expr | None) -> str:
    if expr is None:
        return ""
    if isinstance(expr, ir.Ref):
        return str(expr)
    if isinstance(expr, ir.Literal):
        import json

        try:
            return json.dumps(expr.value, ensure_ascii=False)  # `"café"`, not `"caf\u00e9"`
        except (TypeError, ValueError):
            return repr(expr.value)
    if isinstance(expr, ir.ListExpr):
        return "[" + ", ".join(_expr(i) for i in expr.items) + "]"
    if isinstance(expr, ir.Unary):
        return f"{expr.op} {_expr(expr.operand)}"
    if isinstance(expr, ir.Binary):
        return f"{_expr(expr.left)} {expr.op} {_expr(expr.right)}"
    return "…"
