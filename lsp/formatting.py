"""Formatting with `bmad fmt`'s formatter (`bmad.compiler.format`): the whole document, or the
declarations and tasks a range touches.

A document with syntax errors is left alone (the formatter refuses it, as `bmad fmt` does), so the
answer is "no edits" rather than a mangled file. The formatter writes `\\n` line ends: the whole
document comes back with them, as from `bmad fmt`; a range edit takes the document's own line end, so
that a CRLF file does not end up with mixed line ends.
"""

from __future__ import annotations

import difflib
import logging
from typing import TYPE_CHECKING

from lsprotocol import types

from bmad.lsp.convert import line_end_of, split_lines
from bmad.lsp.documents import Document

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer

log = logging.getLogger(__name__)


def formatted_text(doc: Document) -> str | None:
    """What `bmad fmt` makes of the document, or None when it can't format it."""
    from bmad.compiler.format import format_source

    text, _diagnostics = format_source(doc.text, doc.path)
    return text


def format_document(ls: "BmadLanguageServer", doc: Document) -> list[types.TextEdit] | None:
    new = formatted_text(doc)
    if new is None or new == doc.text:
        return [] if new is not None else None
    lines = doc.lines(ls.encoding)
    return [types.TextEdit(range=lines.range(0, len(doc.text)), new_text=new)]


def format_range(ls: "BmadLanguageServer", doc: Document, rng: types.Range) -> list[types.TextEdit] | None:
    """Format the declarations and tasks that the range touches (`bmad fmt`'s own range formatter)."""
    lines = doc.lines(ls.encoding)
    first, last = rng.start.line + 1, rng.end.line + 1
    if rng.end.character == 0 and rng.end.line > rng.start.line:
        last -= 1  # a selection of whole lines ends at the start of the next one
    try:
        from bmad.compiler.format import format_range as format_lines

        edit, _diagnostics = format_lines(doc.text, doc.path, first, last)
    except Exception:  # the formatter's range mode failing: keep what the whole-file mode changes there
        log.warning("range formatting failed; using the whole-document formatter", exc_info=True)
        return _changed_blocks(ls, doc, first - 1, last - 1)
    if edit is None:
        return [] if formatted_text(doc) is not None else None
    block = lines.line_block(edit.start_line, edit.end_line)
    old = doc.text[lines.offset(block.start):lines.offset(block.end)]
    new = _with_line_end(edit.new_text, line_end_of(doc.text))
    if old == new:
        return []
    return [types.TextEdit(range=block, new_text=new)]


def _with_line_end(text: str, line_end: str) -> str:
    """The formatter's `\\n`-ended `text` with `line_end` instead."""
    return text if line_end == "\n" else text.replace("\n", line_end)


def _changed_blocks(ls: "BmadLanguageServer", doc: Document, first: int, last: int) -> list[types.TextEdit] | None:
    """The whole-document formatter's changes, restricted to the line blocks that touch first..last."""
    new = formatted_text(doc)
    if new is None:
        return None
    lines = doc.lines(ls.encoding)
    old_lines = split_lines(doc.text)
    new_lines = split_lines(_with_line_end(new, line_end_of(doc.text)))
    edits = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False).get_opcodes():
        if tag == "equal" or not (i1 <= last and max(i2 - 1, i1) >= first):
            continue
        start = lines.line_starts[i1] if i1 < len(lines.line_starts) else len(doc.text)
        end = lines.line_starts[i2] if i2 < len(lines.line_starts) else len(doc.text)
        edits.append(types.TextEdit(range=lines.range(start, end), new_text="".join(new_lines[j1:j2])))
    return edits
