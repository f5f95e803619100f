"""Results of earlier runs, read back from the journal, and agreement over them.

`bmad workflow consensus` and `bmad workflow ensemble` decide among answers that were already paid
for, with the same deciders a live consensus uses (`runtime/consensus.py`): no model is called.

A result id is a run id (or a unique prefix of one), whose value is the run's outputs (the single
output's value when the workflow has one output), or `RUN:TASK` for one task's stored output. A
result's quality is the task's recorded score, or for a run the mean of its tasks' scores (None
when nothing was scored).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any, Sequence

from bmad.runtime.consensus import Candidate, ConsensusOutcome, decide_medoid, decide_vote
from bmad.runtime.journal import Journal

METHODS = ("vote", "weighted", "similarity")
UNSCORED_WEIGHT = 0.5  # a result without a quality score counts half in a weighted vote


class ResultNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class StoredResult:
    id: str
    run_id: str
    workflow: str
    task: str | None  # None: the whole run
    value: Any
    quality: float | None
    cost_usd: float | None
    models: tuple[str, ...]
    status: str
    outputs: dict[str, Any] = field(default_factory=dict)  # a run's named outputs

    def text(self) -> str:
        return self.value if isinstance(self.value, str) else json.dumps(self.value, ensure_ascii=False,
                                                                          sort_keys=True)


def _run_result(journal: Journal, row: dict[str, Any]) -> StoredResult:
    tasks = journal.task_rows(row["id"])
    scores = [t["quality"] for t in tasks if t["quality"] is not None]
    outputs = journal.outputs(row["id"])
    value: Any = next(iter(outputs.values())) if len(outputs) == 1 else outputs
    models = tuple(dict.fromkeys(t["model"] for t in tasks if t["model"]))
    return StoredResult(row["id"], row["id"], row["workflow"] or "", None, value,
                        fmean(scores) if scores else None, row["spent_usd"], models, row["status"] or "",
                        outputs)


def resolve_result(journal: Journal, ident: str) -> StoredResult:
    run_part, _, task = ident.partition(":")
    row = journal.run(run_part.strip())
    if row is None:
        raise ResultNotFound(f"no run `{run_part}` in {journal.path} (or the prefix matches several runs)")
    if not task:
        return _run_result(journal, row)
    for t in journal.task_rows(row["id"]):
        if t["task_id"] == task.strip():
            value = json.loads(t["output_json"]) if t["output_json"] is not None else None
            return StoredResult(f"{row['id']}:{t['task_id']}", row["id"], row["workflow"] or "",
                                t["task_id"], value, t["quality"], t["cost_usd"],
                                (t["model"],) if t["model"] else (), t["status"] or "")
    names = ", ".join(t["task_id"] for t in journal.task_rows(row["id"])) or "none"
    raise ResultNotFound(f"run `{row['id']}` has no task `{task}` (its tasks: {names})")


def resolve_results(journal: Journal, idents: Sequence[str]) -> list[StoredResult]:
    return [resolve_result(journal, i) for i in idents]


def latest_runs(journal: Journal, workflow: str | None, last: int) -> list[StoredResult]:
    """The newest completed runs of `workflow` (default: the workflow of the newest completed run)."""
    rows = journal.runs(limit=10_000, status="completed")
    if workflow is None and rows:
        workflow = rows[0]["workflow"]
    chosen = [r for r in rows if r["workflow"] == workflow][:last]
    return [_run_result(journal, journal.run(r["id"]) or r) for r in chosen]


def _candidates(results: Sequence[StoredResult]) -> list[Candidate]:
    # The candidate's "model" is the result id: votes, weights and the winner are per result.
    return [Candidate(r.id, r.value, r.text(), r.id) for r in results]


def weights_by_quality(results: Sequence[StoredResult]) -> dict[str, float]:
    return {r.id: (r.quality if r.quality is not None else UNSCORED_WEIGHT) for r in results}


def decide_stored(results: Sequence[StoredResult], method: str, quorum: int = 1) -> ConsensusOutcome:
    """vote: most common answer; weighted: votes weighted by each result's quality; similarity:
    the answer closest to all the others (for free text, where exact votes rarely agree)."""
    if method not in METHODS:
        raise ValueError(f"unknown method `{method}`")
    candidates = _candidates(results)
    if method == "similarity":
        return decide_medoid(candidates, quorum)
    return decide_vote(candidates, weights_by_quality(results) if method == "weighted" else None, quorum)


def is_exact(values: Sequence[Any]) -> bool:
    """Answers to vote on exactly (JSON, numbers, enum-like words) rather than by similarity."""
    return all(not isinstance(v, str) or (len(v) <= 64 and "\n" not in v) for v in values)


@dataclass(slots=True)
class CombinedOutput:
    name: str
    value: Any
    source: str  # the result id whose answer was chosen
    agreement: float
    method: str
    considered: int


def combine_outputs(results: Sequence[StoredResult]) -> list[CombinedOutput]:
    """Per output name: a quality-weighted vote over exact answers, the medoid over free text."""
    names = list(dict.fromkeys(name for r in results for name in r.outputs))
    combined = []
    for name in names:
        having = [r for r in results if name in r.outputs and r.outputs[name] is not None]
        if not having:
            combined.append(CombinedOutput(name, None, "-", 0.0, "none", 0))
            continue
        candidates = [Candidate(r.id, r.outputs[name], json.dumps(r.outputs[name], ensure_ascii=False), r.id)
                      for r in having]
        if is_exact([c.value for c in candidates]):
            outcome, method = decide_vote(candidates, weights_by_quality(having), 1), "weighted vote"
        else:
            outcome, method = decide_medoid(candidates), "medoid (most similar to the others)"
        combined.append(CombinedOutput(name, outcome.value, outcome.model, outcome.agreement, method,
                                       len(having)))
    return combined
