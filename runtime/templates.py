"""The safe template renderer: `{{ ref }}` and `{{ ref.field }}` from `ir.Template` parts, nothing else.

No code runs and no Python attribute is ever read: a reference names a value in the scope (an input,
a loop variable, a task output) and each further segment is a key of a JSON object (or an index of a
JSON list). Templates are compiled once per task into a flat list, so rendering is a join.
"""

from __future__ import annotations

from typing import Any, Mapping

from bmad.compiler import ir
from bmad.compiler.call_shapes import render_value


class TemplateError(Exception):
    """A reference that names nothing in scope, or a field the value does not have."""

    def __init__(self, message: str, span: ir.Span | None = None):
        super().__init__(message)
        self.message = message
        self.span = span


_MISSING = object()


def lookup_path(scope: Mapping[str, Any], path: tuple[str, ...], span: ir.Span | None = None) -> Any:
    """The value at `path`: a scope name, then JSON object keys or list indexes only."""
    value = scope.get(path[0], _MISSING)
    if value is _MISSING:
        raise TemplateError(f"`{path[0]}` is not an input, loop variable or task output here", span)
    for i, segment in enumerate(path[1:], start=1):
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            where = ".".join(path[:i])
            raise TemplateError(f"`{where}` has no field `{segment}`", span)
    return value


class CompiledTemplate:
    """A template as literal strings and reference paths, ready to render many times."""

    __slots__ = ("parts", "roots", "static")

    def __init__(self, template: ir.Template):
        parts: list[str | ir.Ref] = []
        for part in template.parts:
            if isinstance(part, ir.TextPart):
                if parts and isinstance(parts[-1], str):
                    parts[-1] += part.text
                else:
                    parts.append(part.text)
            else:
                parts.append(part.ref)
        self.parts = tuple(parts)
        self.roots = frozenset(p.root for p in parts if isinstance(p, ir.Ref))
        self.static = "".join(parts) if not self.roots else None  # type: ignore[arg-type]

    def render(self, scope: Mapping[str, Any]) -> str:
        if self.static is not None:
            return self.static
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(render_value(lookup_path(scope, part.path, part.span)))
        return "".join(out)


def render(template: ir.Template, scope: Mapping[str, Any]) -> str:
    return CompiledTemplate(template).render(scope)
