"""Semantic checks over a lowered Program: one module per concern, run in the order of `CHECKS`.

Every check takes the `ProgramIndex` (name tables built once) and returns its diagnostics; all of
them run, so one compilation reports every problem. Codes BMAD-E100..E199 and BMAD-W100..W199 are
documented in docs/diagnostics.md.
"""

from __future__ import annotations

import gc

from bmad.compiler import ir
from bmad.compiler.checks.calls import check_calls
from bmad.compiler.checks.conditions import check_conditions
from bmad.compiler.checks.consensus import check_consensus
from bmad.compiler.checks.cycles import check_task_cycles, check_workflow_cycles
from bmad.compiler.checks.defaults import check_defaults
from bmad.compiler.checks.duplicates import check_duplicates
from bmad.compiler.checks.loop_conditions import check_loop_conditions
from bmad.compiler.checks.loops import check_loops
from bmad.compiler.checks.models import check_models
from bmad.compiler.checks.parallel import check_parallel
from bmad.compiler.checks.providers import check_providers
from bmad.compiler.checks.quality_gates import check_quality_gates
from bmad.compiler.checks.reduce_prompts import check_reduce_prompts
from bmad.compiler.checks.references import check_references
from bmad.compiler.checks.schemas import check_schemas
from bmad.compiler.checks.scope import build_index
from bmad.compiler.checks.templates import check_templates
from bmad.compiler.checks.usage import check_usage
from bmad.compiler.checks.values import check_values
from bmad.compiler.diagnostics import Diagnostic, sort_diagnostics

CHECKS = (
    check_duplicates,
    check_references,
    check_templates,
    check_conditions,
    check_loops,
    check_reduce_prompts,
    check_loop_conditions,
    check_calls,
    check_task_cycles,
    check_parallel,
    check_workflow_cycles,
    check_models,
    check_providers,
    check_consensus,
    check_quality_gates,
    check_schemas,
    check_defaults,
    check_values,
    check_usage,
)


def run_checks(program: ir.Program) -> list[Diagnostic]:
    # The checks allocate much and free little: pausing the cycle collector keeps them linear on
    # big programs (each collection would walk the whole IR again).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return collect_diagnostics(program)
    finally:
        if collecting:
            gc.enable()


def collect_diagnostics(program: ir.Program) -> list[Diagnostic]:
    index = build_index(program)
    # Warnings about imported and standard-library files belong to checking those files themselves;
    # errors anywhere make the program invalid, so they are always reported.
    main_files = {f.path for f in program.files if f.role == "main"}
    found: list[Diagnostic] = []
    seen: set[Diagnostic] = set()
    for check in CHECKS:
        for diagnostic in check(index):
            if not diagnostic.is_error and main_files and diagnostic.span.file not in main_files:
                continue
            if diagnostic not in seen:
                seen.add(diagnostic)
                found.append(diagnostic)
    return sort_diagnostics(found)
