"""The plan under construction: what the passes read and annotate, workflow by workflow.

`Draft` carries the (expanding) program, one `WorkflowDraft` per workflow to plan (callees before
callers, so a call task can use its callee's totals), the diagnostics and the reviewer notes. Each
`TaskDraft` accumulates its `TaskPlan` (frozen; passes replace it) plus the token shape of one
call that the estimator and the router share.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import networkx as nx

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic
from bmad.compiler.plan import Estimate, Plan, PlanBudget, PlanNote, TaskPlan


_TASK_PLAN_FIELDS = tuple(f.name for f in fields(TaskPlan))
_TASK_PLAN_FIELD_SET = frozenset(_TASK_PLAN_FIELDS)
_new_object = object.__new__
_set_field = object.__setattr__  # how a frozen dataclass's own __init__ sets its fields


def revise(plan: TaskPlan, **changes) -> TaskPlan:
    """`dataclasses.replace` for a TaskPlan, about twice as fast: the passes revise every task's
    plan several times, and on a 10k-task workflow `replace`'s per-call introspection shows.
    (TaskPlan has no `__post_init__` to skip.)"""
    unknown = changes.keys() - _TASK_PLAN_FIELD_SET
    if unknown:  # as `replace` would: a misspelt field must not be dropped silently
        raise TypeError(f"TaskPlan has no field(s) {', '.join(sorted(unknown))}")
    new = _new_object(TaskPlan)
    for name in _TASK_PLAN_FIELDS:
        _set_field(new, name, changes[name] if name in changes else getattr(plan, name))
    return new


@dataclass(slots=True)
class CallShape:
    """Tokens of one model call of a task (before multiplying by rounds, participants, fan-out)."""

    input_expected: float = 0.0
    input_worst: float = 0.0
    output_expected: float = 0.0
    output_worst: float = 0.0


@dataclass(slots=True)
class TaskDraft:
    task: ir.Task
    plan: TaskPlan
    needs: tuple[str, ...] = ()
    shape: CallShape = field(default_factory=CallShape)
    # output tokens this task hands downstream: per item, and in all (x fan-out)
    item_expected: float = 0.0
    item_worst: float = 0.0
    yield_expected: float = 0.0
    yield_worst: float = 0.0
    evaluated: dict = field(default_factory=dict)  # model name -> Candidate, filled by the router
    reduce_items: int = 1  # `reduce`: how many items the source list holds
    pinned: bool = False
    routed_by_fallback: bool = False
    # cascade members history took out (model -> why): not re-added as automatic fallbacks
    cascade_skipped: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.task.name


@dataclass(slots=True)
class WorkflowDraft:
    workflow: ir.Workflow
    tasks: dict[str, TaskDraft] = field(default_factory=dict)  # in source order
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    order: list[str] = field(default_factory=list)  # a topological order
    generations: list[list[str]] = field(default_factory=list)
    objective: str = "balanced"
    budget: PlanBudget = field(default_factory=PlanBudget)
    budget_span: ir.Span = ir.NO_SPAN
    # the kinds of `budget` ("usd", "tokens", "time_s") the run's `--budget` set, not the file
    budget_from_run: frozenset[str] = frozenset()
    totals: Estimate = field(default_factory=Estimate)
    critical_path: tuple[str, ...] = ()
    stages: tuple[tuple[str, ...], ...] = ()
    # the run is `strategy sequential`: the runtime runs this workflow's tasks one at a time, so
    # its latency is their sum and every task is on its critical path
    sequential: bool = False

    @property
    def name(self) -> str:
        return self.workflow.name


@dataclass(slots=True)
class Draft:
    program: ir.Program
    entry: str
    strategy: str = "parallel"  # the run's: the context's override, else the entry workflow's
    workflows: dict[str, WorkflowDraft] = field(default_factory=dict)  # callees first
    diagnostics: list[Diagnostic] = field(default_factory=list)
    notes: list[PlanNote] = field(default_factory=list)
    passes: list[str] = field(default_factory=list)
    provider_concurrency: dict[str, int] = field(default_factory=dict)
    plan: Plan | None = None
    needs_local: bool = False  # some task fell back to the embedded model
    # the router's memo: candidates and rankings per task signature (many tasks share one)
    routing_cache: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def note(self, code: str, severity: str, message: str, task: str | None = None,
             kind: str = "warning") -> None:
        item = PlanNote(code=code, severity=severity, message=message, task=task, kind=kind)
        if item not in self.notes:
            self.notes.append(item)

    def report(self, diagnostic: Diagnostic, task: str | None = None) -> None:
        if diagnostic not in self.diagnostics:
            self.diagnostics.append(diagnostic)
        if diagnostic.severity == "warning":
            self.note(diagnostic.code, "warning", diagnostic.message, task)
