"""Deterministic JSON for IR trees, and back.

Every node becomes an object tagged with `"node": ClassName`; tuples become lists; keys are sorted
when dumped, so the same program always gives the same bytes and plans diff cleanly. Fields typed
`Any` (JSON Schemas, literal values) are kept as plain JSON data.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from functools import cache
from typing import Any

from bmad.compiler import ir

NODE_CLASSES: dict[str, type] = {
    cls.__name__: cls for cls in typing.get_args(ir.Node)
}


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(ir))


_SCALARS = frozenset({str, int, float, bool})


@cache
def _node_fields(cls: type) -> tuple[tuple[str, bool], ...] | None:
    """(field name, is a span) per field of a dataclass node type; None for anything else."""
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple((f.name, f.name == "span" or f.name.endswith("_span"))
                 for f in dataclasses.fields(cls))


def to_data(value: Any, *, spans: bool = True) -> Any:
    """An IR node (or tuple of nodes) as plain JSON data."""
    node_fields = _node_fields(type(value))  # per type, once: stores of large plans call this a lot
    if node_fields is not None:
        out: dict[str, Any] = {"node": type(value).__name__}
        for name, is_span in node_fields:
            if is_span and not spans:
                continue
            field_value = getattr(value, name)
            # Most fields are None or scalars: no recursive call for them.
            out[name] = field_value if field_value is None or type(field_value) in _SCALARS \
                else to_data(field_value, spans=spans)
        return out
    if isinstance(value, (tuple, list)):
        return [to_data(v, spans=spans) for v in value]
    if isinstance(value, dict):
        return {str(k): to_data(v, spans=spans) for k, v in value.items()}
    return value


def dumps(value: Any, *, spans: bool = True, indent: int | None = 2) -> str:
    return json.dumps(to_data(value, spans=spans), sort_keys=True, indent=indent, ensure_ascii=False)


def _is_raw(hint: Any) -> bool:
    return hint is Any or (typing.get_origin(hint) is typing.Union and Any in typing.get_args(hint))


def from_data(data: Any, hint: Any = None) -> Any:
    """Rebuild nodes from `to_data` output. Unknown node names raise ValueError."""
    if hint is not None and _is_raw(hint):
        return data
    if isinstance(data, dict) and "node" in data:
        cls = NODE_CLASSES.get(data["node"])
        if cls is None:
            raise ValueError(f"unknown IR node {data['node']!r}")
        hints = _hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                kwargs[f.name] = from_data(data[f.name], hints.get(f.name))
        return cls(**kwargs)
    if isinstance(data, list):
        item_hint = None
        args = typing.get_args(hint) if hint is not None else ()
        if args and typing.get_origin(hint) is tuple:
            item_hint = args[0]
        return tuple(from_data(v, item_hint) for v in data)
    return data


def loads(text: str) -> Any:
    return from_data(json.loads(text))
