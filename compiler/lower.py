"""Lower a parsed .bmad tree to IR nodes, with spans, converting and checking every literal.

A Lark Transformer: one method per grammar rule. Clauses come back as `_Clause` values that the
enclosing task, workflow, model or provider collects (reporting a clause written twice). Lowering
adds no defaults (`None` = not written) and never raises: bad literals, unknown words and literal
API keys become diagnostics (codes BMAD-E010..E029), and the node is still built when it can be.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from typing import Any, get_args

from lark import Token, Transformer, Tree
from lark.exceptions import VisitError

from bmad.compiler import ir, literals, nesting, strings
from bmad.compiler.diagnostics import Diagnostic, Related, error
from bmad.compiler.gc_pause import collection_paused
from bmad.compiler.nesting import MAX_EXPRESSION_DEPTH
from bmad.compiler.source_map import SourceMap

# Task clauses whose value is a bare scalar: where each was written goes in the IR beside it.
_SPAN_OF = {"max_tokens": "max_tokens_span", "temperature": "temperature_span",
            "timeout_s": "timeout_span"}
LEARNED_BAR_TARGET = 0.9  # `quality >= auto`: decisions should match the escalation 90% of the time
_PLAIN_JSON_STRING = re.compile(r'"[^"\\\x00-\x1f]*"')  # no escapes, no control characters
# A whole count as written (`300`, `200k`, `1_000`): read exactly, however large, so a huge count
# reaches its check (BMAD-E507, E193) as written instead of rounded, or overflowing, as a float.
_WHOLE_COUNT = re.compile(r"([0-9][0-9_]*)([kKmM]?)")
MAX_COUNT_DIGITS = 4_000  # Python refuses to read longer decimal numbers (sys.get_int_max_str_digits)

PROVIDER_KINDS = get_args(ir.ProviderKind)
STRATEGIES = ir.STRATEGIES
OBJECTIVES = get_args(ir.Objective)
PRIORITIES = get_args(ir.Priority)
ON_ERROR = get_args(ir.OnError)
ROUTES = ("cheapest", "fastest", "best", "cascade")
BACKOFFS = ("exponential", "linear", "fixed")
VOTE_METHODS = ("vote", "weighted", "similarity")
TYPES = ("text", "number", "bool", "json", "list")
LIMIT_KEYS = ("rpm", "tpm", "concurrent")


@dataclass
class FileUnit:
    """The declarations of one file, in source order."""

    path: str
    imports: list[ir.Import] = field(default_factory=list)
    uses: list[ir.Use] = field(default_factory=list)
    providers: list[ir.Provider] = field(default_factory=list)
    models: list[ir.Model] = field(default_factory=list)
    workflows: list[ir.Workflow] = field(default_factory=list)
    rubrics: list[Rubric] = field(default_factory=list)
    rubric_refs: list[RubricRef] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rubric:
    """`rubric NAME "text"`: a judge's rubric that quality clauses name instead of spelling it out."""

    name: str
    text: str
    span: ir.Span
    name_span: ir.Span


@dataclass(frozen=True, slots=True)
class RubricRef:
    """`rubric NAME` in a quality clause: resolved to its text when the program is loaded."""

    name: str
    span: ir.Span


@dataclass
class _Clause:
    field: str
    value: Any
    span: ir.Span
    keyword: str


@dataclass
class _Parallel:
    tasks: list[ir.Task]


def _did_you_mean(word: str, choices) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    listed = ", ".join(f"`{c}`" for c in choices)
    return f"did you mean `{match[0]}`? (one of {listed})" if match else f"use one of {listed}"


class _NotBuilt:
    """A node that could not be built; its enclosing node drops it (the error is reported)."""


NOT_BUILT = _NotBuilt()

NO_FALLBACK = object()  # the value of `fallback none`


@dataclass(frozen=True, slots=True)
class _OnlyFallbacks:
    """The value of `fallback only [...]`: these models, and no automatic fallback."""

    models: tuple[ir.Name, ...]


def _written_fallbacks(value) -> tuple[ir.Name, ...]:
    """The models a `fallback` clause lists (none for `fallback none`, an error, or no clause)."""
    if isinstance(value, _OnlyFallbacks):
        return value.models
    return value if isinstance(value, tuple) else ()


def _no_automatic_fallback(value) -> bool:
    """`fallback none` or `fallback only [...]`: the planner adds no fallback of its own."""
    return value is NO_FALLBACK or isinstance(value, _OnlyFallbacks)


class Lowerer(Transformer):
    """Methods take `(meta, children)`, as with `@v_args(meta=True)`.

    We dispatch ourselves (`_call_userfunc`) instead of decorating the class: Lark's v_args
    wrapper costs an object per node, which made lowering cost more than parsing on big files.
    """

    def __init__(self, source_map: SourceMap, base_dir: str | None):
        super().__init__(visit_tokens=False)
        self.sm = source_map
        self.base_dir = base_dir
        self.diagnostics: list[Diagnostic] = []
        self._depth: dict[int, int] = {}
        self.rubric_refs: list[RubricRef] = []

    def _call_userfunc(self, tree: Tree, new_children=None):
        method = getattr(self, tree.data, None)
        children = tree.children if new_children is None else new_children
        if method is None:
            return Tree(tree.data, children, tree.meta)
        return method(tree.meta, children)

    # -- helpers ---------------------------------------------------------------------------

    def span(self, meta) -> ir.Span:
        return self.sm.meta_span(meta)

    def tspan(self, token: Token) -> ir.Span:
        return self.sm.token_span(token)

    def error(self, code: str, span: ir.Span, message: str, hint: str | None = None,
              related=()) -> None:
        self.diagnostics.append(error(code, span, message, hint, related))

    def literal(self, token: Token, parse) -> Any:
        try:
            value = parse(str(token))
        except OverflowError:  # digits beyond any float (`1.5M` with 400 digits before the dot)
            value = literals.LiteralError("BMAD-E012", f"`{_abridged(str(token))}` is too large to be a number",
                                          "write a number of a sensible size, e.g. `300` or `200k`")
        if isinstance(value, literals.LiteralError):
            self.error(value.code, self.tspan(token), value.message, value.hint)
            return None
        return value

    def duration(self, token: Token | None) -> float | None:
        return None if token is None else self.literal(token, literals.parse_duration)

    def count(self, token: Token | None) -> int | None:
        if token is None:
            return None
        whole = _WHOLE_COUNT.fullmatch(str(token))
        if whole is None:
            return self.literal(token, literals.parse_count)
        digits = whole.group(1).replace("_", "")
        if len(digits) > MAX_COUNT_DIGITS:
            self.error("BMAD-E012", self.tspan(token), f"`{_abridged(str(token))}` is too large to be a count",
                       "write a count of a sensible size, e.g. `3` or `200k`")
            return None
        return int(digits) * literals.COUNT_SCALES[whole.group(2)]

    def number(self, token: Token | None) -> float | None:
        return None if token is None else self.literal(token, literals.parse_number)

    def fraction(self, token: Token, what: str) -> float | None:
        value = self.number(token)
        if value is not None and not 0 <= value <= 1:
            self.error("BMAD-E019", self.tspan(token), f"{what} must be between 0 and 1, not {token}",
                       "scores and thresholds are fractions: e.g. `0.8`")
            return None
        return value

    def word(self, token: Token, choices, what: str) -> str | None:
        if str(token) in choices:
            return str(token)
        self.error("BMAD-E016", self.tspan(token), f"`{token}` is not a {what}",
                   _did_you_mean(str(token), choices))
        return None

    def text(self, token: Token) -> str:
        decoded = _decode(str(token), token.start_pos or 0)
        self._report_string_problems(decoded.problems)
        return decoded.text

    def path(self, token: Token) -> str:
        written = self.text(token)
        if self.base_dir is None or os.path.isabs(written):
            return written
        return os.path.normpath(os.path.join(self.base_dir, written))

    def _report_string_problems(self, problems) -> None:
        for p in problems:
            self.error("BMAD-E014" if "escape" in p.message else "BMAD-E015",
                       self.sm.span(p.start, p.end), p.message, p.hint)

    def collect(self, clauses, owner: str, merge_budget: bool = True) -> dict[str, Any]:
        """Clause values by field, reporting a clause written twice (budgets merge)."""
        values: dict[str, Any] = {}
        seen: dict[str, _Clause] = {}
        for clause in clauses:
            if not isinstance(clause, _Clause):
                continue
            if clause.field == "budget" and merge_budget and "budget" in values:
                values["budget"] = self._merge_budget(seen["budget"], clause, values["budget"])
                continue
            if clause.field in seen:
                first = seen[clause.field]
                what = "a consensus form" if clause.field == "consensus" else f"`{clause.keyword}`"
                self.error("BMAD-E017", clause.span, f"{owner} has {what} twice",
                           "keep one; the later one would silently win",
                           [Related(first.span, "first written here")])
                continue
            seen[clause.field] = clause
            values[clause.field] = clause.value
            values[_SPAN_OF.get(clause.field, "")] = clause.span
        values.pop("", None)
        return values

    def _merge_budget(self, first: _Clause, clause: _Clause, merged: ir.Budget) -> ir.Budget:
        new: ir.Budget = clause.value
        for name in ("usd", "tokens", "time_s"):
            if getattr(new, name) is not None and getattr(merged, name) is not None:
                self.error("BMAD-E017", clause.span, "this budget limit is written twice",
                           "keep one `budget` per kind: money, tokens and time",
                           [Related(first.span, "first written here")])
                return merged
        return ir.Budget(
            usd=merged.usd if merged.usd is not None else new.usd,
            tokens=merged.tokens if merged.tokens is not None else new.tokens,
            time_s=merged.time_s if merged.time_s is not None else new.time_s,
            span=ir.Span(merged.span.file, merged.span.line, merged.span.column, clause.span.end_line,
                         clause.span.end_column, merged.span.start, clause.span.end),
        )

    def clause(self, meta, name: str, value: Any, keyword: str | None = None) -> _Clause:
        return _Clause(name, value, self.span(meta), keyword or name)

    # -- file and declarations -------------------------------------------------------------

    def start(self, meta, children) -> FileUnit:
        unit = FileUnit(self.sm.path)
        for child in children:
            if isinstance(child, ir.Import):
                unit.imports.append(child)
            elif isinstance(child, ir.Use):
                unit.uses.append(child)
            elif isinstance(child, ir.Provider):
                unit.providers.append(child)
            elif isinstance(child, ir.Model):
                unit.models.append(child)
            elif isinstance(child, ir.Workflow):
                unit.workflows.append(child)
            elif isinstance(child, Rubric):
                unit.rubrics.append(child)
        unit.rubric_refs = self.rubric_refs
        return unit

    def import_decl(self, meta, children):
        return ir.Import(path=self.text(children[0]), span=self.span(meta))

    def use_decl(self, meta, children):
        names = [str(t) for t in children]
        if names[0] != "std":
            self.error("BMAD-E016", self.tspan(children[0]), f"`use {'.'.join(names)}` does not name the standard library",
                       "write `use std.NAME`; to load your own file write `import \"file.bmad\"`")
            return NOT_BUILT
        return ir.Use(module=".".join(names[1:]), span=self.span(meta))

    def rubric_decl(self, meta, children):
        name, text = children
        return Rubric(str(name), text.text, self.span(meta), self.tspan(name))

    # -- providers -------------------------------------------------------------------------

    def provider_decl(self, meta, children):
        name = children[0]
        values = self.collect(children[1:], f"provider `{name}`")
        if values.get("kind") is None:
            if "kind" not in values:
                self.error("BMAD-E022", self.tspan(name), f"provider `{name}` has no `kind`",
                           f"add e.g. `kind openai` (one of {', '.join(PROVIDER_KINDS)})")
            return NOT_BUILT
        return ir.Provider(
            name=str(name), kind=values["kind"], base_url=values.get("base_url"),
            api_key_env=values.get("api_key_env"), limits=values.get("limits"),
            data=values.get("data"), timeout_s=values.get("timeout_s"),
            span=self.span(meta), name_span=self.tspan(name))

    def kind_clause(self, meta, children):
        return self.clause(meta, "kind", self.word(children[0], PROVIDER_KINDS, "provider kind"))

    def base_url_clause(self, meta, children):
        return self.clause(meta, "base_url", self.text(children[0]))

    def api_key_env(self, meta, children):
        return self.clause(meta, "api_key_env", str(children[0]), "api_key")

    def api_key_literal(self, meta, children):
        written = children[0]
        token = written.token if isinstance(written, _Text) else written
        key = written.text if isinstance(written, _Text) else ""
        shown = f'"{key[:3]}…"' if len(key) > 3 else '"…"'
        self.error("BMAD-E013", self.tspan(token),
                   f"an API key is written in the file ({shown}); keys never go in .bmad files",
                   "put the key in an environment variable and name it: `api_key env OPENAI_API_KEY`")
        return self.clause(meta, "api_key_env", None, "api_key")

    def limits_clause(self, meta, children):
        values: dict[str, int | None] = {}
        for key, value, span in children:
            if key is None:
                continue
            if key in values:
                self.error("BMAD-E017", span, f"the limit `{key}` is written twice", "keep one")
                continue
            values[key] = value
        return self.clause(meta, "limits", ir.Limits(**values, span=self.span(meta)))

    def limit_entry(self, meta, children):
        key = self.word(children[0], LIMIT_KEYS, "limit (rpm, tpm or concurrent)")
        return key, self.count(children[1]), self.span(meta)

    def data_clause(self, meta, children):
        return self.clause(meta, "data", self.path(children[0]))

    def timeout_clause(self, meta, children):
        return self.clause(meta, "timeout_s", self.duration(children[0]), "timeout")

    # -- models ----------------------------------------------------------------------------

    def model_name(self, meta, children):
        return children[0]  # the token, so that callers keep its span

    def model_list(self, meta, children):
        names = tuple(ir.Name(str(t), self.tspan(t)) for t in children if t is not None)
        if not names:  # `route cascade []`, `among []`: an empty list would silently mean "not written"
            self.error("BMAD-E024", self.span(meta), "this list of models is empty",
                       "name the models, e.g. `[gpt-4o-mini, claude-sonnet]`, or leave the list out where it is optional")
        return names

    def model_decl(self, meta, children):
        name = children[0]
        values = self.collect(children[1:], f"model `{name}`")
        if values.get("provider") is None:
            if "provider" not in values:
                self.error("BMAD-E022", self.tspan(name), f"model `{name}` has no `provider`",
                           "add e.g. `provider openai`")
            return NOT_BUILT
        return ir.Model(
            name=str(name), provider=values["provider"], id=values.get("id"),
            price=values.get("price"), context=values.get("context"),
            skills=values.get("skills", ()), latency=values.get("latency"),
            path=values.get("path"), aliases=values.get("aliases", ()),
            span=self.span(meta), name_span=self.tspan(name))

    def model_provider(self, meta, children):
        return self.clause(meta, "provider", ir.Name(str(children[0]), self.tspan(children[0])))

    def model_id(self, meta, children):
        return self.clause(meta, "id", self.text(children[0]))

    def price_clause(self, meta, children):
        given_in, given_out, per = children
        usd_in = self.literal(given_in, literals.parse_money)
        usd_out = self.literal(given_out, literals.parse_money)
        tokens = self.count(per)
        if tokens == 0:
            self.error("BMAD-E019", self.tspan(per), "a price is per a positive number of tokens",
                       "write `per 1M`")
            tokens = None
        if None in (usd_in, usd_out, tokens):
            return self.clause(meta, "price", None)
        scale = 1_000_000 / tokens
        return self.clause(meta, "price", ir.Price(usd_in * scale, usd_out * scale, self.span(meta)))

    def context_clause(self, meta, children):
        return self.clause(meta, "context", self.count(children[0]))

    def skills_clause(self, meta, children):
        skills: list[ir.Skill] = []
        seen: set[str] = set()
        for skill in children:
            if skill is None:
                continue
            if skill.name in seen:
                self.error("BMAD-E017", skill.span, f"the skill `{skill.name}` is written twice", "keep one")
                continue
            seen.add(skill.name)
            skills.append(skill)
        return self.clause(meta, "skills", tuple(skills))

    def skill_entry(self, meta, children):
        score = self.fraction(children[1], "a skill score")
        if score is None:
            return None
        return ir.Skill(str(children[0]), float(score), self.span(meta))

    def latency_clause(self, meta, children):
        base = self.duration(children[0])
        per_token = self.duration(children[1]) if children[1] is not None else None
        if base is None or (children[1] is not None and per_token is None):
            return self.clause(meta, "latency", None)
        if per_token is None:
            return self.clause(meta, "latency", ir.Latency(base, span=self.span(meta)))
        return self.clause(meta, "latency", ir.Latency(base, per_token, self.span(meta)))

    def path_clause(self, meta, children):
        return self.clause(meta, "path", self.path(children[0]))

    def aliases_clause(self, meta, children):
        return self.clause(meta, "aliases", tuple(n.name for n in children[0]))

    # -- workflows -------------------------------------------------------------------------

    def workflow_decl(self, meta, children):
        name = children[0]
        body = children[1:]
        tasks: list[ir.Task] = []
        inputs: list[ir.Input] = []
        outputs: list[ir.Output] = []
        group = 0
        for child in body:
            if isinstance(child, ir.Task):
                tasks.append(child)
            elif isinstance(child, _Parallel):
                tasks.extend(ir.replace(t, parallel_group=group) for t in child.tasks)
                group += 1
            elif isinstance(child, ir.Input):
                inputs.append(child)
            elif isinstance(child, ir.Output):
                outputs.append(child)
        values = self.collect([c for c in body if isinstance(c, _Clause)], f"workflow `{name}`")
        return ir.Workflow(
            name=str(name), span=self.span(meta), name_span=self.tspan(name),
            about=values.get("about"), strategy=values.get("strategy"),
            optimize=values.get("optimize"), budget=values.get("budget"),
            quality=values.get("quality"), inputs=tuple(inputs), tasks=tuple(tasks),
            outputs=tuple(outputs))

    def about_clause(self, meta, children):
        return self.clause(meta, "about", children[0].text)

    def strategy_clause(self, meta, children):
        return self.clause(meta, "strategy", self.word(children[0], STRATEGIES, "strategy"))

    def optimize_clause(self, meta, children):
        return self.clause(meta, "optimize", self.word(children[0], OBJECTIVES, "optimization objective"))

    def workflow_quality(self, meta, children):
        return self.clause(meta, "quality", self.fraction(children[0], "a quality floor"))

    def input_decl(self, meta, children):
        name, type_ref, default = children
        if default is not None:
            default = self._constant_default(str(name), default)
        if type_ref is None:
            return NOT_BUILT
        return ir.Input(str(name), type_ref, default, self.span(meta))

    def _constant_default(self, name: str, default: ir.Expr) -> ir.Expr | None:
        """A default is a value (a literal, a JSON object, a list of those): the runtime evaluates
        it before anything else exists, so a name or an operator in it has nothing to refer to."""
        bad = _first_non_constant(default)
        if bad is None:
            return default
        self.error("BMAD-E023", bad.span, f"the default of input `{name}` must be a value, not an expression",
                   "write a literal: text in quotes, a number, true/false/null, a [list] or a JSON {object}; "
                   "to compute it, make a task instead")
        return None

    def type_ref(self, meta, children):
        name, item = children
        written = str(name)
        if written not in TYPES:
            self.word(name, TYPES, "type")
            return None
        if written == "list" and item is None:
            self.error("BMAD-E021", self.tspan(name), "`list` needs an item type", "write e.g. `list<text>`")
            return None
        if written != "list" and item is not None:
            self.error("BMAD-E021", self.span(meta), f"`{written}` takes no item type",
                       "only `list<T>` has an item type")
            return None
        return ir.TypeRef(written, item, self.span(meta))

    def parallel_block(self, meta, children):
        return _Parallel([t for t in children if isinstance(t, ir.Task)])

    def output_decl(self, meta, children):
        return ir.Output(str(children[0]), self.span(meta))

    def budget_clause(self, meta, children):
        budget = children[0]
        if budget is None:
            return self.clause(meta, "budget", ir.Budget(span=self.span(meta)))
        return self.clause(meta, "budget", ir.replace(budget, span=self.span(meta)))

    def budget_money(self, meta, children):
        usd = self.literal(children[0], literals.parse_money)
        return None if usd is None else ir.Budget(usd=usd)

    def budget_tokens(self, meta, children):
        tokens = self.count(children[0])
        return None if tokens is None else ir.Budget(tokens=tokens)

    def budget_time(self, meta, children):
        token = children[0]
        seconds = literals.parse_duration(str(token))
        if isinstance(seconds, literals.LiteralError):
            self.error("BMAD-E011", self.tspan(token), f"`{token}` is not a budget",
                       "write a duration (`budget 10m`), tokens (`budget 400k tokens`) "
                       "or money (`budget $2.00 per run`)")
            return None
        if seconds <= 0:  # as the YAML front end and `--budget` refuse it
            self.error("BMAD-E011", self.tspan(token), f"`{token}` is not a budget: a time budget of "
                       "zero stops the run before its first call",
                       "write the time the run may take (`budget 10m`), or leave the time budget out")
            return None
        return ir.Budget(time_s=seconds)

    # -- tasks -----------------------------------------------------------------------------

    def task_decl(self, meta, children):
        name, for_each, when, body = children
        span = self.span(meta)
        if isinstance(body, ir.Call):
            return ir.Task(name=str(name), span=span, name_span=self.tspan(name), call=body,
                           for_each=for_each, when=when)
        values = self.collect(body or [], f"task `{name}`")
        return ir.Task(
            name=str(name), span=span, name_span=self.tspan(name), for_each=for_each, when=when,
            about=values.get("about"), system=values.get("system"), prompt=values.get("prompt"),
            depends=values.get("depends", ()), needs=values.get("needs", ()),
            model=values.get("model"), route=values.get("route"),
            fallback=_written_fallbacks(values.get("fallback")),
            no_fallback=_no_automatic_fallback(values.get("fallback")), max_tokens=values.get("max_tokens"),
            temperature=values.get("temperature"), priority=values.get("priority"),
            timeout_s=values.get("timeout_s"), retry=values.get("retry"),
            on_error=values.get("on_error"), returns=values.get("returns"),
            budget=values.get("budget"), quality=values.get("quality"),
            consensus=values.get("consensus"), reduce=values.get("reduce"),
            **{span: values[span] for span in _SPAN_OF.values() if span in values})

    def for_each(self, meta, children):
        var, source = children
        return ir.ForEach(str(var), source, self.span(meta))

    def when_clause(self, meta, children):
        return children[0]

    def task_block(self, meta, children):
        return [c for c in children if c is not None]

    def task_call(self, meta, children):
        name = children[0]
        arguments = tuple(a for a in children[1:] if isinstance(a, ir.Argument))
        seen: dict[str, ir.Argument] = {}
        for argument in arguments:
            if argument.name in seen:
                self.error("BMAD-E017", argument.span, f"the argument `{argument.name}` is given twice",
                           "keep one", [Related(seen[argument.name].span, "first given here")])
            seen[argument.name] = argument
        return ir.Call(ir.Name(str(name), self.tspan(name)), arguments, self.span(meta))

    def argument(self, meta, children):
        return ir.Argument(str(children[0]), children[1], self.span(meta))

    def string(self, meta, children):
        return _Text.of(children[0], self)

    def system_clause(self, meta, children):
        return self.clause(meta, "system", children[0].template(self))

    def prompt_clause(self, meta, children):
        return self.clause(meta, "prompt", children[0].template(self))

    def _names(self, tokens) -> tuple[ir.Name, ...]:
        return tuple(ir.Name(str(t), self.tspan(t)) for t in tokens)

    def depends_clause(self, meta, children):
        return self.clause(meta, "depends", self._names(children))

    def needs_clause(self, meta, children):
        return self.clause(meta, "needs", self._names(children))

    def pin_model(self, meta, children):
        return self.clause(meta, "model", ir.Name(str(children[0]), self.tspan(children[0])))

    def route_clause(self, meta, children):
        strategy = self.word(children[0], ROUTES, "routing strategy")
        if strategy is None:
            return self.clause(meta, "route", None)
        return self.clause(meta, "route", ir.Route(strategy, children[1] or (), self.span(meta)))

    def fallback_clause(self, meta, children):
        written = children[0]
        if not isinstance(written, Token):
            return self.clause(meta, "fallback", written)
        if str(written) != "none":
            self.error("BMAD-E044", self.tspan(written), f"expected a list of models, found `{written}`",
                       f"write `fallback [{written}]`, or `fallback none` for no fallback at all")
            return self.clause(meta, "fallback", None)
        return self.clause(meta, "fallback", NO_FALLBACK)

    def fallback_only(self, meta, children):
        written = children[0]
        if not written:
            # `model_list` has just reported the empty list (BMAD-E024): say what was meant
            last = self.diagnostics[-1] if self.diagnostics else None
            if last is not None and last.code == "BMAD-E024":
                self.diagnostics[-1] = replace(
                    last, message="`fallback only []` names no model to fall back on",
                    hint="write `fallback none` for no fallback at all, or name the models, "
                         "e.g. `fallback only [gpt-4o, claude-sonnet]`")
            return self.clause(meta, "fallback", None)
        return self.clause(meta, "fallback", _OnlyFallbacks(written))

    def max_tokens_clause(self, meta, children):
        return self.clause(meta, "max_tokens", self.count(children[0]))

    def temperature_clause(self, meta, children):
        value = self.number(children[0])
        if value is not None and not 0 <= value <= 2:
            self.error("BMAD-E019", self.tspan(children[0]), f"temperature must be between 0 and 2, not {children[0]}",
                       "e.g. `temperature 0.2` for focused answers, `1.0` for varied ones")
            value = None
        return self.clause(meta, "temperature", None if value is None else float(value))

    def priority_clause(self, meta, children):
        return self.clause(meta, "priority", self.word(children[0], PRIORITIES, "priority"))

    def retry_clause(self, meta, children):
        retries_token, backoff_token, low, high = children
        retries = self.count(retries_token)
        backoff = self.word(backoff_token, BACKOFFS, "backoff") if backoff_token is not None else None
        low_s, high_s = self.duration(low), self.duration(high)
        if retries is None or (backoff_token is not None and backoff is None):
            return self.clause(meta, "retry", None)
        if low_s is not None and high_s is not None and low_s > high_s:
            self.error("BMAD-E019", self.sm.span(low.start_pos, high.end_pos),
                       f"the backoff range runs backwards ({low} to {high})", "write the shorter wait first")
        # `retry N` counts retries after the first try; the IR counts tries in total (as the
        # seed's `max_attempts` does), so `retry 0` is one attempt and no retry.
        retry = ir.Retry(retries + 1, backoff or "exponential", low_s, high_s, self.span(meta))
        return self.clause(meta, "retry", retry)

    def on_error_clause(self, meta, children):
        return self.clause(meta, "on_error", self.word(children[0], ON_ERROR, "on_error action"))

    def returns_text(self, meta, children):
        return self.clause(meta, "returns", ir.Returns("text", span=self.span(meta)))

    def returns_json(self, meta, children):
        schema = children[0]
        return self.clause(meta, "returns", ir.Returns("json", schema=schema, span=self.span(meta)))

    def returns_enum(self, meta, children):
        values = []
        for token in children:
            if token is None:
                continue
            value = self.text(token) if token.type == "STRING" else str(token)
            if value in values:
                self.error("BMAD-E017", self.tspan(token), f"`{value}` is listed twice", "keep one")
                continue
            values.append(value)
        return self.clause(meta, "returns", ir.Returns("enum", values=tuple(values), span=self.span(meta)))

    def enum_value(self, meta, children):
        return children[0]

    def quality_clause(self, meta, children):
        threshold_token, judge, rubric, otherwise = children
        learned = isinstance(threshold_token, tuple) and threshold_token[0] == "learned"
        if learned:
            threshold = self.fraction(threshold_token[1], "a target agreement") \
                if threshold_token[1] is not None else LEARNED_BAR_TARGET
        else:
            threshold = self.fraction(threshold_token, "a quality threshold")
        if threshold is None:
            return self.clause(meta, "quality", None)
        action, rounds = otherwise if otherwise is not None else (None, None)
        rubric_name = None
        if isinstance(rubric, RubricRef):
            rubric_name, rubric = rubric.name, None
        quality = ir.Quality(float(threshold), judge, rubric, action, rounds, self.span(meta),
                             learned=learned, rubric_name=rubric_name)
        return self.clause(meta, "quality", quality)

    def learned_bar(self, meta, children):
        return ("learned", children[0])

    def judged_by(self, meta, children):
        return ir.Name(str(children[0]), self.tspan(children[0]))

    def rubric(self, meta, children):
        return children[0].text

    def rubric_ref(self, meta, children):
        ref = RubricRef(str(children[0]), self.tspan(children[0]))
        self.rubric_refs.append(ref)
        return ref

    def else_refine(self, meta, children):
        return "refine", self.count(children[0])

    def else_escalate(self, meta, children):
        return "escalate", None

    def else_retry(self, meta, children):
        return "retry", self.count(children[0])

    def else_fail(self, meta, children):
        return "fail", None

    def else_accept(self, meta, children):
        return "accept", None

    def participants(self, meta, children):
        if isinstance(children[0], tuple):
            return children[0], None
        return (), self.count(children[0])

    def consensus_vote(self, meta, children):
        method_token, (names, count), quorum = children
        method = self.word(method_token, VOTE_METHODS, "consensus method")
        if method is None:
            return self.clause(meta, "consensus", None, "consensus")
        consensus = ir.Consensus(method, names, count, self.count(quorum), span=self.span(meta))
        return self.clause(meta, "consensus", consensus)

    def consensus_judge(self, meta, children):
        judge, (names, count) = children
        consensus = ir.Consensus("judge", names, count, judge=ir.Name(str(judge), self.tspan(judge)),
                                 span=self.span(meta))
        return self.clause(meta, "consensus", consensus)

    def consensus_ensemble(self, meta, children):
        judge, (names, count) = children
        consensus = ir.Consensus("ensemble", names, count, judge=ir.Name(str(judge), self.tspan(judge)),
                                 span=self.span(meta))
        return self.clause(meta, "consensus", consensus)

    def best_of_clause(self, meta, children):
        count, judge = children
        consensus = ir.Consensus("best_of", (), self.count(count), judge=judge, span=self.span(meta))
        return self.clause(meta, "consensus", consensus, "best_of")

    def peer_review_clause(self, meta, children):
        (names, count), rounds = children
        consensus = ir.Consensus("peer_review", names, count, rounds=self.count(rounds), span=self.span(meta))
        return self.clause(meta, "consensus", consensus, "peer_review")

    def reduce_clause(self, meta, children):
        source, chunk = children
        reduce = ir.Reduce(ir.Name(str(source), self.tspan(source)), self.count(chunk), self.span(meta))
        return self.clause(meta, "reduce", reduce)

    # -- expressions -----------------------------------------------------------------------

    def _expression(self, node, meta, *operands):
        depth = 1 + max((self._depth.get(id(o), 1) for o in operands), default=0)
        if depth > MAX_EXPRESSION_DEPTH:
            if not any(self._depth.get(id(o), 0) > MAX_EXPRESSION_DEPTH for o in operands):
                self.error(nesting.TOO_DEEP_CODE, self.span(meta),
                           f"this expression is nested more than {MAX_EXPRESSION_DEPTH} deep",
                           nesting.TOO_DEEP_HINT)
        self._depth[id(node)] = depth
        return node

    def or_op(self, meta, children):
        return self._expression(ir.Binary("or", children[0], children[1], self.span(meta)), meta, *children)

    def and_op(self, meta, children):
        return self._expression(ir.Binary("and", children[0], children[1], self.span(meta)), meta, *children)

    def not_op(self, meta, children):
        return self._expression(ir.Unary("not", children[0], self.span(meta)), meta, *children)

    def compare(self, meta, children):
        left, op, right = children
        return self._expression(ir.Binary(str(op), left, right, self.span(meta)), meta, left, right)

    def in_op(self, meta, children):
        return self._expression(ir.Binary("in", children[0], children[1], self.span(meta)), meta, *children)

    def not_in_op(self, meta, children):
        inner = ir.Binary("in", children[0], children[1], self.span(meta))
        self._expression(inner, meta, *children)
        return self._expression(ir.Unary("not", inner, self.span(meta)), meta, inner)

    def ref(self, meta, children):
        return ir.Ref(tuple(str(t) for t in children), self.span(meta))

    def string_lit(self, meta, children):
        return ir.Literal(self.text(children[0]), self.span(meta))

    def number_lit(self, meta, children):
        return ir.Literal(self.number(children[0]), self.span(meta))

    def negative_lit(self, meta, children):
        value = self.number(children[0])
        return ir.Literal(None if value is None else -value, self.span(meta))

    def true_lit(self, meta, children):
        return ir.Literal(True, self.span(meta))

    def false_lit(self, meta, children):
        return ir.Literal(False, self.span(meta))

    def null_lit(self, meta, children):
        return ir.Literal(None, self.span(meta))

    def list_lit(self, meta, children):
        items = tuple(c for c in children if c is not None)
        return self._expression(ir.ListExpr(items, self.span(meta)), meta, *items)

    def object_lit(self, meta, children):
        # JSON inside: a constant, so one Literal holding the plain dict (nested lists included)
        return ir.Literal(children[0], self.span(meta))

    # -- JSON ------------------------------------------------------------------------------

    @staticmethod
    def _json(value):
        return value.value if isinstance(value, ir.Literal) else value

    def json_object(self, meta, children):
        result: dict[str, Any] = {}
        for pair in children:
            if pair is None:
                continue
            key, value, span = pair
            if key in result:
                self.error("BMAD-E018", span, f"the JSON key `{key}` is written twice", "keep one")
                continue
            result[key] = value
        return result

    def json_pair(self, meta, children):
        return self._json_string(children[0]), self._json(children[1]), self.span(meta)

    def json_array(self, meta, children):
        return [self._json(c) for c in children if c is not None] if children != [None] else []

    def json_string(self, meta, children):
        return self._json_string(children[0])

    def _json_string(self, token: Token) -> str:
        if _PLAIN_JSON_STRING.fullmatch(token):  # the text between the quotes (most keys and values)
            return str(token)[1:-1]
        try:
            return json.loads(str(token))
        except ValueError:
            self.error("BMAD-E018", self.tspan(token), "this is not a valid JSON string",
                       'JSON escapes are \\n, \\t, \\", \\\\, \\/ and \\uXXXX')
            return self.text(token)

    def json_number(self, meta, children):
        return json.loads(str(children[0]))


@dataclass
class _Text:
    """A decoded string token, kept until we know whether it is plain text or a template."""

    token: Token
    decoded: strings.DecodedString

    @classmethod
    def of(cls, token: Token, lowerer: Lowerer) -> "_Text":
        decoded = _decode(str(token), token.start_pos or 0)
        lowerer._report_string_problems(decoded.problems)
        return cls(token, decoded)

    @property
    def text(self) -> str:
        return self.decoded.text

    def template(self, lowerer: Lowerer) -> ir.Template:
        parts = _plain_template_parts(self.decoded, lowerer.sm) if not self.decoded.escaped else None
        if parts is None:
            pieces, problems = strings.split_template(self.decoded)
            lowerer._report_string_problems(problems)
            parts = []
            for piece in pieces:
                if piece.ref is None:
                    parts.append(ir.TextPart(piece.text or ""))
                else:
                    ref = ir.Ref(piece.ref, lowerer.sm.span(piece.ref_start, piece.ref_end))
                    parts.append(ir.Interpolation(ref, lowerer.sm.span(piece.start, piece.end)))
        return ir.Template(self.decoded.text, tuple(parts), lowerer.tspan(self.token))


_new_node = object.__new__
_SPAN_SLOTS = tuple(getattr(ir.Span, name).__set__
                    for name in ("file", "line", "column", "end_line", "end_column", "start", "end"))
_REF_SLOTS = (ir.Ref.path.__set__, ir.Ref.span.__set__)
_INTERPOLATION_SLOTS = (ir.Interpolation.ref.__set__, ir.Interpolation.span.__set__)


def _line_span(path: str, line: int, line_start: int, start: int, end: int) -> ir.Span:
    """`SourceMap.span(start, end)` for offsets on one `line` (which begins at `line_start`),
    its slots set directly (a prompt's references ask for two spans each)."""
    span = _new_node(ir.Span)
    s0, s1, s2, s3, s4, s5, s6 = _SPAN_SLOTS
    s0(span, path)
    s1(span, line)
    s2(span, start - line_start + 1)
    s3(span, line)
    s4(span, end - line_start + 1)
    s5(span, start)
    s6(span, end)
    return span


# Source maps whose `span` is SourceMap's arithmetic (not moved, as incremental's regions are):
# `_plain_template_parts` works their spans out itself. stream_lower adds its own.
PLAIN_SPAN_MAPS: set[type] = {SourceMap}


def _plain_template_parts(decoded: strings.DecodedString, sm: SourceMap) -> list | None:
    """The parts `strings.split_template` gives for a string without escapes in which every
    `{{` is closed and holds a reference (prompts, nearly always), built straight into IR nodes;
    None for anything else (the general path reports the problems)."""
    text, offsets = decoded.text, decoded.offsets
    if "{{" not in text:
        return [ir.TextPart(text)] if text else []
    path, starts, size = sm.path, sm.line_starts, len(sm.text)
    plain = type(sm) in PLAIN_SPAN_MAPS
    last_line = len(starts)
    is_ref, find = strings._REF.fullmatch, text.find
    set_path, set_ref_span = _REF_SLOTS
    set_ref, set_span = _INTERPOLATION_SLOTS
    parts: list = []
    literal = ""
    at = 0
    while True:
        start = find("{{", at)
        if start == -1:
            literal += text[at:]
            break
        literal += text[at:start]
        close = find("}}", start + 2)
        if close == -1:
            return None
        inner = text[start + 2:close]
        name = inner.strip()
        if not is_ref(name):  # the reference syntax split_template accepts
            return None
        if literal:
            parts.append(ir.TextPart(literal))
            literal = ""
        name_start = start + 2 + len(inner) - len(inner.lstrip())
        begin, end = offsets[start], offsets[close + 1] + 1
        ref_begin, ref_end = offsets[name_start], offsets[name_start + len(name) - 1] + 1
        line = bisect_right(starts, begin)
        if plain and 0 <= begin and end <= size and (line == last_line or end < starts[line]):
            # all on one line (the usual case): the spans SourceMap.span gives, one lookup
            line_start = starts[line - 1]
            ref_span = _line_span(path, line, line_start, ref_begin, ref_end)
            span = _line_span(path, line, line_start, begin, end)
        else:
            ref_span, span = sm.span(ref_begin, ref_end), sm.span(begin, end)
        ref = _new_node(ir.Ref)
        set_path(ref, tuple(name.split(".")))
        set_ref_span(ref, ref_span)
        interpolation = _new_node(ir.Interpolation)
        set_ref(interpolation, ref)
        set_span(interpolation, span)
        parts.append(interpolation)
        at = close + 2
    if literal:
        parts.append(ir.TextPart(literal))
    return parts


def _decode(raw: str, start: int) -> strings.DecodedString:
    """`strings.decode`, with a fast path for the commonest block: a triple-quoted string without
    a backslash (prompts), dedented with string operations instead of per-character pairs."""
    if "\\" in raw or len(raw) < 6 or not raw.startswith('"""'):
        return strings.decode(raw, start)
    return _dedent_plain_block(raw, start)


def _dedent_plain_block(raw: str, start: int) -> strings.DecodedString:
    """What `strings.decode` gives for a triple-quoted `raw` without escapes: textwrap.dedent's
    text with a blank first and last line dropped, and each character's source offset."""
    body = raw[3:-3]
    base = start + 3
    texts = body.split("\n")
    ats = []  # where each line starts in body
    at = 0
    for text in texts:
        ats.append(at)
        at += len(text) + 1
    first, stop = 0, len(texts)  # the lines kept: texts[first:stop], each but the last ends in "\n"
    if stop > 1 and not texts[0].strip(" \t"):
        first = 1
    if stop - first > 1 and not texts[-1].strip(" \t"):
        stop -= 1
    # the margin: the longest whitespace every non-blank line starts with (strings.common_margin)
    width = len(os.path.commonprefix([text[:len(text) - len(text.lstrip(" \t"))]
                                      for text in texts[first:stop] if text.strip(" \t")]))
    pieces: list[str] = []
    offsets: list[int] = []
    last = stop - 1
    for i in range(first, stop):
        text, at = texts[i], base + ats[i]
        if text.strip(" \t"):  # not blank: without the margin (a blank line keeps its newline only)
            pieces.append(text[width:])
            offsets.extend(range(at + width, at + len(text)))
        if i != last:
            pieces.append("\n")
            offsets.append(at + len(text))
    end_offset = start + len(raw) - 3
    offsets.append(max(end_offset, offsets[-1] + 1) if offsets else end_offset)
    return strings.DecodedString("".join(pieces), offsets)


def _first_non_constant(expr: ir.Expr) -> ir.Expr | None:
    """The first part of `expr` that is not a literal value, or None when it all is."""
    if isinstance(expr, ir.ListExpr):
        return next((bad for bad in map(_first_non_constant, expr.items) if bad is not None), None)
    if isinstance(expr, (ir.Ref, ir.Unary, ir.Binary)):
        return expr
    return None  # a literal (or a piece a syntax error already reported)


@collection_paused()
def lower_tree(tree: Tree, source_map: SourceMap, base_dir: str | None = None
               ) -> tuple[FileUnit | None, list[Diagnostic]]:
    """Lower one parsed file. Returns (None, diagnostics) only when the tree is too deep to walk."""
    lowerer = Lowerer(source_map, base_dir)
    try:
        unit = lowerer.transform(tree)
    except RecursionError:
        lowerer.diagnostics.append(nesting.too_deep(tree, source_map, "compile"))
        return None, lowerer.diagnostics
    except Exception as e:  # a bug in lowering: report it rather than crash the caller
        original = e.orig_exc if isinstance(e, VisitError) else e
        lowerer.diagnostics.append(error("BMAD-E029", source_map.span(0, 0),
                                         f"internal error while compiling this file ({type(original).__name__}: {original})",
                                         "please report this as a bug in bmad"))
        return None, lowerer.diagnostics
    if not isinstance(unit, FileUnit):
        unit = FileUnit(source_map.path)
    return unit, lowerer.diagnostics


def _abridged(text: str) -> str:
    """A literal as a message quotes it: whole, or its start and length when it is very long."""
    return text if len(text) <= 40 else f"{text[:12]}... ({len(text):,} characters)"
