"""The language's keywords: where each is valid, and its documentation with an example (hover, completion)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str
    summary: str
    example: str


_DOCS: list[tuple[str, str, str]] = [
    # top level
    ("import", "Bring the declarations of another .bmad file in (the path is relative to this file).",
     'import "models.bmad"'),
    ("use", "Use a module of the standard library (`stdlib/NAME.bmad`).", "use std.code_review"),
    ("provider", "Declare a provider (an API endpoint) that models run on; inside `model`, name the provider the model runs on.",
     'provider openai {\n  kind openai\n  api_key env OPENAI_API_KEY\n}'),
    ("model", "Declare a model (price, context, skills); inside a task, pin the task to one model.",
     "model gpt-4o-mini {\n  provider openai\n  price input $0.15 output $0.60 per 1M\n  context 128k\n}"),
    ("workflow", "Declare a workflow: inputs, tasks and outputs.",
     'workflow hello {\n  input name: text = "world"\n  task greet { prompt "Hi {{ name }}" }\n  output greet\n}'),
    # provider clauses
    ("kind", "The protocol a provider speaks: openai, anthropic, gemini, ollama, llama_cpp, sim or replay.",
     "kind anthropic"),
    ("base_url", "The provider's endpoint.", 'base_url "http://127.0.0.1:8080/v1"'),
    ("api_key", "The environment variable that holds the key (never the key itself).",
     "api_key env OPENAI_API_KEY"),
    ("env", "Names the environment variable that holds an API key.", "api_key env ANTHROPIC_API_KEY"),
    ("limits", "Rate limits: requests and tokens per minute, concurrent calls.",
     "limits { rpm 500, tpm 200k, concurrent 16 }"),
    # model clauses
    ("id", "The provider's own model id (defaults to the model's name).", 'id "gpt-4o-2024-08-06"'),
    ("price", "USD per one million input and output tokens.", "price input $2.50 output $10.00 per 1M"),
    ("context", "The model's context window in tokens.", "context 128k"),
    ("skills", "Expected quality (0..1) per capability; `needs` matches against these.",
     "skills { code 0.90, reasoning 0.85 }"),
    ("latency", "Expected latency: time to first token plus time per output token.",
     "latency 600ms + 12ms per token"),
    # workflow clauses
    ("about", "A sentence saying what the workflow or task is for.", 'about "Multi-model review of a diff"'),
    ("strategy", "How tasks are scheduled: sequential, parallel, adaptive or collaborative.",
     "strategy parallel"),
    ("optimize", "What routing optimises for: cost, latency, quality or balanced.", "optimize cost"),
    ("budget", "A spending limit: dollars per run, tokens, or wall time (several merge).",
     "budget $0.50 per run\nbudget 400k tokens\nbudget 10m"),
    ("quality", "A quality floor: on a workflow, the minimum; on a task, a judged threshold with a fallback action.",
     "quality >= 0.75 judged by gpt-4o else escalate"),
    ("input", "Declare a workflow input with a type (text, number, bool, json, list<T>) and an optional default.",
     'input files: list<text> = []'),
    ("task", "Declare a task: a prompt sent to a model, or a call of another workflow.",
     'task summarize {\n  prompt "Summarize {{ diff }}"\n}'),
    ("parallel", "Group tasks that may run at the same time.",
     'parallel {\n  task a { prompt "x" }\n  task b { prompt "y" }\n}'),
    ("output", "Name a task whose result is the workflow's result.", "output verdict"),
    ("for", "Run a task once per item of a list: `for each X in LIST`.",
     'task per_file for each file in files {\n  prompt "Review {{ file }}"\n}'),
    ("each", "Part of `for each X in LIST`.", "task t for each q in questions { ... }"),
    ("in", "The list a `for each` iterates over; in `when`, membership.", 'task t when lang in ["en", "fr"] { ... }'),
    ("when", "Run the task only when the condition holds (otherwise it is skipped).",
     'task fix when verdict == "REQUEST_CHANGES" { ... }'),
    # task clauses
    ("system", "The system prompt (supports `{{ ref }}` interpolation).", 'system "You are a senior architect."'),
    ("prompt", "The prompt; `{{ ref }}` interpolates inputs, loop variables and task outputs.",
     'prompt "Summarize:\\n{{ diff }}"'),
    ("depends", "Explicit dependencies (a `{{ ref }}` to a task is an implicit one).", "depends security, style"),
    ("needs", "Capabilities the routed model must have (matched against model skills).",
     "needs code, security"),
    ("route", "How the model is chosen: cheapest, fastest, best, or cascade through a list.",
     "route cascade [gpt-4o-mini, gpt-4o]"),
    ("fallback", "Models to try, in order, when the routed one fails, before the planner's automatic ones; "
                 "`fallback only [...]`: exactly these, never an automatic one (a closed group); "
                 "`fallback none`: no fallback at all.", "fallback [claude-sonnet, gpt-4o]"),
    ("only", "After `fallback`: a closed group. When the chosen model fails, exactly the models written are "
             "asked, in order (those available here), and never one the planner adds (nor `local`); "
             "`else escalate` climbs through them only.", "fallback only [azure-gpt-4o, gpt-4o]"),
    ("max_tokens", "The most output tokens the task may produce.", "max_tokens 300"),
    ("temperature", "Sampling temperature.", "temperature 0.4"),
    ("priority", "Scheduling priority: low, medium, high or critical.", "priority high"),
    ("timeout", "The longest one attempt may take.", "timeout 30s"),
    ("retry", "After a transient failure, retries the same model up to N times (N + 1 attempts; "
              "`retry 0`: no retry; without the clause, 2 retries), with backoff.",
     "retry 3 backoff exponential 1s to 20s"),
    ("on_error", "What a failure does to the run: fail, skip or continue.", "on_error continue"),
    ("returns", "The result's shape: text, json {JSON Schema} or enum(A, B).",
     'returns json { "type": "object", "properties": { "score": { "type": "number" } } }'),
    ("consensus", "Ask several models and combine: vote, weighted, similarity, judge or ensemble.",
     "consensus vote among [gpt-4o, claude-sonnet, gpt-4o-mini] quorum 2"),
    ("best_of", "Generate N answers and keep the best (optionally judged by a model).",
     "best_of 3 judged by claude-sonnet"),
    ("peer_review", "Models review each other's answers for a number of rounds.",
     "peer_review among [claude-sonnet, gpt-4o] rounds 2"),
    ("reduce", "Fan in a `for each` task's list (as a tree when chunked).", "reduce per_file in chunks of 10"),
    ("among", "The participants of a consensus: a list of models, or `N models` chosen by the router.",
     "consensus judge gpt-4o among 3 models"),
    ("judged", "The model that judges quality or picks the best answer: `judged by MODEL`.",
     "quality >= 0.9 judged by claude-sonnet"),
    ("rubric", "What the quality judge checks: the text, or the name of a rubric declared with "
               "`rubric NAME \"text\"` (`use std.quality` brings general, factual, grounded, complete, code, "
               "clarity, concise and safety).",
     'quality >= 0.9 rubric "Does it address every finding?"  /  quality >= 0.8 rubric grounded'),
    ("else", "What happens below the quality threshold: refine max N, escalate, retry N, fail or accept.",
     "quality >= 0.8 else refine max 3"),
    ("quorum", "How many participants must agree in a vote.", "consensus vote among [a, b, c] quorum 2"),
]

KEYWORDS: dict[str, Keyword] = {name: Keyword(name, summary, example) for name, summary, example in _DOCS}

# Keywords valid as the first word of a clause, by the block the cursor is in.
CLAUSES: dict[str, tuple[str, ...]] = {
    "top": ("import", "use", "provider", "model", "rubric", "workflow"),
    "provider": ("kind", "base_url", "api_key", "limits", "timeout"),
    "model": ("provider", "id", "price", "context", "skills", "latency"),
    "workflow": ("about", "strategy", "optimize", "budget", "quality", "input", "task", "parallel", "output"),
    "parallel": ("task",),
    "task": ("about", "system", "prompt", "depends", "needs", "model", "route", "fallback", "max_tokens",
             "temperature", "priority", "timeout", "retry", "on_error", "returns", "budget", "quality",
             "consensus", "best_of", "peer_review", "reduce"),
    "limits": ("rpm", "tpm", "concurrent"),
}

# Closed sets of values after a keyword.
VALUES: dict[str, tuple[str, ...]] = {
    "kind": ("openai", "anthropic", "gemini", "ollama", "llama_cpp", "sim", "replay"),
    "strategy": ("sequential", "parallel", "adaptive", "collaborative"),
    "optimize": ("cost", "latency", "quality", "balanced"),
    "priority": ("low", "medium", "high", "critical"),
    "on_error": ("fail", "skip", "continue"),
    "route": ("cheapest", "fastest", "best", "cascade"),
    "returns": ("text", "json", "enum"),
    "consensus": ("vote", "weighted", "similarity", "judge", "ensemble"),
    "else": ("refine", "escalate", "retry", "fail", "accept"),
    "backoff": ("exponential", "linear", "fixed"),
    "fallback": ("none", "only"),  # or a list of models; `only` is followed by one
}

TYPES = ("text", "number", "bool", "json", "list")

# Words that never name a user declaration inside expressions.
EXPRESSION_WORDS = frozenset({"and", "or", "not", "in", "true", "false", "null", "for", "each", "when"})

ALL_WORDS = frozenset(KEYWORDS) | frozenset(w for ws in CLAUSES.values() for w in ws) | frozenset(
    w for ws in VALUES.values() for w in ws) | frozenset(TYPES) | EXPRESSION_WORDS | frozenset(
    {"per", "run", "tokens", "token", "input", "output", "by", "max", "rounds", "chunks", "of", "to",
     "models", "backoff", "enum", "rpm", "tpm", "concurrent", "std"})
