"""What a run's calls look like, in one place for the runtime that makes them and the planner that
prices and bounds them (the compiler never imports the runtime): default allowances and rounds,
how a value reads inside a prompt, and the line that asks for a declared answer shape."""

from __future__ import annotations

import json
from typing import Any

from bmad.compiler import ir

DEFAULT_MAX_TOKENS = 1024  # a task without `max_tokens`
# A text (or JSON) answer's expected length as a share of its `max_tokens`: what the planner
# prices (measure_prompts.py) and the mean of the sim's text answers (runtime/providers/sim.py).
EXPECTED_OUTPUT_FRACTION = 0.5
JUDGE_MAX_TOKENS = 256  # the most a judge may answer (a gate's score, a consensus judge's choice)
REVIEW_MAX_TOKENS = 512  # the most a `peer_review` critique may be
DEFAULT_REFINE_ROUNDS = 2  # `else refine` without `max N`
DEFAULT_QUALITY_RETRIES = 1  # `else retry` without N
# `bmad run --concurrency`'s default (runtime/interpreter.py `RunConfig.concurrency`): tasks, calls
# and the items of one `for each` at once. The plan can't know a run's own `--concurrency`.
RUN_CONCURRENCY = 64


def gate_rounds(gate: ir.Quality | None) -> int:
    """The rounds a gate's `else refine|retry` allows: the written N, else the default (the
    runtime runs them, the planner prices and bounds them)."""
    if gate is None:
        return 0
    if gate.rounds is not None:
        return gate.rounds
    return DEFAULT_REFINE_ROUNDS if gate.otherwise == "refine" else DEFAULT_QUALITY_RETRIES


def render_value(value: Any) -> str:
    """How a value reads inside a prompt: text as is, JSON as indented JSON, nothing as empty.
    Values in scope are JSON (inputs, parsed answers); anything else is dumped as JSON (a
    TypeError), never str()'d."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def format_instruction(returns: ir.Returns | None) -> str | None:
    """What the prompt adds so that a model answers in the declared shape."""
    if returns is None or returns.kind == "text":
        return None
    if returns.kind == "enum":
        return f"Answer with exactly one of: {', '.join(returns.values)}."
    schema = json.dumps(returns.schema, sort_keys=True) if returns.schema is not None else "{}"
    return f"Reply with JSON only, valid against this JSON Schema: {schema}"
