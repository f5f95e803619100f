"""Generate a deterministic JSON value that satisfies a JSON Schema, from a seeded RNG.

The sim provider answers `returns json { ... }` tasks with values drawn here, so every downstream
clause (field access in templates, `when` conditions, schema validation) sees well-typed data.
Covers the keywords workflows use: type (and type lists), enum, const, properties, required,
additionalProperties, items/prefixItems, min/maxItems, uniqueItems, min/max(Length), exclusive
bounds, multipleOf, pattern (via the stdlib regex parser), format, anyOf/oneOf/allOf, local $ref.
The result is checked with jsonschema; `sample_json` raises ValueError when it cannot satisfy a
schema (e.g. an unsatisfiable `not`), so a caller never hands out a value that fails validation.
"""

from __future__ import annotations

import random
import re._parser as sre_parse  # the stdlib's regex parser: patterns become strings that match
import string
from typing import Any

import jsonschema

_WORDS = ("alpha", "bravo", "delta", "echo", "kilo", "lima", "nova", "oscar", "sierra", "tango")
_FORMATS = {
    "date": "2024-05-17",
    "date-time": "2024-05-17T12:30:00Z",
    "time": "12:30:00Z",
    "email": "sim@example.com",
    "uri": "https://example.com/sim",
    "url": "https://example.com/sim",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "sim.example.com",
}
_MAX_DEPTH = 6
_ATTEMPTS = 8


def sample_json(schema: Any, rng: random.Random) -> Any:
    """A value valid against `schema` (a dict or bool), drawn deterministically from `rng`."""
    if schema is True or schema == {} or schema is None:
        return _sample_untyped(rng)
    if schema is False:
        raise ValueError("the schema `false` accepts no value")
    validator = _validator(schema)
    last: Any = None
    for _ in range(_ATTEMPTS):
        last = _Sampler(schema, rng).sample(schema, 0)
        if validator.is_valid(last):
            return last
    raise ValueError("could not generate a value satisfying the schema (last try: "
                     f"{str(last)[:80]})")


_VALIDATORS: dict[int, tuple[Any, Any]] = {}


def _validator(schema: dict[str, Any]) -> Any:
    # Keyed by identity (the IR's schemas live as long as the plan), holding the schema so the
    # id can't be reused by another object while cached.
    hit = _VALIDATORS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    validator = jsonschema.validators.validator_for(schema)(schema)
    if len(_VALIDATORS) > 1024:
        _VALIDATORS.clear()
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


class _Sampler:
    def __init__(self, root: dict[str, Any], rng: random.Random):
        self.root = root
        self.rng = rng

    def sample(self, schema: Any, depth: int) -> Any:
        rng = self.rng
        if schema is True or schema is None:
            return _sample_untyped(rng)
        if not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            return self.sample(self._resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema and schema["enum"]:
            return rng.choice(list(schema["enum"]))
        if "allOf" in schema:
            merged = _merge_all_of(schema, self)
            return self.sample(merged, depth + 1)
        for key in ("oneOf", "anyOf"):
            if key in schema and schema[key]:
                branch = rng.choice(list(schema[key]))
                base = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
                if isinstance(branch, dict):
                    base = {**base, **branch}
                return self.sample(base, depth + 1)
        kind = self._type_of(schema)
        if depth >= _MAX_DEPTH and kind in ("object", "array"):
            return {} if kind == "object" else []
        return getattr(self, f"_sample_{kind}")(schema, depth)

    def _type_of(self, schema: dict[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            choices = [t for t in declared if t != "null"] or declared
            return self.rng.choice(choices)
        if isinstance(declared, str):
            return declared
        # No type: infer from the keywords present.
        if any(k in schema for k in ("properties", "required", "additionalProperties")):
            return "object"
        if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
            return "array"
        if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
            return "string"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        return "string"

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref are supported, got {ref!r}")
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    # -- one method per JSON type --------------------------------------------------------------

    def _sample_null(self, schema: dict[str, Any], depth: int) -> None:
        return None

    def _sample_boolean(self, schema: dict[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def _sample_integer(self, schema: dict[str, Any], depth: int) -> int:
        lo, hi = _bounds(schema, integer=True)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first = -(-lo // step) * step
            last = (hi // step) * step
            if first > last:
                return first
            return first + step * self.rng.randint(0, (last - first) // step)
        return self.rng.randint(lo, hi)

    def _sample_number(self, schema: dict[str, Any], depth: int) -> float | int:
        if isinstance(schema.get("multipleOf"), (int, float)) and schema["multipleOf"] > 0:
            step = schema["multipleOf"]
            lo, hi = _bounds(schema, integer=False)
            k = self.rng.randint(int(-(-lo // step)), max(int(-(-lo // step)), int(hi // step)))
            return k * step
        lo, hi = _bounds(schema, integer=False)
        return round(self.rng.uniform(lo, hi), 3)

    def _sample_string(self, schema: dict[str, Any], depth: int) -> str:
        lo = int(schema.get("minLength", 0))
        hi = int(schema.get("maxLength", max(lo, 24)))
        if "pattern" in schema:
            text = _string_matching(schema["pattern"], self.rng)
        elif schema.get("format") in _FORMATS:
            text = _FORMATS[schema["format"]]
        else:
            words = [self.rng.choice(_WORDS) for _ in range(self.rng.randint(1, 4))]
            text = "simulated " + " ".join(words)
        if len(text) < lo:
            text += "x" * (lo - len(text))
        return text[:hi] if "pattern" not in schema else text

    def _sample_array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems") or []
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", max(lo, len(prefix), 3)))
        count = self.rng.randint(max(lo, min(len(prefix), hi), 1 if hi else 0), max(lo, min(hi, 3)))
        out: list[Any] = []
        unique = bool(schema.get("uniqueItems"))
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            if sub is False:
                break
            value = self.sample(sub, depth + 1)
            if unique:
                for _ in range(_ATTEMPTS):
                    if value not in out:
                        break
                    value = self.sample(sub, depth + 1)
                else:
                    continue
            out.append(value)
        return out

    def _sample_object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties") or {}
        required = list(schema.get("required") or [])
        out: dict[str, Any] = {}
        # Required fields always; optional declared ones too, so templates can use them.
        for name in list(props) + [r for r in required if r not in props]:
            out[name] = self.sample(props.get(name, True), depth + 1)
        lo = int(schema.get("minProperties", 0))
        extra_schema = schema.get("additionalProperties", True)
        i = 0
        while len(out) < lo and extra_schema is not False:
            out[f"extra_{i}"] = self.sample(extra_schema, depth + 1)
            i += 1
        hi = schema.get("maxProperties")
        if hi is not None and len(out) > hi:
            keep = required + [k for k in out if k not in required]
            out = {k: out[k] for k in keep[: int(hi)]}
        return out


def _sample_untyped(rng: random.Random) -> Any:
    return "simulated " + rng.choice(_WORDS)


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[Any, Any]:
    lo = schema.get("minimum")
    hi = schema.get("maximum")
    xlo = schema.get("exclusiveMinimum")
    xhi = schema.get("exclusiveMaximum")
    if isinstance(xlo, bool):  # draft 4: a flag on minimum
        xlo = lo if xlo else None
        lo = None if xlo is not None else lo
    if isinstance(xhi, bool):
        xhi = hi if xhi else None
        hi = None if xhi is not None else hi
    if integer:
        if xlo is not None:
            lo = max(lo, int(xlo) + 1) if lo is not None else int(xlo) + 1
        if xhi is not None:
            hi = min(hi, -(-xhi // 1) - 1) if hi is not None else int(-(-xhi // 1)) - 1
        lo = int(-(-lo // 1)) if lo is not None else 0 if hi is None or hi >= 0 else int(hi) - 100
        hi = int(hi // 1) if hi is not None else lo + 100
        return lo, max(lo, hi)
    span = 1e-6
    if xlo is not None:
        lo = max(lo, xlo + span) if lo is not None else xlo + span
    if xhi is not None:
        hi = min(hi, xhi - span) if hi is not None else xhi - span
    if lo is None:
        lo = 0.0 if hi is None or hi >= 0 else hi - 100.0
    if hi is None:
        hi = lo + 100.0
    return lo, max(lo, hi)


def _merge_all_of(schema: dict[str, Any], sampler: _Sampler) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if isinstance(part, dict) and "$ref" in part:
            part = sampler._resolve(part["$ref"])
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = sorted(set(merged.get("required", [])) | set(value))
            else:
                merged.setdefault(key, value)
    return merged


# -- strings from regular expressions ------------------------------------------------------------

_CATEGORY_CHARS = {
    sre_parse.CATEGORY_DIGIT: string.digits,
    sre_parse.CATEGORY_NOT_DIGIT: string.ascii_letters,
    sre_parse.CATEGORY_SPACE: " ",
    sre_parse.CATEGORY_NOT_SPACE: string.ascii_letters + string.digits,
    sre_parse.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    sre_parse.CATEGORY_NOT_WORD: " -.,",
}


def _string_matching(pattern: str, rng: random.Random) -> str:
    """A string that `re.search(pattern, s)` accepts, built from the parsed pattern."""
    try:
        parsed = sre_parse.parse(pattern)
    except sre_parse.error as exc:
        raise ValueError(f"invalid pattern {pattern!r}: {exc}") from exc
    groups: dict[int, str] = {}
    return _emit(parsed, rng, groups)


def _emit(items: Any, rng: random.Random, groups: dict[int, str]) -> str:
    out: list[str] = []
    for op, arg in items:
        out.append(_emit_one(op, arg, rng, groups))
    return "".join(out)


def _emit_one(op: Any, arg: Any, rng: random.Random, groups: dict[int, str]) -> str:
    c = sre_parse
    if op is c.LITERAL:
        return chr(arg)
    if op is c.NOT_LITERAL:
        return "a" if chr(arg) != "a" else "b"
    if op is c.ANY:
        return rng.choice(string.ascii_letters)
    if op is c.IN:
        return _emit_class(arg, rng)
    if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
        lo, hi, sub = arg
        hi = lo + 3 if hi is c.MAXREPEAT else hi
        return "".join(_emit(sub, rng, groups) for _ in range(rng.randint(lo, max(lo, min(hi, lo + 3)))))
    if op is c.SUBPATTERN:
        group, _add, _del, sub = arg
        text = _emit(sub, rng, groups)
        if group is not None:
            groups[group] = text
        return text
    if op is c.BRANCH:
        _, branches = arg
        return _emit(rng.choice(branches), rng, groups)
    if op is c.GROUPREF:
        return groups.get(arg, "")
    if op is getattr(c, "ATOMIC_GROUP", None):
        return _emit(arg, rng, groups)
    if op is c.CATEGORY:
        return rng.choice(_CATEGORY_CHARS.get(arg, "a"))
    # AT (anchors), ASSERT, ASSERT_NOT and the rest emit nothing; validation catches misses.
    return ""


def _emit_class(items: Any, rng: random.Random) -> str:
    c = sre_parse
    if items and items[0][0] is c.NEGATE:
        excluded = set()
        for op, arg in items[1:]:
            if op is c.LITERAL:
                excluded.add(chr(arg))
            elif op is c.RANGE:
                excluded.update(chr(i) for i in range(arg[0], arg[1] + 1))
            elif op is c.CATEGORY:
                excluded.update(_CATEGORY_CHARS.get(arg, ""))
        pool = [ch for ch in string.ascii_letters + string.digits if ch not in excluded]
        return rng.choice(pool or ["~"])
    op, arg = rng.choice(items)
    if op is c.LITERAL:
        return chr(arg)
    if op is c.RANGE:
        return chr(rng.randint(arg[0], arg[1]))
    if op is c.CATEGORY:
        return rng.choice(_CATEGORY_CHARS.get(arg, "a"))
    return "a"
