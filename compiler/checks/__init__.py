"""Semantic checks over a lowered Program (filled in by the checks work; see docs/architecture.md)."""

from __future__ import annotations

from bmad.compiler import ir
from bmad.compiler.diagnostics import Diagnostic


def run_checks(program: ir.Program) -> list[Diagnostic]:
    return []
