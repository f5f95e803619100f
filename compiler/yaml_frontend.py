"""The seed's YAML WorkflowDefinition format, lowered onto the same IR as `.bmad` files.

The document is read with PyYAML's compose API, so every node keeps its line and column: IR spans
and diagnostics (BMAD-E080..E099, BMAD-W080..W099) point into the YAML file. The mapping, key by key:

- `id` -> the workflow's name (made an identifier: `requirements-to-design` -> `requirements_to_design`),
  `description` (or `name`) -> `about`, `execution_strategy` -> `strategy`,
  `optimization_objectives` -> `optimize` (the first one; `balanced` when both cost and quality are
  listed), `constraints` -> `budget` (usd, tokens, time) and `quality`.
- each task: `id` -> the task's name, `name`/`description` -> `about`, `task_type` -> `pattern`,
  `dependencies` -> `depends`, `llm_requirements` -> `needs`, `model`, `fallback`, `max_tokens`,
  `temperature` and `consensus` (from `collaboration`), `priority` -> lower case, `timeout` ->
  `timeout_s`, `retry_config` -> `retry` (`max_attempts: N` counts tries in total, as the IR
  does: `retry N-1` in `.bmad`), `outputs` -> `returns json` (an object with those fields).
- Seed tasks have no prompt: one is built from the task's name, description and `inputs` (literal
  text; `{{ task }}` inside a value refers to that task's output), followed by a `{{ dep }}`
  interpolation of each dependency's output, so implicit edges match the explicit ones.
- The workflow's outputs are the tasks no other task depends on.

Lowering applies no defaults (`None` means "not written"); the compile pipeline adds the standard
model catalog when the program declares no models.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic, DiagnosticBag, Related
from bmad.compiler.limits import count_text, current_limits
from bmad.compiler.patterns import seed_pattern_call

# Stable diagnostic codes of this front end (documented in docs/diagnostics.md).
E_SYNTAX = "BMAD-E080"  # the text is not valid YAML
E_DOCUMENT = "BMAD-E081"  # empty document, or not a mapping at the top
E_UNKNOWN_KEY = "BMAD-E082"  # a key the format does not have
E_TYPE = "BMAD-E083"  # a value of the wrong type
E_MISSING = "BMAD-E084"  # a required key is missing
E_STRATEGY = "BMAD-E085"  # unknown execution_strategy
E_OBJECTIVE = "BMAD-E086"  # unknown optimization objective
E_PRIORITY = "BMAD-E087"  # unknown priority
E_COLLABORATION = "BMAD-E088"  # unknown collaboration type
E_BACKOFF = "BMAD-E089"  # unknown retry backoff
E_RANGE = "BMAD-E090"  # a number outside its range
E_DURATION = "BMAD-E091"  # a duration that can't be read
E_IDENTIFIER = "BMAD-E092"  # an id that can't be made a name
E_TOO_LARGE = "BMAD-E093"  # aliases expand to too large a value
E_DUPLICATE_KEY = "BMAD-E094"  # the same key twice in one mapping
E_INTERPOLATION = "BMAD-E095"  # a `{{ ... }}` in an input value that is not a reference
W_COLLABORATION_OFF = "BMAD-W080"  # collaboration written but multi_llm is false
W_PARTICIPANTS = "BMAD-W081"  # num_llms disagrees with the preferred models
W_OBJECTIVES = "BMAD-W082"  # objectives after the first are not used
E_COUNT_LIMIT = "BMAD-E507"  # num_llms / max_attempts past `models_per_task` / `rounds_per_task`

STRATEGIES = ir.STRATEGIES
OBJECTIVES = {"cost": "cost", "quality": "quality", "latency": "latency", "speed": "latency",
              "time": "latency", "balanced": "balanced"}
PRIORITIES = ("low", "medium", "high", "critical")
COLLABORATION_TYPES = {"consensus": "vote", "best_of_n": "best_of", "ensemble": "ensemble"}
BACKOFFS = ("exponential", "linear", "fixed")

WORKFLOW_KEYS = ("id", "name", "description", "execution_strategy", "optimization_objectives",
                 "constraints", "tasks")
CONSTRAINT_KEYS = ("budget_usd", "budget_tokens", "time_limit", "max_duration", "quality_threshold")
TASK_KEYS = ("id", "name", "description", "task_type", "inputs", "dependencies", "llm_requirements",
             "priority", "timeout", "retry_config", "outputs")
REQUIREMENT_KEYS = ("capabilities", "preferred_models", "model", "max_tokens", "temperature",
                    "collaboration")
COLLABORATION_KEYS = ("multi_llm", "num_llms", "type")
RETRY_KEYS = ("max_attempts", "backoff", "initial_delay", "max_delay")
OUTPUT_TYPES = {"text": "string", "string": "string", "str": "string", "number": "number",
                "float": "number", "integer": "integer", "int": "integer", "bool": "boolean",
                "boolean": "boolean", "list": "array", "array": "array", "json": None,
                "object": "object", "dict": "object"}

# Aliases can make a small file expand enormously; values larger than this are refused.
MAX_EXPANDED_NODES = 10_000

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INTERPOLATION = re.compile(r"\{\{(.*?)\}\}", re.S)
_REF = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def lower_yaml(text: str, path: str) -> tuple[ir.Program | None, list[Diagnostic]]:
    """Lower a seed-format YAML workflow to a Program; never raises on bad input."""
    lowering = _Lowering(text, path)
    try:
        program = lowering.lower()
    except _Abort:
        program = None
    except RecursionError:
        lowering.bag.error(E_TOO_LARGE, ir.Span.unknown(path), "the YAML document is nested too deeply",
                           "flatten the document; workflows need only a few levels of nesting")
        program = None
    diagnostics = lowering.bag.sorted()
    if any(d.is_error for d in diagnostics):
        return None, diagnostics
    return program, diagnostics


# `1e30`: a number to a reader, text to YAML 1.1 (its floats need a dot: `1.0e30`)
_DOTLESS_EXPONENT = re.compile(r"[-+]?[0-9]+[eE][-+]?[0-9]+")


def make_identifier(raw: str) -> str:
    """`requirements-to-design` -> `requirements_to_design`; `1st` -> `_1st`; "" stays ""."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", raw.strip()).strip("_")
    if name and name[0].isdigit():
        name = "_" + name
    return name


class _Abort(Exception):
    """Stop lowering: the document is unusable (already reported)."""


@dataclass
class _Entry:
    """One `key: value` pair of a mapping, with both nodes for positions."""

    key: ScalarNode
    value: Node


class _Lowering:
    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.bag = DiagnosticBag()
        self.constructor = SafeConstructor()
        self._merge_cache: dict[int, list[tuple[Node, Node, bool]]] = {}

    # -- positions --------------------------------------------------------------------------

    def span(self, node: Node) -> ir.Span:
        start, end = node.start_mark, node.end_mark
        # A block node ends at the start of the next line; keep spans on their own lines.
        if end.line > start.line and end.column == 0:
            line_start = self.text.rfind("\n", 0, max(end.index - 1, 0))
            end_line = end.line - 1
            end_col = end.index - 1 - (line_start + 1)
            return ir.Span(self.path, start.line + 1, start.column + 1, end_line + 1, end_col + 1,
                           start.index, end.index - 1)
        return ir.Span(self.path, start.line + 1, start.column + 1, end.line + 1, end.column + 1,
                       start.index, end.index)

    def span_at(self, index: int, length: int = 1) -> ir.Span:
        index = max(0, min(index, len(self.text)))
        line = self.text.count("\n", 0, index) + 1
        column = index - (self.text.rfind("\n", 0, index) + 1) + 1
        return ir.Span(self.path, line, column, line, column + length, index, index + length)

    def span_from_mark(self, mark: Any) -> ir.Span:
        if mark is None:
            return ir.Span(self.path, 1, 1, 1, 1, 0, 0)
        return ir.Span(self.path, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2,
                       mark.index, mark.index + 1)

    # -- reading values ---------------------------------------------------------------------

    def construct(self, node: Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            self.bag.error(E_TYPE, self.span_from_mark(mark) if mark else self.span(node),
                           f"this value can't be read: {getattr(exc, 'problem', None) or exc}",
                           "use plain strings, numbers, booleans, lists and mappings")
            return _INVALID

    def mapping(self, node: Node, what: str, allowed: Iterable[str]) -> dict[str, _Entry] | None:
        """The entries of a mapping node, reporting duplicates and unknown keys (with a suggestion)."""
        if not isinstance(node, MappingNode):
            self.wrong_type(node, what, "a mapping (`key: value` lines)")
            return None
        pairs = self.merged_pairs(node, what)  # `<<: *anchor` merge keys applied
        if pairs is None:
            return None
        allowed = tuple(allowed)
        entries: dict[str, _Entry] = {}
        own: set[str] = set()  # keys written in this mapping itself (not merged in)
        for key_node, value_node, written_here in pairs:
            if not isinstance(key_node, ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                self.bag.error(E_TYPE, self.span(key_node), f"keys of {what} must be plain names",
                               f"known keys: {', '.join(allowed)}")
                continue
            key = key_node.value
            if key in own:  # written twice in the mapping itself: YAML would silently keep one
                first = entries[key].key
                self.bag.error(E_DUPLICATE_KEY, self.span(key_node), f"`{key}` is written twice in {what}",
                               "remove one of them; YAML would silently keep only the last",
                               [Related(self.span(first), f"`{key}` first written here")])
                continue
            if key in entries:
                # A merged key: keys written in the mapping override merged ones, and an earlier
                # merge overrides a later one (`merged_pairs` lists the winner last).
                if written_here:
                    own.add(key)
                entries[key] = _Entry(key_node, value_node)
                continue
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = (f"did you mean `{close[0]}`?" if close
                        else f"known keys of {what}: {', '.join(allowed)}")
                self.bag.error(E_UNKNOWN_KEY, self.span(key_node), f"unknown key `{key}` in {what}", hint)
                continue
            entries[key] = _Entry(key_node, value_node)
            if written_here:
                own.add(key)
        return entries

    def merged_pairs(self, node: MappingNode, what: str) -> list[tuple[Node, Node, bool]] | None:
        """The mapping's `(key, value, written_here)` pairs with `<<:` merge keys applied, in
        override order: merged pairs first (a later `<<:` and an earlier item of a `<<: [..]` list
        last), then the pairs written in the mapping itself, so the last pair of a key wins, as in
        YAML. Unlike PyYAML's `flatten_mapping` the nodes are left as composed, so a mapping merged
        somewhere and also used on its own still knows which of its keys it wrote itself."""
        merged: list[tuple[Node, Node, bool]] = []
        written: list[tuple[Node, Node, bool]] = []
        for key_node, value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                written.append((key_node, value_node, True))
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            if not isinstance(value_node, (MappingNode, SequenceNode)) or not all(
                    isinstance(source, MappingNode) for source in sources):
                self.bag.error(E_TYPE, self.span(value_node),
                               f"a merge key in {what} can't be applied: it takes a mapping, "
                               f"not {_describe(value_node)}",
                               "`<<:` takes an alias of a mapping, or a list of them")
                return None
            for source in reversed(sources):
                inner = self._merge_cache.get(id(source))
                if inner is None:
                    inner = self.merged_pairs(source, what)
                    if inner is None:
                        return None
                    self._merge_cache[id(source)] = inner
                merged.extend((k, v, False) for k, v, _ in inner)
            if len(merged) > MAX_EXPANDED_NODES:
                self.bag.error(E_TOO_LARGE, self.span(value_node), f"merge keys in {what} expand to "
                               f"more than {MAX_EXPANDED_NODES} keys", "write the keys out, or keep "
                               "merges small")
                raise _Abort
        return merged + written

    def wrong_type(self, node: Node, what: str, expected: str, hint: str | None = None) -> None:
        found = _describe(node)
        self.bag.error(E_TYPE, self.span(node), f"{what} must be {expected}, not {found}",
                       hint or f"write {what} as {expected}")

    def scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return _INVALID
        return self.construct(node)

    def text_value(self, node: Node, what: str) -> str | None:
        """A string; plain numbers are taken as written (`id: 42`)."""
        value = self.scalar(node)
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return node.value
        if value is not _INVALID or not isinstance(node, ScalarNode):
            self.wrong_type(node, what, "a string")
        return None

    def number(self, node: Node, what: str, *, integer: bool = False, low: float | None = None,
               high: float | None = None) -> float | int | None:
        value = self.scalar(node)
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok:
            if value is not _INVALID or not isinstance(node, ScalarNode):
                kind = "a whole number" if integer else "a number"
                hint = None
                if isinstance(value, str):
                    example = "4000" if integer else "1.5"
                    if isinstance(node, ScalarNode) and node.style in ("'", '"'):
                        hint = "write the number without quotes"
                    elif _DOTLESS_EXPONENT.fullmatch(str(node.value)):  # YAML 1.1 wants 1.0e3
                        hint = (f"YAML reads `{node.value}` as text: write the number in full, or "
                                f"with a dot before the exponent (1.0e3)")
                    else:
                        hint = f"write a number such as {example}"
                self.wrong_type(node, what, kind, hint)
            return None
        if value != value or value in (float("inf"), float("-inf")):
            self.bag.error(E_RANGE, self.span(node), f"{what} must be a finite number",
                           "write a plain number like `1.5`")
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (f"between {_fmt(low)} and {_fmt(high)}" if low is not None and high is not None
                      else f"at least {_fmt(low)}" if low is not None else f"at most {_fmt(high)}")
            self.bag.error(E_RANGE, self.span(node), f"{what} must be {bounds}, not {_fmt(value)}",
                           f"use a value {bounds}")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        value = self.scalar(node)
        if isinstance(value, bool):
            return value
        if value is not _INVALID or not isinstance(node, ScalarNode):
            self.wrong_type(node, what, "true or false")
        return None

    def duration(self, node: Node, what: str) -> float | None:
        """Seconds as a number, or a string like `30s`, `10m`, `600ms`, `1h`."""
        value = self.scalar(node)
        if isinstance(value, str):
            match = _DURATION.fullmatch(value)
            if not match:
                self.bag.error(E_DURATION, self.span(node), f"{what} `{value}` is not a duration",
                               "write seconds as a number (`60`) or a duration like `30s`, `10m`, `600ms`")
                return None
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            if seconds <= 0:
                self.bag.error(E_RANGE, self.span(node), f"{what} must be longer than zero",
                               "write a positive duration like `30s`")
                return None
            return seconds
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = self.number(node, what, low=0)
            if seconds is not None and seconds <= 0:
                self.bag.error(E_RANGE, self.span(node), f"{what} must be longer than zero",
                               "write a positive duration like `30s`")
                return None
            return None if seconds is None else float(seconds)
        if value is not _INVALID or not isinstance(node, ScalarNode):
            self.wrong_type(node, what, "a number of seconds or a duration like `30s`")
        return None

    def name_list(self, node: Node, what: str, *, identifiers: bool = False) -> tuple[ir.Name, ...]:
        """A list of names (`[a, b]`), or a single name, as `Name`s with their own spans."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        if not isinstance(node, (SequenceNode, ScalarNode)):
            self.wrong_type(node, what, "a list of names")
            return ()
        names = []
        for item in items:
            if isinstance(node, ScalarNode) and self.scalar(node) is None:
                return ()  # `dependencies:` with nothing after it: an empty list
            raw = self.text_value(item, f"each item of {what}")
            if raw is None:
                continue
            name = make_identifier(raw) if identifiers else raw.strip()
            if not name:
                self.bag.error(E_IDENTIFIER, self.span(item), f"`{raw}` in {what} is not a name",
                               "use letters, digits, `_` or `-`")
                continue
            names.append(ir.Name(name, self.span(item)))
        return tuple(names)

    def choice(self, node: Node, what: str, options: Iterable[str], code: str) -> str | None:
        raw = self.text_value(node, what)
        if raw is None:
            return None
        options = tuple(options)
        value = raw.strip().lower()
        if value in options:
            return value
        close = difflib.get_close_matches(value, options, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`?" if close else f"use one of: {', '.join(options)}"
        self.bag.error(code, self.span(node), f"unknown {what} `{raw}`", hint)
        return None

    # -- the document ------------------------------------------------------------------------

    def lower(self) -> ir.Program | None:
        root = self.compose()
        top = self.mapping(root, "the workflow", WORKFLOW_KEYS)
        if top is None:
            raise _Abort
        workflow = self.workflow(root, top)
        sha = hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()
        return ir.Program(files=(ir.SourceFile(self.path, sha, "main"),), workflows=(workflow,),
                          entry=workflow.name)

    def compose(self) -> Node:
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = (exc.problem or str(exc)).replace("'<stream end>'", "the end of the file")
            hint = "check the indentation and quoting around this point"
            related = []
            if exc.context == "expected a single document in the stream" and mark is not None:
                # `---` (or `...` and more text) after the workflow: valid YAML, but a second document
                width = 3 if self.text.startswith(("---", "..."), mark.index) else 1
                self.bag.error(E_SYNTAX, self.span_at(mark.index, width),
                               "a workflow file holds one YAML document, but a second one starts here",
                               "put each workflow in a file of its own, or remove this `---` line to "
                               "keep one document",
                               [Related(self.span_from_mark(exc.context_mark), "the first document starts here")]
                               if exc.context_mark is not None else [])
                raise _Abort from None
            if (exc.problem or "").startswith("expected '<document start>'") and mark is not None \
                    and re.search(r"^\.\.\.[ \t]*(#.*)?$", self.text[:mark.index], re.M):
                # text after the document's end marker `...`: the start of a second document
                self.bag.error(E_SYNTAX, self.span_from_mark(mark),
                               "a workflow file holds one YAML document, but more text follows its end (`...`)",
                               "remove the `...` line, or move the text after it to a file of its own")
                raise _Abort from None
            if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
                related.append(Related(self.span_from_mark(exc.context_mark), exc.context))
            if mark is not None and mark.index >= len(self.text.rstrip()):
                # at the end of the file: point just after the last character, on a line that exists
                span = self.span_at(len(self.text.rstrip()), 0)
            else:
                span = self.span_from_mark(mark)
            self.bag.error(E_SYNTAX, span, f"invalid YAML: {problem}", hint, related)
            raise _Abort from None
        except yaml.YAMLError as exc:  # ReaderError: characters YAML does not allow
            position = getattr(exc, "position", 0) or 0
            character = getattr(exc, "character", None)
            if isinstance(character, str) and character:
                character = ord(character[0])
            what = f"the character U+{character:04X}" if isinstance(character, int) else "this character"
            self.bag.error(E_SYNTAX, self.span_at(position), f"invalid YAML: {what} is not allowed in YAML",
                           "remove control characters; YAML files are UTF-8 text")
            raise _Abort from None
        if root is None:
            self.bag.error(E_DOCUMENT, self.span_at(0, 0), "the YAML document is empty",
                           "a seed workflow has `id`, `name`, `tasks`, ... at the top level")
            raise _Abort
        if not isinstance(root, MappingNode):
            self.bag.error(E_DOCUMENT, self.span(root),
                           f"the top of a workflow file must be a mapping, not {_describe(root)}",
                           "a seed workflow has `id`, `name`, `tasks`, ... at the top level")
            raise _Abort
        return root

    def workflow(self, root: Node, top: dict[str, _Entry]) -> ir.Workflow:
        name, name_span = self.workflow_name(root, top)
        human = self.text_value(top["name"].value, "`name`") if "name" in top else None
        description = (self.text_value(top["description"].value, "`description`")
                       if "description" in top else None)
        strategy = (self.choice(top["execution_strategy"].value, "execution_strategy", STRATEGIES,
                                E_STRATEGY) if "execution_strategy" in top else None)
        optimize = (self.objectives(top["optimization_objectives"].value)
                    if "optimization_objectives" in top else None)
        budget, quality = (self.constraints(top["constraints"].value) if "constraints" in top
                           else (None, None))
        tasks = self.tasks(root, top)
        depended_on = {d.name for t in tasks for d in t.depends}
        # one output per name: a task id given twice is reported once, as a duplicate task (E120)
        terminal = {t.name: t for t in reversed(tasks) if t.name not in depended_on}
        outputs = tuple(ir.Output(t.name, t.name_span) for t in reversed(terminal.values()))
        return ir.Workflow(name=name, span=self.span(root), name_span=name_span,
                           about=_clean(description) or _clean(human), strategy=strategy,
                           optimize=optimize, budget=budget, quality=quality, tasks=tasks,
                           outputs=outputs)

    def workflow_name(self, root: Node, top: dict[str, _Entry]) -> tuple[str, ir.Span]:
        for key in ("id", "name"):
            if key in top:
                raw = self.text_value(top[key].value, f"`{key}`")
                if raw is None:
                    return "workflow", self.span(top[key].value)
                name = make_identifier(raw)
                if not name:
                    self.bag.error(E_IDENTIFIER, self.span(top[key].value),
                                   f"the workflow {key} `{raw}` has no ASCII letters or digits "
                                   "(bmad names are made of a-z, A-Z, 0-9 and _)",
                                   "use an id like `requirements-to-design`")
                    return "workflow", self.span(top[key].value)
                return name, self.span(top[key].value)
        self.bag.error(E_MISSING, self.span_at(root.start_mark.index, 0), "the workflow has no `id`",
                       "add `id: my-workflow` at the top; it becomes the workflow's name")
        return "workflow", self.span_at(root.start_mark.index, 0)

    def objectives(self, node: Node) -> str | None:
        items = node.value if isinstance(node, SequenceNode) else [node]
        if not isinstance(node, (SequenceNode, ScalarNode)):
            self.wrong_type(node, "optimization_objectives", "a list like `[cost, quality]`")
            return None
        chosen: list[tuple[str, Node]] = []
        for item in items:
            value = self.choice(item, "optimization objective", OBJECTIVES, E_OBJECTIVE)
            if value is not None and OBJECTIVES[value] not in (c[0] for c in chosen):
                chosen.append((OBJECTIVES[value], item))
        if not chosen:
            return None
        kinds = [c[0] for c in chosen]
        if "cost" in kinds and "quality" in kinds:
            rest = [c for c in chosen if c[0] not in ("cost", "quality")]
            result = "balanced"
        else:
            result, rest = kinds[0], chosen[1:]
        for objective, item in rest:
            self.bag.warning(W_OBJECTIVES, self.span(item),
                             f"the objective `{objective}` is not used: bmad optimizes for `{result}`",
                             "list one objective, or `[cost, quality]` for a balance of both")
        return result

    def constraints(self, node: Node) -> tuple[ir.Budget | None, float | None]:
        entries = self.mapping(node, "constraints", CONSTRAINT_KEYS)
        if entries is None:
            return None, None
        usd = tokens = time_s = quality = None
        if "budget_usd" in entries:
            usd = self.number(entries["budget_usd"].value, "budget_usd", low=0)
        if "budget_tokens" in entries:
            tokens = self.number(entries["budget_tokens"].value, "budget_tokens", integer=True, low=1)
        for key in ("time_limit", "max_duration"):
            if key in entries:
                if time_s is not None:
                    self.bag.error(E_DUPLICATE_KEY, self.span(entries[key].key),
                                   "both `time_limit` and `max_duration` are written",
                                   "they mean the same; keep one")
                    continue
                time_s = self.duration(entries[key].value, key)
        if "quality_threshold" in entries:
            quality = self.number(entries["quality_threshold"].value, "quality_threshold", low=0, high=1)
            quality = None if quality is None else float(quality)
        budget = None
        if usd is not None or tokens is not None or time_s is not None:
            budget = ir.Budget(usd=None if usd is None else float(usd), tokens=tokens, time_s=time_s,
                               span=self.span(node))
        return budget, quality

    # -- tasks -------------------------------------------------------------------------------

    def tasks(self, root: Node, top: dict[str, _Entry]) -> tuple[ir.Task, ...]:
        if "tasks" not in top:
            self.bag.error(E_MISSING, self.span_at(root.start_mark.index, 0), "the workflow has no `tasks`",
                           "add a `tasks:` list; each task has at least an `id` and a `name`")
            return ()
        node = top["tasks"].value
        if not isinstance(node, SequenceNode):
            self.wrong_type(node, "`tasks`", "a list of tasks (each item starts with `- id: ...`)")
            return ()
        if not node.value:
            self.bag.error(E_MISSING, self.span(node), "the workflow's `tasks` list is empty",
                           "add at least one task with an `id` and a `name`")
        tasks = []
        for item in node.value:
            task = self.task(item)
            if task is not None:
                tasks.append(task)
        return tuple(tasks)

    def task(self, node: Node) -> ir.Task | None:
        entries = self.mapping(node, "a task", TASK_KEYS)
        if entries is None:
            return None
        if "id" not in entries:
            self.bag.error(E_MISSING, self.span_at(node.start_mark.index, 0), "this task has no `id`",
                           "add `id: short_name`; other tasks name it in their `dependencies`")
            return None
        id_node = entries["id"].value
        raw_id = self.text_value(id_node, "a task's `id`")
        if raw_id is None:
            return None
        name = make_identifier(raw_id)
        if not name:
            self.bag.error(E_IDENTIFIER, self.span(id_node),
                           f"the task id `{raw_id}` has no ASCII letters or digits (bmad names are "
                           "made of a-z, A-Z, 0-9 and _)",
                           "use an id like `analyze` or `design-review`")
            return None

        def text_of(key: str) -> str | None:
            return _clean(self.text_value(entries[key].value, f"`{key}`")) if key in entries else None

        human, description, task_type = text_of("name"), text_of("description"), text_of("task_type")
        depends = (self.name_list(entries["dependencies"].value, "`dependencies`", identifiers=True)
                   if "dependencies" in entries else ())
        inputs = self.inputs(entries["inputs"].value) if "inputs" in entries else []
        prompt = self.prompt(node, name, human, description, task_type, inputs, depends)
        fields: dict[str, Any] = {}
        if "llm_requirements" in entries:
            fields.update(self.requirements(entries["llm_requirements"].value))
        if "priority" in entries:
            fields["priority"] = self.choice(entries["priority"].value, "priority", PRIORITIES, E_PRIORITY)
        if "timeout" in entries:
            fields["timeout_s"] = self.duration(entries["timeout"].value, "timeout")
            fields["timeout_span"] = self.span(entries["timeout"].value)
        if "retry_config" in entries:
            fields["retry"] = self.retry(entries["retry_config"].value)
        if "outputs" in entries:
            fields["returns"] = self.outputs(entries["outputs"].value)
        if task_type:  # a stdlib pattern's name: the task calls it (compiler/patterns.py)
            fields["call"], notes = seed_pattern_call(name, task_type, inputs, depends,
                                                      self.span(entries["task_type"].value))
            self.bag.extend(notes)
        about = f"{human}: {description}" if human and description else (human or description)
        return ir.Task(name=name, span=self.span(node), name_span=self.span(id_node), about=about,
                       prompt=prompt, depends=depends, pattern=task_type, **fields)

    def inputs(self, node: Node) -> list[tuple[str, list[ir.TextPart | ir.Interpolation]]]:
        """`inputs: {key: value}` as labelled template parts; `{{ task }}` in a value is a reference."""
        entries = self.mapping_any_keys(node, "`inputs`")
        labelled = []
        for key, value_node in entries:
            labelled.append((key, self.input_parts(value_node, f"the input `{key}`")))
        return labelled

    def mapping_any_keys(self, node: Node, what: str) -> list[tuple[str, Node]]:
        if isinstance(node, ScalarNode) and self.scalar(node) is None:
            return []
        if not isinstance(node, MappingNode):
            self.wrong_type(node, what, "a mapping of names to values")
            return []
        pairs = self.merged_pairs(node, what)  # `<<: *anchor` merge keys applied
        if pairs is None:
            return []
        seen: dict[str, Node] = {}
        own: set[str] = set()  # keys written in this mapping itself (not merged in)
        out: dict[str, Node] = {}  # in first-seen order, like the mapping YAML builds
        for key_node, value_node, written_here in pairs:
            key = self.text_value(key_node, f"a key of {what}") if isinstance(key_node, ScalarNode) else None
            if key is None:
                if not isinstance(key_node, ScalarNode):
                    self.wrong_type(key_node, f"a key of {what}", "a plain name")
                continue
            if key in own:
                self.bag.error(E_DUPLICATE_KEY, self.span(key_node), f"`{key}` is written twice in {what}",
                               "remove one of them; YAML would silently keep only the last",
                               [Related(self.span(seen[key]), f"`{key}` first written here")])
                continue
            if written_here:  # a key written here overrides a merged one; a later merged pair wins
                own.add(key)
            seen[key] = key_node
            out[key] = value_node
        return list(out.items())

    def input_parts(self, node: Node, what: str) -> list[ir.TextPart | ir.Interpolation]:
        if isinstance(node, ScalarNode):
            value = self.scalar(node)
            if value is _INVALID:
                return []
            if not isinstance(value, str):
                return [ir.TextPart(_json_text(value))]
            return self.split_interpolations(value, node, what)
        if _expanded_size(node) > MAX_EXPANDED_NODES:
            self.bag.error(E_TOO_LARGE, self.span(node), f"{what} expands to more than "
                           f"{MAX_EXPANDED_NODES} values through YAML aliases",
                           "write the value out, or keep aliases small")
            return []
        value = self.construct(node)
        if value is _INVALID:
            return []
        return [ir.TextPart(_json_text(value))]

    def split_interpolations(self, value: str, node: ScalarNode,
                             what: str) -> list[ir.TextPart | ir.Interpolation]:
        parts: list[ir.TextPart | ir.Interpolation] = []
        # Positions inside the scalar are exact for plain and single-line quoted scalars.
        base = node.start_mark.index + (1 if node.style in ("'", '"') else 0)
        exact = node.style in (None, "'", '"') and "\n" not in value and self.text[base:base + len(value)] == value
        cursor = 0
        for match in _INTERPOLATION.finditer(value):
            if match.start() > cursor:
                parts.append(ir.TextPart(value[cursor:match.start()]))
            span = (self.span_at(base + match.start(), match.end() - match.start()) if exact
                    else self.span(node))
            ref = _REF.fullmatch(match.group(1))
            if ref is None:
                self.bag.error(E_INTERPOLATION, span,
                               f"`{match.group(0)}` in {what} is not a reference to a task",
                               "write `{{ task_id }}` or `{{ task_id.field }}`, or drop the braces")
                parts.append(ir.TextPart(match.group(0)))
            else:
                path = tuple(make_identifier(p) if i == 0 else p
                             for i, p in enumerate(ref.group(1).split(".")))
                parts.append(ir.Interpolation(ir.Ref(path, span), span))
            cursor = match.end()
        if cursor < len(value):
            parts.append(ir.TextPart(value[cursor:]))
        return parts

    def prompt(self, node: Node, name: str, human: str | None, description: str | None,
               task_type: str | None, inputs: list[tuple[str, list[ir.TextPart | ir.Interpolation]]],
               depends: tuple[ir.Name, ...]) -> ir.Template:
        """The prompt a seed task implies: what to do, its inputs, then its dependencies' outputs."""
        parts: list[ir.TextPart | ir.Interpolation] = []
        heading = human or (task_type.replace("_", " ").capitalize() if task_type else name)
        parts.append(ir.TextPart(heading.rstrip(".") + "."))
        if description:
            parts.append(ir.TextPart("\n" + description))
        for key, value_parts in inputs:
            parts.append(ir.TextPart(f"\n\n{key}:\n"))
            parts.extend(value_parts)
        for dep in depends:
            parts.append(ir.TextPart(f"\n\nResult of {dep.name}:\n"))
            parts.append(ir.Interpolation(ir.Ref((dep.name,), dep.span), dep.span))
        return _template(parts, self.span(node))

    def requirements(self, node: Node) -> dict[str, Any]:
        entries = self.mapping(node, "llm_requirements", REQUIREMENT_KEYS)
        if entries is None:
            return {}
        out: dict[str, Any] = {}
        if "capabilities" in entries:
            out["needs"] = self.name_list(entries["capabilities"].value, "`capabilities`")
        preferred: tuple[ir.Name, ...] = ()
        if "preferred_models" in entries:
            preferred = self.name_list(entries["preferred_models"].value, "`preferred_models`")
        pinned = None
        if "model" in entries:
            raw = self.text_value(entries["model"].value, "`model`")
            if raw is not None and raw.strip():
                pinned = ir.Name(raw.strip(), self.span(entries["model"].value))
        if "max_tokens" in entries:
            out["max_tokens"] = self.number(entries["max_tokens"].value, "max_tokens", integer=True, low=1)
            out["max_tokens_span"] = self.span(entries["max_tokens"].value)
        if "temperature" in entries:
            temperature = self.number(entries["temperature"].value, "temperature", low=0, high=2)
            out["temperature"] = None if temperature is None else float(temperature)
            out["temperature_span"] = self.span(entries["temperature"].value)
        consensus = None
        if "collaboration" in entries:
            consensus = self.collaboration(entries["collaboration"].value, preferred)
        if consensus is not None:
            out["consensus"] = consensus  # the preferred models are its participants
            if pinned is not None:
                out["model"] = pinned
        else:
            # Without collaboration: the first preferred model is used, the others are fallbacks.
            chain = ([pinned] if pinned else []) + [m for m in preferred if not pinned or m.name != pinned.name]
            if chain:
                out["model"] = chain[0]
                out["fallback"] = tuple(chain[1:])
        return out

    def collaboration(self, node: Node, preferred: tuple[ir.Name, ...]) -> ir.Consensus | None:
        entries = self.mapping(node, "collaboration", COLLABORATION_KEYS)
        if entries is None:
            return None
        multi = self.boolean(entries["multi_llm"].value, "multi_llm") if "multi_llm" in entries else None
        count = None
        if "num_llms" in entries:
            count = self.number(entries["num_llms"].value, "num_llms", integer=True, low=2)
            limit = current_limits().models_per_task
            if count is not None and count > limit:  # each model asked is a participant of the plan
                self.bag.error(E_COUNT_LIMIT, self.span(entries["num_llms"].value),
                               f"`num_llms: {count_text(count)}` asks for more models than the limit of {limit:,}",
                               "a few models are enough, e.g. `num_llms: 3` (or raise `models_per_task` "
                               "in bmad.toml's [limits])")
                return None
        method = None
        if "type" in entries:
            kind = self.choice(entries["type"].value, "collaboration type", COLLABORATION_TYPES,
                               E_COLLABORATION)
            if kind is None:
                return None
            method = COLLABORATION_TYPES[kind]
        if multi is False:
            self.bag.warning(W_COLLABORATION_OFF, self.span(entries["multi_llm"].value),
                             "this collaboration is off (`multi_llm: false`): one model answers",
                             "set `multi_llm: true` to have several models collaborate, or remove the block")
            return None
        if method is None:
            if multi is None and count is None:
                return None  # an empty block says nothing
            self.bag.error(E_MISSING, self.span(node), "the collaboration has no `type`",
                           "add `type: consensus`, `type: best_of_n` or `type: ensemble`")
            return None
        participants: tuple[ir.Name, ...] = ()
        if len(preferred) >= 2:
            participants = preferred
            if count is not None and count != len(preferred):
                self.bag.warning(W_PARTICIPANTS, self.span(entries["num_llms"].value),
                                 f"num_llms is {count} but {len(preferred)} preferred models are named; "
                                 f"the {len(preferred)} named models take part",
                                 "make num_llms match preferred_models, or remove one of them")
            count = None
        elif count is None:
            if "num_llms" in entries:
                return None  # an unusable num_llms is already reported
            self.bag.error(E_MISSING, self.span(node), "the collaboration says neither how many models "
                           "take part nor which", "add `num_llms: 3`, or name them in `preferred_models`")
            return None
        return ir.Consensus(method=method, participants=participants, count=count, implicit=False,
                            span=self.span(node))

    def retry(self, node: Node) -> ir.Retry | None:
        entries = self.mapping(node, "retry_config", RETRY_KEYS)
        if entries is None:
            return None
        if "max_attempts" not in entries:
            self.bag.error(E_MISSING, self.span(node), "retry_config has no `max_attempts`",
                           "add `max_attempts: 3`")
            return None
        attempts = self.number(entries["max_attempts"].value, "max_attempts", integer=True, low=1)
        limit = current_limits().rounds_per_task
        if attempts is not None and attempts - 1 > limit:  # as `retry N` in .bmad: N + 1 tries
            self.bag.error(E_COUNT_LIMIT, self.span(entries["max_attempts"].value),
                           f"`max_attempts: {count_text(attempts)}` allows more retries than the limit of {limit:,}",
                           f"a few tries are enough, e.g. `max_attempts: 3` (at most {limit + 1:,}: the "
                           "first try and `rounds_per_task` retries; or raise that in bmad.toml's [limits])")
            return None
        backoff = (self.choice(entries["backoff"].value, "backoff", BACKOFFS, E_BACKOFF)
                   if "backoff" in entries else None)
        low = (self.duration(entries["initial_delay"].value, "initial_delay")
               if "initial_delay" in entries else None)
        high = self.duration(entries["max_delay"].value, "max_delay") if "max_delay" in entries else None
        if low is not None and high is not None and high < low:
            self.bag.error(E_RANGE, self.span(entries["max_delay"].value),
                           "max_delay is shorter than initial_delay", "make max_delay at least initial_delay")
            return None
        if attempts is None:
            return None
        kwargs: dict[str, Any] = {"backoff": backoff} if backoff else {}
        # max_attempts counts the first try, like the IR: `max_attempts: 3` is `retry 2` in .bmad
        return ir.Retry(attempts=int(attempts), min_s=low, max_s=high, span=self.span(node), **kwargs)

    def outputs(self, node: Node) -> ir.Returns | None:
        """`outputs: [a, b]` or `{a: text, b: number}`: the task answers a JSON object with them."""
        properties: dict[str, Any] = {}
        if isinstance(node, SequenceNode):
            for name in self.name_list(node, "`outputs`"):
                properties[name.name] = {}
        elif isinstance(node, MappingNode):
            for key, value_node in self.mapping_any_keys(node, "`outputs`"):
                kind = self.choice(value_node, f"type of the output `{key}`", OUTPUT_TYPES, E_TYPE)
                if kind is None:
                    continue
                properties[key] = {"type": OUTPUT_TYPES[kind]} if OUTPUT_TYPES[kind] else {}
        elif isinstance(node, ScalarNode) and self.scalar(node) is None:
            return None
        else:
            self.wrong_type(node, "`outputs`", "a list of output names or a mapping of names to types")
            return None
        if not properties:
            return None
        schema = {"type": "object", "properties": properties, "required": sorted(properties)}
        return ir.Returns(kind="json", schema=schema, span=self.span(node))


# ----------------------------------------------------------------------------------------------


class _Invalid:
    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()


def _template(parts: list[ir.TextPart | ir.Interpolation], span: ir.Span) -> ir.Template:
    merged: list[ir.TextPart | ir.Interpolation] = []
    for part in parts:
        if isinstance(part, ir.TextPart) and merged and isinstance(merged[-1], ir.TextPart):
            merged[-1] = ir.TextPart(merged[-1].text + part.text)
        elif not (isinstance(part, ir.TextPart) and not part.text):
            merged.append(part)
    text = "".join(p.text if isinstance(p, ir.TextPart) else "{{ " + str(p.ref) + " }}" for p in merged)
    return ir.Template(text=text, parts=tuple(merged), span=span)


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    return {"str": "a string", "int": "a number", "float": "a number", "bool": "a boolean",
            "null": "nothing"}.get(tag, f"a value tagged `{node.tag}`")


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text or None


def _fmt(value: float | None) -> str:
    return "?" if value is None else (str(int(value)) if float(value).is_integer() else str(value))


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _expanded_size(node: Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """How many nodes a value has once aliases are expanded, counting no further than past `limit`."""
    count = 0
    stack = [node]
    while stack and count <= limit:
        current = stack.pop()
        count += 1
        if isinstance(current, SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, MappingNode):
            for k, v in current.value:
                stack.extend((k, v))
    return count


__all__ = ["lower_yaml", "make_identifier"]
