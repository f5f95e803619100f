"""Rename a task, input, loop variable, model, provider, workflow or rubric with all its references."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from bmad.lsp.definition import Target, find_references, location, stdlib_dir, target_at
from bmad.lsp.documents import Document
from bmad.lsp.keywords import ALL_WORDS

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer

_RENAMABLE = ("task", "input", "loop", "model", "provider", "workflow", "rubric")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MODEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*\Z")


def _renamable(target: Target | None) -> Target | None:
    if target is None or target.kind not in _RENAMABLE:
        return None
    if str(stdlib_dir()) in target.path:
        return None  # the standard library is read-only
    return target


def prepare_rename(ls: "BmadLanguageServer", doc: Document,
                   position: types.Position) -> types.PrepareRenamePlaceholder | None:
    lines = doc.lines(ls.encoding)
    offset = lines.offset(position)
    target = _renamable(target_at(ls, doc, offset))
    if target is None:
        return None
    # The range under the cursor (a reference or the declaration itself), not the target's.
    index = doc.index
    here = index.symbol_at(offset) or index.reference_at(offset)
    if here is None:
        return None
    return types.PrepareRenamePlaceholder(range=lines.range(here.start, here.end), placeholder=target.name)


def rename(ls: "BmadLanguageServer", doc: Document, position: types.Position,
           new_name: str) -> types.WorkspaceEdit | None:
    offset = doc.lines(ls.encoding).offset(position)
    target = _renamable(target_at(ls, doc, offset))
    if target is None:
        return None
    pattern = _MODEL_NAME if target.kind == "model" else _IDENTIFIER
    if not pattern.match(new_name) or new_name in ALL_WORDS:
        raise JsonRpcInvalidParams(f"`{new_name}` is not a valid {target.kind} name")
    changes: dict[str, list[types.TextEdit]] = {}
    seen = set()
    for path, start, end in find_references(ls, target, include_declaration=True):
        if (path, start) in seen:
            continue
        seen.add((path, start))
        loc = location(ls, path, start, end)
        if loc is not None:
            changes.setdefault(loc.uri, []).append(types.TextEdit(range=loc.range, new_text=new_name))
    return types.WorkspaceEdit(changes=changes)
