"""Seal the plan: build the `Plan` and its hash, and verify a sealed plan before running it.

The hash is sha256 over canonical JSON of everything that affects execution: the expanded program
without spans (`ir_codec.to_data(..., spans=False)`), the catalog entries (model and provider
declarations) the tasks use, every task plan except its explanations (`candidates`,
`route_reason`), budget, objective, strategy, scheduling, provider mode and concurrency, and the
sha256 of each source file. Notes and the list of passes are for people and are not hashed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bmad.compiler import ir, ir_codec
from bmad.compiler.diagnostics import Diagnostic, error
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, WorkflowDraft
from bmad.compiler.plan import Plan, WorkflowPlan

UNHASHED_PLAN_KEYS = ("plan_hash", "notes", "passes", "history_used")
UNHASHED_TASK_KEYS = ("candidates", "route_reason")


def _task_payload(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k not in UNHASHED_TASK_KEYS}


def _used_models(plan: Plan) -> list[str]:
    names: set[str] = set()
    for wp in (plan.entry, *plan.subplans):
        for t in wp.tasks:
            names.update(m for m in (t.model, t.judge, *t.participants, *t.fallbacks, *t.cascade) if m)
    return sorted(names)


def hash_payload(plan: Plan) -> dict[str, Any]:
    data = plan.to_json()
    payload = {k: v for k, v in data.items() if k not in UNHASHED_PLAN_KEYS}
    payload["tasks"] = [_task_payload(t) for t in data["tasks"]]
    payload["subplans"] = [{**s, "tasks": [_task_payload(t) for t in s["tasks"]]} for s in data["subplans"]]
    payload["program"] = ir_codec.to_data(plan.program, spans=False)
    catalog = {}
    for name in _used_models(plan):
        model = plan.program.model(name)
        if model is not None:
            provider = plan.program.provider(model.provider.name)
            catalog[name] = {"model": ir_codec.to_data(model, spans=False),
                             "provider": ir_codec.to_data(provider, spans=False)}
    payload["catalog"] = catalog
    return payload


def compute_plan_hash(plan: Plan) -> str:
    text = json.dumps(hash_payload(plan), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _workflow_plan(wd: WorkflowDraft) -> WorkflowPlan:
    return WorkflowPlan(workflow=wd.name, tasks=tuple(td.plan for td in wd.tasks.values()),
                        totals=wd.totals, critical_path=wd.critical_path, stages=wd.stages)


def seal_plan(draft: Draft, context: PassContext) -> Draft:
    entry = draft.workflows.get(draft.entry)
    if entry is None or draft.failed:
        return draft
    plan = Plan(
        workflow=entry.name,
        program=draft.program,
        entry=_workflow_plan(entry),
        subplans=tuple(_workflow_plan(wd) for name, wd in draft.workflows.items() if name != draft.entry),
        budget=entry.budget,
        objective=entry.objective,
        strategy=entry.workflow.strategy or "parallel",
        scheduling=context.scheduling,
        provider_mode=context.provider_mode,
        sources={f.path: f.sha256 for f in draft.program.files},
        notes=tuple(draft.notes),
        provider_concurrency=dict(sorted(draft.provider_concurrency.items())),
        history_used=context.history is not None,
        passes=tuple(draft.passes) + ("seal_plan",),
    )
    draft.plan = ir.replace(plan, plan_hash=compute_plan_hash(plan))
    return draft


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def verify_plan(plan: Plan, current_sources: dict[str, str] | None = None) -> list[Diagnostic]:
    """Problems that make a sealed plan unsafe to run: a hash that doesn't verify, a changed source.

    `current_sources` maps each source path to its text now; None reads the files from disk.
    """
    problems: list[Diagnostic] = []
    first = next(iter(plan.sources), "<plan>")
    if compute_plan_hash(plan) != plan.plan_hash:
        problems.append(error("BMAD-E220", ir.Span.unknown(first),
                              "the plan's hash doesn't verify: the plan file was edited after it was sealed",
                              "plan again with `bmad plan FILE -o plan.json`, or run with --replan"))
    for path, recorded in sorted(plan.sources.items()):
        if current_sources is not None and path in current_sources:
            text = current_sources[path]
        else:
            try:
                from bmad.compiler.load import stdlib_file  # `<std>/NAME.bmad` -> the installed file

                text = Path(stdlib_file(path) or path).read_text(encoding="utf-8")
            except OSError:
                problems.append(error("BMAD-E222", ir.Span.unknown(path),
                                      f"{path}, planned from, no longer exists",
                                      "plan again, or run with --replan"))
                continue
        if _sha256(text) != recorded:
            problems.append(error("BMAD-E221", ir.Span.unknown(path),
                                  f"{path} changed since this plan was made",
                                  "review a new plan (`bmad plan`), or run with --replan"))
    return problems
