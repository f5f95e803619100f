"""The JSON Schema (draft 2020-12) of the IR's JSON form, generated from the dataclasses' type hints.

`ir_codec.to_data` writes every node as an object tagged `"node": ClassName` with one property per
field; this module walks the same type hints to describe that form: one `$defs` entry per node class,
`Optional` as `null` alternatives, `tuple[X, ...]` as arrays, unions of nodes as `anyOf` (each member
pinned by its `"node"` const), `Literal` as `enum`, and `Any` as any JSON value.

The generated schema is checked in as `compiler/schema/ir.v1.json` (shipped as package data, printed
by `bmad schema ir`); a test keeps the file equal to `generate_ir_schema()`. Regenerate it with
`python -m bmad.compiler.ir_schema > compiler/schema/ir.v1.json`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from bmad.compiler import ir
from bmad.compiler.ir_codec import NODE_CLASSES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = f"https://bmad.dev/schema/ir.v{ir.IR_VERSION}.json"


def generate_ir_schema() -> dict[str, Any]:
    """The schema of a `Program` as `ir_codec.dumps` writes it (spans included or left out)."""
    defs = {name: _node_schema(cls) for name, cls in sorted(NODE_CLASSES.items())}
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": f"bmad IR v{ir.IR_VERSION}",
        "description": "A compiled bmad program (bmad.compiler.ir) in the JSON form of "
                       "bmad.compiler.ir_codec: every node tagged with \"node\", keys sorted.",
        "$ref": "#/$defs/Program",
        "$defs": defs,
    }


def render_ir_schema() -> str:
    """The schema as the checked-in file holds it: sorted keys, two-space indent, final newline."""
    return json.dumps(generate_ir_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _node_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, vars(ir))
    properties: dict[str, Any] = {"node": {"const": cls.__name__}}
    required = ["node"]
    for f in dataclasses.fields(cls):
        if cls is ir.Program and f.name == "ir_version":
            properties[f.name] = {"const": ir.IR_VERSION}
        else:
            properties[f.name] = _type_schema(hints[f.name])
        # `ir_codec.dumps(..., spans=False)` leaves spans out; everything else is always written.
        if not (f.name == "span" or f.name.endswith("_span")):
            required.append(f.name)
    doc = (cls.__doc__ or "").strip()
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    if doc and not doc.startswith(f"{cls.__name__}("):  # skip the dataclass-generated signature
        schema["description"] = doc.splitlines()[0]
    return schema


def _type_schema(hint: Any) -> dict[str, Any]:
    if hint is Any:
        return {}
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        alternatives = [_type_schema(a) for a in members]
        if any(alt == {} for alt in alternatives):
            return {}
        if type(None) in args:
            alternatives.append({"type": "null"})
        return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0])}
        return {"type": "array", "prefixItems": [_type_schema(a) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint.__name__ not in NODE_CLASSES:
            raise TypeError(f"{hint.__name__} is used in the IR but missing from ir.Node")
        return {"$ref": f"#/$defs/{hint.__name__}"}
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if hint in simple:
        return {"type": simple[hint]}
    raise TypeError(f"no JSON Schema for the IR type hint {hint!r}")


if __name__ == "__main__":
    print(render_ir_schema(), end="")
