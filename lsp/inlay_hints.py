"""Inlay hints: each task's estimated cost (and routed model) after its name.

Configurable: `bmad.inlayHints.cost` (initializationOptions or workspace configuration) turns them
off. The figures come from the optimizer's estimate on the last program that compiled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from bmad.lsp.documents import Document
from bmad.lsp.estimates import format_usd, plan_for, task_plan

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer


def inlay_hints(ls: "BmadLanguageServer", doc: Document, rng: types.Range) -> list[types.InlayHint]:
    if not ls.settings.inlay_cost:
        return []
    if plan_for(doc) is None:
        return []
    lines = doc.lines(ls.encoding)
    lo, hi = lines.offset(rng.start), lines.offset(rng.end)
    hints = []
    for sym in doc.index.symbols:
        if sym.kind != "task" or not (lo <= sym.end <= hi):
            continue
        tp = task_plan(doc, sym.workflow, sym.name)
        if tp is None:
            continue
        model = tp.model or (tp.subworkflow and f"calls {tp.subworkflow}") or ""
        label = f"≈ {format_usd(tp.estimate.cost_usd_expected)}" + (f" · {model}" if model else "")
        hints.append(types.InlayHint(
            position=lines.position(sym.end), label=label, kind=types.InlayHintKind.Type,
            padding_left=True,
            tooltip=f"estimated cost per run: {format_usd(tp.estimate.cost_usd_expected)} expected, "
                    f"{format_usd(tp.estimate.cost_usd_worst)} worst case"))
    return hints
