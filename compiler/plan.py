"""The sealed plan: what `bmad plan` shows a reviewer and what `bmad run` executes exactly.

The optimizer passes (`compiler/passes/`) build it from a checked `Program`; the runtime reads it and
never re-plans unless asked (`--replan`). It carries the expanded program itself, so a plan file is
self-contained: the runtime needs nothing else but the environment's keys.

The JSON names below are a public contract (`bmad schema plan`): `plan_hash`, `ir_version`,
`workflow`, `budget`, `tasks`, `totals`, `critical_path`, `stages` and the per-task fields.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bmad.compiler import ir, ir_codec

PLAN_VERSION = "1"


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
        kw = {f.name: d.get(f.name) for f in fields(TaskPlan) if f.name in d}
        kw["model"] = d.get("routed_model", d.get("model") if isinstance(d.get("model"), str) else None)
        kw["candidates"] = tuple(Candidate(**c) for c in d.get("candidates", ()))
        kw["estimate"] = Estimate(**d.get("estimate", {}))
        for k in ("participants", "fallbacks", "cascade", "depends"):
            kw[k] = tuple(d.get(k, ()))
        return TaskPlan(**kw)


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
        return WorkflowPlan(
            workflow=d["workflow"],
            tasks=tuple(TaskPlan.from_json(t) for t in d.get("tasks", ())),
            totals=Estimate(**d.get("totals", {})),
            critical_path=tuple(d.get("critical_path", ())),
            stages=tuple(tuple(s) for s in d.get("stages", ())),
        )


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
    notes: tuple[PlanNote, ...] = ()
    provider_concurrency: dict[str, int] = field(default_factory=dict)
    history_used: bool = False
    passes: tuple[str, ...] = ()
    plan_hash: str = ""
    ir_version: str = ir.IR_VERSION
    plan_version: str = PLAN_VERSION

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
            "program": ir_codec.to_data(self.program),
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, indent=2, ensure_ascii=False)

    @staticmethod
    def from_json(d: dict[str, Any]) -> "Plan":
        entry = WorkflowPlan.from_json({"workflow": d["workflow"], **{
            k: d.get(k) for k in ("tasks", "totals", "critical_path", "stages") if k in d}})
        return Plan(
            workflow=d["workflow"],
            program=ir_codec.from_data(d["program"]),
            entry=entry,
            subplans=tuple(WorkflowPlan.from_json(s) for s in d.get("subplans", ())),
            budget=PlanBudget(**d.get("budget", {})),
            objective=d.get("objective", "balanced"),
            strategy=d.get("strategy", "parallel"),
            scheduling=d.get("scheduling", "priority_first"),
            provider_mode=d.get("provider_mode"),
            sources=dict(d.get("sources", {})),
            notes=tuple(PlanNote(**n) for n in d.get("notes", ())),
            provider_concurrency=dict(d.get("provider_concurrency", {})),
            history_used=bool(d.get("history_used", False)),
            passes=tuple(d.get("passes", ())),
            plan_hash=d.get("plan_hash", ""),
            ir_version=d.get("ir_version", ir.IR_VERSION),
            plan_version=d.get("plan_version", PLAN_VERSION),
        )
