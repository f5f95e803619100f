"""The sealed plan: what `bmad plan` shows a reviewer and what `bmad run` executes exactly.

The optimizer passes (`compiler/passes/`) build it from a checked `Program`; the runtime reads it and
never re-plans unless asked (`--replan`). It carries the expanded program itself, so a plan file is
self-contained: the runtime needs nothing else but the environment's keys.

The JSON names below are a public contract (`bmad schema plan`): `plan_hash`, `ir_version`,
`workflow`, `budget`, `tasks`, `totals`, `critical_path`, `stages` and the per-task fields.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import Any, Literal

from bmad.compiler import ir, ir_codec

PLAN_VERSION = "1"

# Tries per model call of a task without a `retry` clause (the first try and 2 retries): the
# runtime's retry policy (runtime/retry.py) and the planner's worst case read this one number.
DEFAULT_ATTEMPTS = 3


def format_latency(seconds: float) -> str:
    """An estimated latency as every view of a plan shows it (the totals, BMAD-W213): 0.7s."""
    return f"{seconds:.1f}s"


def format_seconds(seconds: float) -> str:
    """A time budget as written: 2s, 1.5s, 90s."""
    return f"{seconds:g}s"


class PlanFormatError(ir_codec.DataFormatError):
    """A plan file that isn't a sealed plan bmad can read: wrong JSON shapes, unknown keys, a value
    of the wrong type. `path` says where (`tasks[0].estimate`); `str()` is `PATH: PROBLEM`."""


@dataclass(frozen=True, slots=True)
class Estimate:
    cost_usd_expected: float | None = 0.0  # None: a model without a price is involved
    cost_usd_worst: float | None = 0.0
    tokens_expected: int = 0
    tokens_worst: int = 0
    latency_s: float = 0.0
    calls_expected: float = 0.0
    calls_worst: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One model the router considered for a task, and what it expected of it."""

    model: str
    provider: str
    available: bool
    qualified: bool
    expected_quality: float | None
    cost_usd_expected: float | None
    latency_s: float | None
    reason: str = ""  # why it was excluded, or "chosen"


@dataclass(frozen=True, slots=True)
class TaskPlan:
    id: str
    kind: str = "prompt"  # "prompt" or "call" (a subworkflow)
    model: str | None = None  # the routed model (None for calls; the first participant for consensus)
    participants: tuple[str, ...] = ()  # consensus / best_of / peer_review members, in order
    # How the participants' answers are decided when the plan itself made the task a panel
    # (`strategy collaborative` on a task without a consensus form: "vote" for exact answers,
    # "similarity" for text); None when the task's own consensus form decides, or it has none.
    method: str | None = None
    judge: str | None = None  # quality judge, consensus judge or ensemble synthesiser
    route_reason: str = ""
    route_rule: str = ""  # objective:cost | pinned | route:cascade | fallback:local ...
    candidates: tuple[Candidate, ...] = ()
    fallbacks: tuple[str, ...] = ()  # ordered chain tried after `model` fails
    cascade: tuple[str, ...] = ()  # `route cascade` / `else escalate` order (cheapest first)
    quality_floor: float | None = None
    expected_quality: float | None = None
    estimate: Estimate = field(default_factory=Estimate)
    depends: tuple[str, ...] = ()
    stage: int = 0
    rank: int = 0
    fan_out: int | None = None  # expected items for `for each` (None: not a fan-out)
    on_critical_path: bool = False
    subworkflow: str | None = None  # kind == "call": the called workflow's name in `subplans`
    downgraded_from: str | None = None  # set when enforce_budget moved the task to a cheaper model

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["model"] = list(self.participants) if self.participants else self.model
        d["candidates"] = [asdict(c) for c in self.candidates]
        d["estimate"] = asdict(self.estimate)
        for k in ("participants", "fallbacks", "cascade", "depends"):
            d[k] = list(d[k])
        d["routed_model"] = self.model
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> "TaskPlan":
        """A task plan from its JSON (`PlanFormatError` when malformed)."""
        return _checked(lambda: _task_from_json(d, [])[0])


@dataclass(frozen=True, slots=True)
class WorkflowPlan:
    """The planned tasks of one workflow (the entry one, or one called as a subworkflow)."""

    workflow: str
    tasks: tuple[TaskPlan, ...] = ()
    totals: Estimate = field(default_factory=Estimate)
    critical_path: tuple[str, ...] = ()
    stages: tuple[tuple[str, ...], ...] = ()

    def task(self, task_id: str) -> TaskPlan | None:
        for t in self.tasks:
            if t.id == task_id:
                return t
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "tasks": [t.to_json() for t in self.tasks],
            "totals": asdict(self.totals),
            "critical_path": list(self.critical_path),
            "stages": [list(s) for s in self.stages],
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> "WorkflowPlan":
        """A workflow plan from its JSON (`PlanFormatError` when malformed)."""
        return _checked(lambda: _workflow_from_json(d, [], WORKFLOW_KEYS, []))


@dataclass(frozen=True, slots=True)
class PlanBudget:
    usd: float | None = None
    tokens: int | None = None
    time_s: float | None = None


@dataclass(frozen=True, slots=True)
class PlanNote:
    """A warning or risk the reviewer should see (also kept as a diagnostic code)."""

    code: str
    severity: str
    message: str
    task: str | None = None
    kind: str = "warning"  # warning | risk | info (e.g. which price file priced the plan)


@dataclass(frozen=True, slots=True)
class Plan:
    workflow: str
    program: ir.Program  # the expanded program the runtime executes
    entry: WorkflowPlan
    subplans: tuple[WorkflowPlan, ...] = ()
    budget: PlanBudget = field(default_factory=PlanBudget)
    objective: str = "balanced"
    strategy: str = "parallel"
    scheduling: str = "priority_first"
    provider_mode: str | None = None  # "sim" when planned with --provider sim
    sources: dict[str, str] = field(default_factory=dict)  # file -> sha256 of its text
    # The user-level price override (`bmad models --prices`) the plan was priced with, one of
    # `sources`; None: the catalog's and the program's own prices. Written only when set.
    prices: str | None = None
    notes: tuple[PlanNote, ...] = ()
    provider_concurrency: dict[str, int] = field(default_factory=dict)
    history_used: bool = False
    passes: tuple[str, ...] = ()
    plan_hash: str = ""
    ir_version: str = ir.IR_VERSION
    plan_version: str = PLAN_VERSION
    # Read from a plan file: displayed values that disagree with what runs (`verify_plan`: E220).
    # Not part of the plan itself: not written, not hashed, not compared.
    inconsistencies: tuple[str, ...] = field(default=(), compare=False, repr=False)

    # Convenience views used by the CLI and the runtime
    @property
    def tasks(self) -> tuple[TaskPlan, ...]:
        return self.entry.tasks

    @property
    def totals(self) -> Estimate:
        return self.entry.totals

    def subplan(self, workflow: str) -> WorkflowPlan | None:
        if workflow == self.entry.workflow:
            return self.entry
        for s in self.subplans:
            if s.workflow == workflow:
                return s
        return None

    def to_json(self) -> dict[str, Any]:
        body = self.entry.to_json()
        return {
            "plan_version": self.plan_version,
            "ir_version": self.ir_version,
            "plan_hash": self.plan_hash,
            "workflow": self.workflow,
            "budget": asdict(self.budget),
            "objective": self.objective,
            "strategy": self.strategy,
            "scheduling": self.scheduling,
            "provider_mode": self.provider_mode,
            "tasks": body["tasks"],
            "totals": body["totals"],
            "critical_path": body["critical_path"],
            "stages": body["stages"],
            "subplans": [s.to_json() for s in self.subplans],
            "notes": [asdict(n) for n in self.notes],
            "provider_concurrency": dict(sorted(self.provider_concurrency.items())),
            "history_used": self.history_used,
            "passes": list(self.passes),
            "sources": dict(sorted(self.sources.items())),
            **({"prices": self.prices} if self.prices is not None else {}),
            "program": ir_codec.to_data(self.program),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, indent=2, ensure_ascii=False)

    @staticmethod
    def from_json(d: Any) -> "Plan":
        """The plan a `plan.json` holds (`json.loads` of it).

        Anything malformed (a wrong JSON type anywhere, an unknown or missing key, a value outside
        its allowed set) raises `PlanFormatError`, a ValueError saying where: never an
        AttributeError or TypeError from deeper down. Displayed fields that repeat what runs (a
        task's `model`, shown next to `routed_model`) and disagree with it are kept in
        `inconsistencies` for `verify_plan` to report (BMAD-E220).
        """
        return _checked(lambda: _plan_from_json(d))


# ---------------------------------------------------------------------------------------------
# Reading plan JSON, checked


@cache
def _plan_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _conv(hint: Any):
    return ir_codec.converter(hint, _plan_hints)


_TASK_KINDS = Literal["prompt", "call"]
_SCHEDULING = Literal["priority_first", "cost_optimized", "latency_optimized", "balanced"]
TASK_KEYS = frozenset(f.name for f in fields(TaskPlan)) | {"routed_model"}
WORKFLOW_KEYS = frozenset(("workflow", "tasks", "totals", "critical_path", "stages"))
PLAN_KEYS = WORKFLOW_KEYS | {
    "plan_version", "ir_version", "plan_hash", "budget", "objective", "strategy", "scheduling",
    "provider_mode", "subplans", "notes", "provider_concurrency", "history_used", "passes", "sources",
    "prices", "program"}


def _checked(build):
    try:
        return build()
    except PlanFormatError:
        raise
    except ir_codec.DataFormatError as exc:
        raise PlanFormatError(exc.problem, exc.parts) from None
    except RecursionError:
        raise PlanFormatError("the JSON nests too deeply to be a plan") from None


def _object(d: Any, keys: frozenset[str], required: tuple[str, ...], what: str) -> dict[str, Any]:
    if type(d) is not dict:
        raise ir_codec.DataFormatError(f"expected {what}, got {ir_codec.describe(d)}")
    ir_codec.check_keys(d, keys, required)
    return d


def _get(d: dict[str, Any], key: str, hint: Any, default: Any = None) -> Any:
    return ir_codec.at_part(key, _conv(hint), d[key]) if key in d else default


def _items(d: dict[str, Any], key: str, read) -> tuple[Any, ...]:
    """A list under `key`, each item read by `read(item, parts)`."""
    value = d.get(key, [])
    if type(value) is not list:
        raise ir_codec.DataFormatError(f"expected a list, got {ir_codec.describe(value)}", [key])
    return ir_codec.at_part(key, lambda items: tuple(
        ir_codec.at_part(i, lambda item: read(item, [key, i]), item) for i, item in enumerate(items)), value)


def _task_from_json(d: Any, parts: list[str | int]) -> tuple[TaskPlan, str | None]:
    """A task plan, and what its displayed `model` says if that disagrees with what runs."""
    _object(d, TASK_KEYS, ("id",), "a task plan (a JSON object)")
    hints = _plan_hints(TaskPlan)
    kw: dict[str, Any] = {}
    for f in fields(TaskPlan):
        if f.name != "model" and f.name in d:
            kw[f.name] = _get(d, f.name, _TASK_KINDS if f.name == "kind" else hints[f.name])
    shown = _get(d, "model", str | list[str] | None)
    kw["model"] = _get(d, "routed_model", str | None) if "routed_model" in d \
        else (shown if isinstance(shown, str) else None)
    task = TaskPlan(**kw)
    problem = None
    if "model" in d:
        runs: Any = list(task.participants) if task.participants else task.model
        if "routed_model" not in d and isinstance(shown, list) and "participants" not in d:
            runs = shown  # an old plan without `routed_model`: `model` alone names them
        if shown != runs:
            where = ir_codec.format_path([*parts, "model"])
            problem = (f"{where} shows {json.dumps(shown)}, but the task runs "
                       + (f"with participants {json.dumps(runs)}" if task.participants
                          else f"on {json.dumps(runs)} (routed_model)"))
    return task, problem


def _workflow_from_json(d: Any, parts: list[str | int], keys: frozenset[str],
                        problems: list[str]) -> WorkflowPlan:
    _object(d, keys, ("workflow",), "a workflow plan (a JSON object)")

    def task(item: Any, at: list[str | int]) -> TaskPlan:
        plan, problem = _task_from_json(item, [*parts, *at])
        if problem:
            problems.append(problem)
        return plan

    return WorkflowPlan(
        workflow=_get(d, "workflow", str),
        tasks=_items(d, "tasks", task),
        totals=_get(d, "totals", Estimate, Estimate()),
        critical_path=_get(d, "critical_path", tuple[str, ...], ()),
        stages=_get(d, "stages", tuple[tuple[str, ...], ...], ()),
    )


def _plan_from_json(d: Any) -> Plan:
    _object(d, PLAN_KEYS, ("workflow", "program"), "a JSON object")
    version = _get(d, "plan_version", str, PLAN_VERSION)
    if version != PLAN_VERSION:
        raise ir_codec.DataFormatError(f"this bmad reads version {PLAN_VERSION} plans, not {version!r}",
                                       ["plan_version"])
    problems: list[str] = []
    entry = _workflow_from_json({k: d[k] for k in WORKFLOW_KEYS if k in d}, [], WORKFLOW_KEYS, problems)
    subplans = _items(d, "subplans", lambda item, at: _workflow_from_json(item, at, WORKFLOW_KEYS, problems))
    program = _get(d, "program", ir.Program)
    return Plan(
        workflow=entry.workflow,
        program=program,
        entry=entry,
        subplans=subplans,
        budget=_get(d, "budget", PlanBudget, PlanBudget()),
        objective=_get(d, "objective", ir.Objective, "balanced"),
        strategy=_get(d, "strategy", ir.Strategy, "parallel"),
        scheduling=_get(d, "scheduling", _SCHEDULING, "priority_first"),
        provider_mode=_get(d, "provider_mode", str | None),
        sources=_get(d, "sources", dict[str, str], {}),
        prices=_get(d, "prices", str | None),
        notes=_get(d, "notes", tuple[PlanNote, ...], ()),
        provider_concurrency=_get(d, "provider_concurrency", dict[str, int], {}),
        history_used=_get(d, "history_used", bool, False),
        passes=_get(d, "passes", tuple[str, ...], ()),
        plan_hash=_get(d, "plan_hash", str, ""),
        ir_version=_get(d, "ir_version", str, ir.IR_VERSION),
        plan_version=version,
        inconsistencies=tuple(problems),
    )
