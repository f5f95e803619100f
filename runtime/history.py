"""Reads the journal into `ModelHistory` for the planner: measured quality, latency, failure rate
and cost per (model, capability), plus each model's overall figures under `ANY_CAPABILITY`.

Quality comes from consensus verdicts (each participant's agreement with the task's decision) where
a model has them, else from scored tasks (judge, agreement) credited to the model that answered; latency,
failures and cost from the calls themselves (cached replays are not measurements).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path

from bmad.compiler.history import ANY_CAPABILITY, ModelHistory, Observation
from bmad.runtime.journal import Journal, JournalError, default_journal_path


def read_history(journal: Journal, *, min_samples: int = 3) -> ModelHistory:
    calls: dict[tuple[str, str], list[int | float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0])
    # [calls, failures, latency sum over ok, cost sum over ok, ok count]
    for model, capability, status, latency, cost in journal.db.execute(
            "SELECT model, capability, status, latency_s, cost_usd FROM calls "
            "WHERE cached=0 AND purpose IN ('answer', 'repair')"):
        keys = {(model, ANY_CAPABILITY)} | ({(model, capability)} if capability else set())
        for key in keys:
            agg = calls[key]
            agg[0] += 1
            if status == "ok":
                agg[2] += latency or 0.0
                agg[3] += cost or 0.0
                agg[4] += 1
            else:
                agg[1] += 1
    quality: dict[tuple[str, str], list[float]] = defaultdict(list)
    for model, capability, q in journal.db.execute(
            "SELECT model, capability, quality FROM tasks WHERE quality IS NOT NULL AND model IS NOT NULL "
            "AND cached=0"):
        quality[(model, capability or ANY_CAPABILITY)].append(q)
        if capability:
            quality[(model, ANY_CAPABILITY)].append(q)
    # Consensus verdicts (each participant's agreement with the decision) measure every model that
    # answered, not just the one credited with the result: where a model has them, they win.
    verdicts = _verdicts(journal)
    for key, values in verdicts.items():
        quality[key] = values
    observations: dict[tuple[str, str], Observation] = {}
    for key in set(calls) | set(quality):
        n, failures, latency_sum, cost_sum, ok = calls.get(key, [0, 0, 0.0, 0.0, 0])
        qs = quality.get(key, [])
        observations[key] = Observation(
            quality=sum(qs) / len(qs) if qs else None,
            latency_s=latency_sum / ok if ok else None,
            failure_rate=failures / n if n else None,
            cost_usd=cost_sum / ok if ok else None,
            samples=max(int(n), len(qs)),
        )
    return ModelHistory(observations=observations, min_samples=min_samples)


def _verdicts(journal: Journal) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    try:
        rows = journal.db.execute("SELECT model, capability, agreement FROM verdicts "
                                  "WHERE agreement IS NOT NULL").fetchall()
    except sqlite3.OperationalError:  # a journal written before verdicts were recorded
        return out
    for model, capability, agreement in rows:
        out[(model, capability or ANY_CAPABILITY)].append(agreement)
        if capability:
            out[(model, ANY_CAPABILITY)].append(agreement)
    return out


def load_model_history(path: Path | str | None = None) -> ModelHistory | None:
    """The history in the default (or given) journal; None when there is no journal or no data."""
    path = Path(path) if path is not None else default_journal_path()
    if not path.exists():
        return None
    try:
        journal = Journal(path, readonly=True)
    except JournalError:
        return None
    try:
        history = read_history(journal)
    finally:
        journal.db.close()
    return None if history.empty else history
