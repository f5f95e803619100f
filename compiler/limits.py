"""The limits bmad enforces on what it reads and receives, with their defaults and `bmad.toml` overrides.

Every limit ends in a diagnostic or a recorded task failure with a stable code, never in a crash
(RecursionError, MemoryError, a runaway loop). Defaults suit real work; a `[limits]` table in
`bmad.toml` changes them:

```toml
[limits]
source_chars = 16_000_000      # BMAD-E008: characters in one source file (.bmad or .yaml)
nesting_depth = 64             # BMAD-E007 (.bmad brackets), BMAD-E501 (YAML nesting)
tasks_per_workflow = 5_000     # BMAD-E500
import_depth = 32              # BMAD-E502: a chain of imports this long
for_each_items = 10_000        # BMAD-E503: items one `for each` fans out over (run time)
prompt_context_ratio = 1.0     # BMAD-E504: estimated prompt tokens / the model's context (run time)
response_bytes = 8_000_000     # BMAD-E505: bytes of one provider response body or stream
json_output_chars = 1_000_000  # BMAD-E506: characters of an answer parsed for `returns json`
json_output_depth = 64         # BMAD-E506: nesting of that JSON
models_per_task = 100          # BMAD-E507: models one task asks (`among N models`, `best_of N`, `num_llms`)
rounds_per_task = 100          # BMAD-E507: `retry N`, `else retry N`, `refine max N`, peer-review `rounds N`
```

`in chunks of N` above `for_each_items` is BMAD-E507 too: no list a `for each` fans out over is
that long. These counts size the plan and the run (one participant, one try, one round each), so
a count past its limit is an error at its clause, never a plan that grows without end.

A bad `[limits]` table is reported (BMAD-E509) and the defaults stand. `use_limits(...)` sets
limits for one block of code (tests, the soak benchmark); otherwise `current_limits()` reads
`bmad.toml` (cached per file version, see `compiler/settings.py`).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any, Iterator

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic, error
from bmad.compiler.settings import SettingsError, read_settings


@dataclass(frozen=True, slots=True)
class Limits:
    source_chars: int = 16_000_000
    nesting_depth: int = 64
    tasks_per_workflow: int = 5_000
    import_depth: int = 32
    for_each_items: int = 10_000
    prompt_context_ratio: float = 1.0
    response_bytes: int = 8_000_000
    json_output_chars: int = 1_000_000
    json_output_depth: int = 64
    models_per_task: int = 100
    rounds_per_task: int = 100


DEFAULTS = Limits()
CODES = {
    "source_chars": "BMAD-E008",
    "nesting_depth": "BMAD-E007",
    "tasks_per_workflow": "BMAD-E500",
    "import_depth": "BMAD-E502",
    "for_each_items": "BMAD-E503",
    "prompt_context_ratio": "BMAD-E504",
    "response_bytes": "BMAD-E505",
    "json_output_chars": "BMAD-E506",
    "json_output_depth": "BMAD-E506",
    "models_per_task": "BMAD-E507",
    "rounds_per_task": "BMAD-E507",
}
YAML_NESTING_CODE = "BMAD-E501"
CONFIG_CODE = "BMAD-E509"
# The deepest nesting any setting may ask for: deeper than this, Python's own stack (the parser,
# lowering, json, the YAML composer) would be the limit, and that is a crash, not a diagnostic.
MAX_NESTING_SETTING = 200
MAX_SOURCE_CHARS_SETTING = 16_000_000  # the parser's own ceiling (compiler/parse.py)
# The most models or rounds a setting may allow: the plan holds one participant per model asked
# (a model asked twice is listed twice), so this bounds what planning builds for any one task.
MAX_COUNT_SETTING = 10_000

_override: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("bmad_limits", default=None)


class LimitsError(ValueError):
    """A `[limits]` table that can't be used (unknown name, wrong type, out of range)."""


def limits_from_table(table: Any, path: str | None = None) -> Limits:
    """Limits from a `[limits]` table; raises `LimitsError` naming the bad entry."""
    where = f"{path or 'bmad.toml'}: [limits]"
    if not isinstance(table, dict):
        raise LimitsError(f"{where} must be a table")
    known = {f.name: f for f in fields(Limits)}
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name not in known:
            raise LimitsError(f"{where} has no setting `{name}` (known: {', '.join(known)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LimitsError(f"{where} {name} must be a number, not {value!r}")
        if name == "prompt_context_ratio":
            if not 0 < value <= 10:
                raise LimitsError(f"{where} {name} must be above 0 and at most 10")
            values[name] = float(value)
            continue
        if not isinstance(value, int) or value < 1:
            raise LimitsError(f"{where} {name} must be a whole number of at least 1")
        if name == "source_chars" and value > MAX_SOURCE_CHARS_SETTING:
            raise LimitsError(f"{where} {name} can be at most {MAX_SOURCE_CHARS_SETTING:,}")
        if name in ("models_per_task", "rounds_per_task") and value > MAX_COUNT_SETTING:
            raise LimitsError(f"{where} {name} can be at most {MAX_COUNT_SETTING:,}")
        if name in ("nesting_depth", "json_output_depth") and value > MAX_NESTING_SETTING:
            raise LimitsError(f"{where} {name} can be at most {MAX_NESTING_SETTING} "
                              "(deeper input would exhaust Python's stack)")
        values[name] = value
    return replace(DEFAULTS, **values)


def configured_limits() -> tuple[Limits, str | None]:
    """The limits `bmad.toml` sets, and the problem with its `[limits]` table if there is one."""
    try:
        settings = read_settings()
        table = settings.data.get("limits")
        if table is None:
            return DEFAULTS, None
        return limits_from_table(table, settings.path), None
    except (SettingsError, LimitsError) as exc:
        return DEFAULTS, str(exc)


def current_limits() -> Limits:
    """The limits in force here: `use_limits(...)` if set, else `bmad.toml`'s, else the defaults."""
    override = _override.get()
    if override is not None:
        return override
    return configured_limits()[0]


@contextmanager
def use_limits(limits: Limits | None = None, **changes: Any) -> Iterator[Limits]:
    """Run a block with other limits (`use_limits(tasks_per_workflow=10)`)."""
    chosen = replace(limits or current_limits(), **changes)
    token = _override.set(chosen)
    try:
        yield chosen
    finally:
        _override.reset(token)


def providers_config_diagnostics() -> list[Diagnostic]:
    """A BMAD-E400 error when `bmad.toml`'s `[providers.*]` tables can't be used: above all, a key
    written in the file. The providers refuse such a file (`runtime/providers/keys.py`), so every
    compile reports it too: `bmad check` and `bmad plan` say what `bmad run` would refuse."""
    from bmad.compiler.settings import E_CONFIG, config_hint, config_path, key_line, providers_issue

    try:
        settings = read_settings()
    except SettingsError:  # the file itself: BMAD-E509 below
        return []
    if settings.path is None:
        return []
    issue = providers_issue(settings.data)
    if issue is None:
        return []
    problem = issue[0]
    line = key_line(settings.path) if problem.endswith(" holds a key") else 1
    span = ir.Span(str(config_path()), line, 1, line, 1, 0, 0)
    return [error(E_CONFIG, span, f"bmad.toml can't be used: {problem}", config_hint(problem))]


def limits_config_diagnostics() -> list[Diagnostic]:
    """A BMAD-E509 error when `bmad.toml`'s `[limits]` (or the file itself) can't be used, and
    a BMAD-E400 error when its `[providers.*]` tables can't be (`providers_config_diagnostics`):
    every problem with `bmad.toml` a compile reports."""
    found = providers_config_diagnostics()
    if _override.get() is not None:
        return found
    problem = configured_limits()[1]
    if problem is None:
        return found
    from bmad.compiler.settings import config_path

    span = ir.Span(str(config_path()), 1, 1, 1, 1, 0, 0)
    try:
        read_settings()
    except SettingsError:  # the file itself, not its [limits] table
        return found + [error(CONFIG_CODE, span, f"bmad.toml can't be read: {problem}",
                              "fix the file where the message points (TOML syntax); the default "
                              "limits apply until then")]
    return found + [error(CONFIG_CODE, span, f"the limits in bmad.toml can't be used: {problem}",
                          "fix the `[limits]` table (see docs/diagnostics.md, BMAD-E509); the "
                          "defaults apply until then")]


def program_limit_diagnostics(program: ir.Program, limits: Limits | None = None) -> list[Diagnostic]:
    """Limits on a whole program: tasks per workflow (BMAD-E500), and the counts of each task's
    clauses (BMAD-E507, `count_limit_diagnostics`)."""
    limits = limits or current_limits()
    found: list[Diagnostic] = []
    for workflow in program.workflows:
        if len(workflow.tasks) > limits.tasks_per_workflow:
            found.append(error(
                CODES["tasks_per_workflow"], workflow.name_span,
                f"workflow `{workflow.name}` has {len(workflow.tasks):,} tasks, more than the "
                f"limit of {limits.tasks_per_workflow:,}",
                "split it into workflows that call each other, use `for each` over a list, or "
                "raise `tasks_per_workflow` in bmad.toml's [limits]"))
            continue
        for task in workflow.tasks:
            found.extend(count_limit_diagnostics(task, limits))
    return found


def count_text(value: int) -> str:
    """A count as a message shows it: `1,000`; a number too long to read, by its first digits."""
    digits = str(value)
    if len(digits) <= 24:
        return f"{value:,}"
    return f"{digits[:4]}... ({len(digits):,} digits)"


def count_limit_diagnostics(task: ir.Task, limits: Limits | None = None) -> list[Diagnostic]:
    """BMAD-E507 for a count in `task` past its limit, at its clause: the models it asks
    (`among N models`, `best_of N`: `models_per_task`), its retries and rounds (`retry N`,
    `else retry N`, `else refine max N`, peer-review `rounds N`: `rounds_per_task`), and chunks
    larger than any `for each` list (`for_each_items`). Each count sizes the plan or the run (a
    participant, a try or a round apiece), so none may be absurd."""
    limits = limits or current_limits()
    found: list[Diagnostic] = []
    owner = f"task `{task.name}`"

    def report(span: ir.Span, clause: str, what: str, setting: str, fix: str) -> None:
        at = span if span != ir.NO_SPAN else task.name_span
        found.append(error("BMAD-E507", at, f"`{clause}` in {owner} {what}",
                           f"{fix} (or raise `{setting}` in bmad.toml's [limits])"))

    models = f"than the limit of {limits.models_per_task:,}"
    rounds = f"than the limit of {limits.rounds_per_task:,}"

    consensus = task.consensus
    if consensus is not None and not consensus.participants and consensus.count is not None \
            and consensus.count > limits.models_per_task:
        n = count_text(consensus.count)
        if consensus.method == "best_of":
            report(consensus.span, f"best_of {n}", f"asks for more answers {models}",
                   "models_per_task", "a few answers are enough, e.g. `best_of 3`")
        else:
            report(consensus.span, f"among {n} models", f"asks for more models {models}",
                   "models_per_task", "a few models are enough, e.g. `among 3 models`")
    if consensus is not None and consensus.rounds is not None and consensus.rounds > limits.rounds_per_task:
        report(consensus.span, f"rounds {count_text(consensus.rounds)}", f"asks for more review rounds {rounds}",
               "rounds_per_task", "one or two rounds are usual, e.g. `rounds 2`")
    retry = task.retry
    if retry is not None and retry.attempts - 1 > limits.rounds_per_task:
        report(retry.span, f"retry {count_text(retry.attempts - 1)}", f"allows more retries {rounds}",
               "rounds_per_task", "a few retries are enough, e.g. `retry 3`")
    quality = task.quality
    if quality is not None and quality.rounds is not None and quality.rounds > limits.rounds_per_task:
        written = "refine max" if quality.otherwise == "refine" else quality.otherwise or "retry"
        report(quality.span, f"else {written} {count_text(quality.rounds)}", f"allows more rounds {rounds}",
               "rounds_per_task", f"a few rounds are enough, e.g. `else {written} 3`")
    reduce = task.reduce
    if reduce is not None and reduce.chunk_size is not None and reduce.chunk_size > limits.for_each_items:
        report(reduce.span, f"in chunks of {count_text(reduce.chunk_size)}",
               f"is longer than any list a `for each` takes (at most {limits.for_each_items:,} items)",
               "for_each_items",
               "use smaller chunks, e.g. `in chunks of 10`, or drop `in chunks of` to reduce everything at once")
    return found


def json_nesting_exceeds(text: str, depth: int) -> bool:
    """Whether JSON-ish text nests `[`/`{` deeper than `depth` (strings skipped), checked before
    `json.loads`, whose recursion a deep enough text would exhaust."""
    level = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            if level > depth:
                return True
        elif ch in "]}":
            level = max(0, level - 1)
    return False


def yaml_limit_diagnostics(text: str, path: str, limits: Limits | None = None) -> list[Diagnostic]:
    """Size (BMAD-E008) and nesting (BMAD-E501) of a YAML document, checked on PyYAML's event
    stream (which does not recurse) before the composer (which does) builds any node."""
    import yaml

    from bmad.compiler.source_map import SourceMap

    limits = limits or current_limits()
    source_map = SourceMap(path, text)
    if len(text) > limits.source_chars:
        return [error(CODES["source_chars"], source_map.span(0, 0),
                      f"the file is too large to compile ({len(text):,} characters)",
                      f"keep workflow files under {limits.source_chars:,} characters (or raise "
                      "`source_chars` in bmad.toml's [limits])")]
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > limits.nesting_depth:
                    mark = event.start_mark
                    return [error(YAML_NESTING_CODE, source_map.span(mark.index, mark.index + 1),
                                  f"the YAML is nested more than {limits.nesting_depth} deep",
                                  "flatten the document; workflows need only a few levels (the "
                                  "limit is `nesting_depth` in bmad.toml's [limits])")]
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        return []  # not valid YAML: the front end reports it with its position (BMAD-E080)
    return []
