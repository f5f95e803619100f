"""Random edit sequences never kill the server, and every request gets an answer.

Hypothesis draws a document (a contract example or an empty one) and a sequence of edits
(insertions of language fragments, unicode, stray quotes and braces; deletions), each followed by a
random request at a random position. The server runs once for the whole module on an event loop in a
background thread (hypothesis drives examples synchronously). Every request must come back without
a JSON-RPC error, the process must stay alive, and the last version's diagnostics must arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types

from bmad.lsp.convert import LineIndex

HERE = Path(__file__).resolve()
SPEC = (HERE.parents[2] / ".." / "shared" / "spec").resolve()
EXAMPLES = [p.read_text(encoding="utf-8") for p in sorted(SPEC.glob("*.bmad"))] + [
    'workflow hello {\n  input name: text = "world"\n  task greet {\n    prompt "Hi {{ name }}"\n  }\n  output greet\n}\n',
    "",
]

FRAGMENTS = [
    "task ", "workflow w {", "}", "{", "{{ ", " }}", '"', '"""', "\n", "  ", "input x: text\n",
    "depends ", "model ", "needs code", "[gpt-4o, ", "]", 'prompt "{{ a.b }}"', "when a > 3 ",
    "for each q in qs ", "= w(x: 1)", "$0.5", "30s", "200k", "quality >= 0.9 judged by ", "#",
    "é", "😀", "\t", 'import "nowhere.bmad"\n', "use std.", 'returns json { "type": ', ",", ".",
    "consensus vote among [a, b] quorum 3", 'provider p { kind openai api_key "sk-1" }', "\r\n",
]

REQUESTS = ["completion", "hover", "definition", "references", "symbols", "tokens", "actions",
            "inlay", "format", "range_format", "prepare_rename", "rename", "workspace_symbols"]
HANG_GUARD_S = 60


class Session:
    """The client and server, on a private event loop in a background thread."""

    def __init__(self, config, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.root = root
        self.counter = itertools.count()
        self.client = self.run(self._start(config))

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(HANG_GUARD_S)

    async def _start(self, config):
        client = await config.start()
        await client.initialize_session(types.InitializeParams(
            capabilities=types.ClientCapabilities(), root_uri=self.root.as_uri()))
        return client

    def close(self) -> None:
        try:
            self.run(self.client.shutdown_session())
            self.run(self.client.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@pytest.fixture(scope="module")
def session(server_config, tmp_path_factory):
    s = Session(server_config, tmp_path_factory.mktemp("robust"))
    yield s
    s.close()


edits = st.lists(
    st.tuples(
        st.floats(0, 1),  # where (fraction of the text)
        st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6), st.just("")),  # what to insert
        st.integers(0, 12),  # how much to delete
        st.sampled_from(REQUESTS),
        st.floats(0, 1),  # where to ask
    ),
    min_size=1, max_size=8,
)


async def _request(client, uri: str, kind: str, position: types.Position, text: str):
    doc = types.TextDocumentIdentifier(uri=uri)
    whole = types.Range(start=types.Position(line=0, character=0), end=LineIndex(text).position(len(text)))
    if kind == "completion":
        return await client.text_document_completion_async(types.CompletionParams(text_document=doc, position=position))
    if kind == "hover":
        return await client.text_document_hover_async(types.HoverParams(text_document=doc, position=position))
    if kind == "definition":
        return await client.text_document_definition_async(types.DefinitionParams(text_document=doc, position=position))
    if kind == "references":
        return await client.text_document_references_async(types.ReferenceParams(
            text_document=doc, position=position, context=types.ReferenceContext(include_declaration=True)))
    if kind == "symbols":
        return await client.text_document_document_symbol_async(types.DocumentSymbolParams(text_document=doc))
    if kind == "tokens":
        return await client.text_document_semantic_tokens_full_async(types.SemanticTokensParams(text_document=doc))
    if kind == "actions":
        return await client.text_document_code_action_async(types.CodeActionParams(
            text_document=doc, range=types.Range(start=position, end=position),
            context=types.CodeActionContext(diagnostics=list(client.diagnostics.get(uri, [])))))
    if kind == "inlay":
        return await client.text_document_inlay_hint_async(types.InlayHintParams(text_document=doc, range=whole))
    if kind == "format":
        return await client.text_document_formatting_async(types.DocumentFormattingParams(
            text_document=doc, options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    if kind == "range_format":
        return await client.text_document_range_formatting_async(types.DocumentRangeFormattingParams(
            text_document=doc, range=types.Range(start=position, end=whole.end),
            options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    if kind == "prepare_rename":
        return await client.text_document_prepare_rename_async(
            types.PrepareRenameParams(text_document=doc, position=position))
    if kind == "rename":
        try:
            return await client.text_document_rename_async(
                types.RenameParams(text_document=doc, position=position, new_name="renamed_x"))
        except Exception as exc:  # a refused rename is an answer; anything else is a failure
            assert "not a valid" in str(exc), exc
            return None
    if kind == "workspace_symbols":
        return await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="a"))
    raise AssertionError(kind)


async def _exercise(session: Session, base: str, steps) -> None:
    client = session.client
    path = session.root / f"doc{next(session.counter)}.bmad"
    path.write_text(base, encoding="utf-8")
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="bmad", version=1, text=base)))
    text, version = base, 1
    for where, insert, delete, kind, ask in steps:
        start = int(where * len(text))
        end = min(len(text), start + delete)
        lines = LineIndex(text)
        change = types.TextDocumentContentChangePartial(
            range=types.Range(start=lines.position(start), end=lines.position(end)), text=insert)
        text = text[:start] + insert + text[end:]
        version += 1
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[change]))
        position = LineIndex(text).position(int(ask * len(text)))
        await _request(client, uri, kind, position, text)
    assert client._server is not None and client._server.returncode is None

    async def final_diagnostics():
        while True:
            for params in reversed(client.published):
                if params.uri == uri and params.version == version:
                    return
            await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

    await asyncio.wait_for(final_diagnostics(), HANG_GUARD_S)
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(EXAMPLES), steps=edits)
def test_random_edits_never_kill_the_server(session, base, steps):
    session.run(_exercise(session, base, steps))


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(EXAMPLES), steps=edits)
def test_random_edits_never_kill_the_server_long(session, base, steps):
    session.run(_exercise(session, base, steps))
