"""Incremental compilation of one document: re-read only the declarations and members an edit touches.

An editor sends a new version of a document for every keystroke; parsing a 10,000-line file takes
Lark about half a second, so the language server cannot re-parse it whole each time. The
`IncrementalCompiler` keeps an outline of the last version that parsed cleanly: its top-level
declarations (import, use, provider, model, workflow) and, inside each workflow, its members (each
`task`, each `parallel { }` block, each header clause), every one with its offsets and its lowered
value. For a new version it

1. finds the changed range (common prefix and suffix with the outline's text) and widens it to whole
   lines and to every member (or declaration) it touches;
2. parses that region alone: workflow members wrapped in a synthetic `workflow _ {` ... `}`, or
   declarations as a file of their own, mapping the positions back into the document;
3. lowers each member it found; members after the region are reused with their spans moved by the
   line and offset deltas, members before it as they are;
4. assembles each workflow with the lowerer's own `workflow_decl` (so a clause written twice across
   members is reported the same way) and the file with its `start`.

The result is what `lower_tree` gives for the whole file: the same IR and diagnostics, spans
included (tests/compiler/test_incremental.py checks this on random edit sequences). Splicing is
sound because the grammar's members and declarations all start with a keyword that cannot continue
the one before, the region starts and ends at line boundaries (a comment or a token never crosses
them), and the region must parse cleanly by itself. Whenever that is not the case (a syntax error, a
region that closes or opens a workflow, a lowering failure) it widens to declarations, and then to
the whole file, which is the compiler's own path; the outline is then rebuilt from a clean parse,
or kept from the last clean version while the text is broken.

Imported and standard-library files go through `read_file_cached`, keyed by path and text digest
and shared by all documents. The semantic checks run on the assembled program as usual.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from lark import Token, Tree

from bmad.compiler.compile import YAML_SUFFIXES, CompileResult, compile_source
from bmad.compiler.diagnostics import Diagnostic
from bmad.compiler.ir import Span
from bmad.compiler.load import FileFrontEnd, lower_parsed, read_file
from bmad.compiler.lower import FileUnit, Lowerer
from bmad.compiler.parse import MAX_SOURCE_CHARS, decode_source, parse_text
from bmad.compiler.source_map import SourceMap

# Members of a workflow are parsed inside this wrapper; its own line keeps the region's columns.
_WRAPPER_HEAD = "workflow _ {\n"
_WRAPPER_TAIL = "\n}"
# Between a workflow's name and its `{` there can only be whitespace and comments.
_TO_OPEN_BRACE = re.compile(r"(?:\s|#[^\n]*)*\{")

_FILE_CACHE_SIZE = 128


class _Uncertain(Exception):
    """The region cannot be read on its own: widen it (in the end, compile the whole file)."""


# ----------------------------------------------------------------------------------------------
# Positions


class _RegionMap(SourceMap):
    """Spans for text parsed out of place: a region of the document that starts at the beginning of
    a line, possibly behind a wrapper of whole lines. Lines and offsets move; columns don't."""

    def __init__(self, path: str, text: str, line_shift: int, offset_shift: int):
        super().__init__(path, text)
        self.line_shift = line_shift
        self.offset_shift = offset_shift

    def _move(self, s: Span) -> Span:
        dl, do = self.line_shift, self.offset_shift
        return Span(s.file, s.line + dl, s.column, s.end_line + dl, s.end_column, s.start + do, s.end + do)

    def span(self, start: int, end: int) -> Span:
        return self._move(super().span(start, end))

    def end_span(self) -> Span:
        raise _Uncertain("the end of a region is not the end of the file")

    def token_span(self, token: Token) -> Span:
        if token.line is None or token.start_pos is None:
            raise _Uncertain("a token without a position")
        return self._move(super().token_span(token))

    def meta_span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return super().meta_span(meta)  # the "unknown" span, wherever the region is
        return self._move(super().meta_span(meta))


@dataclass
class _Meta:
    """A Lark meta built from a span, for calling the lowerer's rule methods directly."""

    line: int
    column: int
    end_line: int
    end_column: int
    start_pos: int
    end_pos: int
    empty: bool = False

    @classmethod
    def of(cls, span: Span) -> "_Meta":
        return cls(span.line, span.column, span.end_line, span.end_column, span.start, span.end)


def _token(value: str, span: Span) -> Token:
    return Token("NAME", value, span.start, span.line, span.column, span.end_line, span.end_column, span.end)


_ATOMS = frozenset({str, int, float, bool, type(None), dict, bytes})


def _is_unknown(s: Span) -> bool:
    return s.start == 0 and s.end == 0 and s.line == 1 and s.column == 1 and s.end_line == 1


def _compile_mover(cls: type):
    """A function that copies one `cls` node with its spans moved, or returns it as it is when
    nothing in it moved. Generated once per class: a generic walk costs a call per field, and a
    10,000-line document moves ~15,000 nodes an edit."""
    if not dataclasses.is_dataclass(cls):
        return None
    fields = dataclasses.fields(cls)
    lines = ["def move(v, dl, do, rec):", "    same = True"]
    for i, f in enumerate(fields):
        x = f"x{i}"
        lines += [
            f"    {x} = v.{f.name}",
            f"    t = type({x})",
            "    if t is Span:",
            f"        if {x}.end or {x}.start or {x}.line != 1 or {x}.column != 1 or {x}.end_line != 1:",
            f"            {x} = Span({x}.file, {x}.line + dl, {x}.column, {x}.end_line + dl, {x}.end_column,"
            f" {x}.start + do, {x}.end + do)",
            "            same = False",
            "    elif t not in ATOMS:",
            f"        y = rec({x})",
            f"        if y is not {x}:",
            f"            {x} = y",
            "            same = False",
        ]
    lines.append("    if same:")
    lines.append("        return v")
    if all(f.init for f in fields):
        lines.append(f"    return CLS({', '.join(f'x{i}' for i in range(len(fields)))})")
    else:
        lines.append("    new = object.__new__(CLS)")
        lines += [f"    object.__setattr__(new, {f.name!r}, x{i})" for i, f in enumerate(fields)]
        lines.append("    return new")
    scope = {"Span": Span, "ATOMS": _ATOMS, "CLS": cls}
    exec("\n".join(lines), scope)  # noqa: S102 - code generated from the dataclass's own fields
    return scope["move"]


_MOVERS: dict[type, Any] = {}


class _Shift:
    """Moves every span inside lowered values (IR nodes, clauses, diagnostics) by a line and an
    offset delta; spans are only ever moved whole lines down or up, so columns stay. A span that
    says "not in the source" (1:1, offset 0) stays as it is. Values without spans are shared."""

    def __init__(self, lines: int, offset: int):
        self.lines = lines
        self.offset = offset
        self._move = self._mover(lines, offset)

    def __call__(self, value: Any) -> Any:
        return self._move(value)

    @staticmethod
    def _mover(dl: int, do: int):
        movers = _MOVERS

        def move(value: Any) -> Any:
            t = type(value)
            if t in _ATOMS:
                return value
            if t is Span:
                if _is_unknown(value):
                    return value
                return Span(value.file, value.line + dl, value.column, value.end_line + dl, value.end_column,
                            value.start + do, value.end + do)
            if t is tuple or t is list:
                moved = [x if type(x) in _ATOMS else move(x) for x in value]
                if t is tuple and all(a is b for a, b in zip(moved, value)):
                    return value
                return tuple(moved) if t is tuple else moved
            if isinstance(value, Token):
                raise _Uncertain("a lowered value kept a token")  # its position would go stale
            try:
                mover = movers[t]
            except KeyError:
                mover = movers[t] = _compile_mover(t)
            if mover is None:
                return value  # a marker such as NOT_BUILT
            return mover(value, dl, do, move)

        return move


# ----------------------------------------------------------------------------------------------
# The outline


@dataclass
class _Piece:
    """A top-level declaration or a workflow member: offsets in the outline's text, lowered value."""

    start: int
    end: int
    value: Any
    diagnostics: list[Diagnostic]
    rubric_refs: list[Any] = field(default_factory=list)  # `rubric NAME`s, resolved at load (E110)

    def moved(self, shift: _Shift) -> "_Piece":
        return _Piece(self.start + shift.offset, self.end + shift.offset, shift(self.value),
                      shift(self.diagnostics), shift(self.rubric_refs))


@dataclass
class _WorkflowPiece:
    """A workflow declaration, kept as its header and its members (assembled on demand)."""

    start: int
    end: int
    span: Span
    name: str
    name_span: Span
    body_start: int  # just after `{`
    body_end: int  # at the closing `}`
    members: list[_Piece]
    assembled: tuple[Any, list[Diagnostic]] | None = None

    def moved(self, shift: _Shift) -> "_WorkflowPiece":
        do = shift.offset
        return _WorkflowPiece(self.start + do, self.end + do, shift(self.span), self.name,
                              shift(self.name_span), self.body_start + do, self.body_end + do,
                              [m.moved(shift) for m in self.members])

    def assemble(self, source_map: SourceMap, base_dir: str | None) -> tuple[Any, list[Diagnostic]]:
        if self.assembled is None:
            lowerer = Lowerer(source_map, base_dir)
            children = [_token(self.name, self.name_span)] + [m.value for m in self.members]
            value = lowerer.workflow_decl(_Meta.of(self.span), children)
            diagnostics = [d for m in self.members for d in m.diagnostics] + lowerer.diagnostics
            self.assembled = (value, diagnostics)
        return self.assembled


@dataclass
class _Outline:
    """The last cleanly parsed version of a document, declaration by declaration."""

    path: str
    base_dir: str | None
    text: str
    pieces: list[_Piece | _WorkflowPiece] = field(default_factory=list)

    def front_end(self) -> FileFrontEnd:
        source_map = SourceMap(self.path, self.text)
        values: list[Any] = []
        diagnostics: list[Diagnostic] = []
        rubric_refs: list[Any] = []
        for piece in self.pieces:
            if isinstance(piece, _WorkflowPiece):
                value, found = piece.assemble(source_map, self.base_dir)
                rubric_refs.extend(r for m in piece.members for r in m.rubric_refs)
            else:
                value, found = piece.value, piece.diagnostics
                rubric_refs.extend(piece.rubric_refs)
            values.append(value)
            diagnostics.extend(found)
        unit = Lowerer(source_map, self.base_dir).start(None, values)
        unit.rubric_refs = rubric_refs  # each piece's own lowerer collected them
        return FileFrontEnd(self.text, [], diagnostics, True, True, unit)


def _lower_member(tree: Tree, source_map: SourceMap, base_dir: str | None) -> _Piece:
    if not isinstance(tree, Tree) or getattr(tree.meta, "empty", True):
        raise _Uncertain("a member without a position")
    lowerer = Lowerer(source_map, base_dir)
    try:
        value = lowerer.transform(tree)
    except _Uncertain:
        raise
    except Exception as e:  # too deep, or a lowering bug: the whole-file path reports it
        raise _Uncertain(repr(e)) from e
    span = source_map.meta_span(tree.meta)
    return _Piece(span.start, span.end, value, lowerer.diagnostics, lowerer.rubric_refs)


def _read_declarations(tree: Tree, source_map: SourceMap, base_dir: str | None, text: str
                       ) -> list[_Piece | _WorkflowPiece]:
    """Pieces for the declarations of a parsed file or region (`text` is the whole new document)."""
    pieces: list[_Piece | _WorkflowPiece] = []
    for decl in tree.children:
        if not isinstance(decl, Tree) or decl.data != "workflow_decl":
            pieces.append(_lower_member(decl, source_map, base_dir))
            continue
        if getattr(decl.meta, "empty", True) or not isinstance(decl.children[0], Token):
            raise _Uncertain("a workflow without a name")
        span = source_map.meta_span(decl.meta)
        name = decl.children[0]
        name_span = source_map.token_span(name)
        opened = _TO_OPEN_BRACE.match(text, name_span.end)
        if opened is None or text[span.end - 1] != "}":
            raise _Uncertain("cannot find the workflow's braces")
        members = [_lower_member(m, source_map, base_dir) for m in decl.children[1:]]
        pieces.append(_WorkflowPiece(span.start, span.end, span, str(name), name_span, opened.end(),
                                     span.end - 1, members))
    return pieces


# ----------------------------------------------------------------------------------------------
# Finding and widening the change


def _common_prefix(a: str, b: str, limit: int) -> int:
    block = 4096
    i = 0
    while i + block <= limit and a[i:i + block] == b[i:i + block]:
        i += block
    lo, hi = i, min(i + block, limit)  # a[:lo] == b[:lo]; the first difference is before hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[i:mid] == b[i:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    block = 4096
    la, lb = len(a), len(b)
    k = 0
    while k + block <= limit and a[la - k - block:la - k] == b[lb - k - block:lb - k]:
        k += block
    lo, hi = k, min(k + block, limit)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[la - mid:la - k] == b[lb - mid:lb - k]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _line_end(text: str, offset: int) -> int:
    end = text.find("\n", offset)
    return len(text) if end == -1 else end


def _absorb(items: list, text: str, start: int, end: int, lo: int = 0, hi: int | None = None
            ) -> tuple[int, int, int, int]:
    """Widen [start, end) (whole lines of `text`) until it holds every item it touches; the items
    are sorted and disjoint. Returns (first, last) item indices (last exclusive) and the region."""
    hi = len(items) if hi is None else hi
    while True:
        first = lo
        while first < hi and items[first].end < start:
            first += 1
        last = first
        while last < hi and items[last].start <= end:
            last += 1
        if first == last:
            return first, last, start, end
        wide_start = _line_start(text, min(start, items[first].start))
        wide_end = _line_end(text, max(end, items[last - 1].end))
        if (wide_start, wide_end) == (start, end):
            return first, last, start, end
        start, end = wide_start, wide_end


# ----------------------------------------------------------------------------------------------
# Re-reading a version


def _reread(base: _Outline, text: str) -> tuple[_Outline | None, str]:
    """The outline of `text`, re-reading only what changed since `base`, and at which level; None
    when the change covers the whole file (the caller parses it whole). Raises _Uncertain."""
    old = base.text
    limit = min(len(old), len(text))
    prefix = _common_prefix(old, text, limit)
    suffix = _common_suffix(old, text, limit - prefix)
    delta = len(text) - len(old)
    start = _line_start(old, prefix)
    end = _line_end(old, len(old) - suffix)
    try:
        return _reread_members(base, text, start, end, delta), "members"
    except _Uncertain:
        pass
    return _reread_declarations(base, text, start, end, delta), "declarations"


def _line_delta(old: str, new: str, start: int, end: int, delta: int) -> int:
    return new.count("\n", start, end + delta) - old.count("\n", start, end)


def _reread_members(base: _Outline, text: str, start: int, end: int, delta: int) -> _Outline:
    old = base.text
    index = next((i for i, p in enumerate(base.pieces) if isinstance(p, _WorkflowPiece)
                  and p.body_start <= start and end < p.body_end), None)
    if index is None:
        raise _Uncertain("the change is not inside one workflow's body")
    workflow = base.pieces[index]
    assert isinstance(workflow, _WorkflowPiece)
    first, last, start, end = _absorb(workflow.members, old, start, end)
    if not (workflow.body_start <= start and end < workflow.body_end):
        raise _Uncertain("the change reaches the workflow's braces")
    wrapped = _WRAPPER_HEAD + text[start:end + delta] + _WRAPPER_TAIL
    parsed = parse_text(wrapped, base.path)
    if not parsed.complete or parsed.tree is None or len(parsed.tree.children) != 1:
        raise _Uncertain("the members do not parse on their own")
    decl = parsed.tree.children[0]
    if not isinstance(decl, Tree) or decl.data != "workflow_decl":
        raise _Uncertain("the members do not parse on their own")
    line = text.count("\n", 0, start) + 1
    region = _RegionMap(base.path, wrapped, line - 2, start - len(_WRAPPER_HEAD))
    fresh = [_lower_member(m, region, base.base_dir) for m in decl.children[1:]]
    shift = _Shift(_line_delta(old, text, start, end, delta), delta)
    members = workflow.members[:first] + fresh + [m.moved(shift) for m in workflow.members[last:]]
    span = workflow.span
    span = Span(span.file, span.line, span.column, span.end_line + shift.lines, span.end_column,
                span.start, span.end + delta)
    changed = _WorkflowPiece(workflow.start, workflow.end + delta, span, workflow.name, workflow.name_span,
                             workflow.body_start, workflow.body_end + delta, members)
    pieces = base.pieces[:index] + [changed] + [p.moved(shift) for p in base.pieces[index + 1:]]
    return _Outline(base.path, base.base_dir, text, pieces)


def _reread_declarations(base: _Outline, text: str, start: int, end: int, delta: int) -> _Outline | None:
    old = base.text
    first, last, start, end = _absorb(base.pieces, old, start, end)
    if start == 0 and end == len(old):
        return None
    region_text = text[start:end + delta]
    parsed = parse_text(region_text, base.path)
    if not parsed.complete or parsed.tree is None:
        raise _Uncertain("the declarations do not parse on their own")
    line = text.count("\n", 0, start) + 1
    region = _RegionMap(base.path, region_text, line - 1, start)
    fresh = _read_declarations(parsed.tree, region, base.base_dir, text)
    shift = _Shift(_line_delta(old, text, start, end, delta), delta)
    pieces = base.pieces[:first] + fresh + [p.moved(shift) for p in base.pieces[last:]]
    return _Outline(base.path, base.base_dir, text, pieces)


def _read_whole(path: str, text: str, base_dir: str | None) -> tuple[_Outline | None, FileFrontEnd | None]:
    """Parse the whole file: an outline when it parses cleanly, else the loader's own reading."""
    parsed = parse_text(text, path)
    if parsed.complete and parsed.tree is not None:
        try:
            pieces = _read_declarations(parsed.tree, parsed.source_map, base_dir, parsed.text)
            return _Outline(path, base_dir, parsed.text, pieces), None
        except _Uncertain:
            pass
    return None, lower_parsed(parsed, base_dir)


# ----------------------------------------------------------------------------------------------
# Imported files


def _digest(data: bytes | str) -> str:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


_file_cache: OrderedDict[tuple, FileFrontEnd] = OrderedDict()
_file_cache_lock = threading.Lock()


def _fresh_copy(front: FileFrontEnd) -> FileFrontEnd:
    """The loader resolves a unit's imports in place: every compile gets its own lists."""
    unit = front.unit
    if unit is not None:
        unit = FileUnit(unit.path, list(unit.imports), list(unit.uses), list(unit.providers),
                        list(unit.models), list(unit.workflows))
    return dataclasses.replace(front, syntax_diagnostics=list(front.syntax_diagnostics),
                               lowering_diagnostics=list(front.lowering_diagnostics), unit=unit)


def read_file_cached(display: str, data: bytes | str, base_dir: str | None, role: str) -> FileFrontEnd:
    """`load.read_file`, remembered by (path, directory, text digest) across compiles and documents."""
    key = (display, base_dir, isinstance(data, str), _digest(data))
    with _file_cache_lock:
        front = _file_cache.get(key)
        if front is not None:
            _file_cache.move_to_end(key)
    if front is None:
        front = read_file(display, data, base_dir, role)
        with _file_cache_lock:
            _file_cache[key] = front
            while len(_file_cache) > _FILE_CACHE_SIZE:
                _file_cache.popitem(last=False)
    return _fresh_copy(front)


# ----------------------------------------------------------------------------------------------
# The compiler


class IncrementalCompiler:
    """Compiles successive versions of one document, re-reading only what each edit touched.

    `compile` returns exactly what `compile_source(text, path, extra_sources=...)` returns.
    `last_mode` says how the main file was read: "same" (unchanged text), "members" or
    "declarations" (a region re-read), or "whole".
    """

    def __init__(self, path: str):
        self.path = path
        self.last_mode: str | None = None
        self._outline: _Outline | None = None
        self._lock = threading.Lock()

    def compile(self, text: str | bytes, extra_sources: dict[str, str] | None = None) -> CompileResult:
        if self.path.endswith(YAML_SUFFIXES):
            self.last_mode = "whole"
            return compile_source(text, self.path, extra_sources=extra_sources)
        with self._lock:
            return compile_source(text, self.path, extra_sources=extra_sources, front_end=self._read)

    def _read(self, display: str, data: bytes | str, base_dir: str | None, role: str) -> FileFrontEnd:
        if role != "main":
            return read_file_cached(display, data, base_dir, role)
        return self._read_main(display, data, base_dir)

    def _read_main(self, display: str, data: bytes | str, base_dir: str | None) -> FileFrontEnd:
        text = decode_source(data)
        if len(text) > MAX_SOURCE_CHARS:
            self.last_mode = "whole"
            return read_file(display, data, base_dir, "main")
        base = self._outline
        if base is not None and (base.path, base.base_dir) == (display, base_dir):
            if base.text == text:
                self.last_mode = "same"
                return base.front_end()
            try:
                outline, mode = _reread(base, text)
            except _Uncertain:
                outline = None
            if outline is not None:
                self._outline = outline
                self.last_mode = mode
                return outline.front_end()
        self.last_mode = "whole"
        outline, front = _read_whole(display, text, base_dir)
        if outline is not None:
            self._outline = outline
            return outline.front_end()
        assert front is not None
        return front  # broken text: keep the last clean outline to re-read the next version from

