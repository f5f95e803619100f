"""Deterministic JSON for IR trees, and back.

Every node becomes an object tagged with `"node": ClassName`; tuples become lists; keys are sorted
when dumped, so the same program always gives the same bytes and plans diff cleanly. Fields typed
`Any` (JSON Schemas, literal values) are kept as plain JSON data.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from functools import cache
from typing import Any, Callable

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
            if is_span and field_value == ir.NO_SPAN:
                continue  # "not in the source": the decoder's default, and a plan of 10k tasks
                # would otherwise carry tens of thousands of them
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


# ---------------------------------------------------------------------------------------------
# Checked decoding: data from a file someone may have edited (a sealed plan). Every value is
# checked against its field's type hint, so malformed data gives one `DataFormatError` naming
# where it is wrong (`workflows[0].tasks[2].model`), never an AttributeError deep in the runtime.
# A converter is built once per type hint; paths are only assembled when something is wrong.


class DataFormatError(ValueError):
    """Data that doesn't have the shape its type says; `parts` is where (keys and list indices)."""

    def __init__(self, problem: str, parts: list[str | int] | None = None):
        self.problem = problem
        self.parts: list[str | int] = list(parts or [])
        super().__init__(problem)

    @property
    def path(self) -> str:
        return format_path(self.parts)

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.parts else self.problem


def format_path(parts: list[str | int]) -> str:
    """`["tasks", 0, "estimate"]` -> `tasks[0].estimate`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.isidentifier():  # a file name among `sources`, say
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
        else:
            out += f".{part}" if out else part
    return out


_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
               float: "a number", type(None): "null"}


def describe(value: Any) -> str:
    """How a JSON value reads in an error message: `a string ('x')`, `null`, `an object`."""
    name = _JSON_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = repr(value)
        return f"{name} ({text[:40] + '...' if len(text) > 40 else text})"
    if isinstance(value, bool):
        return f"{name} ({'true' if value else 'false'})"
    return name


def _expected(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if hint is str:
        return "a string"
    if hint is bool:
        return "a boolean"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple or origin is list:
        return "a list"
    if origin is dict:
        return "an object"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in args)
    if dataclasses.is_dataclass(hint):
        return f"a {hint.__name__} node" if hint.__name__ in NODE_CLASSES else "an object"
    return repr(hint)


def _fail(hint: Any, value: Any) -> DataFormatError:
    return DataFormatError(f"expected {_expected(hint)}, got {describe(value)}")


def _check_type(hint: type) -> Any:
    if hint is float:
        def conv(value: Any) -> Any:
            if type(value) is float or type(value) is int:
                return value
            raise _fail(float, value)
    else:
        def conv(value: Any) -> Any:
            if type(value) is hint:  # bool is not an int here
                return value
            raise _fail(hint, value)
    return conv


def _raw(value: Any) -> Any:
    return value


def converter(hint: Any, hints_of: Any = None) -> Any:
    """A function checking (and rebuilding) data of type `hint`, raising `DataFormatError`.

    IR node classes expect their `"node"` tag; other dataclasses (the plan's own records) are plain
    objects whose keys are their fields. `hints_of(cls)` gives a class's resolved type hints.
    """
    return _converter(hint, hints_of or _hints)


def at_part(part: str | int, convert: Callable[[Any], Any], value: Any) -> Any:
    """`convert(value)`; a failure's JSON path starts with `part` (the key or list index `value`
    sits under)."""
    try:
        return convert(value)
    except DataFormatError as exc:
        exc.parts.insert(0, part)
        raise


@cache
def _converter(hint: Any, hints_of: Any) -> Any:
    if hint is Any:
        return _raw
    if hint is type(None):
        def none(value: Any) -> Any:
            if value is None:
                return None
            raise _fail(hint, value)
        return none
    if hint in _SCALARS:
        return _check_type(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        allowed = frozenset(args)

        def literal(value: Any) -> Any:
            if type(value) is str and value in allowed:
                return value
            raise _fail(hint, value)
        return literal
    if origin in (typing.Union, types.UnionType):
        return _union(hint, args, hints_of)
    if origin is list:
        as_tuple = _converter(tuple[args[0], ...] if args else tuple[Any, ...], hints_of)
        return lambda value: list(as_tuple(value))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _converter(args[0], hints_of)

            def items(value: Any) -> Any:
                if type(value) is not list:
                    raise _fail(hint, value)
                return tuple(at_part(i, item, v) for i, v in enumerate(value))
            return items
        members = tuple(_converter(a, hints_of) for a in args)

        def fixed(value: Any) -> Any:
            if type(value) is not list or len(value) != len(members):
                raise DataFormatError(f"expected a list of {len(members)}, got {describe(value)}")
            return tuple(at_part(i, conv, v) for i, (conv, v) in enumerate(zip(members, value)))
        return fixed
    if origin is dict:
        key_hint, value_hint = args or (str, Any)
        if key_hint is not str:
            raise TypeError(f"no checked decoding for {hint!r}")
        conv_value = _converter(value_hint, hints_of)

        def mapping(value: Any) -> Any:
            if type(value) is not dict:
                raise _fail(hint, value)
            return {k: at_part(k, conv_value, v) for k, v in value.items()}
        return mapping
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record(hint, hints_of)
    raise TypeError(f"no checked decoding for the type hint {hint!r}")


def _union(hint: Any, args: tuple[Any, ...], hints_of: Any) -> Any:
    optional = type(None) in args
    members = [a for a in args if a is not type(None)]
    nodes = {a.__name__: _converter(a, hints_of) for a in members
             if isinstance(a, type) and a.__name__ in NODE_CLASSES and NODE_CLASSES[a.__name__] is a}
    others = [_converter(a, hints_of) for a in members if not (isinstance(a, type) and a.__name__ in nodes)]

    def union(value: Any) -> Any:
        if value is None and optional:
            return None
        if nodes and type(value) is dict and type(value.get("node")) is str:
            conv = nodes.get(value["node"])
            if conv is not None:
                return conv(value)
            if not others:
                raise DataFormatError(f"expected {_expected(hint)}, got a {value['node']} node")
        for conv in others:
            try:
                return conv(value)
            except DataFormatError:
                continue
        if len(others) == 1 and not nodes:  # `X | None`: say what was wrong inside X
            try:
                return others[0](value)
            except DataFormatError as exc:
                if exc.parts:
                    raise
        raise _fail(hint, value)
    return union


def check_keys(value: dict[str, Any], known: frozenset[str], required: tuple[str, ...]) -> None:
    """An object's keys: none beyond `known`, all of `required`."""
    for problem, names in (("unexpected", sorted(str(k) for k in value if k not in known)),
                           ("missing", [k for k in required if k not in value])):
        if names:
            raise DataFormatError(f"{problem} key{'s' if len(names) > 1 else ''} "
                                  + ", ".join(repr(k) for k in names))


def _record(cls: type, hints_of: Any) -> Any:
    tagged = cls.__name__ in NODE_CLASSES and NODE_CLASSES[cls.__name__] is cls
    what = f"{cls.__name__} node" if tagged else "an object"
    spec: list[Any] = []  # filled on first use: the IR is recursive (Binary holds Exprs)

    def build() -> None:
        hints = hints_of(cls)
        fields_ = tuple((f.name, _converter(hints[f.name], hints_of)) for f in dataclasses.fields(cls))
        required = tuple(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        known = frozenset(name for name, _ in fields_) | ({"node"} if tagged else frozenset())
        spec[:] = [fields_, required, known]

    def record(value: Any) -> Any:
        if not spec:
            build()
        fields_, required, known = spec
        if type(value) is not dict:
            raise DataFormatError(f"expected {'a ' + what if tagged else what}, got {describe(value)}")
        if tagged and value.get("node") != cls.__name__:
            node = value.get("node")
            raise DataFormatError(f"expected a {cls.__name__} node, got "
                                  + (f"a {node} node" if type(node) is str else "an object without a \"node\" tag"))
        check_keys(value, known, required)
        return cls(**{name: at_part(name, conv, value[name]) for name, conv in fields_ if name in value})
    return record
