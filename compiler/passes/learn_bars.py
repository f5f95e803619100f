"""Learn bars: each `quality >= auto [P] else escalate` gets the agreement bar history supports.

History holds, per capability, every consensus decision that escalated: its agreement before
escalating and whether the escalation model then gave the same answer. The bar is the lowest
agreement at which decisions at or above it matched at least P of the time (`ModelHistory
.learned_bar`); it goes into the task's `quality_floor`, which the runtime compares agreement with.
With no history (or none that reaches P) the floor stays unset and every decision escalates:
those runs are what the journal learns from.
"""

from __future__ import annotations

from bmad.compiler.history import ANY_CAPABILITY
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, revise

MIN_CALIBRATION_SAMPLES = 20  # fewer escalated decisions at or above a bar say too little


def learn_bars(draft: Draft, context: PassContext) -> Draft:
    for wd in draft.workflows.values():
        for td in wd.tasks.values():
            gate = td.task.quality
            if gate is None or not gate.learned:
                continue
            capability = td.needs[0] if td.needs else ANY_CAPABILITY
            bar = (context.history.learned_bar(capability, gate.threshold, MIN_CALIBRATION_SAMPLES)
                   if context.history is not None else None)
            reason = (f"learned bar {bar:.2f}: agreement at or above it matched escalation "
                      f">= {gate.threshold:.0%} of the time" if bar is not None
                      else "no learned bar yet: every decision escalates")
            td.plan = revise(td.plan, quality_floor=bar,
                             route_reason=f"{td.plan.route_reason}; {reason}".lstrip("; "))
    return draft
