"""Journal retention: delete old runs (by age and/or count) and everything they recorded.

`bmad runs --prune` uses `--older-than DAYS` / `--keep N`, else the `[journal]` table of
`bmad.toml`:

```toml
[journal]
keep_days = 30          # runs that started more than 30 days ago are removed
keep_runs = 500         # only the 500 newest runs are kept
prune_after_run = true  # `bmad run` (a batch too) applies them when it finishes (default false)
```

A run still `running` is never removed, however old (a live process is writing it; a dead one's
run is `interrupted` and resumable, so it is kept until it is older than the rules too), nor is any
run of a batch still running (its completed rows are what its end and a resume rely on). Removing a
run removes its tasks, calls (prompts and answers), events, outputs, verdicts, calibration rows,
the cross-run cache entries it wrote and its `holders` row, and plans no remaining run uses, in
one transaction.
The runs to remove are chosen in that transaction, under the write lock: a run a resume claims
(`Journal.reopen_run`, under the same lock) is either removed whole before the claim, which then
finds no run, or seen `running` and kept; never half removed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from bmad.compiler.settings import SettingsError, read_settings
from bmad.runtime.journal import holder_alive, read_holders, rows_of_runs_join
from bmad.runtime.journal_schema import write_transaction

# Tables whose rows name their run; a run's calls and tasks are found by their id block instead.
RUN_TABLES = ("events", "outputs", "verdicts", "calibration", "cache")


class RetentionError(ValueError):
    """Retention settings that can't be used; the message says which."""


@dataclass(frozen=True, slots=True)
class Retention:
    keep_days: float | None = None
    keep_runs: int | None = None
    after_run: bool = False  # `prune_after_run`: every `bmad run` (and batch) prunes when it finishes

    @property
    def empty(self) -> bool:
        return self.keep_days is None and self.keep_runs is None


@dataclass(slots=True)
class PruneReport:
    removed: list[str] = field(default_factory=list)
    kept_running: int = 0
    kept_in_batch: int = 0  # runs of a batch still running, kept whatever their own status


def retention_from_table(table: Mapping[str, Any], path: str | None = None) -> Retention:
    where = f"{path or 'bmad.toml'}: [journal]"
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name == "prune_after_run":
            if not isinstance(value, bool):
                raise RetentionError(f"{where} prune_after_run must be true or false")
            values["after_run"] = value
            continue
        if name not in ("keep_days", "keep_runs"):
            raise RetentionError(f"{where} has no setting `{name}` "
                                 f"(known: keep_days, keep_runs, prune_after_run)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RetentionError(f"{where} {name} must be a number of at least 0")
        if name == "keep_runs" and not isinstance(value, int):
            raise RetentionError(f"{where} keep_runs must be a whole number")
        values[name] = value
    return Retention(**values)


def configured_retention() -> Retention:
    """The `[journal]` retention of `bmad.toml` (empty when not set)."""
    try:
        settings = read_settings()
        return retention_from_table(settings.table("journal"), settings.path)
    except SettingsError as exc:
        raise RetentionError(str(exc)) from None


def prune_runs(db: Any, retention: Retention, *, now: float | None = None,
               spare: frozenset[str] = frozenset()) -> PruneReport:
    """Delete the runs `retention` lets go (never a `running` one, nor one of a batch still
    running, nor one in `spare`: the runs that just finished, when `bmad run` prunes); returns
    what was removed."""
    if retention.empty:
        return PruneReport()
    now = time.time() if now is None else now
    report = _choose(db, retention, now, spare)
    if not report.removed:
        return report  # nothing to delete: no write lock taken
    # Chosen again, and deleted, in one write transaction: a run can't be claimed `running` (a
    # resume, under the same lock) between the choice and the deletion, so none loses its rows
    # while it runs; a run removed first is simply gone for the resume (BMAD-E301).
    with write_transaction(db):
        report = _choose(db, retention, now, spare)
        if report.removed:
            _delete_runs(db, report.removed)
    return report


def _choose(db: Any, retention: Retention, now: float, spare: frozenset[str]) -> PruneReport:
    """What `retention` would remove now (`removed`) and what it keeps because it is running."""
    report = PruneReport()
    in_live_batch = _runs_of_live_batches(db)
    rows = db.execute("SELECT id, status, started_at FROM runs "
                      "ORDER BY started_at DESC, id DESC").fetchall()
    for position, (run_id, status, started_at) in enumerate(rows):
        too_many = retention.keep_runs is not None and position >= retention.keep_runs
        too_old = (retention.keep_days is not None and started_at is not None
                   and now - started_at > retention.keep_days * 86400)
        if not (too_many or too_old) or run_id in spare:
            continue
        if status == "running":
            report.kept_running += 1
        elif run_id in in_live_batch:
            report.kept_in_batch += 1
        else:
            report.removed.append(run_id)
    return report


def _runs_of_live_batches(db: Any) -> set[str]:
    """The runs of batches `running` in a live process (a dead driver's batch is resumable, and
    its runs are pruned like any other's)."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name='batches'").fetchone():
        return set()  # a journal from before batches
    running = db.execute("SELECT id, pid FROM batches WHERE status='running'").fetchall()
    holders = read_holders(db, [batch_id for batch_id, _ in running])
    live = [batch_id for batch_id, pid in running if holder_alive(pid, holders.get(batch_id))]
    runs: set[str] = set()
    for batch_id in live:
        runs.update(r for (r,) in db.execute("SELECT run_id FROM batch_rows WHERE batch_id=? "
                                             "AND run_id IS NOT NULL", (batch_id,)))
    return runs


def _delete_runs(db: Any, doomed: list[str]) -> None:
    """Delete the runs `doomed` and everything they recorded (inside the caller's transaction)."""
    db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed_runs (id TEXT PRIMARY KEY)")
    db.execute("DELETE FROM doomed_runs")
    db.executemany("INSERT INTO doomed_runs VALUES (?)", [(r,) for r in doomed])
    for table in ("calls", "tasks"):  # a run's rows are its block of ids
        db.execute(f"DELETE FROM {table} WHERE id IN (SELECT x.id FROM doomed_runs d "
                   f"JOIN runs r ON r.id = d.id JOIN {rows_of_runs_join(table, 'x')})")
    for table in RUN_TABLES:
        db.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT id FROM doomed_runs)")
    db.execute("DELETE FROM runs WHERE id IN (SELECT id FROM doomed_runs)")
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='holders'").fetchone():
        db.execute("DELETE FROM holders WHERE id IN (SELECT id FROM doomed_runs)")
    users = ["SELECT plan_hash FROM runs WHERE plan_hash IS NOT NULL"]
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='batches'").fetchone():
        users.append("SELECT plan_hash FROM batches WHERE plan_hash IS NOT NULL")
    db.execute(f"DELETE FROM plans WHERE plan_hash NOT IN ({' UNION '.join(users)})")
    db.execute("DROP TABLE doomed_runs")
