"""Go to definition and find references, across files, for tasks, inputs, loop variables, models,
providers, workflows, rubrics and imports.

Names resolve the way the compiler resolves them: tasks, inputs and loop variables within their
workflow (and task); models, providers and workflows across the file and everything it imports
(transitively), then `use std.*` modules, then the standard catalog (`stdlib/models.bmad`) when the
program declares no model. References are searched in the open documents, the workspace folders'
`.bmad` files, and the files those import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from lsprotocol import types

from bmad.lsp.documents import Document, path_to_uri
from bmad.lsp.index import DocumentIndex, ImportRef, Reference, Symbol

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer

_GLOBAL_KINDS = ("model", "provider", "workflow", "rubric")
_MAX_WORKSPACE_FILES = 5000


def stdlib_dir() -> Path:
    import bmad.stdlib

    return Path(bmad.stdlib.__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Target:
    """A declaration somewhere: its file and the offsets of its name."""

    kind: str  # provider model workflow task input loop capability rubric file
    name: str
    path: str
    start: int
    end: int
    workflow: str | None = None
    task: str | None = None

    @staticmethod
    def of(symbol: Symbol, path: str) -> "Target":
        return Target(symbol.kind, symbol.name, os.path.abspath(path), symbol.start, symbol.end,
                      symbol.workflow, symbol.task)


# --- which files a file sees ------------------------------------------------------------


def import_path(imp: ImportRef, path: str) -> str:
    """The file an `import "x.bmad"` (relative to `path`) or a `use std.x` names."""
    if imp.kind == "import":
        return os.path.abspath(os.path.join(os.path.dirname(path), imp.path))
    return str(stdlib_dir() / f"{imp.path}.bmad")


def _imported_paths(index: DocumentIndex, path: str) -> list[str]:
    return [import_path(imp, path) for imp in index.imports]


def visible_files(ls: "BmadLanguageServer", path: str) -> list[str]:
    """`path`, then everything it imports (breadth first), then the catalog if no model is declared."""
    path = os.path.abspath(path)
    seen = [path]
    queue = [path]
    any_model = False
    while queue:
        current = queue.pop(0)
        found = ls.store.index_for_path(current)
        if found is None:
            continue
        index = found[0]
        any_model = any_model or any(s.kind == "model" for s in index.symbols)
        for nxt in _imported_paths(index, current):
            if nxt not in seen and len(seen) < 500:
                seen.append(nxt)
                queue.append(nxt)
    if not any_model:
        catalog = str(stdlib_dir() / "models.bmad")
        if catalog not in seen:
            seen.append(catalog)
    return seen


def _find_global(ls: "BmadLanguageServer", kind: str, name: str, from_path: str) -> Target | None:
    for path in visible_files(ls, from_path):
        found = ls.store.index_for_path(path)
        if found is None:
            continue
        sym = found[0].declared(kind, name)
        if sym is not None:
            return Target.of(sym, path)
    return None


def resolve_reference(ls: "BmadLanguageServer", ref: Reference, index: DocumentIndex,
                      path: str) -> Target | None:
    local = index.resolve_local(ref)
    if local is not None:
        return Target.of(local, path)
    if ref.kind in _GLOBAL_KINDS:
        return _find_global(ls, ref.kind, ref.name, path)
    if ref.kind == "argument" and ref.target:
        wf = _find_global(ls, "workflow", ref.target, path)
        if wf is not None:
            found = ls.store.index_for_path(wf.path)
            if found is not None:
                sym = found[0].declared("input", ref.name, ref.target)
                if sym is not None:
                    return Target.of(sym, wf.path)
    if ref.kind == "capability":
        for p in visible_files(ls, path):
            found = ls.store.index_for_path(p)
            if found is not None:
                sym = found[0].declared("capability", ref.name)
                if sym is not None:
                    return Target.of(sym, p)
    return None


def target_at(ls: "BmadLanguageServer", doc: Document, offset: int) -> Target | None:
    """The declaration named at `offset`: the declaration itself, or what a reference names."""
    index = doc.index
    sym = index.symbol_at(offset)
    if sym is not None:
        return Target.of(sym, doc.path)
    ref = index.reference_at(offset)
    if ref is not None:
        return resolve_reference(ls, ref, index, doc.path)
    imp = index.import_at(offset)
    if imp is not None:
        target = import_path(imp, doc.path)
        if os.path.exists(target) or ls.store.by_path(target) is not None:
            return Target("file", os.path.basename(target), target, 0, 0)
    return None


# --- where a target is used ------------------------------------------------------------


def workspace_files(ls: "BmadLanguageServer") -> list[str]:
    files: list[str] = []
    for root in ls.workspace_roots():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("node_modules", "__pycache__")]
            for name in filenames:
                if name.endswith(".bmad"):
                    files.append(os.path.abspath(os.path.join(dirpath, name)))
                    if len(files) >= _MAX_WORKSPACE_FILES:
                        return files
    return files


def candidate_files(ls: "BmadLanguageServer", target: Target) -> list[str]:
    """The files that may use `target`: the open documents and everything they import
    (transitively: with no workspace folder, that is all the server knows of), the workspace
    folders' files, and the target's own file and imports."""
    paths = []
    for doc in list(ls.store.documents.values()):
        paths += visible_files(ls, doc.path)
    paths += workspace_files(ls)
    paths += visible_files(ls, target.path)
    out, seen = [], set()
    for p in paths:
        p = os.path.abspath(p)
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def find_references(ls: "BmadLanguageServer", target: Target,
                    include_declaration: bool = True) -> Iterator[tuple[str, int, int]]:
    """(path, start, end) of every use of `target` (and its declaration, if asked)."""
    if include_declaration and target.kind != "file":
        yield target.path, target.start, target.end
    if target.kind == "file":
        for path in candidate_files(ls, target):
            found = ls.store.index_for_path(path)
            if found is None:
                continue
            for imp in found[0].imports:
                if import_path(imp, path) == target.path:
                    yield path, imp.start, imp.end
        return
    local_only = target.kind in ("task", "loop")
    paths = [target.path] if local_only else candidate_files(ls, target)
    for path in paths:
        found = ls.store.index_for_path(path)
        if found is None:
            continue
        index = found[0]
        for ref in index.references:
            if ref.name != target.name:
                continue
            resolved = resolve_reference(ls, ref, index, path)
            if resolved is not None and resolved.path == target.path and resolved.start == target.start:
                yield path, ref.start, ref.end


def location(ls: "BmadLanguageServer", path: str, start: int, end: int) -> types.Location | None:
    found = ls.store.index_for_path(path)
    if found is None:
        return None
    doc = ls.store.by_path(path)
    lines = doc.lines(ls.encoding) if doc is not None else _line_index(found[1], ls.encoding)
    return types.Location(uri=doc.uri if doc is not None else path_to_uri(path), range=lines.range(start, end))


def _line_index(text: str, encoding: str):
    from bmad.lsp.convert import LineIndex

    return LineIndex(text, encoding)


# --- the two requests ------------------------------------------------------------------


def definition(ls: "BmadLanguageServer", doc: Document, position: types.Position) -> list[types.Location]:
    offset = doc.lines(ls.encoding).offset(position)
    target = target_at(ls, doc, offset)
    if target is None:
        return []
    loc = location(ls, target.path, target.start, target.end)
    return [loc] if loc is not None else []


def references(ls: "BmadLanguageServer", doc: Document, position: types.Position,
               include_declaration: bool = True) -> list[types.Location]:
    offset = doc.lines(ls.encoding).offset(position)
    target = target_at(ls, doc, offset)
    if target is None:
        return []
    out = []
    seen = set()
    for path, start, end in find_references(ls, target, include_declaration):
        if (path, start) in seen:
            continue
        seen.add((path, start))
        loc = location(ls, path, start, end)
        if loc is not None:
            out.append(loc)
    return out
