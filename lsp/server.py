"""The bmad language server (pygls 2): registers one small handler per LSP feature.

Each handler finds the document and hands over to its feature module (`hover.py`, `completion.py`,
...). Every handler is wrapped by `guarded`: whatever a feature raises on half-typed text is logged
and answered with an empty result, so no request can take the server down.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Callable

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import JsonRPCRequestMessage

import bmad
from bmad.lsp import (
    code_actions,
    completion,
    definition,
    formatting,
    hover,
    inlay_hints,
    rename,
    semantic_tokens,
    symbols,
)
from bmad.lsp.diagnostics import DEFAULT_DELAY_S, DiagnosticsScheduler
from bmad.lsp.documents import Document, DocumentStore, uri_to_path
from bmad.lsp.idle_collection import freeze_startup_heap

log = logging.getLogger(__name__)


class Settings:
    """What the client may configure (initializationOptions or `workspace/didChangeConfiguration`
    under the `bmad` key): `inlayHints.cost` (bool), `diagnostics.delayMs` (int)."""

    def __init__(self) -> None:
        self.inlay_cost = True
        self.delay_s = DEFAULT_DELAY_S

    def update(self, options: Any) -> None:
        if not isinstance(options, dict):
            return
        options = options.get("bmad", options)
        if not isinstance(options, dict):
            return
        hints = options.get("inlayHints")
        if isinstance(hints, dict) and isinstance(hints.get("cost"), bool):
            self.inlay_cost = hints["cost"]
        diags = options.get("diagnostics")
        if isinstance(diags, dict) and isinstance(diags.get("delayMs"), (int, float)):
            self.delay_s = max(0.0, float(diags["delayMs"]) / 1000.0)


class _Refused:
    """A request answered with an error while it was read (its params did not validate)."""

    jsonrpc = "2.0"


def _leaf_messages(exc: BaseException) -> list[str]:
    if isinstance(exc, BaseExceptionGroup):
        return [m for sub in exc.exceptions for m in _leaf_messages(sub)]
    return [str(exc)]


class BmadProtocol(LanguageServerProtocol):
    """pygls's protocol, except that a request whose params don't validate (a position with a
    negative line, ...) is answered with InvalidParams under its id, without a traceback: pygls
    would log the traceback and never answer, so the client would wait forever. A notification
    whose params don't validate (a change at a negative column) is dropped with a one-line warning.
    Document changes are applied by the server (`lsp_text_document__did_change`)."""

    def structure_message(self, data: dict[str, Any]):
        if isinstance(data, dict) and "jsonrpc" in data and "id" in data and "method" in data \
                and "error" not in data:
            request_type = self.get_message_type(data["method"]) or JsonRPCRequestMessage
            try:
                return self._converter.structure(data, request_type)
            except Exception as exc:
                detail = "; ".join(_leaf_messages(exc))[:500]
                log.warning("answered %s with InvalidParams: %s", data["method"], detail)
                self._send_response(data["id"], error=JsonRpcInvalidParams(
                    f"invalid params for {data['method']}: {detail}").to_response_error())
                return _Refused()
        if isinstance(data, dict) and "jsonrpc" in data and "id" not in data and "method" in data:
            notification_type = self.get_message_type(data["method"])
            if notification_type is not None:
                try:
                    return self._converter.structure(data, notification_type)
                except Exception as exc:
                    detail = "; ".join(_leaf_messages(exc))[:500]
                    log.warning("ignored %s with invalid params: %s", data["method"], detail)
                    return _Refused()
        return super().structure_message(data)

    def handle_message(self, message):
        if isinstance(message, _Refused):
            return
        super().handle_message(message)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        """Hand the changes to the server's `did_change`, which applies them to its own copy
        (`DocumentStore.edit`). pygls's own copy would read ranged changes with
        `str.splitlines()`, whose line ends are not the spec's (U+2028, form feed, ...), and raise
        on a document that was never opened."""
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None


class _QuietRefusals(logging.Filter):
    """Drop pygls's ERROR record for a deliberate InvalidParams answer (a rename to a taken name):
    the client shows the message; stderr needs no copy."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, JsonRpcInvalidParams)


class BmadLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("bmad", bmad.__version__,
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=BmadProtocol)
        self.store = DocumentStore()
        self.settings = Settings()
        self.diagnostics = DiagnosticsScheduler(self, self.store)

    @property
    def encoding(self) -> str:
        try:
            return self.workspace.position_encoding or types.PositionEncodingKind.Utf16
        except Exception:  # before initialize
            return types.PositionEncodingKind.Utf16

    def document(self, uri: str) -> Document | None:
        """The open document, or the file on disk opened read-only for this request."""
        doc = self.store.get(uri)
        if doc is not None:
            return doc
        found = self.store.index_for_path(uri_to_path(uri))
        if found is None:
            return None
        doc = Document(uri, uri_to_path(uri), found[1], None)
        return doc

    def workspace_roots(self) -> list[str]:
        roots = []
        try:
            for folder in self.workspace.folders.values():
                path = uri_to_path(folder.uri)
                if path:
                    roots.append(path)
            if not roots and self.workspace.root_path:
                roots.append(self.workspace.root_path)
        except Exception:
            pass
        return roots


def guarded(default: Callable[[], Any] | None = None):
    """Wrap a handler so that an exception is logged and answered with `default()`."""

    def wrap(fn):
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args, **kwargs):
                try:
                    return await fn(*args, **kwargs)
                except JsonRpcException:  # a deliberate error answer (an invalid new name...)
                    raise
                except Exception:
                    log.exception("%s failed", fn.__name__)
                    return default() if default else None
            return run_async

        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except JsonRpcException:
                raise
            except Exception:
                log.exception("%s failed", fn.__name__)
                return default() if default else None
        return run

    return wrap


def create_server() -> BmadLanguageServer:
    server = BmadLanguageServer()

    # --- lifecycle and synchronisation ---------------------------------------------------

    @server.feature(types.INITIALIZED)
    @guarded()
    def initialized(ls: BmadLanguageServer, params: types.InitializedParams) -> None:
        return None

    @server.feature(types.INITIALIZE)
    @guarded()
    def initialize(ls: BmadLanguageServer, params: types.InitializeParams) -> None:
        ls.settings.update(params.initialization_options)
        ls.diagnostics.delay = ls.settings.delay_s

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    @guarded()
    def did_change_configuration(ls: BmadLanguageServer, params: types.DidChangeConfigurationParams) -> None:
        ls.settings.update(params.settings)
        ls.diagnostics.delay = ls.settings.delay_s

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @guarded()
    def did_open(ls: BmadLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        td = params.text_document
        ls.store.open(td.uri, td.text, td.version)
        ls.diagnostics.schedule(td.uri, debounce=False)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @guarded()
    def did_change(ls: BmadLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        doc = ls.store.edit(uri, params.content_changes, params.text_document.version, ls.encoding)
        if doc is None:
            log.warning("ignored a change to %s, which is not open", uri)
            return
        # pygls's copy follows ours, for anyone who reads `ls.workspace`.
        language_id = ls.workspace.get_text_document(uri).language_id or "bmad"
        ls.workspace.put_text_document(types.TextDocumentItem(
            uri=uri, language_id=language_id, version=params.text_document.version, text=doc.text))
        ls.diagnostics.schedule(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @guarded()
    def did_save(ls: BmadLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.store.invalidate(uri_to_path(uri))
        ls.diagnostics.schedule(uri, debounce=False)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @guarded()
    def did_close(ls: BmadLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        path = uri_to_path(uri)
        ls.store.close(uri)
        ls.diagnostics.forget(uri)
        ls.diagnostics.clear(uri)
        # Dependents now read the file from disk again, not the closed buffer.
        ls.diagnostics.recheck_dependents(path)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @guarded()
    def did_change_watched_files(ls: BmadLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            ls.diagnostics.recheck_dependents(uri_to_path(change.uri))

    # --- language features ---------------------------------------------------------------

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @guarded()
    def on_hover(ls: BmadLanguageServer, params: types.HoverParams):
        doc = ls.document(params.text_document.uri)
        return hover.hover(ls, doc, params.position) if doc else None

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=["{", ".", " ", ",", "["]))
    @guarded(lambda: types.CompletionList(is_incomplete=False, items=[]))
    def on_completion(ls: BmadLanguageServer, params: types.CompletionParams):
        doc = ls.document(params.text_document.uri)
        if doc is None:
            return types.CompletionList(is_incomplete=False, items=[])
        return completion.complete(ls, doc, params.position)

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    @guarded(list)
    def on_definition(ls: BmadLanguageServer, params: types.DefinitionParams):
        doc = ls.document(params.text_document.uri)
        return definition.definition(ls, doc, params.position) if doc else []

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    @guarded(list)
    def on_references(ls: BmadLanguageServer, params: types.ReferenceParams):
        doc = ls.document(params.text_document.uri)
        if doc is None:
            return []
        return definition.references(ls, doc, params.position, params.context.include_declaration)

    @server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
    @guarded()
    def on_prepare_rename(ls: BmadLanguageServer, params: types.PrepareRenameParams):
        doc = ls.document(params.text_document.uri)
        return rename.prepare_rename(ls, doc, params.position) if doc else None

    @server.feature(types.TEXT_DOCUMENT_RENAME)
    @guarded()
    def on_rename(ls: BmadLanguageServer, params: types.RenameParams):
        doc = ls.document(params.text_document.uri)
        return rename.rename(ls, doc, params.position, params.new_name) if doc else None

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @guarded(list)
    def on_document_symbol(ls: BmadLanguageServer, params: types.DocumentSymbolParams):
        doc = ls.document(params.text_document.uri)
        return symbols.document_symbols(ls, doc) if doc else []

    @server.feature(types.WORKSPACE_SYMBOL)
    @guarded(list)
    def on_workspace_symbol(ls: BmadLanguageServer, params: types.WorkspaceSymbolParams):
        return symbols.workspace_symbols(ls, params.query)

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    @guarded()
    def on_formatting(ls: BmadLanguageServer, params: types.DocumentFormattingParams):
        doc = ls.document(params.text_document.uri)
        return formatting.format_document(ls, doc) if doc else None

    @server.feature(types.TEXT_DOCUMENT_RANGE_FORMATTING)
    @guarded()
    def on_range_formatting(ls: BmadLanguageServer, params: types.DocumentRangeFormattingParams):
        doc = ls.document(params.text_document.uri)
        return formatting.format_range(ls, doc, params.range) if doc else None

    @server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, semantic_tokens.LEGEND)
    @guarded(lambda: types.SemanticTokens(data=[]))
    def on_semantic_tokens(ls: BmadLanguageServer, params: types.SemanticTokensParams):
        doc = ls.document(params.text_document.uri)
        return semantic_tokens.full(ls, doc) if doc else types.SemanticTokens(data=[])

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix,
                                                               types.CodeActionKind.RefactorRewrite]))
    @guarded(list)
    def on_code_action(ls: BmadLanguageServer, params: types.CodeActionParams):
        doc = ls.document(params.text_document.uri)
        return code_actions.code_actions(ls, doc, params) if doc else []

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
    @guarded(list)
    def on_inlay_hint(ls: BmadLanguageServer, params: types.InlayHintParams):
        doc = ls.document(params.text_document.uri)
        return inlay_hints.inlay_hints(ls, doc, params.range) if doc else []

    @server.feature(types.SHUTDOWN)
    @guarded()
    def on_shutdown(ls: BmadLanguageServer, params: Any) -> None:
        ls.diagnostics.shutdown()

    return server


def warm_up() -> None:
    """Build what every compile needs (the parser's tables, the standard catalog, the checks) before
    the first document arrives, then exempt all of it from garbage collection: it lives as long as
    the server, and without this each full collection walks it again (`idle_collection.py`)."""
    from bmad.compiler import checks, incremental, passes  # noqa: F401 - imported to be frozen
    from bmad.compiler.load import catalog_source
    from bmad.compiler.parse import build_parser

    build_parser()
    catalog_source()
    freeze_startup_heap()


def main(tcp: tuple[str, int] | None = None) -> None:
    """Run the server over stdio (the default) or TCP (for debugging with a client that attaches).
    Raises `MessageTooLarge` when the client announced a message no document could need."""
    import sys

    from bmad.lsp.stdio_guard import BoundedStdin, OneLineFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("bmad-lsp %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("pygls.protocol.json_rpc").addFilter(_QuietRefusals())
    warm_up()
    server = create_server()
    if tcp is not None:
        server.start_tcp(*tcp)
        return
    stdin = BoundedStdin(sys.stdin.buffer)
    server.start_io(stdin=stdin)  # type: ignore[arg-type] - a binary stream's read/readline
    if stdin.refused is not None:
        raise stdin.refused


if __name__ == "__main__":
    main()
