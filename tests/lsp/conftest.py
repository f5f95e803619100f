"""The language server under test: the real `bmad lsp` in a subprocess, a pytest-lsp client over stdio.

One server per test module (starting Python and pygls costs a second); each test writes its own
files under tmp_path, so the tests don't see each other's documents. Tests wait for notifications
(`wait_for_diagnostics`), never sleep.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

SERVER_COMMAND = [sys.executable, "-m", "bmad", "lsp"]
# A guard against a hung server, not a timing assertion: a healthy answer comes in milliseconds.
HANG_GUARD_S = 60


def _record_publish(client: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
    client.diagnostics[params.uri] = params.diagnostics
    client.published.append(params)


def make_client() -> LanguageClient:
    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # every publishDiagnostics, in order (uri, version, diagnostics)
    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = _record_publish
    register_lsp_features(client, features)
    return client


CONFIG = ClientServerConfig(server_command=SERVER_COMMAND, client_factory=make_client)


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient):
    lsp_client.initialize_result = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        root_uri=None,
        initialization_options={"bmad": {"inlayHints": {"cost": True}}},
    ))
    yield
    await lsp_client.shutdown_session()


class Editor:
    """What an editor does to the server: write files, open and edit documents, wait for answers."""

    def __init__(self, client: LanguageClient, tmp_path: Path) -> None:
        self.client = client
        self.tmp_path = tmp_path

    @staticmethod
    def uri_of(path: Path) -> str:
        return path.resolve().as_uri()

    def write(self, name: str, text: str) -> tuple[Path, str]:
        path = self.tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path, self.uri_of(path)

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="bmad", version=version, text=text)))

    def write_and_open(self, name: str, text: str) -> str:
        _, uri = self.write(name, text)
        self.open(uri, text)
        return uri

    def replace_all(self, uri: str, text: str, version: int) -> None:
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))

    def edit(self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(range=rng(start, end), text=text)]))

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    async def diagnostics(self, uri: str, version: int | None) -> list[types.Diagnostic]:
        """The diagnostics published for `uri` at `version` (waiting for them if need be)."""
        client = self.client

        async def wait():
            while True:
                for params in reversed(client.published):
                    if params.uri == uri and params.version == version:
                        return list(params.diagnostics)
                await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

        return await asyncio.wait_for(wait(), HANG_GUARD_S)

    async def diagnostics_with(self, uri: str, version: int | None, code: str) -> list[types.Diagnostic]:
        """The first diagnostics for `uri` at `version` that include `code` (a later stage's)."""
        client = self.client

        async def wait():
            while True:
                for params in client.published:
                    if params.uri == uri and params.version == version and any(
                            d.code == code for d in params.diagnostics):
                        return list(params.diagnostics)
                await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

        return await asyncio.wait_for(wait(), HANG_GUARD_S)

    def mark(self) -> int:
        return len(self.client.published)

    async def next_diagnostics(self, uri: str, after: int) -> list[types.Diagnostic]:
        """The first diagnostics for `uri` published after mark `after`."""
        client = self.client

        async def wait():
            while True:
                for params in client.published[after:]:
                    if params.uri == uri:
                        return list(params.diagnostics)
                await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)

        return await asyncio.wait_for(wait(), HANG_GUARD_S)


@pytest.fixture
def editor(client: LanguageClient, tmp_path: Path) -> Editor:
    return Editor(client, tmp_path)


def doc(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


async def open_and_wait(editor: "Editor", name: str, text: str) -> str:
    """Write and open a document, and wait for its first diagnostics (the server has read it)."""
    uri = editor.write_and_open(name, text)
    await editor.diagnostics(uri, 1)
    return uri


def pos(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


def rng(a: tuple[int, int], b: tuple[int, int]) -> types.Range:
    return types.Range(start=pos(*a), end=pos(*b))


@pytest.fixture
def at():
    """`at(line, character)` -> an LSP position; `at.range((l, c), (l, c))` -> a range."""

    class At:
        def __call__(self, line: int, character: int) -> types.Position:
            return pos(line, character)

        range = staticmethod(rng)

    return At()


@pytest.fixture(scope="session")
def server_config() -> ClientServerConfig:
    """How to start `bmad lsp` and the recording client (for tests that drive the loop themselves)."""
    return CONFIG


# The workspace files several test modules edit: a provider and model that main files import, and a
# workflow whose budget no model can meet (BMAD-E2xx plan findings).
MODELS_BMAD = """\
provider openai {
  kind openai
  api_key env OPENAI_API_KEY
}

model fast {
  provider openai
  price input $0.15 output $0.60 per 1M
  context 128k
  skills { writing 0.8, summarization 0.8 }
}
"""

BUDGET_BMAD = """\
provider openai {
  kind openai
  api_key env OPENAI_API_KEY
}

model strong {
  provider openai
  price input $2.50 output $10.00 per 1M
  context 128k
  skills { reasoning 0.9 }
}

workflow w {
  budget $0.000001 per run
  task a {
    prompt "Write a long essay."
    needs reasoning
    max_tokens 4000
  }
  output a
}
"""


@pytest.fixture
def models_bmad() -> str:
    return MODELS_BMAD


@pytest.fixture
def budget_bmad() -> str:
    return BUDGET_BMAD


# Position encodings a client may negotiate: codec and bytes per code unit, to count columns as it does.
CODECS = {"utf-8": ("utf-8", 1), "utf-16": ("utf-16-le", 2), "utf-32": ("utf-32-le", 4)}


@pytest_lsp.fixture(config=CONFIG, scope="module", params=list(CODECS))
async def encoded_client(lsp_client: LanguageClient, request):
    """A client that offers only one position encoding (each of CODECS in turn), no workspace."""
    lsp_client.initialize_result = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(
            general=types.GeneralClientCapabilities(position_encodings=[request.param])),
        root_uri=None))
    yield
    await lsp_client.shutdown_session()


# An untidy but valid workflow for the formatting tests (range and whole-document).
MESSY = """\
workflow   tidy {
 input diff: text
 task a {
 prompt "A {{ diff }}"
   }
 task b {
       prompt "B {{ a }}"
 }
 output b
}
"""
