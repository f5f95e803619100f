"""Code actions: did-you-mean fixes, declaring a missing input, adding a `depends`.

- A diagnostic whose hint says "did you mean `X`?" (unknown task, input, model, capability...) gets
  a quick fix that replaces the misspelt name under it with `X`.
- A `{{ name }}` (or a `when` / `for each` name) that names nothing in scope gets "Declare input
  `name: text`", inserted after the workflow's last input.
- On a task, "Add `depends PREVIOUS`" makes it wait for the task written before it (for ordering
  that no `{{ ref }}` implies), unless it already depends on it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lsprotocol import types

from bmad.lsp.convert import LineIndex, line_end_of, line_start, next_line_start
from bmad.lsp.documents import Document
from bmad.lsp.index import DocumentIndex, Frame, Symbol
from bmad.lsp.keywords import ALL_WORDS

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer

_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`")


def code_actions(ls: "BmadLanguageServer", doc: Document,
                 params: types.CodeActionParams) -> list[types.CodeAction]:
    lines = doc.lines(ls.encoding)
    index = doc.index
    lo, hi = lines.offset(params.range.start), lines.offset(params.range.end)
    actions: list[types.CodeAction] = []
    for diag in params.context.diagnostics:
        actions += _did_you_mean(doc, lines, diag)
    actions += _declare_inputs(doc, lines, index, lo, hi, params.context.diagnostics)
    actions += _add_depends(doc, lines, index, lo, hi)
    only = params.context.only
    if only:
        actions = [a for a in actions if a.kind and any(a.kind.startswith(k) for k in only)]
    return actions


def _edit(doc: Document, edits: list[types.TextEdit]) -> types.WorkspaceEdit:
    return types.WorkspaceEdit(changes={doc.uri: edits})


def _did_you_mean(doc: Document, lines: LineIndex, diag: types.Diagnostic) -> list[types.CodeAction]:
    hint = diag.data.get("hint") if isinstance(diag.data, dict) else None
    m = _DID_YOU_MEAN.search(hint or diag.message or "")
    if not m:
        return []
    suggestion = m.group(1)
    start, end = lines.offset(diag.range.start), lines.offset(diag.range.end)
    index = doc.index
    # The misspelt name: a reference (root) or name token inside the diagnostic's range.
    candidates = [(r.start, r.end, r.name) for r in index.references if start <= r.start and r.end <= max(end, r.end)
                  and r.start <= end]
    if not candidates:
        candidates = [(t.start, t.end, t.text) for t in index.tokens
                      if t.kind == "name" and start <= t.start and t.end <= end and t.text not in ALL_WORDS]
    if not candidates:
        return []
    s, e, name = candidates[0]
    if name == suggestion:
        return []
    return [types.CodeAction(
        title=f"Change `{name}` to `{suggestion}`", kind=types.CodeActionKind.QuickFix,
        diagnostics=[diag], is_preferred=True,
        edit=_edit(doc, [types.TextEdit(range=lines.range(s, e), new_text=suggestion)]))]


def _declare_inputs(doc: Document, lines: LineIndex, index: DocumentIndex, lo: int, hi: int,
                    diagnostics: list[types.Diagnostic]) -> list[types.CodeAction]:
    out = []
    seen = set()
    for ref in index.references:
        if ref.kind != "value" or ref.end < lo or ref.start > hi or ref.workflow is None:
            continue
        if index.resolve_local(ref) is not None or (ref.workflow, ref.name) in seen:
            continue
        seen.add((ref.workflow, ref.name))
        edit = _input_insertion(doc, lines, index, ref.workflow, ref.name)
        if edit is None:
            continue
        related = [d for d in diagnostics
                   if lines.offset(d.range.start) <= ref.start <= lines.offset(d.range.end)]
        out.append(types.CodeAction(
            title=f"Declare input `{ref.name}: text` in workflow `{ref.workflow}`",
            kind=types.CodeActionKind.QuickFix, diagnostics=related or None,
            edit=_edit(doc, [edit])))
    return out


def _input_insertion(doc: Document, lines: LineIndex, index: DocumentIndex, workflow: str,
                     name: str) -> types.TextEdit | None:
    wf = next((s for s in index.symbols if s.kind == "workflow" and s.name == workflow), None)
    if wf is None:
        return None
    frame = next((f for f in index.frames if f.kind == "workflow" and f.name == workflow), None)
    if frame is None:
        return None
    inputs = [s for s in index.symbols if s.kind == "input" and s.workflow == workflow]
    text = doc.text
    if inputs:
        anchor = inputs[-1].full_start  # the `input` keyword
        start = line_start(text, anchor)
        indent = text[start:anchor] if text[start:anchor].strip() == "" else "  "
    else:
        anchor = frame.open
        first = _first_body_token(index, frame.open)
        indent = "  "
        if first is not None:
            ls_ = line_start(text, first)
            indent = text[ls_:first] if text[ls_:first].strip() == "" else "  "
    nl = line_end_of(text)  # the document's own line end
    after = next_line_start(text, anchor)
    if after is None:
        return types.TextEdit(range=lines.range(len(text), len(text)), new_text=f"{nl}{indent}input {name}: text{nl}")
    return types.TextEdit(range=lines.range(after, after), new_text=f"{indent}input {name}: text{nl}")


def _first_body_token(index: DocumentIndex, brace: int) -> int | None:
    for tok in index.tokens:
        if tok.start > brace and tok.kind != "comment":
            return tok.start
    return None


def _add_depends(doc: Document, lines: LineIndex, index: DocumentIndex, lo: int,
                 hi: int) -> list[types.CodeAction]:
    tasks = [s for s in index.symbols if s.kind == "task"]
    out = []
    for i, task in enumerate(tasks):
        if not (task.full_start <= hi and lo <= task.end):
            continue
        if lo > task.end + 1 and not (task.start <= lo <= task.end):
            continue  # only on the task's header line
        previous = next((p for p in reversed(tasks[:i]) if p.workflow == task.workflow), None)
        if previous is None:
            continue
        frame = next((f for f in index.frames if f.kind == "task" and f.name == task.name
                      and f.workflow == task.workflow), None)
        if frame is None:
            continue
        already = [r for r in index.references if r.kind == "task" and r.workflow == task.workflow
                   and frame.open < r.start < (frame.end or len(doc.text))]
        if any(r.name == previous.name for r in already):
            continue
        edit = _depends_edit(doc, lines, index, frame, previous)
        out.append(types.CodeAction(
            title=f"Add `depends {previous.name}` to task `{task.name}`",
            kind=types.CodeActionKind.RefactorRewrite, edit=_edit(doc, [edit])))
    return out


def _depends_edit(doc: Document, lines: LineIndex, index: DocumentIndex, frame: Frame,
                  previous: Symbol) -> types.TextEdit:
    text = doc.text
    # extend an existing `depends a, b` clause (wherever on its line it starts), else add a clause
    # as the body's first line
    starts = set(index.clause_starts)
    tokens = index.tokens
    for i, tok in enumerate(tokens):
        if tok.text == "depends" and (tok.line_start or tok.start in starts) \
                and frame.open < tok.start < (frame.end or len(text)):
            end = tok.end
            # the clause is its names and commas; it ends at the next clause, `}`, or the line's end
            for after in tokens[i + 1:]:
                if after.start in starts or not (after.kind == "name" or after.text == ","):
                    break
                end = after.end
            return types.TextEdit(range=lines.range(end, end), new_text=f", {previous.name}")
    first = _first_body_token(index, frame.open)
    after = next_line_start(text, frame.open)  # the line after the task's `{`
    if first is None or after is None or first < after:
        return types.TextEdit(range=lines.range(frame.open + 1, frame.open + 1),
                              new_text=f" depends {previous.name}")
    ls_ = line_start(text, first)
    indent = text[ls_:first] if text[ls_:first].strip() == "" else "    "
    return types.TextEdit(range=lines.range(after, after),
                          new_text=f"{indent}depends {previous.name}{line_end_of(text)}")
