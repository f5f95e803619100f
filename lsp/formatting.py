"""Formatting with `bmad fmt`'s formatter (`bmad.compiler.format.format_source`): the whole
document, or only the lines of a range.

A document with syntax errors is left alone (the formatter refuses it, as `bmad fmt` does). Range
formatting formats the whole text and keeps only the changed line blocks that touch the range, so
the result is always what `bmad fmt` would write there.
"""

from __future__ import annotations

import difflib
import logging
from typing import TYPE_CHECKING

from lsprotocol import types

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
    new = formatted_text(doc)
    if new is None:
        return None
    old_lines = doc.text.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    first, last = rng.start.line, rng.end.line
    if rng.end.character == 0 and last > first:
        last -= 1
    lines = doc.lines(ls.encoding)
    edits = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        # the changed block covers old lines [i1, i2); an insertion sits at line i1
        touches = (i1 <= last and max(i2 - 1, i1) >= first)
        if not touches:
            continue
        start = lines.line_starts[i1] if i1 < len(lines.line_starts) else len(doc.text)
        end = lines.line_starts[i2] if i2 < len(lines.line_starts) else len(doc.text)
        edits.append(types.TextEdit(range=lines.range(start, end), new_text="".join(new_lines[j1:j2])))
    return edits
