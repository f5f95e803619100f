"""Named rubrics in the editor: completion after `rubric`, go to definition (into std.quality too),
hover with the rubric's text, and the outline."""

from __future__ import annotations

import pytest
from lsprotocol import types

from tests.lsp.conftest import doc, open_and_wait as _open

pytestmark = pytest.mark.asyncio(loop_scope="module")

FLOW = """\
use std.quality

rubric cited "Every claim names its source."

workflow report {
  input notes: text
  task draft {
    prompt "Write up {{ notes }}"
    quality >= 0.8 rubric grounded
  }
  task final {
    prompt "Polish {{ draft }}"
    quality >= 0.8 rubric cited
  }
  output final
}
"""


async def test_completion_after_rubric_offers_declared_and_stdlib_rubrics(client, editor, at):
    uri = await _open(editor, "complete_rubric.bmad", FLOW.replace("rubric grounded", "rubric "))
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(8, 26)))
    items = {i.label: i for i in (result.items if isinstance(result, types.CompletionList) else result)}
    assert {"cited", "grounded", "factual", "code"} <= set(items)
    assert "summarize" not in items and "gpt-4o" not in items
    assert items["cited"].documentation == "Every claim names its source."
    assert "supported by the given sources" in items["grounded"].documentation


async def test_definition_of_a_stdlib_rubric_opens_std_quality(client, editor, at):
    uri = await _open(editor, "define_rubric.bmad", FLOW)
    result = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc(uri), position=at(8, 28)))
    assert [loc.uri.rsplit("/", 2)[-2:] for loc in result] == [["stdlib", "quality.bmad"]]
    local = await client.text_document_definition_async(
        types.DefinitionParams(text_document=doc(uri), position=at(12, 27)))
    assert [(loc.uri, loc.range) for loc in local] == [(uri, at.range((2, 7), (2, 12)))]


async def test_hover_on_a_rubric_shows_its_text(client, editor, at):
    uri = await _open(editor, "hover_rubric.bmad", FLOW)
    result = await client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=at(12, 27)))
    assert "**rubric** `cited`" in result.contents.value
    assert "Every claim names its source." in result.contents.value


async def test_outline_lists_a_declared_rubric(client, editor):
    uri = await _open(editor, "outline_rubric.bmad", FLOW)
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=doc(uri)))
    assert [(s.name, s.detail) for s in symbols] == [("cited", "rubric"), ("report", "workflow")]


async def test_references_of_a_rubric(client, editor, at):
    uri = await _open(editor, "refs_rubric.bmad", FLOW)
    result = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc(uri), position=at(2, 8), context=types.ReferenceContext(include_declaration=True)))
    assert sorted((loc.range.start.line, loc.range.start.character) for loc in result) == [(2, 7), (12, 26)]
