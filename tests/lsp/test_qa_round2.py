"""Regressions from the second QA round of the language server (/tmp/qa_lsp/report.md): code actions
in the negotiated position encoding, renames that a loop variable would capture, and model references
across the open document's imports when there is no workspace folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lsprotocol import types

from bmad.compiler.compile import compile_source
from tests.lsp.conftest import CODECS as _CODECS, Editor, doc, open_and_wait as _open

pytestmark = pytest.mark.asyncio(loop_scope="module")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# --- 1. code actions count columns in the encoding the client negotiated ----------------------



def _offset(text: str, position: types.Position, encoding: str) -> int:
    """A position's offset in `text`, counting columns in `encoding`'s code units (as a client does)."""
    codec, unit = _CODECS[encoding]
    lines = text.split("\n")
    before = sum(len(line) + 1 for line in lines[:position.line])
    line = lines[position.line].encode(codec)[:position.character * unit]
    return before + len(line.decode(codec))


def _apply(text: str, edits: list[types.TextEdit], encoding: str) -> str:
    spans = [(_offset(text, e.range.start, encoding), _offset(text, e.range.end, encoding), e.new_text)
             for e in edits]
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    return text


UNICODE = """\
workflow w {
  input topic: text
  task summary { prompt "Résumé 世界 😀 {{ topic }}" }
  task next { prompt "Ça va 世界 😀 {{ summry }} {{ extra }}" }
  task last { prompt "😀 é {{ topic }}" depends summary }
  output next
  output last
}
"""


async def _actions(client, uri: str, range_: types.Range, diagnostics: list[types.Diagnostic]):
    return await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(uri), range=range_, context=types.CodeActionContext(diagnostics=diagnostics)))


async def test_code_actions_use_the_negotiated_encoding(encoded_client, tmp_path):
    client = encoded_client
    encoding = client.initialize_result.capabilities.position_encoding
    assert encoding in _CODECS
    uri = Editor(client, tmp_path).write_and_open("unicode_actions.bmad", UNICODE)
    diagnostics = await Editor(client, tmp_path).diagnostics(uri, 1)
    unknown = sorted((d for d in diagnostics if d.code == "BMAD-E101"), key=lambda d: d.range.start.character)
    assert len(unknown) == 2
    misspelt, extra = unknown
    line = UNICODE.split("\n")[3]

    # did you mean: the misspelt name under the diagnostic, replaced where it is written
    actions = await _actions(client, uri, misspelt.range, [misspelt])
    fix = next(a for a in actions if a.title.startswith("Change"))
    assert fix.title == "Change `summry` to `summary`"
    fixed = _apply(UNICODE, fix.edit.changes[uri], encoding)
    assert fixed.split("\n")[3] == line.replace("summry", "summary")

    # declare input: offered for `extra`, tied to its own diagnostic
    actions = await _actions(client, uri, extra.range, [misspelt, extra])
    declare = next(a for a in actions if a.title.startswith("Declare input `extra"))
    assert list(declare.diagnostics) == [extra]
    declared = _apply(UNICODE, declare.edit.changes[uri], encoding)
    assert declared.split("\n")[2] == "  input extra: text"

    # add depends: extends the clause written after non-ASCII text on the task's line
    header = types.Range(start=types.Position(line=4, character=7), end=types.Position(line=4, character=7))
    actions = await _actions(client, uri, header, [])
    depends = next(a for a in actions if a.title == "Add `depends next` to task `last`")
    added = _apply(UNICODE, depends.edit.changes[uri], encoding)
    assert added.split("\n")[4] == '  task last { prompt "😀 é {{ topic }}" depends summary, next }'


# --- 2. a task or input renamed to a loop variable's name -------------------------------------

LOOP = """\
workflow w {
  input files: list<text> = []
  input topic: text = "x"
  task summary { prompt "Summarize {{ topic }}" }
  task scores for each file in files {
    prompt "Score {{ file }} against {{ summary }}"
  }
  task picked for each item in files when topic != "" {
    prompt "Pick {{ item }}"
  }
  output scores
  output picked
}
"""


async def test_rename_a_task_to_a_loop_variable_used_where_it_is_referenced_is_refused(client, editor, at):
    uri = await _open(editor, "capture_task.bmad", LOOP)
    with pytest.raises(Exception, match="`file` is the loop variable of task `scores`, where `summary` is used"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=doc(uri), position=at(3, 8), new_name="file"))


async def test_rename_an_input_to_a_loop_variable_of_a_when_that_uses_it_is_refused(client, editor, at):
    uri = await _open(editor, "capture_input.bmad", LOOP)
    with pytest.raises(Exception, match="`item` is the loop variable of task `picked`, where `topic` is used"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=doc(uri), position=at(2, 9), new_name="item"))
    # where the loop variable is not in scope, the same name is fine
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc(uri), position=at(2, 9), new_name="file"))
    assert sorted((e.range.start.line, e.range.start.character) for e in edit.changes[uri]) == \
        [(2, 8), (3, 38), (7, 42)]


async def test_a_for_each_source_names_what_is_outside_the_loop(client, editor, at):
    """`for each file in file`: the list is the input, as the compiler reads it (the loop variable
    is bound only inside the task), so renaming the input `files` to `file` keeps the program."""
    uri = await _open(editor, "loop_source.bmad", LOOP)
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc(uri), position=at(1, 9), new_name="file"))
    renamed = _apply(LOOP, edit.changes[uri], "utf-16")
    assert "task scores for each file in file {" in renamed
    assert [d.code for d in compile_source(renamed, "loop_source.bmad").diagnostics if d.is_error] == []
    editor.replace_all(uri, renamed, 2)
    await editor.diagnostics(uri, 2)
    definition = await client.text_document_definition_async(types.DefinitionParams(
        text_document=doc(uri), position=at(4, 33)))  # the source `file`
    assert [(loc.range.start.line, loc.range.start.character) for loc in definition] == [(1, 8)]
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=at(4, 23), context=types.ReferenceContext(include_declaration=True)))
    assert sorted((loc.range.start.line, loc.range.start.character) for loc in refs) == [(4, 23), (5, 21)]


# --- 3. no workspace folder: the open document's imports are searched too ----------------------


async def test_rename_a_model_reaches_every_file_in_the_open_documents_imports(client, editor, at, tmp_path):
    for name in ("nightly_reviews.bmad", "code_review.bmad", "models.bmad"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    main = tmp_path / "nightly_reviews.bmad"
    text = main.read_text(encoding="utf-8")
    uri = editor.uri_of(main)
    editor.open(uri, text)
    await editor.diagnostics(uri, 1)
    here = at(15, 12)  # `model gpt-4o-mini`
    assert "gpt-4o-mini" in text.split("\n")[15]
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=here, context=types.ReferenceContext(include_declaration=True)))
    assert sorted({loc.uri.rsplit("/", 1)[-1] for loc in refs}) == \
        ["code_review.bmad", "models.bmad", "nightly_reviews.bmad"]
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc(uri), position=here, new_name="mini"))
    assert sorted(u.rsplit("/", 1)[-1] for u in edit.changes) == \
        ["code_review.bmad", "models.bmad", "nightly_reviews.bmad"]
    for changed_uri, edits in edit.changes.items():
        path = tmp_path / changed_uri.rsplit("/", 1)[-1]
        path.write_text(_apply(path.read_text(encoding="utf-8"), edits, "utf-16"), encoding="utf-8")
    result = compile_source(main.read_text(encoding="utf-8"), str(main))
    assert [f"{d.code} {d.message}" for d in result.diagnostics if d.is_error] == []
