"""`returns json { ... }`: the schema must itself be a valid JSON Schema (checked with jsonschema)."""

from __future__ import annotations

import json

from jsonschema import exceptions, validators

from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, error


def schema_problem(schema: object) -> str | None:
    if not isinstance(schema, (dict, bool)):
        return f"a JSON Schema is an object (or true/false), not {type(schema).__name__}"
    # Metaschema validation costs ~0.3 ms and big workflows repeat the same few schemas: cache the
    # verdict by the schema's JSON. Keys keep their written order: which of several problems
    # jsonschema reports can depend on it, and an equal text always gets the same verdict.
    try:
        key = json.dumps(schema)
    except (TypeError, ValueError):  # not plain JSON after all: validate without the cache
        return _validate(schema)
    if key not in _verdicts:
        if len(_verdicts) >= _MAX_VERDICTS:
            _verdicts.clear()
        _verdicts[key] = _validate(schema)
    return _verdicts[key]


_MAX_VERDICTS = 4096
_verdicts: dict[str, str | None] = {}


def _validate(schema: object) -> str | None:
    try:
        validators.validator_for(schema, default=validators.Draft202012Validator).check_schema(schema)
    except exceptions.SchemaError as problem:
        where = "/".join(str(p) for p in problem.absolute_path)
        return f"{problem.message}" + (f" (at `{where}`)" if where else "")
    except Exception as problem:  # a malformed `$schema` or `$ref`: still a bad schema, never a crash
        return str(problem) or type(problem).__name__
    return None


def check_schemas(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            returns = task.returns
            if returns is None or returns.kind != "json" or returns.schema is None:
                continue
            problem = schema_problem(returns.schema)
            if problem is not None:
                out.append(error(
                    "BMAD-E170", returns.span,
                    f"`returns json` of task `{task.name}` is not a valid JSON Schema: {problem}",
                    'fix the schema; e.g. `{ "type": "object", "properties": { "score": { "type": "number" } } }`',
                ))
    return out
