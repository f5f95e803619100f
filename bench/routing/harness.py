"""Runs a bench workflow over a split through bmad itself, in-process: compile (with the replay
provider pointed at the split), plan (with or without a journal's history), execute with the
durable interpreter and journal, then read back each item's answer, cost and escalation."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bmad.compiler.compile import compile_file
from bmad.compiler.history import ModelHistory
from bmad.compiler.passes import make_context, plan_program
from bmad.compiler.plan import Plan
from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.history import read_history
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.journal import ROWS_OF_RUN, Journal

from bmad.bench.routing.split import INPUT_OF_EVAL, Item

HERE = Path(__file__).resolve().parent
MODELS_FILE = HERE / "models.bmad"
_DATA_LINE = re.compile(r'^(\s*data\s+)"[^"]*"', re.M)
_ITEM_SLOT = re.compile(r"^i(\d+)/")


class BenchError(Exception):
    """A workflow did not compile, plan or run: the message says why."""


@dataclass(slots=True)
class ItemOutcome:
    answer: Any
    cost: float = 0.0
    escalated: bool = False
    models: list[str] = field(default_factory=list)


@dataclass(slots=True)
class WorkflowRun:
    run_id: str
    status: str
    spent_usd: float
    outcomes: dict[str, ItemOutcome]  # item id -> outcome
    participants: dict[str, tuple[str, ...]]  # task -> the models the plan chose


def plan_workflow(workflow: Path, data: Path, history: ModelHistory | None) -> Plan:
    """Compile `workflow` with models.bmad's replay data pointed at `data`, and plan it."""
    models_text = _DATA_LINE.sub(lambda m: f'{m.group(1)}"{data.resolve().as_posix()}"',
                                 MODELS_FILE.read_text(encoding="utf-8"), count=1)
    result = compile_file(workflow, extra_sources={str(MODELS_FILE): models_text})
    if not result.ok or result.program is None:
        raise BenchError(f"{workflow.name}: " + "; ".join(d.message for d in result.errors))
    context = make_context(result.program, history=history)
    plan, diagnostics = plan_program(result.program, context)
    if plan is None:
        raise BenchError(f"{workflow.name}: " + "; ".join(d.message for d in diagnostics
                                                          if d.is_error))
    return plan


def history_from(journal_path: Path) -> ModelHistory | None:
    journal = Journal(journal_path, readonly=True)
    try:
        history = read_history(journal)
    finally:
        journal.db.close()
    return None if history.empty else history


def run_workflow(workflow: Path, items: list[Item], data: Path, journal_path: Path,
                 history: ModelHistory | None = None, concurrency: int = 64) -> WorkflowRun:
    plan = plan_workflow(workflow, data, history)
    program_workflow = plan.program.workflow(plan.workflow)
    declared = {i.name for i in program_workflow.inputs} if program_workflow else set()
    inputs: dict[str, list[str]] = defaultdict(list)
    order: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        name = INPUT_OF_EVAL.get(item.dataset)
        if name not in declared:
            raise BenchError(f"{workflow.name} has no input `{name}` for {item.dataset} prompts")
        inputs[name].append(item.prompt)
        order[name].append(item)
    outcome = execute_plan(plan, RunRequest(inputs=dict(inputs), journal_path=journal_path,
                                            config=RunConfig(concurrency=concurrency)))
    if outcome.status != "completed":
        raise BenchError(f"{workflow.name}: run {outcome.run_id} {outcome.status}: {outcome.error}")
    task_of_input = _tasks_by_input(plan)
    outcomes: dict[str, ItemOutcome] = {}
    for name, its in order.items():
        task = task_of_input.get(name)
        answers = outcome.outputs.get(task) if task else None
        for k, item in enumerate(its):
            value = answers[k] if isinstance(answers, list) and k < len(answers) else None
            outcomes[item.id] = ItemOutcome(value)
    journal = Journal(journal_path, readonly=True)
    try:
        for row in journal.db.execute("SELECT task_id, slot, model, cost_usd FROM calls "
                                      f"WHERE {ROWS_OF_RUN} AND status='ok'",
                                      journal.rows_of(outcome.run_id)):
            task, slot, model, cost = row
            m = _ITEM_SLOT.match(slot or "")
            name = next((n for n, t in task_of_input.items() if t == task), None)
            if m is None or name is None or int(m.group(1)) >= len(order[name]):
                continue
            item_outcome = outcomes[order[name][int(m.group(1))].id]
            item_outcome.cost += cost or 0.0
            item_outcome.models.append(model)
            if "/esc" in slot:
                item_outcome.escalated = True
    finally:
        journal.db.close()
    participants = {t.id: (t.participants or ((t.model,) if t.model else ()))
                    for t in plan.entry.tasks}
    return WorkflowRun(outcome.run_id, outcome.status, outcome.spent_usd, outcomes, participants)


def _tasks_by_input(plan: Plan) -> dict[str, str]:
    """input name -> the `for each` task over it."""
    workflow = plan.program.workflow(plan.workflow)
    out: dict[str, str] = {}
    for task in workflow.tasks if workflow else ():
        source = task.for_each.source if task.for_each is not None else None
        root = getattr(source, "root", None)
        if root:
            out[root] = task.name
    return out
