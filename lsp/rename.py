"""Rename a task, input, loop variable, model, provider, workflow or rubric with all its references."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from bmad.lsp.definition import (
    Target,
    candidate_files,
    find_references,
    location,
    stdlib_dir,
    target_at,
    visible_files,
)
from bmad.lsp.documents import Document

if TYPE_CHECKING:
    from bmad.lsp.server import BmadLanguageServer

_RENAMABLE = ("task", "input", "loop", "model", "provider", "workflow", "rubric")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MODEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*\Z")
# Keywords are only keywords where a clause can start, so `model`, `input` or `each` name a task
# fine. What can't: the words an expression reads as a literal or operator, for the names that
# expressions refer to (`when true == ...` would stop meaning the task).
_VALUE_KINDS = ("task", "input", "loop")
_EXPRESSION_LITERALS = frozenset({"true", "false", "null", "not"})


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
    if not pattern.match(new_name) or (target.kind in _VALUE_KINDS and new_name in _EXPRESSION_LITERALS):
        raise JsonRpcInvalidParams(f"`{new_name}` is not a valid {target.kind} name")
    if new_name == target.name:
        return types.WorkspaceEdit(changes={})
    taken = _taken(ls, target, new_name)
    if taken is not None:
        raise JsonRpcInvalidParams(taken)
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


_LOCAL_CLASH = {  # what a renamed task, input or loop variable must not collide with
    "task": ("task", "input"),
    "input": ("input", "task"),
    "loop": ("loop", "input", "task"),
}


def _taken(ls: "BmadLanguageServer", target: Target, new_name: str) -> str | None:
    """Why `new_name` can't be `target`'s new name (it is declared already, where the renamed
    declaration or one of its uses would see both, or a use would name a loop variable), or None."""
    if target.kind in _LOCAL_CLASH:
        found = ls.store.index_for_path(target.path)
        if found is None:
            return None
        for sym in found[0].symbols:
            if sym.name != new_name or sym.kind not in _LOCAL_CLASH[target.kind]:
                continue
            if sym.workflow != target.workflow:
                continue
            if sym.kind == "loop" and sym.task != target.task:
                continue
            where = f"task `{sym.task}`" if sym.kind == "loop" else f"workflow `{sym.workflow}`"
            what = "a loop variable" if sym.kind == "loop" else f"an {sym.kind}" if sym.kind == "input" \
                else f"a {sym.kind}"
            return f"`{new_name}` is already {what} of {where}"
        if target.kind in ("task", "input"):
            return _captured(ls, target, new_name)
        return None
    # models, providers, workflows, rubrics: every file that sees the target (its own file, the
    # files importing it) must not see another declaration of that kind named `new_name`.
    stdlib = str(stdlib_dir())
    seen: set[str] = set()
    for path in [target.path] + candidate_files(ls, target):
        files = visible_files(ls, path)
        if path != target.path and target.path not in files:
            continue
        for other in files:
            if other in seen:
                continue
            seen.add(other)
            if target.kind == "rubric" and other.startswith(stdlib):
                continue  # your rubric replaces the standard library's of the same name
            found = ls.store.index_for_path(other)
            if found is None:
                continue
            sym = found[0].declared(target.kind, new_name)
            if sym is not None:
                return f"`{new_name}` is already a {target.kind} (declared in {os.path.basename(other)})"
    return None


def _captured(ls: "BmadLanguageServer", target: Target, new_name: str) -> str | None:
    """Why a use of task or input `target` would name a loop variable once renamed to `new_name`
    (a task's loop variable hides the workflow's tasks and inputs of its name), or None."""
    for path, start, _ in find_references(ls, target, include_declaration=False):
        found = ls.store.index_for_path(path)
        if found is None:
            continue
        index = found[0]
        ref = next((r for r in index.references if r.start == start), None)
        if ref is None or ref.kind != "value" or ref.task is None or not ref.sees_loop:
            continue
        loop = next((s for s in index.symbols if s.kind == "loop" and s.name == new_name
                     and s.task == ref.task and s.workflow == ref.workflow), None)
        if loop is not None:
            return f"`{new_name}` is the loop variable of task `{loop.task}`, where `{target.name}` is used"
    return None
