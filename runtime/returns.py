"""Parses a model's answer into the task's declared `returns`: text, JSON (validated against its
schema) or one value of an enum (normalised), and writes the repair request when JSON is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import validators

from bmad.compiler import ir
from bmad.compiler.call_shapes import format_instruction  # noqa: F401 (the runtime's name for it)
from bmad.compiler.limits import current_limits, json_nesting_exceeds

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_SIM_MARK = "[simulated]"


@dataclass(frozen=True, slots=True)
class Parsed:
    value: Any
    ok: bool
    error: str | None = None


_validator_cache: dict[int, Any] = {}


def _validator(schema: Any):
    key = id(schema)
    hit = _validator_cache.get(key)
    if hit is None or hit[0] is not schema:
        cls = validators.validator_for(schema)
        hit = (schema, cls(schema))
        _validator_cache[key] = hit
    return hit[1]


def schema_errors(value: Any, schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    errors = sorted(_validator(schema).iter_errors(value), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5]]


def extract_json(text: str) -> Any:
    """The JSON value in an answer: the whole text, a fenced block, or the outermost {...}/[...]."""
    stripped = text.strip()
    candidates = [stripped]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = stripped.find(open_), stripped.rfind(close)
        if 0 <= start < end:
            candidates.append(stripped[start:end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except (ValueError, TypeError):
            continue
    raise ValueError("the answer contains no JSON value")


def json_answer_too_big(text: str) -> str | None:
    """Why an answer is too large or too deep to parse as JSON (model output is data, and data
    this size would cost memory or exhaust the parser's stack), or None."""
    limits = current_limits()
    if len(text) > limits.json_output_chars:
        return (f"[BMAD-E506] the answer is {len(text):,} characters, more than the "
                f"{limits.json_output_chars:,} parsed for `returns json`")
    if json_nesting_exceeds(text, limits.json_output_depth):
        return (f"[BMAD-E506] the JSON in the answer is nested more than "
                f"{limits.json_output_depth} deep")
    return None


def normalise_enum(text: str, values: tuple[str, ...]) -> str | None:
    """The enum value an answer means: exact, case-insensitive, or the one value it mentions."""
    cleaned = text.replace(_SIM_MARK, "").strip().strip("\"'`.*:; \n\t")
    for value in values:
        if cleaned == value:
            return value
    folded = cleaned.casefold()
    for value in values:
        if folded == value.casefold():
            return value
    # The answer names exactly one value somewhere (e.g. "Verdict: APPROVE."): take it.
    found = [v for v in values
             if re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", text, re.IGNORECASE)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:  # several: the first mentioned wins only if it is the first word
        first = re.match(r"\W*([\w-]+)", text)
        if first:
            for v in found:
                if v.casefold() == first.group(1).casefold():
                    return v
    return None


def parse(text: str, returns: ir.Returns | None) -> Parsed:
    if returns is None or returns.kind == "text":
        return Parsed(text, True)
    if returns.kind == "enum":
        value = normalise_enum(text, returns.values)
        if value is None:
            return Parsed(text, False, f"the answer is not one of {', '.join(returns.values)}")
        return Parsed(value, True)
    too_big = json_answer_too_big(text)
    if too_big is not None:
        return Parsed(text, False, too_big)
    try:
        value = extract_json(text)
    except ValueError as exc:
        return Parsed(text, False, str(exc))
    except RecursionError:  # a backstop: json_answer_too_big bounds the nesting first
        return Parsed(text, False, "[BMAD-E506] the JSON in the answer is nested too deeply")
    errors = schema_errors(value, returns.schema)
    if errors:
        return Parsed(value, False, "; ".join(errors))
    return Parsed(value, True)


def repair_prompt(previous: str, error: str, returns: ir.Returns) -> str:
    """The one repair round-trip: show the model its answer and what was wrong with it."""
    return (f"Your previous answer was not valid: {error}.\n"
            f"Previous answer:\n{previous}\n\n{format_instruction(returns)}")


def schema_fingerprint(returns: ir.Returns | None) -> str:
    """A stable text for what `returns` asks, used in request hashes."""
    if returns is None or returns.kind == "text":
        return ""
    if returns.kind == "enum":
        return "enum:" + "|".join(returns.values)
    return "json:" + json.dumps(returns.schema, sort_keys=True)
