"""Lines end where the LSP spec ends them (`\\n`, `\\r\\n`, `\\r`), never at U+2028, U+0085, form feed
and the other characters `str.splitlines()` also splits on; and a CRLF document stays CRLF.

The client here counts lines as an editor does (`_offset`), independently of the server's
`LineIndex`, so a server that splits lines differently shows up as a wrong text or a wrong range.
"""

from __future__ import annotations

import re

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from bmad.compiler.format import format_source
from tests.lsp.conftest import CODECS as _CODECS, MESSY, Editor, doc, open_and_wait as _open, rng

pytestmark = pytest.mark.asyncio(loop_scope="module")

_LINE_END = re.compile(r"\r\n|\r|\n")
FORMAT_OPTIONS = types.FormattingOptions(tab_size=2, insert_spaces=True)

# What `str.splitlines()` splits on and the LSP does not.
NOT_LINE_ENDS = {"U+2028": "\u2028", "U+2029": "\u2029", "U+0085": "\u0085", "form feed": "\f",
                 "vertical tab": "\v", "U+001C": "\x1c", "U+001E": "\x1e"}


def _offset(text: str, position: types.Position, encoding: str = "utf-16") -> int:
    """A position's offset in `text` as an LSP client computes it: lines end at `\\n`, `\\r\\n`,
    `\\r`; columns count `encoding`'s code units."""
    starts = [0] + [m.end() for m in _LINE_END.finditer(text)]
    if position.line >= len(starts):
        return len(text)
    start = starts[position.line]
    line = _LINE_END.split(text[start:], maxsplit=1)[0]
    codec, unit = _CODECS[encoding]
    return start + len(line.encode(codec)[:position.character * unit].decode(codec))


def _apply(text: str, edits: list[types.TextEdit], encoding: str = "utf-16") -> str:
    spans = [(_offset(text, e.range.start, encoding), _offset(text, e.range.end, encoding), e.new_text)
             for e in edits]
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _change(editor: Editor, uri: str, version: int,
            changes: list[tuple[tuple[int, int], tuple[int, int], str]]) -> None:
    """One didChange with several ranged changes, each on the text the ones before left."""
    editor.client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(range=rng(a, b), text=t)
                         for a, b, t in changes]))


async def _format(client: LanguageClient, uri: str) -> list[types.TextEdit]:
    return await client.text_document_formatting_async(
        types.DocumentFormattingParams(text_document=doc(uri), options=FORMAT_OPTIONS))


# --- 1. ranged edits below a character that str.splitlines() would end a line at --------------

NOTE = """\
workflow w {
  # pasted note:{sep}second line of the note
  input topic: text
  task a { prompt "A {{ topic }}" }
  task b { prompt "B" }
  output a
  output b
}
"""
# The editor renames task `b` to `bee` (line 6, then line 4) and rewrites its prompt (line 4).
NOTE_CHANGES = [((6, 9), (6, 10), "bee"), ((4, 18), (4, 21), '"changed"'), ((4, 7), (4, 8), "bee")]


def _noted(sep: str) -> tuple[str, str]:
    """The document with `sep` in its comment, and the text the editor holds after NOTE_CHANGES."""
    text = NOTE.replace("{sep}", sep)
    edited = text.replace('task b { prompt "B" }', 'task bee { prompt "changed" }')
    return text, edited.replace("output b\n", "output bee\n")


@pytest.mark.parametrize("sep", list(NOT_LINE_ENDS.values()), ids=list(NOT_LINE_ENDS))
async def test_a_ranged_edit_below_a_unicode_line_break_lands_on_its_line(client, editor, sep):
    text, edited = _noted(sep)
    uri = await _open(editor, f"note_{ord(sep):04x}.bmad", text)
    assert await editor.diagnostics(uri, 1) == []
    _change(editor, uri, 2, NOTE_CHANGES)
    assert await editor.diagnostics(uri, 2) == []
    formatted = _apply(edited, await _format(client, uri))
    assert formatted == format_source(edited, "note.bmad")[0]
    assert '  task bee {\n    prompt "changed"\n  }\n' in formatted
    assert '  task a {\n    prompt "A {{ topic }}"\n  }\n' in formatted


async def test_a_ranged_edit_counts_columns_in_the_negotiated_encoding(encoded_client, tmp_path):
    client: LanguageClient = encoded_client
    encoding = client.initialize_result.capabilities.position_encoding
    editor = Editor(client, tmp_path)
    text = NOTE.replace("{sep}", "\u2028é 😀").replace('prompt "B"', 'prompt "😀 é B"')
    uri = await _open(editor, "encoded.bmad", text)
    line = text.split("\n")[4]
    start = len(line[:line.index('"')].encode(_CODECS[encoding][0])) // _CODECS[encoding][1]
    end = len(line[:line.index(" }")].encode(_CODECS[encoding][0])) // _CODECS[encoding][1]
    _change(editor, uri, 2, [((4, start), (4, end), '"😀 changed"')])
    edited = text.replace('prompt "😀 é B"', 'prompt "😀 changed"')
    assert await editor.diagnostics(uri, 2) == []
    formatted = _apply(edited, await _format(client, uri), encoding)
    assert formatted == format_source(edited, "encoded.bmad")[0]
    assert '  task b {\n    prompt "😀 changed"\n  }\n' in formatted


# --- 2. a lone CR ends a line ----------------------------------------------------------------

async def test_a_lone_carriage_return_ends_a_line(client, editor, at):
    text = NOTE.replace("{sep}", " ").replace('"B"', '"B {{ topik }}"').replace("\n", "\r")
    uri = await _open(editor, "lone_cr.bmad", text)
    found = await editor.diagnostics(uri, 1)
    assert [(d.code, d.range) for d in found] == [("BMAD-E101", at.range((4, 24), (4, 29)))]
    _change(editor, uri, 2, [((4, 24), (4, 29), "topic")])
    assert await editor.diagnostics(uri, 2) == []


# --- 3. range formatting keeps a CRLF document's line ends ------------------------------------



async def test_range_formatting_keeps_crlf_line_ends(client, editor, at):
    text = MESSY.replace("\n", "\r\n")
    uri = await _open(editor, "messy_crlf.bmad", text)
    edits = await client.text_document_range_formatting_async(types.DocumentRangeFormattingParams(
        text_document=doc(uri), range=at.range((6, 0), (6, 5)), options=FORMAT_OPTIONS))
    assert edits and all("\n" not in e.new_text.replace("\r\n", "") for e in edits)
    after = _apply(text, edits)
    assert '  task b {\r\n    prompt "B {{ a }}"\r\n  }\r\n' in after
    assert ' task a {\r\n prompt "A {{ diff }}"\r\n   }\r\n' in after  # task a is left as it was
    # the whole document comes back as `bmad fmt` writes it, with `\n` line ends
    assert _apply(text, await _format(client, uri)) == format_source(text, "messy.bmad")[0]


# --- 4. semantic tokens of a CRLF document --------------------------------------------------

async def test_a_comment_token_in_a_crlf_document_stops_before_the_cr(client, editor):
    text = "# a note\nworkflow w {\n  # another note\n  task a { prompt \"A\" }\n  output a\n}\n"
    tokens = {}
    for name, variant in [("lf", text), ("crlf", text.replace("\n", "\r\n"))]:
        uri = await _open(editor, f"comment_{name}.bmad", variant)
        result = await client.text_document_semantic_tokens_full_async(
            types.SemanticTokensParams(text_document=doc(uri)))
        tokens[name] = list(result.data)
    assert tokens["crlf"][:3] == [0, 0, len("# a note")]
    assert tokens["crlf"] == tokens["lf"]


# --- 5. code actions insert lines with the document's own line end -----------------------------

ACTIONS = """\
workflow w {
  input topic: text
  task summary { prompt "About {{ topic }} and {{ extra }}" }
  task last {
    prompt "Close {{ topic }}"
  }
  output last
}
"""


@pytest.mark.parametrize("end", ["\r", "\r\n"])
async def test_code_actions_insert_lines_with_the_documents_line_end(client, editor, at, end):
    text = ACTIONS.replace("\n", end)
    name = "actions_cr.bmad" if end == "\r" else "actions_crlf.bmad"
    uri = await _open(editor, name, text)
    [unknown] = [d for d in await editor.diagnostics(uri, 1) if d.code == "BMAD-E101"]
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(uri), range=unknown.range,
        context=types.CodeActionContext(diagnostics=[unknown])))
    declare = next(a for a in actions if a.title.startswith("Declare input `extra"))
    declared = _apply(text, declare.edit.changes[uri])
    assert declared == text.replace(f"  input topic: text{end}", f"  input topic: text{end}  input extra: text{end}")
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=doc(uri), range=at.range((3, 8), (3, 8)), context=types.CodeActionContext(diagnostics=[])))
    depends = next(a for a in actions if a.title == "Add `depends summary` to task `last`")
    added = _apply(text, depends.edit.changes[uri])
    assert added == text.replace(f"  task last {{{end}", f"  task last {{{end}    depends summary{end}")
