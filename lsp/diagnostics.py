"""Diagnostics: compile on open/change/save, debounced per document, published with its version.

Scheduling: the first change after a quiet spell is compiled at once; changes that arrive within
`delay` of the previous one (a typing burst) wait until the burst pauses, and a newer version always
supersedes an older one that has not been published (the stale compile is skipped or its result
dropped). Compiles are incremental (`compiler/incremental.py`, one compiler per document) and run
one at a time on a worker thread so requests (hover, completion) keep being answered; the
optimizer's feasibility checks follow once typing pauses, in a helper process (`plan_checks.py`),
so they never delay the next edit's diagnostics. Full garbage collections wait for idle time too
(`idle_collection.py`). After a document's diagnostics are published, open documents that
import it are re-checked against its new text.

The codes, messages and hints are exactly those of `bmad check`: the code goes in
`Diagnostic.code`, the hint is appended to the message (`help: ...`) and kept in `data`, related
spans become `relatedInformation`. Problems inside an imported file are shown on the `import` (or
`use`) line that brings the file in, with a link to the real place.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from lsprotocol import types

from bmad.compiler.diagnostics import Diagnostic
from bmad.lsp.convert import LineIndex, is_unknown
from bmad.lsp.documents import Compilation, Document, DocumentStore, path_to_uri, same_path
from bmad.lsp.idle_collection import IdleCollector
from bmad.lsp.plan_checks import PlanChecker

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer

log = logging.getLogger(__name__)

DEFAULT_DELAY_S = 0.15
PLAN_DELAY_S = 0.5  # quiet time before the plan checks (the second stage) start

_SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "info": types.DiagnosticSeverity.Information,
}


def to_lsp_diagnostics(doc: Document, compilation: Compilation, encoding: str) -> list[types.Diagnostic]:
    """The compile's diagnostics that concern `doc`, as LSP diagnostics in `doc`'s coordinates."""
    lines = LineIndex(doc.text, encoding)
    out: list[types.Diagnostic] = []
    for d in compilation.diagnostics:
        try:
            item = _convert(d, doc, compilation, lines, encoding)
        except Exception:  # one odd span must not hide the others
            log.exception("could not convert diagnostic %s", d.code)
            continue
        if item is not None:
            out.append(item)
    return out


_same_file = same_path


def _convert(d: Diagnostic, doc: Document, compilation: Compilation, lines: LineIndex,
             encoding: str) -> types.Diagnostic | None:
    message = d.message if not d.hint else f"{d.message}\nhelp: {d.hint}"
    related = []
    for r in d.related:
        text = compilation.sources.get(r.span.file)
        rng = LineIndex(text, encoding).span_range(r.span) if text is not None else \
            LineIndex(doc.text, encoding).span_range(r.span)
        related.append(types.DiagnosticRelatedInformation(
            location=types.Location(uri=path_to_uri(r.span.file) if not _same_file(r.span.file, doc.path)
                                    else doc.uri, range=rng),
            message=r.message))
    in_this_file = _same_file(d.span.file, doc.path) or d.span.file in ("<input>", "")
    if in_this_file:
        rng = lines.span_range(d.span)
    else:
        # A problem in an imported file: show it on the import that brings the file in.
        anchor = _import_anchor(doc, d.span.file)
        if anchor is None:
            return None
        rng = lines.range(*anchor)
        other = compilation.sources.get(d.span.file)
        where = LineIndex(other, encoding).span_range(d.span) if other is not None else lines.span_range(d.span)
        related.insert(0, types.DiagnosticRelatedInformation(
            location=types.Location(uri=path_to_uri(d.span.file), range=where), message=d.message))
        message = f"in {os.path.basename(d.span.file)}:{d.span.line}:{d.span.column}: {message}"
    if is_unknown(d.span) and in_this_file:
        rng = lines.range(0, len(lines.line_text(0)))
    return types.Diagnostic(
        range=rng,
        message=message,
        severity=_SEVERITY.get(d.severity, types.DiagnosticSeverity.Error),
        code=d.code,
        source="bmad",
        related_information=related or None,
        data={"hint": d.hint, "code": d.code} if d.hint else {"code": d.code},
    )


def _import_anchor(doc: Document, file: str) -> tuple[int, int] | None:
    imports = doc.index.imports
    if not imports:
        return None
    base = os.path.dirname(doc.path)
    for imp in imports:
        if imp.kind == "import" and same_path(os.path.join(base, imp.path), file):
            return imp.start, imp.end
        if imp.kind == "use" and file == f"<std>/{imp.path}.bmad":
            return imp.start, imp.end
    first = imports[0]
    return first.start, first.end


class DiagnosticsScheduler:
    """Debounced, superseding, per-URI diagnostics."""

    def __init__(self, server: "BmadLanguageServer", store: DocumentStore, delay: float = DEFAULT_DELAY_S):
        self.server = server
        self.store = store
        self.delay = delay
        self._pending: dict[str, asyncio.Task] = {}
        self._last_change: dict[str, float] = {}
        # One compile at a time: two would only fight over the interpreter lock.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bmad-compile")
        self.plan_checks = PlanChecker()
        self.collector = IdleCollector()

    def schedule(self, uri: str, *, debounce: bool = True, notify_dependents: bool = True) -> None:
        self.plan_checks.start()
        now = time.monotonic()
        burst = debounce and now - self._last_change.get(uri, float("-inf")) < self.delay
        self._last_change[uri] = now
        old = self._pending.pop(uri, None)
        if old is not None and not old.done():
            old.cancel()
        task = asyncio.get_running_loop().create_task(
            self._run(uri, self.delay if burst else 0.0, notify_dependents))
        self._pending[uri] = task
        task.add_done_callback(lambda t, u=uri: self._done(u, t))

    def _done(self, uri: str, task: asyncio.Task) -> None:
        if self._pending.get(uri) is task:
            del self._pending[uri]
        if not task.cancelled() and task.exception() is not None:
            log.error("diagnostics for %s failed", uri, exc_info=task.exception())

    def forget(self, uri: str) -> None:
        old = self._pending.pop(uri, None)
        if old is not None:
            old.cancel()
        self._last_change.pop(uri, None)

    async def _run(self, uri: str, delay: float, notify_dependents: bool) -> None:
        if delay:
            await asyncio.sleep(delay)
        doc = self.store.get(uri)
        if doc is None:
            return
        version, text = doc.version, doc.text
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._worker, self._compile_if_current, uri, version, text)
        doc = self.store.get(uri)
        if result is None or doc is None or doc.version != version:
            return  # closed, or a newer version is on its way
        self.store.record(doc, version, result)
        self.publish(doc, result)
        self.collector.compiled()
        path = doc.path
        if notify_dependents:  # only edits propagate; a re-check never triggers another
            for dependent in self.store.dependents(path):
                self.schedule(dependent.uri, debounce=False, notify_dependents=False)
        if result.planned:
            return
        if result.program is None or not result.ok:
            result.planned = True  # nothing to plan
            return
        # Second stage, as `bmad check` does: the optimizer's feasibility checks (an impossible
        # budget...). They take longer than the compile (half a second at 10,000 lines), so they
        # wait until the typing pauses, run in a helper process (the next edit's compile never
        # waits for them) and re-publish the same version only when they add something.
        await asyncio.sleep(PLAN_DELAY_S)  # a newer version cancels this task
        doc = self.store.get(uri)
        if doc is None or doc.version != version:
            return
        overrides = self.store.overrides()
        overrides[path] = text
        found = await self.plan_checks.check(path, text, overrides)
        doc = self.store.get(uri)
        if found is None or doc is None or doc.version != version:
            return  # superseded: the newer version gets its own plan checks
        if result.merge_plan_diagnostics(found):
            self.store.record(doc, version, result)
            self.publish(doc, result)

    def _compile_if_current(self, uri: str, version: int | None, text: str) -> Compilation | None:
        doc = self.store.get(uri)
        if doc is None or doc.version != version:
            return None  # superseded while queued: don't spend the time
        return self.store.compile(doc, text)

    def publish(self, doc: Document, compilation: Compilation) -> None:
        diagnostics = to_lsp_diagnostics(doc, compilation, self.server.encoding)
        self.server.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=doc.uri, version=doc.version, diagnostics=diagnostics))

    def clear(self, uri: str) -> None:
        self.server.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    def recheck_dependents(self, path: str) -> None:
        self.store.invalidate(path)
        for doc in self.store.dependents(path):
            self.schedule(doc.uri, debounce=False, notify_dependents=False)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
        self.plan_checks.shutdown()
