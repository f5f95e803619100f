"""Quality bars the runtime could not honour as written: a bar learned from history (`quality >=
auto [P]`) measures a consensus's agreement and decides only whether it escalates, so it needs a
consensus form and `else escalate`; and `else escalate` needs models to escalate to, which
`fallback none` takes away (unless a `route cascade` list is the escalation); `fallback only
[...]` leaves them, the written models being the escalation."""

from __future__ import annotations

from bmad.compiler import ir
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, error


def check_quality_gates(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            gate = task.quality
            if gate is None:
                continue
            span = gate.span if gate.span != ir.NO_SPAN else task.name_span
            if (gate.otherwise == "escalate" and task.no_fallback and not task.fallback
                    and (task.route is None or task.route.strategy != "cascade")):
                out.append(error(
                    "BMAD-E025", span, f"task `{task.name}` escalates, but has `fallback none`",
                    "`else escalate` asks the fallback models: name them (`fallback [gpt-4o]`), "
                    "write `route cascade [...]`, or choose another action (`else fail`, `else retry`)"))
            if not gate.learned:
                continue
            if task.consensus is None:
                out.append(error(
                    "BMAD-E155", span,
                    f"`quality >= auto` in task `{task.name}` learns a bar for a consensus's "
                    "agreement, but the task has no consensus",
                    "write a score instead (`quality >= 0.8`), or let models agree "
                    "(`consensus vote among 3 models`)"))
            elif gate.otherwise != "escalate":
                written = f"`else {gate.otherwise}`" if gate.otherwise else "no `else`"
                out.append(error(
                    "BMAD-E155", span,
                    f"`quality >= auto` in task `{task.name}` has {written}: a learned bar only "
                    "decides when a consensus escalates",
                    "add `else escalate`, or write a score instead (`quality >= 0.8`)"))
    return out
