"""The per-document compile cache: each open document's text, tolerant index and last compilation.

Work is reused between versions: the tolerant index and line table are built lazily once per
version; each document compiles through its own `IncrementalCompiler` (only the declarations and
workflow members an edit touched are parsed and lowered again; imported files are cached by path
and text); a compilation is cached by the text it saw and by the texts of the files it loaded, so
an undo, a re-open or a dependent's re-check whose imports did not change costs nothing; and the
last program that compiled keeps serving hover and completion while the current text is broken.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from lsprotocol import types
from pygls import uris

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic, error
from bmad.compiler.incremental import IncrementalCompiler
from bmad.lsp.convert import UTF16, LineIndex
from bmad.lsp.index import DocumentIndex, build_index

# The language server's own diagnostic code (E450-E499): the compiler failed on this text.
E_COMPILER_FAILED = "BMAD-E450"

_RESULT_CACHE_SIZE = 8


def same_path(a: str, b: str) -> bool:
    """Whether two file names (absolute, relative to the cwd as the loader writes imports, or
    `<std>/...`) name the same file."""
    if a.startswith("<") or b.startswith("<"):
        return a == b
    return os.path.abspath(a) == os.path.abspath(b)


def uri_to_path(uri: str) -> str:
    path = uris.to_fs_path(uri)
    return os.path.abspath(path) if path else uri


def path_to_uri(path: str) -> str:
    return uris.from_fs_path(path) or path


@dataclass
class Compilation:
    """What one compile of one document version produced (the compiler's CompileResult, flattened)."""

    program: ir.Program | None
    diagnostics: list[Diagnostic]
    sources: dict[str, str]  # every file the compile read -> its text
    ok: bool
    key: tuple = ()
    planned: bool = False  # the optimizer's feasibility checks have been added

    def add_plan_checks(self) -> bool:
        """Run `bmad check`'s second stage (the cheap passes) once; True if it found something."""
        if self.planned:
            return False
        if self.program is None or not self.ok:
            self.planned = True
            return False
        from bmad.lsp.estimates import budget_diagnostics

        return self.merge_plan_diagnostics(budget_diagnostics(self.program))

    def merge_plan_diagnostics(self, found: list[Diagnostic]) -> bool:
        """Add the second stage's diagnostics (computed here or by the helper process); True if
        that changed anything."""
        from bmad.compiler.diagnostics import sort_diagnostics

        if self.planned:
            return False
        self.planned = True
        extra = [d for d in found if d not in self.diagnostics]
        if not extra:
            return False
        self.diagnostics = sort_diagnostics(self.diagnostics + extra)
        self.ok = not any(d.is_error for d in self.diagnostics)
        return True


@dataclass
class Document:
    uri: str
    path: str
    text: str
    version: int | None
    _index: DocumentIndex | None = None
    _lines: LineIndex | None = None
    compilation: Compilation | None = None  # the newest compile (may be for an older version)
    compiled_version: int | None = None
    last_good: ir.Program | None = None  # the last program that compiled without errors
    plan_cache: dict[str, Any] = field(default_factory=dict)
    _compiler: IncrementalCompiler | None = None

    @property
    def compiler(self) -> IncrementalCompiler:
        """This document's incremental compiler: it re-reads only what each edit touched."""
        if self._compiler is None or self._compiler.path != self.path:
            self._compiler = IncrementalCompiler(self.path)
        return self._compiler

    @property
    def index(self) -> DocumentIndex:
        if self._index is None:
            self._index = build_index(self.text)
        return self._index

    def lines(self, encoding: str = UTF16) -> LineIndex:
        if self._lines is None or self._lines.encoding != encoding:
            self._lines = LineIndex(self.text, encoding)
        return self._lines

    @property
    def program(self) -> ir.Program | None:
        """The best program to answer questions from: the newest, else the last good one."""
        if self.compilation is not None and self.compilation.program is not None:
            return self.compilation.program
        return self.last_good


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class DocumentStore:
    """Open documents by URI, plus a small cache of compilations shared across them."""

    def __init__(self, compiler: Callable[[str, str, dict[str, str]], Compilation] | None = None) -> None:
        self.documents: dict[str, Document] = {}
        self._compile = compiler  # None: the real compiler, incrementally per document
        self._results: OrderedDict[tuple, Compilation] = OrderedDict()
        self._lock = threading.Lock()
        self._disk_indexes: dict[str, tuple[float, DocumentIndex, str]] = {}

    # --- open documents -------------------------------------------------------------------

    def open(self, uri: str, text: str, version: int | None) -> Document:
        doc = Document(uri, uri_to_path(uri), text, version)
        old = self.documents.get(uri)
        if old is not None:
            doc.last_good, doc.compilation = old.last_good, old.compilation
            doc._compiler = old._compiler
        self.documents[uri] = doc
        return doc

    def edit(self, uri: str, changes: Sequence[types.TextDocumentContentChangeEvent],
             version: int | None, encoding: str = UTF16) -> Document | None:
        """Apply a `didChange`'s changes to the open document (None when it is not open)."""
        doc = self.documents.get(uri)
        if doc is None:
            return None
        return self.update(uri, apply_changes(doc.text, changes, encoding, doc.lines(encoding)), version)

    def update(self, uri: str, text: str, version: int | None) -> Document:
        doc = self.documents.get(uri)
        if doc is None:
            return self.open(uri, text, version)
        doc.text, doc.version = text, version
        doc._index = None
        doc._lines = None
        return doc

    def close(self, uri: str) -> None:
        self.documents.pop(uri, None)

    def get(self, uri: str) -> Document | None:
        return self.documents.get(uri)

    def by_path(self, path: str) -> Document | None:
        path = os.path.abspath(path)
        for doc in self.documents.values():
            if doc.path == path:
                return doc
        return None

    def overrides(self) -> dict[str, str]:
        """Unsaved editor texts, by path: imports read these instead of the disk."""
        return {doc.path: doc.text for doc in self.documents.values()}

    # --- compiling ------------------------------------------------------------------------

    def compile(self, doc: Document, text: str | None = None) -> Compilation:
        """Compile `text` (default: the document's current text), reusing a cached result."""
        text = doc.text if text is None else text
        overrides = self.overrides()
        overrides[doc.path] = text
        key = (doc.path, _digest(text))
        with self._lock:
            cached = self._results.get(key)
        if cached is not None and self._still_valid(cached, overrides):
            with self._lock:
                self._results.move_to_end(key)
            return cached
        if self._compile is None:
            result = compile_with_compiler(text, doc.path, overrides, doc.compiler)
        else:
            result = self._compile(text, doc.path, overrides)
        result.key = key
        with self._lock:
            self._results[key] = result
            while len(self._results) > _RESULT_CACHE_SIZE:
                self._results.popitem(last=False)
        return result

    def _still_valid(self, result: Compilation, overrides: dict[str, str]) -> bool:
        """A cached compile holds while every file it read still has the text it read."""
        for path, seen in result.sources.items():
            if path.startswith("<"):
                continue  # the standard library does not change under a running server
            current = overrides.get(os.path.abspath(path))
            if current is None:
                current = _read_disk(path)
            if current is not None and current != seen:
                return False
        return True

    def record(self, doc: Document, version: int | None, result: Compilation) -> None:
        doc.compilation = result
        doc.compiled_version = version
        if result.program is not None and result.ok:
            doc.last_good = result.program  # its plan follows (`estimates.plan_for`)

    def invalidate(self, path: str) -> None:
        """A file changed on disk: forget compilations that read it."""
        path = os.path.abspath(path)
        with self._lock:
            for key in [k for k, r in self._results.items()
                        if any(same_path(p, path) for p in r.sources)]:
                del self._results[key]
        self._disk_indexes.pop(path, None)

    def dependents(self, path: str) -> list[Document]:
        """Open documents whose last compile read `path` (besides the document at `path` itself)."""
        path = os.path.abspath(path)
        out = []
        for doc in self.documents.values():
            if doc.path == path or doc.compilation is None:
                continue
            if any(same_path(p, path) for p in doc.compilation.sources):
                out.append(doc)
        return out

    # --- indexes of files, open or not ----------------------------------------------------

    def index_for_path(self, path: str) -> tuple[DocumentIndex, str] | None:
        """The tolerant index and text of a file: the open buffer if any, else the disk (cached)."""
        path = os.path.abspath(path)
        doc = self.by_path(path)
        if doc is not None:
            return doc.index, doc.text
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        cached = self._disk_indexes.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1], cached[2]
        text = _read_disk(path)
        if text is None:
            return None
        index = build_index(text)
        self._disk_indexes[path] = (mtime, index, text)
        return index, text


def apply_changes(text: str, changes: Sequence[types.TextDocumentContentChangeEvent], encoding: str,
                  lines: LineIndex | None = None) -> str:
    """`text` after a `didChange`'s changes, each applied to the result of the one before.

    A ranged change's positions are read with the spec's line model (`LineIndex`: lines end at
    `\\n`, `\\r\\n`, `\\r`) in the negotiated encoding. pygls's `TextDocument` reads them with
    `str.splitlines()`, which also ends lines at U+2028, form feed, ..., so an edit below such a
    character would land on another line. A reversed range is read the right way round; positions
    past a line's end or the text's end are clamped to it. `lines` may hold `text`'s index already.
    """
    for change in changes:
        if not isinstance(change, types.TextDocumentContentChangePartial):
            text, lines = change.text, None  # the whole document
            continue
        if lines is None:
            lines = LineIndex(text, encoding)
        start, end = sorted((lines.offset(change.range.start), lines.offset(change.range.end)))
        text, lines = text[:start] + change.text + text[end:], None
    return text


def _read_disk(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def compile_with_compiler(text: str, path: str, overrides: dict[str, str],
                          incremental: IncrementalCompiler | None = None) -> Compilation:
    """Run the real compiler on one document, as `bmad check`'s first stage does (parse, lower,
    load, checks), through the document's incremental compiler when given (same result, less
    work); `Compilation.add_plan_checks` is the second stage. A compiler crash becomes a
    diagnostic, never an error."""
    try:
        if incremental is not None:
            result = incremental.compile(text, overrides)
        else:
            from bmad.compiler.compile import compile_source

            result = compile_source(text, path, extra_sources=overrides)
        sources = dict(result.sources or {})
        sources.setdefault(path, text)
        return Compilation(result.program, list(result.diagnostics), sources, bool(result.ok))
    except Exception as exc:  # the server must survive a compiler bug; say so where the user looks
        span = ir.Span(path, 1, 1, 1, 1, 0, 0)
        diag = error(E_COMPILER_FAILED, span, f"the bmad compiler failed on this file: {exc!r}",
                     "this is a bug in bmad; `bmad check` on the file shows the same failure")
        return Compilation(None, [diag], {path: text}, False)
