"""A small Wadler/Prettier-style layout engine: documents of text, lines, groups and nests, printed to a width.

The formatter (`compiler/format.py`) describes a file as a document; this module decides where lines
break. A `Group` is printed flat (its `Line`s as spaces) when it fits in the remaining width, and
broken (every `Line` a newline) when it does not, or when it holds a `HARD_LINE` or `BREAK_PARENT`
(a comment, which runs to the end of its line, must be followed by a newline). A `Fill` breaks only
the separators whose next part would not fit (for `depends a, b, c, ...`). `Reindent` prints a
multi-line literal whose lines are laid out relative to the current indentation (`\"\"\"` blocks).
Lines never carry trailing indentation: indentation is written lazily, before the next text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

WIDTH = 100


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Line:
    """A line break when the enclosing group breaks; otherwise a space (or nothing, when soft)."""

    soft: bool = False
    hard: bool = False


@dataclass(frozen=True, slots=True)
class BreakParent:
    """Forces every enclosing group to break (put after a trailing comment)."""


@dataclass(slots=True)
class Group:
    contents: Doc
    broken: bool = False  # set by the author (kept layout) or by `propagate_breaks`


@dataclass(frozen=True, slots=True)
class Nest:
    indent: int
    contents: Doc


@dataclass(frozen=True, slots=True)
class IfBreak:
    """`broken` when the enclosing group is broken, `flat` otherwise (a trailing comma)."""

    broken: Doc
    flat: Doc = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """Alternating parts and separators: [part, separator, part, separator, part, ...]."""

    parts: tuple


@dataclass(frozen=True, slots=True)
class Reindent:
    """Text laid out at print time from the current indentation: `render(indent) -> text`.

    `first_width` is what the layout engine measures (the text up to its first newline)."""

    render: Callable[[int], str]
    first_width: int
    multiline: bool


@dataclass(frozen=True, slots=True)
class Mark:
    """Records the output line it is printed on under `key` (for formatting a range of lines)."""

    key: object


@dataclass(frozen=True, slots=True)
class Trailing:
    """A trailing comment: printed where it stands, but not counted when deciding what fits."""

    text: str


Doc = Union[str, Text, Line, BreakParent, Group, Nest, IfBreak, Fill, Reindent, Mark, Trailing, list]

LINE = Line()
SOFT_LINE = Line(soft=True)
HARD_LINE = Line(hard=True)
BREAK_PARENT = BreakParent()


def join(separator: Doc, docs: list[Doc]) -> list[Doc]:
    out: list[Doc] = []
    for i, doc in enumerate(docs):
        if i:
            out.append(separator)
        out.append(doc)
    return out


def propagate_breaks(doc: Doc) -> bool:
    """Mark groups that hold a hard line or a break-parent as broken; True if `doc` holds one."""
    if isinstance(doc, list):
        found = False
        for part in doc:
            found = propagate_breaks(part) or found
        return found
    if isinstance(doc, Line):
        return doc.hard
    if isinstance(doc, BreakParent):
        return True
    if isinstance(doc, Group):
        if propagate_breaks(doc.contents):
            doc.broken = True
        return doc.broken
    if isinstance(doc, Nest):
        return propagate_breaks(doc.contents)
    if isinstance(doc, IfBreak):
        a = propagate_breaks(doc.broken)
        b = propagate_breaks(doc.flat)
        return a or b
    if isinstance(doc, Fill):
        found = False
        for part in doc.parts:
            found = propagate_breaks(part) or found
        return found
    if isinstance(doc, Reindent):
        return doc.multiline
    return False


_FLAT, _BREAK = 0, 1


@dataclass(slots=True)
class _FillRest:
    parts: tuple


@dataclass
class _Printer:
    width: int
    out: list[str] = field(default_factory=list)
    column: int = 0
    line: int = 1
    marks: dict = field(default_factory=dict)
    pending_indent: int | None = 0  # indentation owed before the next text on this line

    def write(self, text: str) -> None:
        if not text:
            return
        if self.pending_indent is not None:
            self.out.append(" " * self.pending_indent)
            self.column = self.pending_indent
            self.pending_indent = None
        self.out.append(text)
        self.column += len(text)

    def newline(self, indent: int) -> None:
        self.out.append("\n")
        self.line += 1
        self.column = indent
        self.pending_indent = indent


def _fits(next_cmd: tuple, rest: list[tuple], width: int) -> bool:
    """Does `next_cmd` (flat) plus what follows it up to the next break fit in `width` columns?"""
    stack = [next_cmd]
    rest_index = len(rest)
    while width >= 0:
        if not stack:
            if rest_index == 0:
                return True
            rest_index -= 1
            stack.append(rest[rest_index])
            continue
        indent, mode, doc = stack.pop()
        if isinstance(doc, str):
            width -= len(doc)
        elif isinstance(doc, Text):
            width -= len(doc.text)
        elif isinstance(doc, list):
            stack.extend((indent, mode, part) for part in reversed(doc))
        elif isinstance(doc, Line):
            if mode == _BREAK or doc.hard:
                return True
            if not doc.soft:
                width -= 1
        elif isinstance(doc, Group):
            stack.append((indent, _BREAK if doc.broken and mode == _BREAK else mode, doc.contents))
        elif isinstance(doc, Nest):
            stack.append((indent + doc.indent, mode, doc.contents))
        elif isinstance(doc, IfBreak):
            stack.append((indent, mode, doc.broken if mode == _BREAK else doc.flat))
        elif isinstance(doc, Fill):
            stack.extend((indent, mode, part) for part in reversed(doc.parts))
        elif isinstance(doc, _FillRest):
            stack.extend((indent, mode, part) for part in reversed(doc.parts))
        elif isinstance(doc, Reindent):
            width -= doc.first_width
            if doc.multiline:
                return width >= 0
        # Trailing comments and break-parents take no width
    return False


def render(doc: Doc, width: int = WIDTH) -> str:
    """Print a document: groups flat where they fit, broken where they do not."""
    return render_marked(doc, width)[0]


def render_marked(doc: Doc, width: int = WIDTH) -> tuple[str, dict]:
    """`render`, plus the output line (1-based) of every `Mark` by its key."""
    propagate_breaks(doc)
    printer = _Printer(width)
    stack: list[tuple] = [(0, _BREAK, doc)]
    while stack:
        indent, mode, doc = stack.pop()
        if isinstance(doc, str):
            printer.write(doc)
        elif isinstance(doc, Text):
            printer.write(doc.text)
        elif isinstance(doc, Trailing):
            printer.write(doc.text)
        elif isinstance(doc, list):
            stack.extend((indent, mode, part) for part in reversed(doc))
        elif isinstance(doc, Line):
            if mode == _BREAK or doc.hard:
                printer.newline(indent)
            elif not doc.soft:
                printer.write(" ")
        elif isinstance(doc, Group):
            if doc.broken:
                stack.append((indent, _BREAK, doc.contents))
            elif mode == _FLAT:
                stack.append((indent, _FLAT, doc.contents))
            else:
                flat = (indent, _FLAT, doc.contents)
                fits = _fits(flat, stack, width - printer.column)
                stack.append(flat if fits else (indent, _BREAK, doc.contents))
        elif isinstance(doc, Nest):
            stack.append((indent + doc.indent, mode, doc.contents))
        elif isinstance(doc, IfBreak):
            stack.append((indent, mode, doc.broken if mode == _BREAK else doc.flat))
        elif isinstance(doc, Fill):
            if doc.parts:
                stack.append((indent, mode, _FillRest(doc.parts[1:])))
                stack.append((indent, _FLAT, doc.parts[0]))
        elif isinstance(doc, _FillRest):
            if len(doc.parts) >= 2:
                separator, part = doc.parts[0], doc.parts[1]
                fits = mode == _FLAT or _fits((indent, _FLAT, [separator, part]), [],
                                              width - printer.column)
                stack.append((indent, mode, _FillRest(doc.parts[2:])))
                stack.append((indent, _FLAT, part))
                stack.append((indent, _FLAT if fits else _BREAK, separator))
        elif isinstance(doc, Reindent):
            text = doc.render(indent)
            first, *others = text.split("\n")
            printer.write(first)
            for line in others:  # the literal's own lines, written exactly
                printer.out.append("\n" + line)
                printer.line += 1
                printer.column = len(line)
                printer.pending_indent = None
        elif isinstance(doc, Mark):
            printer.marks[doc.key] = printer.line
        # BreakParent prints nothing
    return "".join(printer.out), printer.marks
