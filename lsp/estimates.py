"""Routed model and estimated cost per task, from the optimizer's passes (never a model call).

Hover and inlay hints read these. Planning runs on the last program that compiled, once per program
(cached on the document), and anything the passes raise is swallowed: without a plan the editor
simply shows less.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from bmad.compiler import ir
from bmad.compiler.plan import Plan, TaskPlan
from bmad.lsp.documents import Document

log = logging.getLogger(__name__)


def plan_for(doc: Document) -> Plan | None:
    program = doc.program
    if program is None or program.entry is None:
        return None
    key = f"plan:{id(program)}"
    if key in doc.plan_cache:
        return doc.plan_cache[key]
    plan = None
    try:
        from bmad.compiler.passes import plan_program
        from bmad.compiler.passes.context import make_context

        plan, _diagnostics = plan_program(program, make_context(program, environment=dict(os.environ)))
    except Exception:  # planning is a bonus in the editor; a pass failure must not surface here
        log.debug("planning failed for %s", doc.uri, exc_info=True)
        plan = None
    doc.plan_cache.clear()
    doc.plan_cache[key] = plan
    return plan


def task_plan(doc: Document, workflow: str | None, task: str) -> TaskPlan | None:
    plan = plan_for(doc)
    if plan is None:
        return None
    wp = plan.subplan(workflow) if workflow else plan.entry
    if wp is None:
        return None
    return wp.task(task)


def format_usd(value: float | None) -> str:
    if value is None:
        return "unknown (a model without a price)"
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.4f}"
    return f"${value:.2f}"


def budget_diagnostics(program: ir.Program) -> list[Any]:
    """The cheap passes' feasibility diagnostics (`check_plan`), or none if they fail."""
    try:
        from bmad.compiler.passes import check_plan
    except Exception:
        return []
    try:
        return list(check_plan(program))
    except Exception:
        log.debug("check_plan failed", exc_info=True)
        return []
