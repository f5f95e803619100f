"""Regressions from the QA probe of the language server (/tmp/qa_docs/FINDINGS.md, findings 1-3, 6-8, 11):
clauses written after a string on the same line, rename conflicts and keyword names, BMAD-E110,
invalid positions, non-ASCII hover text and `use std.` completion."""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types

from tests.lsp.conftest import HANG_GUARD_S, doc, open_and_wait as _open

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The one-line layout the docs use: `depends`, `model` and `fallback` after a string.
ONE_LINE = """\
provider openai { kind openai api_key env OPENAI_API_KEY }
model gpt-4o-mini { provider openai price input $0.15 output $0.60 per 1M context 128k }
model claude-haiku { provider openai price input $0.25 output $1.25 per 1M context 200k }

workflow w {
  task a { prompt "x" }
  task b { prompt "y" depends a }
  task c { about "z" prompt "{{ a }}" }
  task pinned { prompt "hi" model gpt-4o-mini fallback [claude-haiku] }
  output b
  output c
  output pinned
}
"""


def _edits(edit: types.WorkspaceEdit, uri: str) -> list[tuple[int, int, str]]:
    return sorted((e.range.start.line, e.range.start.character, e.new_text) for e in edit.changes[uri])


def _labels(result) -> list[str]:
    items = result.items if isinstance(result, types.CompletionList) else result
    return [i.label for i in items]


# --- 1. clauses after a string on the same line -----------------------------------------------


async def test_the_one_line_layout_compiles_cleanly(client, editor):
    uri = editor.write_and_open("oneline_ok.bmad", ONE_LINE)
    diagnostics = await editor.diagnostics(uri, 1)
    assert [d for d in diagnostics if d.severity == types.DiagnosticSeverity.Error] == []


async def test_rename_a_task_finds_depends_after_a_string(client, editor, at):
    uri = await _open(editor, "oneline_task.bmad", ONE_LINE)
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc(uri), position=at(5, 7), new_name="first"))
    # the declaration, `depends a` after `prompt "y"`, and `{{ a }}`
    assert _edits(edit, uri) == [(5, 7, "first"), (6, 30, "first"), (7, 32, "first")]


async def test_references_of_a_task_include_depends_after_a_string(client, editor, at):
    uri = await _open(editor, "oneline_refs.bmad", ONE_LINE)
    found = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=at(5, 7), context=types.ReferenceContext(include_declaration=False)))
    assert sorted((loc.range.start.line, loc.range.start.character) for loc in found) == [(6, 30), (7, 32)]


async def test_model_after_a_string_has_hover_definition_references_and_rename(client, editor, at):
    uri = await _open(editor, "oneline_model.bmad", ONE_LINE)
    here = at(8, 36)  # inside `gpt-4o-mini` after `prompt "hi" model `
    hover = await client.text_document_hover_async(types.HoverParams(text_document=doc(uri), position=here))
    assert hover is not None and "gpt-4o-mini" in hover.contents.value
    definition = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc(uri), position=here))
    assert [(loc.range.start.line, loc.range.start.character) for loc in definition] == [(1, 6)]
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=here, context=types.ReferenceContext(include_declaration=True)))
    assert sorted((loc.range.start.line, loc.range.start.character) for loc in refs) == [(1, 6), (8, 34)]
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc(uri), position=here, new_name="mini"))
    assert _edits(edit, uri) == [(1, 6, "mini"), (8, 34, "mini")]
    # `fallback [claude-haiku]` after the model clause on the same line
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=at(2, 8), context=types.ReferenceContext(include_declaration=False)))
    assert [(loc.range.start.line, loc.range.start.character) for loc in refs] == [(8, 56)]


async def test_completion_after_model_and_depends_following_a_string(client, editor, at):
    text = ONE_LINE.replace('  output b\n', '  task u { prompt "x" depends  }\n'
                                            '  task v { prompt "{{ a }}" model  }\n  output b\n')
    uri = await _open(editor, "oneline_complete.bmad", text)
    depends = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(9, 30)))
    assert {"a", "b", "c", "pinned"} <= set(_labels(depends))
    assert "u" not in _labels(depends)
    models = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(10, 34)))
    assert {"gpt-4o-mini", "claude-haiku"} <= set(_labels(models))


async def test_a_keyword_right_after_its_clause_keyword_is_a_name(client, editor, at):
    # `depends model`: a task called `model`, not a `model` clause
    text = ('workflow w {\n  task model { prompt "x" }\n  task each { prompt "{{ model }}" depends model }\n'
            '  output each\n}\n')
    uri = await _open(editor, "kwnames.bmad", text)
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=at(1, 8), context=types.ReferenceContext(include_declaration=False)))
    assert sorted((loc.range.start.line, loc.range.start.character) for loc in refs) == [(2, 25), (2, 43)]
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=at(2, 8), context=types.ReferenceContext(include_declaration=False)))
    assert [(loc.range.start.line, loc.range.start.character) for loc in refs] == [(3, 9)]


# --- 2. rename to a name that is taken --------------------------------------------------------


async def test_rename_a_task_to_a_taken_name_is_refused(client, editor, at):
    uri = await _open(editor, "taken_task.bmad", ONE_LINE)
    with pytest.raises(Exception, match="`b` is already a task of workflow `w`"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=doc(uri), position=at(5, 7), new_name="b"))


async def test_rename_a_workflow_to_one_in_an_imported_file_is_refused(client, editor, at):
    editor.write("lib_taken.bmad", 'workflow helper {\n  task t { prompt "x" }\n  output t\n}\n')
    text = 'import "lib_taken.bmad"\n\nworkflow main {\n  task m = helper()\n  output m\n}\n'
    uri = await _open(editor, "main_taken.bmad", text)
    with pytest.raises(Exception, match="`helper` is already a workflow"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=doc(uri), position=at(2, 10), new_name="helper"))


async def test_rename_a_model_to_a_taken_name_is_refused(client, editor, at):
    uri = await _open(editor, "taken_model.bmad", ONE_LINE)
    with pytest.raises(Exception, match="`claude-haiku` is already a model"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=doc(uri), position=at(1, 8), new_name="claude-haiku"))


# --- 3. BMAD-E110 -----------------------------------------------------------------------------


async def test_unknown_rubric_is_reported_like_bmad_check(client, editor):
    text = ('rubric mine "Be good."\n\nworkflow w {\n  input report: text\n  task summary {\n'
            '    prompt "Summarise: {{ report }}"\n    quality >= 0.8 rubric minee\n  }\n  output summary\n}\n')
    uri = editor.write_and_open("rubric_unknown.bmad", text)
    diagnostics = await editor.diagnostics(uri, 1)
    e110 = [d for d in diagnostics if d.code == "BMAD-E110"]
    assert len(e110) == 1
    assert e110[0].message.startswith("no rubric named `minee`")
    assert "did you mean `mine`?" in e110[0].message
    assert (e110[0].range.start.line, e110[0].range.start.character) == (6, 26)
    # still there after an edit (the incremental path)
    editor.replace_all(uri, text + "\n", 2)
    assert [d.code for d in await editor.diagnostics(uri, 2) if d.code == "BMAD-E110"] == ["BMAD-E110"]
    editor.replace_all(uri, text.replace("minee", "mine"), 3)
    assert [d for d in await editor.diagnostics(uri, 3) if d.code == "BMAD-E110"] == []


# --- 4. negative positions --------------------------------------------------------------------


def _negative_position() -> types.Position:
    """A position with line and character -1, which the client's own types would refuse to build."""
    position = types.Position(line=0, character=0)
    object.__setattr__(position, "line", -1)
    object.__setattr__(position, "character", -1)
    return position


@pytest.mark.parametrize("method", ["hover", "definition", "completion", "references"])
async def test_a_negative_position_is_answered_with_an_error(client, editor, method):
    uri = await _open(editor, "negative.bmad", ONE_LINE)
    where = dict(text_document=doc(uri), position=_negative_position())
    request = {
        "hover": lambda: client.text_document_hover_async(types.HoverParams(**where)),
        "definition": lambda: client.text_document_definition_async(types.DefinitionParams(**where)),
        "completion": lambda: client.text_document_completion_async(types.CompletionParams(**where)),
        "references": lambda: client.text_document_references_async(types.ReferenceParams(
            **where, context=types.ReferenceContext(include_declaration=True))),
    }[method]
    with pytest.raises(Exception, match="invalid params"):
        await asyncio.wait_for(request(), HANG_GUARD_S)
    # and the server goes on answering
    hover = await client.text_document_hover_async(types.HoverParams(
        text_document=doc(uri), position=types.Position(line=5, character=7)))
    assert hover is not None


# --- 5. names the compiler accepts ------------------------------------------------------------


@pytest.mark.parametrize("name", ["model", "input", "each", "depends"])
async def test_rename_accepts_keywords_the_grammar_reads_as_names(client, editor, at, name):
    uri = await _open(editor, f"kw_{name}.bmad", ONE_LINE)
    edit = await client.text_document_rename_async(types.RenameParams(
        text_document=doc(uri), position=at(5, 7), new_name=name))
    assert _edits(edit, uri) == [(5, 7, name), (6, 30, name), (7, 32, name)]


async def test_rename_still_refuses_expression_literals(client, editor, at):
    uri = await _open(editor, "kw_true.bmad", ONE_LINE)
    with pytest.raises(Exception, match="not a valid task name"):
        await client.text_document_rename_async(types.RenameParams(
            text_document=doc(uri), position=at(5, 7), new_name="true"))


# --- 6. non-ASCII defaults in hover -----------------------------------------------------------


async def test_hover_shows_a_non_ascii_default_as_written(client, editor, at):
    text = 'workflow w {\n  input text: text = "café 😀"\n  task t { prompt "{{ text }}" }\n  output t\n}\n'
    uri = await _open(editor, "unicode_default.bmad", text)
    hover = await client.text_document_hover_async(types.HoverParams(text_document=doc(uri), position=at(1, 9)))
    assert hover is not None
    assert '"café 😀"' in hover.contents.value
    assert "\\u" not in hover.contents.value


# --- 7. `use std.` completion -----------------------------------------------------------------


async def test_completion_after_use_std_replaces_the_typed_prefix(client, editor, at):
    uri = await _open(editor, "use_std.bmad", "use std.\n")
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(0, 8)))
    items = result.items if isinstance(result, types.CompletionList) else result
    quality = next(i for i in items if i.label == "std.quality")
    assert quality.text_edit is not None
    assert quality.text_edit.range == at.range((0, 4), (0, 8))
    assert quality.text_edit.new_text == "std.quality"


async def test_fallback_completes_none_and_its_hover_says_what_it_does(client, editor, at):
    text = ONE_LINE.replace('  output b\n', '  task s {\n    prompt "x"\n    fallback \n  }\n  output b\n')
    uri = await _open(editor, "fallback_none.bmad", text)
    items = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(11, 13)))
    assert "none" in _labels(items)
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=at(11, 6)))
    assert "fallback none" in hover.contents.value


async def test_a_keyword_half_typed_after_a_string_or_a_model_on_the_same_line(client, editor, at):
    text = ONE_LINE.replace('  output b\n', '  task s { prompt "x" dep }\n  task m { model gpt-4o-mini fal }\n'
                                            '  output b\n')
    uri = await _open(editor, "half_typed.bmad", text)
    after_string = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(9, 25)))
    assert {"depends", "model", "fallback"} <= set(_labels(after_string))
    after_model = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(10, 32)))
    assert "fallback" in _labels(after_model) and "gpt-4o-mini" not in _labels(after_model)
    # still inside the clause: its own values
    models = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(10, 17)))
    assert "gpt-4o-mini" in _labels(models)
