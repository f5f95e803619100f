"""Multi-model clauses: enough participants, a quorum they can reach, at least one round."""

from __future__ import annotations

from bmad.compiler import ir
from bmad.compiler.checks.scope import ProgramIndex
from bmad.compiler.diagnostics import Diagnostic, Related, error, warning

QUORUM_METHODS = ("vote", "weighted", "similarity")


def check_consensus(index: ProgramIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for scope in index.workflows.values():
        for task in scope.tasks.values():
            if task.consensus is not None:
                check_one(task, task.consensus, out)
    return out


def check_one(task: ir.Task, c: ir.Consensus, out: list[Diagnostic]) -> None:
    name = task.name
    if c.method == "best_of":
        if c.count is not None and c.count < 2:
            out.append(error(
                "BMAD-E153", c.span,
                f"`best_of {c.count}` in task `{name}` picks the best of fewer than two answers",
                "use `best_of 2` or more, or remove `best_of` to ask once",
            ))
    elif c.participants:
        if len(c.participants) < 2:
            out.append(error(
                "BMAD-E152", c.span,
                f"`{'peer_review' if c.method == 'peer_review' else 'consensus ' + c.method}` in task `{name}` "
                "has only one participant",
                "list at least two models, e.g. `among [gpt-4o, claude-sonnet]`, or pin one with `model`",
            ))
    elif c.count is not None and c.count < 2:
        out.append(error(
            "BMAD-E152", c.span,
            f"`among {c.count} models` in task `{name}` needs at least two models to agree",
            "use `among 2 models` or more, or pin one model with `model`",
        ))
    seen: dict[str, ir.Name] = {}
    for participant in c.participants:
        if participant.name in seen:
            out.append(warning(
                "BMAD-W107", participant.span,
                f"model `{participant.name}` is listed twice among the participants of task `{name}`",
                "each listed model answers once; list it once (or list another model)",
                [Related(seen[participant.name].span, "first listed here")],
            ))
        else:
            seen[participant.name] = participant
    if c.quorum is not None:
        size = c.size
        if c.method not in QUORUM_METHODS:
            out.append(warning(
                "BMAD-W108", c.span,
                f"`quorum` has no effect on `{c.method.replace('_', ' ')}` in task `{name}`",
                "quorum applies to `consensus vote`, `weighted` and `similarity`; remove it",
            ))
        elif c.quorum < 1:
            out.append(error(
                "BMAD-E151", c.span,
                f"quorum {c.quorum} in task `{name}`: at least one model must agree",
                "use `quorum 1` or more",
            ))
        elif size and c.quorum > size:
            out.append(error(
                "BMAD-E150", c.span,
                f"quorum {c.quorum} is more than the {size} participants of task `{name}`, so it can never be reached",
                f"lower the quorum to at most {size}, or add participants",
            ))
    if c.method == "peer_review" and c.rounds is not None and c.rounds < 1:
        out.append(error(
            "BMAD-E154", c.span,
            f"`peer_review ... rounds {c.rounds}` in task `{name}` never reviews anything",
            "use `rounds 1` or more",
        ))
