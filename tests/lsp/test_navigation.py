"""Navigation end to end: definition and references across two files, rename, outline, workspace symbols."""

from __future__ import annotations

import pytest
from lsprotocol import types

from tests.lsp.conftest import doc

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAIN = """\
import "models.bmad"

workflow main {
  input text: text
  task digest {
    prompt "Summarize {{ text }}"
    model fast
  }
  task check {
    prompt "Check {{ digest }} against {{ text }}"
    fallback [fast]
  }
  output check
}
"""


async def _open_pair(editor, models_bmad):
    _, models_uri = editor.write("models.bmad", models_bmad)
    main_uri = editor.write_and_open("main.bmad", MAIN)
    await editor.diagnostics(main_uri, 1)
    return models_uri, main_uri


async def test_definition_of_a_model_is_in_the_imported_file(client, editor, at, models_bmad):
    models_uri, main_uri = await _open_pair(editor, models_bmad)
    result = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc(main_uri), position=at(6, 12)))
    assert [(loc.uri, loc.range) for loc in result] == [(models_uri, at.range((5, 6), (5, 10)))]


async def test_definition_of_a_task_and_an_input_in_a_template(client, editor, at, models_bmad):
    _, main_uri = await _open_pair(editor, models_bmad)
    task = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc(main_uri), position=at(9, 22)))
    assert [(loc.uri, loc.range) for loc in task] == [(main_uri, at.range((4, 7), (4, 13)))]
    inp = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc(main_uri), position=at(5, 26)))
    assert [loc.range for loc in inp] == [at.range((3, 8), (3, 12))]


async def test_definition_of_an_import_is_the_file(client, editor, at, models_bmad):
    models_uri, main_uri = await _open_pair(editor, models_bmad)
    result = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc(main_uri), position=at(0, 10)))
    assert [loc.uri for loc in result] == [models_uri]


async def test_references_of_a_model_span_both_files(client, editor, at, models_bmad):
    models_uri, main_uri = await _open_pair(editor, models_bmad)
    # asked from the declaration in models.bmad (not open: read from disk)
    result = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(models_uri), position=at(5, 8),
        context=types.ReferenceContext(include_declaration=True)))
    found = sorted((loc.uri.rsplit("/", 1)[-1], loc.range.start.line, loc.range.start.character) for loc in result)
    assert found == [("main.bmad", 6, 10), ("main.bmad", 10, 14), ("models.bmad", 5, 6)]


async def test_references_of_an_input_without_the_declaration(client, editor, at, models_bmad):
    _, main_uri = await _open_pair(editor, models_bmad)
    result = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(main_uri), position=at(3, 9),
        context=types.ReferenceContext(include_declaration=False)))
    assert sorted((loc.range.start.line, loc.range.start.character) for loc in result) == [(5, 25), (9, 42)]


async def test_rename_a_task_updates_every_reference(client, editor, at, models_bmad):
    _, main_uri = await _open_pair(editor, models_bmad)
    prepared = await client.text_document_prepare_rename_async(
        types.PrepareRenameParams(text_document=doc(main_uri), position=at(9, 22)))
    assert prepared.placeholder == "digest"
    assert prepared.range == at.range((9, 21), (9, 27))
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc(main_uri), position=at(4, 9), new_name="summary"))
    edits = sorted((e.range.start.line, e.range.start.character, e.new_text) for e in edit.changes[main_uri])
    assert edits == [(4, 7, "summary"), (9, 21, "summary")]


async def test_rename_a_model_across_files(client, editor, at, models_bmad):
    models_uri, main_uri = await _open_pair(editor, models_bmad)
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc(main_uri), position=at(10, 15), new_name="quick"))
    assert sorted(edit.changes) == sorted([models_uri, main_uri])
    assert [e.range for e in edit.changes[models_uri]] == [at.range((5, 6), (5, 10))]
    assert sorted(e.range.start.line for e in edit.changes[main_uri]) == [6, 10]


async def test_rename_refuses_an_invalid_name(client, editor, at, models_bmad):
    _, main_uri = await _open_pair(editor, models_bmad)
    with pytest.raises(Exception, match="not a valid task name"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=doc(main_uri), position=at(4, 9), new_name="two words"))


async def test_document_symbols_outline_even_when_broken(client, editor, at):
    broken = MAIN.replace("  output check\n}\n", "  task half {\n    prompt \"{{ \n")
    uri = editor.write_and_open("broken.bmad", broken)
    await editor.diagnostics(uri, 1)
    result = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=doc(uri)))
    assert [(s.name, s.kind) for s in result] == [("main", types.SymbolKind.Namespace)]
    assert [c.name for c in result[0].children] == ["text", "digest", "check", "half"]
    assert result[0].children[1].selection_range == at.range((4, 7), (4, 13))


async def test_workspace_symbols_find_open_documents(client, editor, models_bmad):
    await _open_pair(editor, models_bmad)
    result = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="dgst"))
    names = {(s.name, s.location.uri.rsplit("/", 1)[-1]) for s in result}
    assert ("digest", "main.bmad") in names
