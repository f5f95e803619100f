"""The static types of values in conditions, loop sources and arguments, and how they combine.

Types come from input declarations (`text`, `number`, `bool`, `json`, `list<T>`), from a task's
`returns` (text, `enum(...)`, or the property types of its JSON Schema) and from literals. `any` is
what we can't know statically (a `json` input, a schema without `type`); it is compatible with
everything, so the checks only report what is certainly wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from bmad.compiler import ir

Kind = Literal["any", "text", "number", "bool", "list", "object", "null"]


@dataclass(frozen=True)
class ValueType:
    kind: Kind
    item: "ValueType | None" = None  # list
    fields: Mapping[str, "ValueType"] | None = None  # object: known properties; None: unknown
    values: tuple[str, ...] = ()  # text: the allowed values of an enum

    def describe(self) -> str:
        if self.kind == "text" and self.values:
            return "one of " + ", ".join(self.values)
        if self.kind == "number":
            return "a number"
        if self.kind == "bool":
            return "true/false"
        if self.kind == "list":
            return f"a list of {self.item.describe()}" if self.item and self.item.kind != "any" else "a list"
        if self.kind == "object":
            return "a JSON object"
        if self.kind == "any":
            return "any value"
        return self.kind


ANY = ValueType("any")
TEXT = ValueType("text")
NUMBER = ValueType("number")
BOOL = ValueType("bool")
NULL = ValueType("null")


def list_of(item: ValueType) -> ValueType:
    return ValueType("list", item=item)


def from_type_ref(ref: ir.TypeRef | None) -> ValueType:
    if ref is None:
        return ANY
    if ref.name == "list":
        return list_of(from_type_ref(ref.item))
    return {"text": TEXT, "number": NUMBER, "bool": BOOL}.get(ref.name, ANY)


def from_schema(schema: Any, depth: int = 0) -> ValueType:
    """The type a JSON Schema describes; `any` where it doesn't say (or is too deep to matter)."""
    if not isinstance(schema, Mapping) or depth > 32:
        return ANY
    enum = schema.get("enum")
    kind = schema.get("type")
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        return ValueType("text", values=tuple(enum))
    if kind == "string":
        return TEXT
    if kind in ("number", "integer"):
        return NUMBER
    if kind == "boolean":
        return BOOL
    if kind == "null":
        return NULL
    if kind == "array":
        return list_of(from_schema(schema.get("items"), depth + 1))
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), Mapping)):
        props = schema.get("properties")
        if not isinstance(props, Mapping) or not props:
            return ValueType("object")  # fields unknown: any field may be read
        # The declared properties are what an author can rely on, even if others may appear.
        return ValueType("object", fields={str(k): from_schema(v, depth + 1) for k, v in props.items()})
    return ANY


def from_literal(value: Any) -> ValueType:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float)):
        return NUMBER
    if isinstance(value, str):
        return TEXT
    if value is None:
        return NULL
    if isinstance(value, list):
        return list_of(from_literal(value[0]) if value else ANY)
    if isinstance(value, dict):
        return ValueType("object")
    return ANY


def comparable(a: ValueType, b: ValueType) -> bool:
    """Whether `a == b` can ever be true (and so is a sensible thing to write)."""
    if a.kind in ("any", "null") or b.kind in ("any", "null"):
        return True
    if a.kind != b.kind:
        return False
    if a.kind == "list":
        return comparable(a.item or ANY, b.item or ANY)
    return True


def assignable(value: ValueType, target: ValueType) -> bool:
    """Whether a value of type `value` may be passed where `target` is declared."""
    if target.kind == "object" and target.fields is None:
        return True  # a `json` input takes anything
    return comparable(value, target)
