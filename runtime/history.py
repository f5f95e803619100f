"""Reads the journal into `ModelHistory` for the planner: measured quality, latency, failure rate
and cost per (model, capability), plus each model's overall figures under `ANY_CAPABILITY`.

Quality comes from consensus verdicts (each participant's agreement with the task's decision) where
a model has them, else from scored tasks (judge, agreement) credited to the model that answered; latency,
failures and cost from the calls themselves (cached replays are not measurements). A simulated
call's latency is the simulator's sleep times the run's `--sim-latency-scale` (the run's recorded
`sim_latency_scale`): under any scale but 1 it measures nothing (at 0, about no time at all), so
such calls count for quality, failures and cost but not for latency.

Simulated answers measure the simulator, not the model: a real plan reads only rows of real calls,
and a `--provider sim` plan only simulated ones (`simulated=True`). A row is simulated when its run
ran with `--provider sim` (the run's `provider_mode`), or when its model's provider is `kind sim` in
the plan that run executed.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

from bmad.compiler.history import ANY_CAPABILITY, ModelHistory, Observation
from bmad.runtime.journal import Journal, JournalError, default_journal_path


class SimulatedRows:
    """Which journal rows (run, model) came from the simulator rather than a real model."""

    def __init__(self, journal: Journal):
        self.runs: set[str] = set()  # runs with every model simulated (`--provider sim`)
        self.models: dict[str, set[str]] = {}  # run -> its models on a `kind sim` provider
        self.scaled: set[str] = set()  # runs whose simulated latencies were scaled
        sim_models_of_plan: dict[str, set[str]] = {}
        for run_id, options_json, plan_hash in journal.db.execute(
                "SELECT id, options_json, plan_hash FROM runs"):
            try:
                options = json.loads(options_json or "{}")
            except ValueError:
                options = {}
            if isinstance(options, dict) and _scaled(options.get("sim_latency_scale")):
                self.scaled.add(run_id)
            if isinstance(options, dict) and options.get("provider_mode") == "sim":
                self.runs.add(run_id)
                continue
            if plan_hash not in sim_models_of_plan:
                sim_models_of_plan[plan_hash] = _sim_provider_models(journal, plan_hash)
            if sim_models_of_plan[plan_hash]:
                self.models[run_id] = sim_models_of_plan[plan_hash]

    def __call__(self, run_id: str, model: str | None) -> bool:
        return run_id in self.runs or model in self.models.get(run_id, ())

    def latency_measured(self, run_id: str, model: str | None) -> bool:
        """Whether a call's latency is a measurement: not a simulated one the run scaled."""
        return run_id not in self.scaled or not self(run_id, model)


def _scaled(scale: object) -> bool:
    """Whether a run's recorded `sim_latency_scale` changed its simulated latencies: any but 1
    (None, or no record in a journal written before it was kept: the default, 1)."""
    if scale is None:
        return False
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        return scale != 1
    return True  # unreadable: not a latency to learn from


def _sim_provider_models(journal: Journal, plan_hash: str | None) -> set[str]:
    """The models a stored plan runs on `kind sim` providers (its program's declarations)."""
    row = journal.db.execute("SELECT plan_json FROM plans WHERE plan_hash=?", (plan_hash,)).fetchone()
    text = row[0] if row else None
    if not text or '"sim"' not in text:  # no sim provider anywhere: skip parsing a big plan
        return set()
    try:
        program = json.loads(text).get("program") or {}
        sim_providers = {p.get("name") for p in program.get("providers", ()) if p.get("kind") == "sim"}
        return {m.get("name") for m in program.get("models", ())
                if (m.get("provider") or {}).get("name") in sim_providers}
    except (ValueError, AttributeError, TypeError):
        return set()


def read_history(journal: Journal, *, min_samples: int = 3, simulated: bool = False) -> ModelHistory:
    """The journal's measurements: of real calls, or (`simulated=True`) of simulated ones only."""
    is_simulated = SimulatedRows(journal)
    calls: dict[tuple[str, str], list[int | float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0, 0])
    # [calls, failures, latency sum over ok, cost sum over ok, ok count, ok count with a latency]
    for run_id, model, capability, status, latency, cost in journal.db.execute(
            "SELECT run_id, model, capability, status, latency_s, cost_usd FROM calls "
            "WHERE cached=0 AND purpose IN ('answer', 'repair')"):
        if is_simulated(run_id, model) != simulated:
            continue
        keys = {(model, ANY_CAPABILITY)} | ({(model, capability)} if capability else set())
        timed = status == "ok" and is_simulated.latency_measured(run_id, model)
        for key in keys:
            agg = calls[key]
            agg[0] += 1
            if status == "ok":
                agg[3] += cost or 0.0
                agg[4] += 1
                if timed:
                    agg[2] += latency or 0.0
                    agg[5] += 1
            else:
                agg[1] += 1
    # Verdicts (a consensus participant's agreement with the decision, a gate's score of each
    # answer) measure every model that answered, not just the one credited with the result: a
    # task they cover counts through them, the other tasks through their credited quality.
    verdicts, covered = _verdicts(journal, is_simulated, simulated)
    quality: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run_id, task_id, model, capability, q in journal.db.execute(
            "SELECT run_id, task_id, model, capability, quality FROM tasks WHERE quality IS NOT NULL "
            "AND model IS NOT NULL AND cached=0"):
        if (run_id, task_id) in covered or is_simulated(run_id, model) != simulated:
            continue
        quality[(model, capability or ANY_CAPABILITY)].append(q)
        if capability:
            quality[(model, ANY_CAPABILITY)].append(q)
    for key, values in verdicts.items():
        quality[key] += values
    observations: dict[tuple[str, str], Observation] = {}
    for key in set(calls) | set(quality):
        n, failures, latency_sum, cost_sum, ok, timed = calls.get(key, [0, 0, 0.0, 0.0, 0, 0])
        qs = quality.get(key, [])
        observations[key] = Observation(
            quality=sum(qs) / len(qs) if qs else None,
            latency_s=latency_sum / timed if timed else None,
            failure_rate=failures / n if n else None,
            cost_usd=cost_sum / ok if ok else None,
            samples=max(int(n), len(qs)),
            quality_samples=len(qs),
        )
    return ModelHistory(observations=observations, min_samples=min_samples,
                        calibration=_calibration(journal, is_simulated, simulated))


def _calibration(journal: Journal, is_simulated: SimulatedRows,
                 simulated: bool) -> dict[str, tuple[tuple[float, float], ...]]:
    """Escalated consensus decisions per capability: (agreement before, matched the escalation)."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    try:
        rows = journal.db.execute("SELECT run_id, capability, agreement, matched FROM calibration "
                                  "WHERE agreement IS NOT NULL AND matched IS NOT NULL").fetchall()
    except sqlite3.OperationalError:  # a journal written before calibration was recorded
        return {}
    for run_id, capability, agreement, matched in rows:
        if is_simulated(run_id, None) != simulated:
            continue
        out[capability or ANY_CAPABILITY].append((agreement, matched))
    return {k: tuple(v) for k, v in out.items()}


def _verdicts(journal: Journal, is_simulated: SimulatedRows, simulated: bool
              ) -> tuple[dict[tuple[str, str], list[float]], set[tuple[str, str]]]:
    """Verdicts per (model, capability), and the (run, task) pairs they measured."""
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    covered: set[tuple[str, str]] = set()
    try:
        rows = journal.db.execute("SELECT run_id, task_id, model, capability, agreement FROM verdicts "
                                  "WHERE agreement IS NOT NULL").fetchall()
    except sqlite3.OperationalError:  # a journal written before verdicts were recorded
        return out, covered
    for run_id, task_id, model, capability, agreement in rows:
        covered.add((run_id, task_id))
        if is_simulated(run_id, model) != simulated:
            continue
        out[(model, capability or ANY_CAPABILITY)].append(agreement)
        if capability:
            out[(model, ANY_CAPABILITY)].append(agreement)
    return out, covered


def load_model_history(path: Path | str | None = None, *, simulated: bool = False) -> ModelHistory | None:
    """The history in the default (or given) journal; None when there is no journal or no data.

    `simulated`: the history of simulated runs, for a `--provider sim` plan (real plans never see it).
    """
    path = Path(path) if path is not None else default_journal_path()
    if not path.exists():
        return None
    try:
        journal = Journal(path, readonly=True)
    except JournalError:
        return None
    try:
        history = read_history(journal, simulated=simulated)
    finally:
        journal.db.close()
    return None if history.empty else history
