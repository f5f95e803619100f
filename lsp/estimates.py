"""Routed model and estimated cost per task, from the optimizer's passes (never a model call).

Hover and inlay hints read these. Planning runs on the last program that compiled, once per program
(cached on the document; new versions are planned in the background, the last plan answering
meanwhile), and anything the passes raise is swallowed: without a plan the editor simply shows less.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bmad.compiler import ir, money
from bmad.compiler.plan import Plan, TaskPlan
from bmad.lsp.documents import Document

log = logging.getLogger(__name__)


def plan_for(doc: Document) -> Plan | None:
    """The plan of the document's program. The first one is made on the spot; after that, a new
    version's plan is made in the background once typing pauses, and the last plan answers
    meanwhile (planning a 10,000-line workflow takes ~0.5 s: on the request path it would hold up
    every message behind it, the next diagnostics included)."""
    program = doc.program
    if program is None or program.entry is None:
        return None
    cache = doc.plan_cache
    if cache.get("program") is program:
        return cache.get("plan")
    if "plan" not in cache:
        _store(doc, program, _make_plan(program, doc.uri))
        return cache["plan"]
    if cache.get("pending") is not program:
        cache["pending"] = program
        _planner.submit(_plan_when_quiet, doc, program)
    return cache["plan"]


_planner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bmad-plan")
PLAN_QUIET_S = 0.5


def _plan_when_quiet(doc: Document, program: ir.Program) -> None:
    time.sleep(PLAN_QUIET_S)  # not while the user types: each version would be stale at once
    if doc.program is not program or doc.plan_cache.get("pending") is not program:
        return
    _store(doc, program, _make_plan(program, doc.uri))


def _store(doc: Document, program: ir.Program, plan: Plan | None) -> None:
    cache = doc.plan_cache  # written here and by the planner thread: single-key steps only
    cache["plan"] = plan
    cache["program"] = program
    if cache.get("pending") is program:
        cache.pop("pending", None)


def _make_plan(program: ir.Program, uri: str) -> Plan | None:
    try:
        from bmad.compiler.passes import plan_program
        from bmad.compiler.passes.context import make_context

        plan, _diagnostics = plan_program(program, make_context(program, environment=dict(os.environ)))
        return plan
    except Exception:  # planning is a bonus in the editor; a pass failure must not surface here
        log.debug("planning failed for %s", uri, exc_info=True)
        return None


def task_plan(doc: Document, workflow: str | None, task: str) -> TaskPlan | None:
    plan = plan_for(doc)
    if plan is None:
        return None
    wp = plan.subplan(workflow) if workflow else plan.entry
    if wp is None:
        return None
    return wp.task(task)


def format_usd(value: float | None) -> str:
    return money.format_usd(value, unknown="unknown (a model without a price)")


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
