"""Binds a run's inputs to the workflow's declared inputs: parse `--input k=v` text by the declared
type, apply defaults, and report what is missing, unknown or of the wrong type (exit code 2).
"""

from __future__ import annotations

import json
import math
from typing import Any

from bmad.compiler import ir
from bmad.runtime.expressions import evaluate


class InputError(Exception):
    pass


class JsonTooDeep(ValueError):
    """JSON nested deeper than Python's JSON reader can go."""


def load_json(text: str) -> Any:
    """`json.loads` for JSON a user gave (`--input`, `--input-file`, `--inputs` rows, files the
    CLI reads): anything that can't be read is a ValueError with a plain message, including JSON
    nested deeper than Python's parser can go (it raises RecursionError at about 1,000 levels,
    which would otherwise surface as an internal error)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonTooDeep("its arrays or objects are nested too deeply to read "
                          "(Python's JSON reader stops at about 1,000 levels)") from None


def parse_text(value: str, type_: ir.TypeRef) -> Any:
    """`--input k=v`: text stays text; numbers, bools, json and lists are parsed."""
    if type_.name == "text":
        return value
    if type_.name == "number":
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"`{value}` is not a number") from None
        if not math.isfinite(number):  # nan, inf, 1e400: JSON can't hold them (exports, journal)
            raise InputError(f"`{value}` is not a finite number")
        return int(number) if number.is_integer() and "." not in value else number
    if type_.name == "bool":
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise InputError(f"`{value}` is not true or false")
    try:
        return load_json(value)
    except JsonTooDeep as exc:  # not a comma-separated list either: say what is wrong
        raise InputError(str(exc)) from None
    except ValueError:
        if type_.name == "list":
            # A convenience: a single item, or comma-separated items, for list<text>.
            return [v.strip() for v in value.split(",")] if value else []
        raise InputError(f"`{value}` is not valid JSON") from None


def check_type(name: str, value: Any, type_: ir.TypeRef, *, of: str | None = None) -> None:
    """Raises InputError unless `value` fits `type_` (null fits only `json`). `of`: the workflow
    whose input it is, named in the message (a subworkflow call's arguments)."""
    ok = {
        "text": lambda v: isinstance(v, str),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "json": lambda v: True,
        "list": lambda v: isinstance(v, list),
    }[type_.name](value)
    owner = f" of `{of}`" if of else ""
    if not ok:
        raise InputError(f"input `{name}`{owner} must be {type_}, got {describe_value(value)}")
    where = _non_finite(value)
    if where is not None:
        raise InputError(f"input `{name}{where}`{owner} is NaN or infinite: only finite numbers "
                         "can be journaled and exported as JSON")
    if type_.name == "list" and type_.item is not None:
        for i, item in enumerate(value):
            check_type(f"{name}[{i}]", item, type_.item, of=of)


def describe_value(value: Any, limit: int = 40) -> str:
    """A value in the language's words, for messages: `null`, `text "seven"`, `the number 2`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= limit else value[:limit] + "..."
        return f"text {json.dumps(shown, ensure_ascii=False)}"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return "a JSON object"
    return type(value).__name__


def _non_finite(value: Any, path: str = "") -> str | None:
    """Where in `value` a NaN or infinity sits ("" for the value itself), or None. Python's JSON
    reader accepts `NaN` and `Infinity`; strict JSON (exports, other tools) does not."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{path}[{key!r}]" if isinstance(key, str) else f"{path}[{key}]")
        if found is not None:
            return found
    return None


def bind_inputs(workflow: ir.Workflow, given: dict[str, Any], *, texts: dict[str, str] | None = None
                ) -> dict[str, Any]:
    """The workflow's inputs from values (`--input-file`) and texts (`--input k=v`)."""
    declared = {i.name: i for i in workflow.inputs}
    bound: dict[str, Any] = {}
    for name in list(given) + list(texts or {}):
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise InputError(f"`{workflow.name}` has no input `{name}` (inputs: {known})")
    for name, decl in declared.items():
        if texts and name in texts:
            try:
                value = parse_text(texts[name], decl.type)
            except InputError as exc:
                raise InputError(f"input `{name}`: {exc}") from None
        elif name in given:
            value = given[name]
        elif decl.default is not None:
            value = evaluate(decl.default, {})
        else:
            raise InputError(f"input `{name}` ({decl.type}) is required: pass --input {name}=...")
        check_type(name, value, decl.type)
        bound[name] = value
    return bound
