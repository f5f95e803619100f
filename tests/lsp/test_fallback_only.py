"""`fallback only [...]` in the editor: `only` is completed after `fallback`, its hover says what a
closed group does, it is coloured as a keyword, the list after it completes models, and the file
has no error."""

from __future__ import annotations

import pytest
from lsprotocol import types

from tests.lsp.conftest import doc, open_and_wait as _open

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEXT = """\
provider openai { kind openai api_key env OPENAI_API_KEY }
model gpt-4o-mini { provider openai price input $0.15 output $0.60 per 1M context 128k }
model claude-haiku { provider openai price input $0.25 output $1.25 per 1M context 200k }

workflow w {
  task closed {
    prompt "x"
    model gpt-4o-mini
    fallback only [claude-haiku]
  }
  task typing {
    prompt "y"
    fallback 
  }
  output closed
}
"""


def _labels(result) -> list[str]:
    items = result.items if isinstance(result, types.CompletionList) else result
    return [i.label for i in items]


async def test_only_is_completed_after_fallback_and_models_inside_its_list(client, editor, at):
    uri = await _open(editor, "fallback_only_complete.bmad", TEXT)
    after_fallback = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(12, 13)))
    assert {"only", "none"} <= set(_labels(after_fallback))
    in_list = await client.text_document_completion_async(
        types.CompletionParams(text_document=doc(uri), position=at(8, 19)))
    assert {"gpt-4o-mini", "claude-haiku"} <= set(_labels(in_list))


async def test_hover_on_only_documents_the_closed_group(client, editor, at):
    uri = await _open(editor, "fallback_only_hover.bmad", TEXT)
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=at(8, 14)))
    assert "**only** (keyword)" in hover.contents.value
    assert "fallback only [" in hover.contents.value and "never one the planner adds" in hover.contents.value
    on_fallback = await client.text_document_hover_async(
        types.HoverParams(text_document=doc(uri), position=at(8, 6)))
    assert "`fallback only [...]`" in on_fallback.contents.value


async def test_only_is_a_keyword_token_and_the_file_has_no_error(client, editor, at):
    text = TEXT.replace("    fallback \n", "")
    uri = editor.write_and_open("fallback_only_tokens.bmad", text)
    diagnostics = await editor.diagnostics(uri, 1)
    assert [d for d in diagnostics if d.severity == types.DiagnosticSeverity.Error] == []
    result = await client.text_document_semantic_tokens_full_async(
        types.SemanticTokensParams(text_document=doc(uri)))
    legend = client.initialize_result.capabilities.semantic_tokens_provider.legend.token_types
    tokens, line, char = [], 0, 0
    data = result.data
    for i in range(0, len(data), 5):
        dl, dc, length, kind, _mods = data[i:i + 5]
        line, char = line + dl, (char + dc if dl == 0 else dc)
        tokens.append((line, char, length, legend[kind]))
    assert (8, 4, 8, "keyword") in tokens  # fallback
    assert (8, 13, 4, "keyword") in tokens  # only
    assert any(t[:3] == (8, 19, 12) and t[3] != "keyword" for t in tokens)  # claude-haiku: a model
