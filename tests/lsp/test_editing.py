"""Editing help end to end: completion in context, hover, code actions, inlay hints, semantic tokens."""

from __future__ import annotations

import pytest
from lsprotocol import types

from tests.lsp.conftest import MESSY, doc, open_and_wait as _open

pytestmark = pytest.mark.asyncio(loop_scope="module")

FLOW = """\
workflow review {
  input diff: text
  input files: list<text> = []

  task summarize {
    prompt "Summarize {{ diff }}"
    needs summarization
  }

  task scores for each file in files {
    prompt "Score {{ file }}"
    returns json { "type": "object", "properties": { "score": { "type": "number" }, "why": { "type": "string" } } }
  }

  task verdict {
    prompt "Decide from {{ summarize }}"
  }

  output verdict
}
"""


async def _complete(client, uri, position) -> list[str]:
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=position))
    items = result.items if isinstance(result, types.CompletionList) else result
    return [i.label for i in items]


async def test_completion_inside_interpolation_offers_names_in_scope(client, editor, at):
    text = FLOW.replace('"Decide from {{ summarize }}"', '"Decide from {{ su"')
    uri = await _open(editor, "flow.bmad", text)
    # after `{{ su` on line 15, even though the document no longer compiles cleanly
    labels = await _complete(client, uri, at(15, 29))
    assert {"summarize", "scores", "diff", "files"} <= set(labels)
    assert "verdict" not in labels  # a task cannot read itself


async def test_completion_inside_interpolation_in_a_loop_offers_the_loop_variable(client, editor, at):
    text = FLOW.replace('"Score {{ file }}"', '"Score {{  }}"')
    uri = await _open(editor, "loop.bmad", text)
    labels = await _complete(client, uri, at(10, 21))
    assert labels[0] == "file"


async def test_completion_of_json_fields_after_a_dot(client, editor, at):
    uri = await _open(editor, "fields.bmad", FLOW)
    # type `{{ scores. ` into verdict's prompt
    editor.edit(uri, 2, (15, 39), (15, 39), " {{ scores. }}")
    await editor.diagnostics(uri, 2)
    labels = await _complete(client, uri, at(15, 50))
    assert labels == ["score", "why"]


async def test_completion_after_depends_offers_tasks(client, editor, at):
    text = FLOW.replace('    prompt "Decide from {{ summarize }}"\n',
                        '    prompt "Decide from {{ summarize }}"\n    depends \n')
    uri = await _open(editor, "depends.bmad", text)
    labels = await _complete(client, uri, at(16, 12))
    assert labels == ["summarize", "scores"]


async def test_completion_in_model_positions_and_after_needs(client, editor, at):
    text = FLOW.replace("    needs summarization\n", "    needs \n    model \n    fallback [gpt-4o, ]\n")
    uri = await _open(editor, "models.bmad", text)
    needs = await _complete(client, uri, at(6, 10))
    assert "summarization" in needs and "code" in needs
    models = await _complete(client, uri, at(7, 10))
    assert "gpt-4o-mini" in models and "local" in models  # the standard catalog
    in_list = await _complete(client, uri, at(8, 22))
    assert "gpt-4o-mini" in in_list


async def test_completion_of_clause_keywords_and_values(client, editor, at):
    text = FLOW.replace("    needs summarization\n", "    needs summarization\n    \n    priority \n")
    uri = await _open(editor, "keywords.bmad", text)
    clauses = await _complete(client, uri, at(7, 4))
    assert {"prompt", "depends", "needs", "model", "consensus", "returns"} <= set(clauses)
    assert "workflow" not in clauses
    values = await _complete(client, uri, at(8, 13))
    assert values == ["low", "medium", "high", "critical"]
    top = await _complete(client, uri, at(22, 0))
    assert {"import", "use", "provider", "model", "rubric", "workflow"} == set(top)


async def test_hover_on_a_task_shows_model_cost_and_dependencies(client, editor, at):
    uri = await _open(editor, "hover.bmad", FLOW)
    result = await client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=at(14, 8)))
    text = result.contents.value
    assert "**task** `verdict`" in text
    assert "routed model: `" in text
    assert "estimated cost: $" in text
    assert "depends on: `summarize`" in text
    assert result.range == at.range((14, 7), (14, 14))


async def test_hover_on_a_model_shows_price_context_and_skills(client, editor, at):
    text = FLOW.replace("    needs summarization\n", "    model gpt-4o-mini\n")
    uri = await _open(editor, "hover_model.bmad", text)
    result = await client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=at(6, 12)))
    value = result.contents.value
    assert "**model** `gpt-4o-mini`" in value
    assert "price: $" in value and "per 1M tokens" in value
    assert "context:" in value and "skills:" in value


async def test_hover_on_a_keyword_shows_its_documentation(client, editor, at):
    uri = await _open(editor, "hover_kw.bmad", FLOW)
    result = await client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=at(6, 5)))
    assert "**needs** (keyword)" in result.contents.value
    assert "```bmad" in result.contents.value


async def test_hover_nowhere_is_empty(client, editor, at):
    uri = await _open(editor, "hover_none.bmad", FLOW)
    assert await client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=at(3, 0))) is None


async def test_code_action_did_you_mean(client, editor, at):
    text = FLOW.replace("{{ summarize }}", "{{ sumarize }}")
    uri = await _open(editor, "typo.bmad", text)
    diagnostics = client.diagnostics[uri]
    typo = next(d for d in diagnostics if d.code == "BMAD-E101")
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(uri), range=typo.range, context=types.CodeActionContext(diagnostics=[typo])))
    fix = next(a for a in actions if a.title == "Change `sumarize` to `summarize`")
    assert fix.kind == types.CodeActionKind.QuickFix
    [edit] = fix.edit.changes[uri]
    assert edit.new_text == "summarize" and edit.range == at.range((15, 27), (15, 35))


async def test_code_action_declares_a_missing_input(client, editor, at):
    text = FLOW.replace("{{ summarize }}", "{{ summarize }} in {{ language }}")
    uri = await _open(editor, "missing_input.bmad", text)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(uri), range=at.range((15, 47), (15, 47)), context=types.CodeActionContext(diagnostics=[])))
    declare = next(a for a in actions if a.title.startswith("Declare input `language"))
    [edit] = declare.edit.changes[uri]
    assert edit.new_text == "  input language: text\n"
    assert edit.range == at.range((3, 0), (3, 0))  # after the last input


async def test_code_action_adds_a_depends(client, editor, at):
    uri = await _open(editor, "add_depends.bmad", FLOW)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(uri), range=at.range((9, 8), (9, 8)), context=types.CodeActionContext(diagnostics=[])))
    add = next(a for a in actions if a.title == "Add `depends summarize` to task `scores`")
    [edit] = add.edit.changes[uri]
    assert edit.new_text == "    depends summarize\n"
    assert edit.range == at.range((10, 0), (10, 0))


async def test_code_action_extends_a_depends_that_follows_a_string_on_its_line(client, editor, at):
    text = ('workflow w {\n  task a { prompt "x" }\n  task b { prompt "y" }\n'
            '  task c { prompt "z" depends a }\n  output c\n}\n')
    uri = await _open(editor, "one_line_depends.bmad", text)
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(uri), range=at.range((3, 8), (3, 8)), context=types.CodeActionContext(diagnostics=[])))
    add = next(a for a in actions if a.title == "Add `depends b` to task `c`")
    [edit] = add.edit.changes[uri]
    # one clause `depends a, b`, not a second `depends` clause
    assert edit.new_text == ", b" and edit.range == at.range((3, 31), (3, 31))


async def test_inlay_hints_show_estimated_cost_per_task(client, editor, at):
    uri = await _open(editor, "inlay.bmad", FLOW)
    hints = await client.text_document_inlay_hint_async(types.InlayHintParams(
        text_document=doc(uri), range=at.range((0, 0), (20, 0))))
    assert [h.position for h in hints] == [at(4, 16), at(9, 13), at(14, 14)]
    assert all(h.label.startswith("≈ $") for h in hints)


async def test_semantic_tokens_classify_names_by_what_they_name(client, editor, at):
    uri = await _open(editor, "tokens.bmad", FLOW)
    result = await client.text_document_semantic_tokens_full_async(
        types.SemanticTokensParams(text_document=doc(uri)))
    legend = client.initialize_result.capabilities.semantic_tokens_provider.legend.token_types
    tokens, line, char = [], 0, 0
    data = result.data
    for i in range(0, len(data), 5):
        dl, dc, length, kind, _mods = data[i:i + 5]
        line, char = line + dl, (char + dc if dl == 0 else dc)
        tokens.append((line, char, length, legend[kind]))
    assert (0, 0, 8, "keyword") in tokens  # workflow
    assert (4, 7, 9, "function") in tokens  # the task summarize
    assert (5, 25, 4, "variable") in tokens  # {{ diff }}: an input
    assert (10, 21, 4, "parameter") in tokens  # {{ file }}: the loop variable




def _apply(text: str, edits: list[types.TextEdit]) -> str:
    from bmad.lsp.convert import LineIndex

    lines = LineIndex(text)
    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[:lines.offset(e.range.start)] + e.new_text + text[lines.offset(e.range.end):]
        lines = LineIndex(text)
    return text


async def test_formatting_the_document_gives_bmad_fmt_output(client, editor):
    from bmad.compiler.format import format_source

    uri = await _open(editor, "messy.bmad", MESSY)
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=doc(uri), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    expected, _ = format_source(MESSY, "messy.bmad")
    assert _apply(MESSY, edits) == expected
    assert expected.startswith("workflow tidy {\n  input diff: text\n")


async def test_formatting_a_range_touches_only_that_task(client, editor, at):
    uri = await _open(editor, "messy_range.bmad", MESSY)
    edits = await client.text_document_range_formatting_async(types.DocumentRangeFormattingParams(
        text_document=doc(uri), range=at.range((6, 0), (6, 5)),
        options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    after = _apply(MESSY, edits)
    assert '  task b {\n    prompt "B {{ a }}"\n  }\n' in after
    assert ' task a {\n prompt "A {{ diff }}"\n   }\n' in after  # task a is left as it was


async def test_formatting_a_broken_document_changes_nothing(client, editor):
    uri = await _open(editor, "broken_fmt.bmad", MESSY.replace("output b\n}", "output b\n"))
    edits = await client.text_document_formatting_async(types.DocumentFormattingParams(
        text_document=doc(uri), options=types.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert not edits
