"""Document symbols (the outline) and workspace symbols, from the tolerant index (so broken files
keep their outline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsprotocol import types

from bmad.lsp.convert import LineIndex
from bmad.lsp.definition import workspace_files
from bmad.lsp.documents import Document, path_to_uri
from bmad.lsp.index import DocumentIndex, Symbol

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer

KINDS = {
    "provider": types.SymbolKind.Module,
    "model": types.SymbolKind.Class,
    "workflow": types.SymbolKind.Namespace,
    "task": types.SymbolKind.Function,
    "input": types.SymbolKind.Variable,
    "loop": types.SymbolKind.Variable,
    "capability": types.SymbolKind.Property,
    "rubric": types.SymbolKind.String,
}
_DETAIL = {"provider": "provider", "model": "model", "workflow": "workflow", "task": "task",
           "input": "input", "loop": "loop variable", "capability": "skill",
           "rubric": "rubric"}


def _symbol(sym: Symbol, lines: LineIndex, children: list[types.DocumentSymbol]) -> types.DocumentSymbol:
    full_start = min(sym.full_start, sym.start)
    full_end = max(sym.full_end, sym.end)
    return types.DocumentSymbol(
        name=sym.name, kind=KINDS[sym.kind], detail=_DETAIL[sym.kind],
        range=lines.range(full_start, full_end), selection_range=lines.range(sym.start, sym.end),
        children=children or None)


def outline(index: DocumentIndex, lines: LineIndex) -> list[types.DocumentSymbol]:
    """Providers, rubrics, models (with their skills) and workflows (with inputs and tasks, and loop
    variables)."""
    out = []
    for sym in index.symbols:
        if sym.kind in ("provider", "rubric"):
            out.append(_symbol(sym, lines, []))
        elif sym.kind == "model":
            skills = [_symbol(s, lines, []) for s in index.symbols
                      if s.kind == "capability" and s.container == sym.name
                      and sym.full_start <= s.start <= sym.full_end]
            out.append(_symbol(sym, lines, skills))
        elif sym.kind == "workflow":
            children = []
            for s in index.symbols:
                if s.workflow != sym.name or not (sym.full_start <= s.start <= sym.full_end):
                    continue
                if s.kind == "input":
                    children.append(_symbol(s, lines, []))
                elif s.kind == "task":
                    loops = [_symbol(v, lines, []) for v in index.symbols
                             if v.kind == "loop" and v.task == s.name and v.workflow == sym.name]
                    children.append(_symbol(s, lines, loops))
            out.append(_symbol(sym, lines, children))
    return out


def document_symbols(ls: "BmadLanguageServer", doc: Document) -> list[types.DocumentSymbol]:
    return outline(doc.index, doc.lines(ls.encoding))


def _matches(query: str, name: str) -> bool:
    """Case-insensitive subsequence match, as editors' fuzzy pickers do."""
    if not query:
        return True
    it = iter(name.lower())
    return all(ch in it for ch in query.lower())


def workspace_symbols(ls: "BmadLanguageServer", query: str) -> list[types.WorkspaceSymbol]:
    paths = [doc.path for doc in ls.store.documents.values()] + workspace_files(ls)
    out: list[types.WorkspaceSymbol] = []
    seen = set()
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        found = ls.store.index_for_path(path)
        if found is None:
            continue
        index, text = found
        doc = ls.store.by_path(path)
        lines = doc.lines(ls.encoding) if doc is not None else LineIndex(text, ls.encoding)
        uri = doc.uri if doc is not None else path_to_uri(path)
        for sym in index.symbols:
            if sym.kind in ("loop", "capability") or not _matches(query, sym.name):
                continue
            out.append(types.WorkspaceSymbol(
                name=sym.name, kind=KINDS[sym.kind], container_name=sym.workflow,
                location=types.Location(uri=uri, range=lines.range(sym.start, sym.end))))
            if len(out) >= 1000:
                return out
    return out
