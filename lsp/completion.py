"""Completion in context, from the tolerant index (so it works in a document that does not parse).

- inside `{{ }}`: loop variables, inputs and tasks of the workflow; after `ref.`, the fields of the
  task's `returns json` schema;
- after `depends`, `reduce`, `output`: tasks; in model positions (`model`, `[...]` lists of `route`,
  `fallback`, `among`; after `by`, `judge`): models; after `needs`: capabilities; after `provider`
  inside a model: providers; after `use`: standard library modules; after a keyword with a closed
  set of values (`strategy`, `priority`, ...): those values; after `input x:`: types;
- at the start of a clause: the keywords valid in the enclosing block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from lsprotocol import types

from bmad.compiler import ir
from bmad.lsp.definition import stdlib_dir, visible_files
from bmad.lsp.documents import Document
from bmad.lsp.index import DocumentIndex
from bmad.lsp.keywords import CLAUSES, KEYWORDS, TYPES, VALUES
from bmad.lsp.tokens import Token, token_at, tokens_before

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer

K = types.CompletionItemKind


def complete(ls: "BmadLanguageServer", doc: Document, position: types.Position) -> types.CompletionList:
    lines = doc.lines(ls.encoding)
    offset = lines.offset(position)
    items = list(_items(ls, doc, offset))
    if any(item.label.startswith("std.") and item.kind == K.Module for item in items):
        # `use std.qu|`: replace what is typed of the module name, so `std.` is not written twice.
        start = offset
        while start > 0 and (doc.text[start - 1].isalnum() or doc.text[start - 1] in "_.-"):
            start -= 1
        edit_range = lines.range(start, offset)
        for item in items:
            if item.label.startswith("std."):
                item.text_edit = types.TextEdit(range=edit_range, new_text=item.label)
                item.filter_text = item.label
    seen, unique = set(), []
    for item in items:
        if item.label not in seen:
            seen.add(item.label)
            unique.append(item)
    return types.CompletionList(is_incomplete=False, items=unique)


def _items(ls: "BmadLanguageServer", doc: Document, offset: int) -> Iterable[types.CompletionItem]:
    index = doc.index
    tokens = index.tokens
    i = token_at(tokens, offset)
    if i is not None and tokens[i].is_string and tokens[i].start < offset:
        tok = tokens[i]
        if offset == tok.end and tok.closed:
            pass  # just after the closing quote: not inside the string
        else:
            yield from _in_string(ls, doc, tok, offset)
            return
    if i is not None and tokens[i].kind == "comment" and tokens[i].start < offset:
        return
    # The tokens of the current line before the cursor, without the word being typed.
    n = tokens_before(tokens, offset)
    before = tokens[:n]
    if before and before[-1].end == offset and before[-1].kind == "name":
        before = before[:-1]  # the partial word under the cursor
    line_tokens: list[Token] = []
    for tok in reversed(before):
        if tok.kind == "comment":
            continue
        line_tokens.insert(0, tok)
        if tok.line_start:
            break
    if line_tokens and not _same_line(doc.text, line_tokens[0].start, offset):
        line_tokens = []
    # Clauses share lines (`prompt "x" model gpt-4o`): read from the last clause keyword on the line.
    starts = set(index.clause_starts)
    for j in range(len(line_tokens) - 1, 0, -1):
        if line_tokens[j].start in starts:
            line_tokens = line_tokens[j:]
            break
    frame = index.frame_at(offset)
    kind = frame.kind if frame else "top"
    workflow = frame.workflow if frame else None
    task = frame.task if frame else None
    if line_tokens and line_tokens[-1].text in ("{", "}"):
        line_tokens = []
    if not line_tokens or (kind == "task" and _clause_complete(line_tokens)):
        yield from _keywords(CLAUSES.get(kind, ()))
        return
    clause = line_tokens[0].text
    prev = line_tokens[-1].text
    texts = [t.text for t in line_tokens]
    if kind == "top" and clause == "use":
        yield from _stdlib_modules()
        return
    if kind in ("workflow", "parallel") and clause == "task":
        if prev == "=":
            yield from _workflows(ls, doc)
        elif prev in ("in", "when", "and", "or", "not", "==", "!=", "<", "<=", ">", ">="):
            yield from _scope(index, workflow, texts[1] if len(texts) > 1 else None)
        elif len(texts) >= 2:
            yield from _keywords(("for", "each", "in", "when"))
        return
    if kind in ("workflow", "parallel"):
        if clause == "output":
            yield from _tasks(index, workflow)
        elif clause == "input" and prev in (":", "<"):
            yield from (types.CompletionItem(label=t, kind=K.TypeParameter) for t in TYPES)
        elif clause in VALUES and prev == clause:
            yield from _values(clause)
        return
    if kind == "model" and clause == "provider":
        yield from _declared(ls, doc, "provider", K.Module)
        return
    if kind == "provider" and clause == "kind":
        yield from _values("kind")
        return
    if kind != "task":
        return
    if clause in ("depends", "reduce"):
        yield from (item for item in _tasks(index, workflow) if item.label != task)
    elif clause == "needs":
        yield from _capabilities(ls, doc)
    elif clause == "model" or prev in ("by", "judge") or _in_brackets(line_tokens):
        yield from _models(ls, doc)
    elif prev == "else":
        yield from _values("else")
    elif prev == "backoff":
        yield from _values("backoff")
    elif clause in VALUES and prev == clause:
        yield from _values(clause)
    elif clause == "quality" and prev == "rubric":
        yield from _rubrics(ls, doc)
    elif clause == "quality" and prev not in (">=",):
        yield from _keywords(("judged", "rubric", "else"))
    elif clause == "consensus" and len(texts) >= 2:
        yield from _keywords(("among", "quorum", "by"))


# Clauses complete once their one value is written: what follows on the line is the next clause.
_ONE_STRING_CLAUSES = frozenset({"about", "system", "prompt"})


def _clause_complete(line_tokens: list[Token]) -> bool:
    """In a task, `prompt "x" |` or `model gpt-4o |`: the next word starts a new clause."""
    if len(line_tokens) != 2:
        return False
    clause, value = line_tokens[0].text, line_tokens[1]
    if clause in _ONE_STRING_CLAUSES:
        return value.is_string and value.closed
    return clause == "model" and value.kind == "name"


def _same_line(text: str, start: int, offset: int) -> bool:
    return "\n" not in text[start:offset] and "\r" not in text[start:offset]


def _in_brackets(line_tokens: list[Token]) -> bool:
    depth = 0
    for tok in line_tokens:
        if tok.text == "[":
            depth += 1
        elif tok.text == "]":
            depth -= 1
    return depth > 0


# --- inside strings: `{{ ref }}` and `{{ ref.field }}` ------------------------------------


def _in_string(ls: "BmadLanguageServer", doc: Document, tok: Token, offset: int) -> Iterable[types.CompletionItem]:
    for it in tok.interpolations:
        if it.inner_start <= offset <= it.inner_end:
            typed = doc.text[it.inner_start:offset].strip()
            frame = doc.index.frame_at(offset)
            workflow = frame.workflow if frame else None
            task = frame.task if frame else None
            if "." in typed:
                yield from _fields(doc, workflow, typed.split(".")[:-1])
            else:
                yield from _scope(doc.index, workflow, task)
            return


def _scope(index: DocumentIndex, workflow: str | None, task: str | None) -> Iterable[types.CompletionItem]:
    for sym in index.names_in_scope(workflow, task):
        if sym.kind == "task" and sym.name == task:
            continue  # a task cannot read its own output
        kind = {"loop": K.Variable, "input": K.Field, "task": K.Function}[sym.kind]
        detail = {"loop": "loop variable", "input": "input", "task": "task output"}[sym.kind]
        yield types.CompletionItem(label=sym.name, kind=kind, detail=detail)


def _fields(doc: Document, workflow: str | None, path: list[str]) -> Iterable[types.CompletionItem]:
    program = doc.program
    if program is None or not path:
        return
    wf = program.workflow(workflow) if workflow else None
    task = wf.task(path[0]) if wf else None
    if task is None or task.returns is None or not isinstance(task.returns.schema, dict):
        return
    schema = task.returns.schema
    for part in path[1:]:
        props = schema.get("properties") if isinstance(schema, dict) else None
        schema = props.get(part) if isinstance(props, dict) else None
        if not isinstance(schema, dict):
            return
    props = schema.get("properties")
    if not isinstance(props, dict):
        return
    for name, sub in props.items():
        kind = sub.get("type") if isinstance(sub, dict) else None
        yield types.CompletionItem(label=name, kind=K.Field, detail=f"{kind}" if kind else "field")


# --- names ----------------------------------------------------------------------------------


def _keywords(words: Iterable[str]) -> Iterable[types.CompletionItem]:
    for w in words:
        kw = KEYWORDS.get(w)
        doc = types.MarkupContent(kind=types.MarkupKind.Markdown,
                                  value=f"{kw.summary}\n\n```bmad\n{kw.example}\n```") if kw else None
        yield types.CompletionItem(label=w, kind=K.Keyword, documentation=doc)


def _values(keyword: str) -> Iterable[types.CompletionItem]:
    for v in VALUES.get(keyword, ()):
        yield types.CompletionItem(label=v, kind=K.EnumMember, detail=keyword)


def _tasks(index: DocumentIndex, workflow: str | None) -> Iterable[types.CompletionItem]:
    for sym in index.symbols:
        if sym.kind == "task" and sym.workflow == workflow:
            yield types.CompletionItem(label=sym.name, kind=K.Function, detail="task")


def _declared(ls: "BmadLanguageServer", doc: Document, kind: str, item_kind) -> Iterable[types.CompletionItem]:
    for path in visible_files(ls, doc.path):
        found = (doc.index, doc.text) if path == doc.path else ls.store.index_for_path(path)
        if found is None:
            continue
        for sym in found[0].symbols:
            if sym.kind == kind:
                yield types.CompletionItem(label=sym.name, kind=item_kind, detail=kind)


def _models(ls: "BmadLanguageServer", doc: Document) -> Iterable[types.CompletionItem]:
    program = doc.program
    if program is not None:
        for m in program.models:
            yield types.CompletionItem(label=m.name, kind=K.Class, detail=_model_detail(m))
    yield from _declared(ls, doc, "model", K.Class)


def _model_detail(m: ir.Model) -> str:
    if m.price is None:
        return f"model on {m.provider.name}"
    return f"{m.provider.name}: ${m.price.input_per_m:g}/${m.price.output_per_m:g} per 1M"


def _capabilities(ls: "BmadLanguageServer", doc: Document) -> Iterable[types.CompletionItem]:
    program = doc.program
    if program is not None:
        for m in program.models:
            for s in m.skills:
                yield types.CompletionItem(label=s.name, kind=K.Property, detail="capability")
    yield from _declared(ls, doc, "capability", K.Property)


def _rubrics(ls: "BmadLanguageServer", doc: Document) -> Iterable[types.CompletionItem]:
    """Named rubrics the file sees (its own, its imports', `use std.quality`'s), with their text."""
    seen: set[str] = set()
    for path in visible_files(ls, doc.path):  # your files first: yours replace the stdlib's
        found = (doc.index, doc.text) if path == doc.path else ls.store.index_for_path(path)
        if found is None:
            continue
        for sym in found[0].symbols:
            if sym.kind == "rubric" and sym.name not in seen:
                seen.add(sym.name)
                yield types.CompletionItem(label=sym.name, kind=K.EnumMember, detail="rubric",
                                           documentation=sym.text)


def _workflows(ls: "BmadLanguageServer", doc: Document) -> Iterable[types.CompletionItem]:
    yield from _declared(ls, doc, "workflow", K.Module)


def _stdlib_modules() -> Iterable[types.CompletionItem]:
    for path in sorted(stdlib_dir().glob("*.bmad")):
        if path.stem != "models":
            yield types.CompletionItem(label=f"std.{path.stem}", kind=K.Module, detail="standard library")
    yield types.CompletionItem(label="std.models", kind=K.Module, detail="the standard model catalog")
