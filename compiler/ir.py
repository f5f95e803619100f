"""The intermediate representation: immutable nodes, each with a source span.

Both front ends (`.bmad` and the seed's YAML) lower to these nodes; checks, optimizer passes, the
runtime and the language server all read them. `None` always means "not written in the source": the
passes and the runtime apply defaults, so the IR keeps what the author said apart from what we chose.
Sequences are tuples; mappings are tuples of small nodes (so every node stays immutable and keeps
its own span). `ir_codec` turns a tree into deterministic JSON and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal as TypingLiteral, Union, get_args

IR_VERSION = "1"


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node came from: 1-based line/column (end exclusive), 0-based character offsets."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0

    @staticmethod
    def unknown(file: str = "<unknown>") -> "Span":
        return Span(file, 1, 1, 1, 1, 0, 0)

    def contains(self, offset: int) -> bool:
        return self.start <= offset <= self.end


NO_SPAN = Span.unknown()


# ----------------------------------------------------------------------------------------------
# Small shared nodes


@dataclass(frozen=True, slots=True)
class Name:
    """A reference to something by name (a task, model, provider, capability, input...)."""

    name: str
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class TypeRef:
    """An input type: text, number, bool, json, or list<T>."""

    name: TypingLiteral["text", "number", "bool", "json", "list"]
    item: TypeRef | None = None
    span: Span = NO_SPAN

    def __str__(self) -> str:
        return f"list<{self.item}>" if self.name == "list" and self.item else self.name


# ----------------------------------------------------------------------------------------------
# Expressions (`when`, `for each ... in`, subworkflow arguments, input defaults)


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, number, bool, null, or a JSON value (lists and objects keep plain Python form)."""

    value: Any
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Ref:
    """`name` or `name.field.sub`: an input, a loop variable or a task output (and JSON fields)."""

    path: tuple[str, ...]
    span: Span = NO_SPAN

    @property
    def root(self) -> str:
        return self.path[0]

    def __str__(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Unary:
    op: TypingLiteral["not", "-"]
    operand: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Binary:
    op: TypingLiteral["==", "!=", "<", "<=", ">", ">=", "in", "and", "or"]
    left: Expr
    right: Expr
    span: Span = NO_SPAN


Expr = Union[Literal, Ref, ListExpr, Unary, Binary]


# ----------------------------------------------------------------------------------------------
# Templates: prompt and system text with `{{ ref }}` interpolation


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class Interpolation:
    """`{{ ref.field }}` inside a template; the span covers the braces in the source."""

    ref: Ref
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Template:
    text: str  # the decoded string, braces included, as the author wrote it
    parts: tuple[TextPart | Interpolation, ...]
    span: Span = NO_SPAN

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(p.ref for p in self.parts if isinstance(p, Interpolation))


# ----------------------------------------------------------------------------------------------
# Providers and models


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None
    span: Span = NO_SPAN


ProviderKind = TypingLiteral["openai", "anthropic", "gemini", "ollama", "llama_cpp", "sim", "replay"]


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    kind: ProviderKind
    base_url: str | None = None
    api_key_env: str | None = None  # the *name* of an environment variable, never a key
    limits: Limits | None = None
    data: str | None = None  # replay: recorded responses (CSV or JSONL), resolved to an absolute path
    timeout_s: float | None = None
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Price:
    """USD per one million tokens."""

    input_per_m: float
    output_per_m: float
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Skill:
    """A capability and the model's expected quality on it (0..1)."""

    name: str
    score: float
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Latency:
    """Expected latency: a fixed time to first token plus a time per output token."""

    base_s: float
    per_token_s: float = 0.0
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    provider: Name
    id: str | None = None  # the provider's model id; defaults to the model's name
    price: Price | None = None  # None: unknown (never counted as $0)
    context: int | None = None
    skills: tuple[Skill, ...] = ()
    latency: Latency | None = None
    path: str | None = None  # llama_cpp: a GGUF file, resolved to an absolute path
    aliases: tuple[str, ...] = ()
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN

    def skill(self, capability: str) -> float | None:
        for s in self.skills:
            if s.name == capability:
                return s.score
        return None


# ----------------------------------------------------------------------------------------------
# Task clauses


@dataclass(frozen=True, slots=True)
class Budget:
    """Any of dollars per run, tokens, and wall time; several `budget` clauses merge."""

    usd: float | None = None
    tokens: int | None = None
    time_s: float | None = None
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Route:
    strategy: TypingLiteral["cheapest", "fastest", "best", "cascade"]
    models: tuple[Name, ...] = ()  # empty: choose among all qualified models
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Retry:
    attempts: int
    backoff: TypingLiteral["exponential", "linear", "fixed"] = "exponential"
    min_s: float | None = None
    max_s: float | None = None
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Returns:
    kind: TypingLiteral["text", "json", "enum"]
    schema: Any = None  # json: a JSON Schema (a dict; treat as read-only)
    values: tuple[str, ...] = ()  # enum
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Quality:
    """`quality >= X [judged by MODEL] [rubric "..." | rubric NAME] [else ACTION]`."""

    threshold: float
    judge: Name | None = None
    rubric: str | None = None
    otherwise: TypingLiteral["refine", "escalate", "retry", "fail", "accept"] | None = None
    rounds: int | None = None  # refine max N / retry N
    span: Span = NO_SPAN
    # `quality >= auto [P]`: the bar is learned from history (the planner picks the lowest
    # agreement at which past decisions matched the escalation's answer with probability >= P,
    # then `threshold` holds P); without history every decision escalates.
    learned: bool = False
    # `rubric NAME`: the named rubric, for display; loading puts its text in `rubric`, so the
    # runtime reads `rubric` whichever way it was written.
    rubric_name: str | None = None


ConsensusMethod = TypingLiteral[
    "vote", "weighted", "similarity", "judge", "ensemble", "best_of", "peer_review"
]


@dataclass(frozen=True, slots=True)
class Consensus:
    """Every multi-model form: consensus vote|weighted|similarity|judge|ensemble, best_of, peer_review.

    Participants are either named (`among [a, b]`) or counted (`among 3 models`, `best_of 3`: the
    router picks them). `judge` is the judge (judge, best_of), or the synthesiser (ensemble by M).
    """

    method: ConsensusMethod
    participants: tuple[Name, ...] = ()
    count: int | None = None
    quorum: int | None = None
    judge: Name | None = None
    rounds: int | None = None  # peer_review
    implicit: bool = False  # added by `strategy collaborative` / the seed's collaboration block
    span: Span = NO_SPAN

    @property
    def size(self) -> int:
        return len(self.participants) if self.participants else (self.count or 0)


@dataclass(frozen=True, slots=True)
class Reduce:
    """`reduce TASK [in chunks of N]`: fan in a `for each` task's list, as a tree when chunked."""

    source: Name
    chunk_size: int | None = None
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class ForEach:
    var: str
    source: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Argument:
    name: str
    value: Expr
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Call:
    """`task t = WORKFLOW(arg: value, ...)`: run another workflow as one step."""

    workflow: Name
    arguments: tuple[Argument, ...] = ()
    span: Span = NO_SPAN


Priority = TypingLiteral["low", "medium", "high", "critical"]
OnError = TypingLiteral["fail", "skip", "continue"]


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN
    about: str | None = None  # the seed's task name / description
    system: Template | None = None
    prompt: Template | None = None
    call: Call | None = None
    for_each: ForEach | None = None
    when: Expr | None = None
    depends: tuple[Name, ...] = ()
    needs: tuple[Name, ...] = ()
    model: Name | None = None
    route: Route | None = None
    fallback: tuple[Name, ...] = ()  # the written `fallback [...]` / `fallback only [...]` models
    # No automatic fallback: the planner adds none of its own, so the chain is exactly `fallback`
    # (the models available here). `fallback none`: True with `fallback` empty (no fallback at
    # all); `fallback only [...]`: True with the written models (a closed group).
    no_fallback: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    priority: Priority | None = None
    timeout_s: float | None = None
    retry: Retry | None = None
    on_error: OnError | None = None
    returns: Returns | None = None
    budget: Budget | None = None
    quality: Quality | None = None
    consensus: Consensus | None = None
    reduce: Reduce | None = None
    parallel_group: int | None = None  # index of the enclosing `parallel { }` block, if any
    pattern: str | None = None  # the seed's task_type when it named a stdlib pattern
    # Where the scalar clauses were written, so a bad value is reported there (spans are never
    # hashed or compared, like every `*_span` field).
    max_tokens_span: Span = NO_SPAN
    temperature_span: Span = NO_SPAN
    timeout_span: Span = NO_SPAN

    @property
    def fallback_only(self) -> bool:
        """`fallback only [...]`: a closed group, the written models and no automatic fallback."""
        return self.no_fallback and bool(self.fallback)


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    type: TypeRef
    default: Expr | None = None
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Output:
    name: str
    span: Span = NO_SPAN


Strategy = TypingLiteral["sequential", "parallel", "adaptive", "collaborative"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
Objective = TypingLiteral["cost", "latency", "quality", "balanced"]


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    span: Span = NO_SPAN
    name_span: Span = NO_SPAN
    about: str | None = None
    strategy: Strategy | None = None
    optimize: Objective | None = None
    budget: Budget | None = None
    quality: float | None = None  # the workflow's quality floor
    inputs: tuple[Input, ...] = ()
    tasks: tuple[Task, ...] = ()
    outputs: tuple[Output, ...] = ()

    def task(self, name: str) -> Task | None:
        for t in self.tasks:
            if t.name == name:
                return t
        return None

    def input(self, name: str) -> Input | None:
        for i in self.inputs:
            if i.name == name:
                return i
        return None


# ----------------------------------------------------------------------------------------------
# Files and the whole program


@dataclass(frozen=True, slots=True)
class Import:
    path: str  # as written
    resolved: str | None = None  # absolute path, when found
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class Use:
    module: str  # `std.code_review` -> "code_review"
    resolved: str | None = None
    span: Span = NO_SPAN


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str
    sha256: str
    role: TypingLiteral["main", "import", "stdlib"] = "main"


@dataclass(frozen=True, slots=True)
class Program:
    """Everything one compilation sees: the main file and all it imports, merged.

    Declarations keep the span of the file that declared them. `entry` names the workflow that
    `bmad run`/`bmad plan` use (the main file's last workflow).
    """

    files: tuple[SourceFile, ...] = ()
    imports: tuple[Import, ...] = ()
    uses: tuple[Use, ...] = ()
    providers: tuple[Provider, ...] = ()
    models: tuple[Model, ...] = ()
    workflows: tuple[Workflow, ...] = ()
    entry: str | None = None
    ir_version: str = IR_VERSION

    def workflow(self, name: str | None = None) -> Workflow | None:
        name = name or self.entry
        for w in self.workflows:
            if w.name == name:
                return w
        return None

    def model(self, name: str) -> Model | None:
        for m in self.models:
            if m.name == name or name in m.aliases:
                return m
        return None

    def provider(self, name: str) -> Provider | None:
        for p in self.providers:
            if p.name == name:
                return p
        return None


Node = Union[
    Span, Name, TypeRef, Literal, Ref, ListExpr, Unary, Binary, TextPart, Interpolation, Template,
    Limits, Provider, Price, Skill, Latency, Model, Budget, Route, Retry, Returns, Quality,
    Consensus, Reduce, ForEach, Argument, Call, Task, Input, Output, Workflow, Import, Use,
    SourceFile, Program,
]

__all__ = [name for name in dir() if not name.startswith("_")] + ["replace", "field"]
