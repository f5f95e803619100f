"""Batch runs: one sealed plan over many input rows, each row a child run, one ledger for them all.

`execute_batch(plan, BatchRequest(...))` is what `bmad run FILE --inputs rows.jsonl` calls. The
batch lives in the journal (`batches`, and `batch_rows` linking each row's index and inputs to its
run `BATCH_ID.N`), so `--resume BATCH_ID` needs neither the rows file nor the workflow file: rows
whose run completed are kept, interrupted or failed ones resume (reusing every recorded call), and
rows never started start. Rows run concurrently in this process under one `BudgetLedger` (the
batch's `--budget` caps the sum; each row draws on it through a `LedgerShare`, which keeps the row's
own spend and says whether the cap stopped the row's own work), one `ModelPool` (provider concurrency and rate limits hold across
rows) and one global call limit. With `executor="ray"` the model calls themselves run on a Ray
cluster (`executors/ray.py`); the plan, the ledger and the journal stay here, one writer.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import anyio

from bmad.compiler.plan import Plan
from bmad.runtime.batch_inputs import RowsRefused, read_rows
from bmad.runtime.cache import TaskCache
from bmad.runtime.events import EventBus, JournalSink
from bmad.runtime.executors.local import (EXIT_CODES, STOP_SIGNALS, RunRefused, RunRequest,
                                          default_provider_factory, new_run_id,
                                          refuse_unrunnable_models, same_plan)
from bmad.runtime.executors.ray import current_run_id
from bmad.runtime.interpreter import Interpreter
from bmad.runtime.journal import (Journal, RecordedCall, RunClaimRefused, default_journal_path,
                                  dumps)
from bmad.runtime.journal_schema import write_transaction
from bmad.runtime.ledger import BudgetLedger, LedgerShare
from bmad.runtime.model_pool import ModelPool

PROGRESS_INTERVAL_S = 0.5


@dataclass(slots=True)
class BatchRequest:
    run: RunRequest = field(default_factory=RunRequest)  # what every row shares (config, budget...)
    inputs_path: Path | None = None  # .jsonl or .csv; not needed to resume
    rows: list[dict[str, Any]] | None = None  # typed rows instead of a file (tests, benchmarks)
    resume: str | None = None  # a batch id (or a unique prefix)
    executor: str = "local"  # local | ray
    ray_address: str | None = None
    ray_actors: int | None = None
    row_concurrency: int | None = None  # rows at once; default: the run's concurrency
    on_progress: Callable[["BatchProgress"], None] | None = None
    batch_id: str | None = None


@dataclass(slots=True)
class BatchProgress:
    batch_id: str
    total: int
    completed: int = 0  # including rows completed before a resume
    failed: int = 0  # failed, budget_exhausted or cancelled rows
    running: int = 0
    spent_usd: float = 0.0
    tokens: int = 0
    elapsed_s: float = 0.0
    finished_here: int = 0  # rows finished in this process (for the rate)

    @property
    def rows_per_s(self) -> float:
        return self.finished_here / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        left = self.total - self.completed - self.failed
        rate = self.rows_per_s
        return left / rate if rate > 0 else None


@dataclass(slots=True)
class RowOutcome:
    index: int
    run_id: str
    status: str  # completed | failed | budget_exhausted | cancelled | interrupted | pending
    spent_usd: float
    tokens: int
    error: str | None


@dataclass(slots=True)
class BatchOutcome:
    batch_id: str
    status: str
    rows: list[RowOutcome]
    spent_usd: float
    tokens: int
    elapsed_s: float
    error: str | None = None
    journal_path: Path | None = None
    executor: str = "local"
    notes: list[str] = field(default_factory=list)  # e.g. where the Ray actors ran
    rows_per_s: float = 0.0  # rows this process finished, over its own time (not resumed ones)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return out


def row_run_id(batch_id: str, index: int) -> str:
    return f"{batch_id}.{index}"


BATCH_ID_PREFIX = "batch-"  # what tells a batch's id from a run's


def new_batch_id() -> str:
    return BATCH_ID_PREFIX + new_run_id()


def execute_batch(plan: Plan, request: BatchRequest) -> BatchOutcome:
    return anyio.run(execute_batch_async, plan, request)


async def execute_batch_async(plan: Plan, request: BatchRequest) -> BatchOutcome:
    workflow = plan.program.workflow(plan.workflow)
    if workflow is None:
        raise RunRefused(f"the plan's workflow `{plan.workflow}` is not in its program")
    if request.executor not in ("local", "ray"):
        raise RunRefused(f"unknown executor `{request.executor}`", "BMAD-E326", "use local or ray")
    # As for a single run (executors/local.py), the stop signals are caught from before the batch
    # is recorded (or claimed) until its end is recorded: one arriving in between is queued and
    # ends the batch `cancelled`; those after the first are absorbed (never a KeyboardInterrupt
    # while a row's end is recorded, nor a SIGTERM that leaves the batch `running`). Opened
    # first: inside `anyio.run`, a Ctrl-C not caught here cancels this task instead.
    signals = anyio.open_signal_receiver(*STOP_SIGNALS) if request.run.handle_signals \
        else nullcontext()
    with signals as receiver:
        journal = Journal(request.run.journal_path or default_journal_path())
        try:
            journal.fail_stale_runs()
            journal.fail_stale_runs("batches")
            runner = _BatchRunner(plan, request, journal)
            runner.prepare(workflow)
            ray_calls = None
            if request.executor == "ray":
                from bmad.runtime.executors.ray import RayCalls

                ray_calls = RayCalls.connect(plan, request.run, address=request.ray_address,
                                             actors=request.ray_actors)
                runner.factory = ray_calls.provider_factory
            try:
                outcome = await runner.run(receiver)
                if ray_calls is not None:
                    outcome.notes.append(ray_calls.describe())
                return outcome
            finally:
                if ray_calls is not None:
                    ray_calls.close()
        finally:
            journal.close()


class _BatchRunner:
    def __init__(self, plan: Plan, request: BatchRequest, journal: Journal):
        self.plan = plan
        self.request = request
        self.journal = journal
        self.run_request = request.run
        self.config = request.run.config
        self.factory = request.run.provider_factory or default_provider_factory(plan, request.run)
        self.batch_id = ""
        self.rows: list[tuple[int, dict[str, Any]]] = []
        self.prior: dict[int, dict[str, Any]] = {}  # row index -> its run's row in the journal
        self.budget: tuple[float | None, int | None, float | None] = (None, None, None)
        self.prior_spend = (0.0, 0, 0)
        self.prior_elapsed = 0.0
        self.resuming = False
        self.active: dict[int, Interpreter] = {}
        self.cancelled = False
        self.progress = BatchProgress("", 0)

    # -- before anything runs -------------------------------------------------------------------
    def prepare(self, workflow) -> None:
        req, run = self.request, self.run_request
        if req.resume:
            batch = find_batch(self.journal, req.resume)
            if batch is None:
                raise RunRefused(f"no batch `{req.resume}` in {self.journal.path}", "BMAD-E323",
                                 "list batches with `bmad runs` (row runs are BATCH_ID.N)")
            if batch["status"] == "completed":
                raise RunRefused(f"batch `{batch['id']}` already completed; nothing to resume",
                                 "BMAD-E323", "start a new batch instead")
            if batch["status"] == "running" and self.journal.held_elsewhere(batch["id"], batch["pid"]):
                raise RunRefused(f"batch `{batch['id']}` is running (process {batch['pid']})",
                                 "BMAD-E323", "wait for it, or stop that process first")
            if batch["plan_hash"] != self.plan.plan_hash \
                    and not same_plan(self.plan, batch["plan_hash"]):
                raise RunRefused(f"batch `{batch['id']}` was made from plan "
                                 f"{batch['plan_hash'][:12]}, not {self.plan.plan_hash[:12]}",
                                 "BMAD-E303", "resume with the batch's own plan (omit FILE)")
            self.resuming = True
            self.batch_id = batch["id"]
            self.rows = [(i, json.loads(text)) for i, text in self.journal.db.execute(
                "SELECT row_index, inputs_json FROM batch_rows WHERE batch_id=? ORDER BY row_index",
                (self.batch_id,))]
            self.prior = _row_runs(self.journal, self.batch_id)
            self.budget = (run.budget_usd if run.budget_usd is not None else batch["budget_usd"],
                           run.budget_tokens if run.budget_tokens is not None else batch["budget_tokens"],
                           run.budget_time_s if run.budget_time_s is not None else batch["budget_time_s"])
            self.prior_spend = _batch_spend(self.journal, self.batch_id)
            self.prior_elapsed = batch["elapsed_s"] or 0.0
        else:
            if req.rows is not None:
                from bmad.runtime.inputs import InputError, bind_inputs

                try:
                    bound = [bind_inputs(workflow, dict(r)) for r in req.rows]
                except InputError as exc:
                    raise RunRefused(str(exc), "BMAD-E322", "see the workflow's `input` declarations")
            elif req.inputs_path is not None:
                try:
                    bound = [r.inputs for r in read_rows(req.inputs_path, workflow)]
                except RowsRefused as exc:
                    raise RunRefused(exc.message, exc.code, exc.hint) from None
            else:
                raise RunRefused("a batch needs rows", "BMAD-E320", "pass --inputs rows.jsonl|csv")
            self.batch_id = req.batch_id or new_batch_id()
            self.rows = list(enumerate(bound))
            budget = self.plan.budget
            self.budget = (run.budget_usd if run.budget_usd is not None else budget.usd,
                           run.budget_tokens if run.budget_tokens is not None else budget.tokens,
                           run.budget_time_s if run.budget_time_s is not None else budget.time_s)
        self.progress = BatchProgress(self.batch_id, len(self.rows))

    def _record_batch(self) -> None:
        journal, plan, run = self.journal, self.plan, self.run_request
        if not journal.has_plan(plan.plan_hash):
            journal.store_plan(plan.plan_hash, json.dumps(plan.to_json(), separators=(",", ":"),
                                                          ensure_ascii=False))
        now = time.time()
        with write_transaction(journal.db) as db:  # a resume reads the batch again and claims it, under one lock
            if self.resuming:
                # Another resume may have claimed it since `prepare` read it: refused, as there.
                status, pid = db.execute("SELECT status, pid FROM batches WHERE id=?",
                                         (self.batch_id,)).fetchone()
                if status == "completed":
                    raise RunRefused(f"batch `{self.batch_id}` already completed (another process "
                                     "finished it); nothing to resume", "BMAD-E323",
                                     "start a new batch instead")
                if status == "running" and journal.held_elsewhere(self.batch_id, pid):
                    raise RunRefused(f"batch `{self.batch_id}` is running (process {pid})",
                                     "BMAD-E323", "wait for it, or stop that process first")
                db.execute("UPDATE batches SET status='running', finished_at=NULL, error=NULL, "
                           "pid=?, updated_at=?, budget_usd=?, budget_tokens=?, budget_time_s=?, "
                           "executor=? WHERE id=?",
                           (os.getpid(), now, *self.budget, self.request.executor, self.batch_id))
                # the rows' runs as of the claim (a prune may have removed some since `prepare`);
                # from now on the batch is running and its runs are never pruned
                self.prior = _row_runs(self.journal, self.batch_id)
            else:
                options = {"provider_mode": run.provider_mode, "sim_seed": run.sim_seed,
                           "sim_latency_scale": run.sim_latency_scale,
                           "sim_failure_rate": run.sim_failure_rate,
                           "sim_failure_kinds": list(run.sim_failure_kinds or ()),
                           "strategy": self.config.strategy, "concurrency": self.config.concurrency,
                           "cache": self.config.cache, "seed": self.config.seed}
                db.execute("INSERT INTO batches (id, workflow, plan_hash, status, source, "
                           "inputs_path, total_rows, budget_usd, budget_tokens, budget_time_s, "
                           "executor, options_json, started_at, updated_at, pid) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (self.batch_id, plan.workflow, plan.plan_hash, "running", run.source,
                            str(self.request.inputs_path) if self.request.inputs_path else None,
                            len(self.rows), *self.budget, self.request.executor, dumps(options),
                            now, now, os.getpid()))
                db.executemany("INSERT INTO batch_rows VALUES (?,?,?,?)",
                               [(self.batch_id, i, row_run_id(self.batch_id, i), dumps(values))
                                for i, values in self.rows])
            journal.record_holder(self.batch_id)  # who runs it, beyond a pid (journal.holder_alive)

    # -- running --------------------------------------------------------------------------------
    async def run(self, signals=None) -> BatchOutcome:
        """Run the rows; `signals`: the open receiver of the stop signals (None: not handled)."""
        plan, run, config = self.plan, self.run_request, self.config
        usd, tokens, unknown = self.prior_spend

        def on_alert(kind: str, threshold: float, spent: float, cap: float) -> None:
            self.journal.add_event(self.batch_id, "budget_alert", None,
                                   {"kind": kind, "threshold": threshold,
                                    "spent": round(spent, 6), "budget": cap})

        self.ledger = BudgetLedger(usd=self.budget[0], tokens=self.budget[1], time_s=self.budget[2],
                                   spent_usd=usd, spent_tokens=tokens,
                                   elapsed_s=self.prior_elapsed, on_alert=on_alert)
        self.ledger.unknown_cost_calls = unknown
        self.pool = ModelPool(plan.program, self.factory,
                              provider_concurrency=plan.provider_concurrency,
                              breaker_threshold=config.breaker_threshold,
                              breaker_cooldown_s=config.breaker_cooldown_s,
                              sim=run.provider_mode == "sim")
        # Every row's interpreter shares these: compiled nodes and one global call limit.
        self.compiled: dict[str, Any] = {}
        self.call_limiter = None
        recorded = False
        try:
            probe = self._interpreter(self.batch_id, EventBus(self.batch_id), {})
            self.call_limiter = probe.caller.limiter
            refuse_unrunnable_models(probe, self.pool, plan, self.budget[0])
            self.total_tasks = len(probe.compile(plan.workflow).nodes)
            self._record_batch()
            started, recorded = time.monotonic(), True

            done_before = {i for i, r in self.prior.items() if r["status"] == "completed"}
            self.progress.completed = len(done_before)
            self.progress.spent_usd, self.progress.tokens = usd, tokens
            todo = [(i, values) for i, values in self.rows if i not in done_before]
            status = "completed"
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    if signals is not None:
                        tg.start_soon(self._watch_signals, scope, signals)
                    tg.start_soon(self._report_progress, started)
                    async with anyio.create_task_group() as rows_tg:
                        queue = iter(todo)
                        width = self.request.row_concurrency or config.concurrency
                        for _ in range(max(1, min(width, len(todo)))):
                            rows_tg.start_soon(self._row_worker, queue)
                    tg.cancel_scope.cancel()  # stop the watchers
        except BaseException as exc:
            if recorded and _stopped(exc):
                # Stopped from outside (without `handle_signals`, Ctrl-C cancels the task that
                # `anyio.run` runs; a host may cancel it): the rows recorded their end as they
                # were cancelled, and the batch records its own, resumable. (A journal failing
                # now leaves it `running`: the next batch makes it `interrupted`.)
                with suppress(Exception):
                    self._record_end("cancelled", "cancelled; resume with --resume "
                                     + self.batch_id, time.monotonic() - started)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self.pool.aclose()
        self.progress.elapsed_s = time.monotonic() - started
        self._emit_progress()
        outcomes = batch_rows(self.journal, self.batch_id)
        if self.cancelled:
            status, error = "cancelled", f"cancelled by a signal; resume with --resume {self.batch_id}"
        elif self.ledger.exhausted is not None:
            status, error = "budget_exhausted", str(self.ledger.exhausted)
        elif any(r.status != "completed" for r in outcomes):
            bad = sum(1 for r in outcomes if r.status != "completed")
            status, error = "failed", f"{bad} of {len(outcomes)} rows did not complete"
        else:
            error = None
        elapsed = self._record_end(status, error, self.progress.elapsed_s)
        return BatchOutcome(self.batch_id, status, outcomes, self.ledger.spent_usd,
                            self.ledger.spent_tokens, elapsed, error, self.journal.path,
                            self.request.executor, rows_per_s=self.progress.rows_per_s)

    def _record_end(self, status: str, error: str | None, elapsed_here: float) -> float:
        """Record the batch's end (its rows recorded theirs); returns its elapsed time in all."""
        elapsed = self.prior_elapsed + elapsed_here
        self.journal.flush()
        self.journal.db.execute(
            "UPDATE batches SET status=?, spent_usd=?, tokens=?, elapsed_s=?, finished_at=?, "
            "updated_at=?, error=? WHERE id=?",
            (status, self.ledger.spent_usd, self.ledger.spent_tokens, elapsed, time.time(),
             time.time(), error, self.batch_id))
        return elapsed

    def _interpreter(self, run_id: str, events: EventBus, resumed: dict[str, dict[str, Any]],
                     ledger: BudgetLedger | LedgerShare | None = None) -> Interpreter:
        config = self.config
        cache = TaskCache(self.journal, events, run_id, explain=self.run_request.explain_cache) \
            if config.cache else None
        ledger = ledger or self.ledger  # a row's share, or the batch's own (the probe)
        interp = Interpreter(self.plan, pool=self.pool, ledger=ledger,  # type: ignore[arg-type]
                             events=events, journal=self.journal, run_id=run_id, config=config,
                             resumed=resumed, cache=cache)
        interp._compiled = self.compiled  # nodes are immutable once compiled: share them
        if self.call_limiter is not None:
            interp.caller.limiter = self.call_limiter
        interp.caller.seed = config.seed
        interp.caller.default_timeout_s = config.default_timeout_s
        return interp

    def _stopping(self) -> bool:
        return self.cancelled or self.ledger.exhausted is not None

    async def _row_worker(self, queue) -> None:
        for index, values in queue:
            if self._stopping():
                return
            await self._run_row(index, values)

    async def _run_row(self, index: int, inputs: dict[str, Any]) -> None:
        journal, plan = self.journal, self.plan
        run_id = row_run_id(self.batch_id, index)
        current_run_id.set(run_id)  # part of a remote call's identity (executors/ray.py)
        prior = self.prior.get(index)
        resumed: dict[str, dict[str, Any]] = {}
        recorded: dict[str, RecordedCall] = {}
        if prior is not None:
            # Claimed before its rows are read, so what it reuses is what the claim holds.
            try:
                journal.reopen_run(run_id, self.budget)
            except RunClaimRefused as exc:
                if exc.status is not None:
                    # resumed on its own (`--resume BATCH_ID.N`) by a live process since the
                    # batch read it: that process finishes it, its status is the row's
                    if exc.status == "completed":
                        self.progress.completed += 1
                    else:
                        self.progress.failed += 1
                    return
                prior = None  # removed meanwhile: the row starts afresh
        if prior is not None:
            resumed = journal.final_tasks(run_id)
            recorded = journal.recorded_calls(run_id)
        prior_elapsed = (prior or {}).get("elapsed_s") or 0.0
        started = time.monotonic() - prior_elapsed
        events = EventBus(run_id)
        for sink in self.run_request.sinks:
            events.add(sink)
        events.add(JournalSink(journal))
        # The row's share of the batch's ledger: the batch's caps, the row's own spend (what its
        # progress shows) and the row's own exhaustion (only when the cap stopped its own work).
        usd, tokens, unknown = journal.spend(run_id) if prior is not None else (0.0, 0, 0)
        share = LedgerShare(self.ledger, spent_usd=usd, spent_tokens=tokens,
                            unknown_cost_calls=unknown, elapsed_s=prior_elapsed)
        interp = self._interpreter(run_id, events, resumed, share)
        interp.caller.recorded = recorded
        if prior is None:  # (a prior row's run was claimed above)
            run = self.run_request
            journal.create_run(run_id, workflow=plan.workflow, plan_hash=plan.plan_hash,
                               plan_json=None, inputs=inputs, budget=self.budget,
                               total_tasks=self.total_tasks, source=run.source,
                               options={"batch": self.batch_id, "row": index,
                                        "strategy": interp.strategy,
                                        "provider_mode": run.provider_mode,
                                        "sim_seed": run.sim_seed,
                                        "sim_latency_scale": run.sim_latency_scale,
                                        "sim_failure_rate": run.sim_failure_rate,
                                        "concurrency": self.config.concurrency,
                                        "cache": self.config.cache, "seed": self.config.seed})
        if events.active:
            events.emit("run_started", None, workflow=plan.workflow, plan_hash=plan.plan_hash,
                        budget_usd=self.budget[0], budget_tokens=self.budget[1],
                        budget_time_s=self.budget[2], tasks=self.total_tasks,
                        resumed=prior is not None)
        self.active[index] = interp
        self.progress.running += 1
        frame = None
        status, error = "cancelled", "cancelled"
        try:
            if self.cancelled:
                interp.cancelled = True
            frame = await interp.run_workflow(plan.workflow, inputs)
            if interp.cancelled:
                status, error = "cancelled", f"cancelled; resume with --resume {self.batch_id}"
            elif interp.budget_stop is not None:
                status, error = "budget_exhausted", str(interp.budget_stop)
            elif frame.failure:
                status, error = "failed", frame.failure
            else:
                status, error = "completed", None
        except BaseException as exc:
            if not isinstance(exc, (KeyboardInterrupt, anyio.get_cancelled_exc_class())):
                status, error = "failed", f"internal error: {type(exc).__name__}: {exc}"
            raise
        finally:
            del self.active[index]
            self.progress.running -= 1
            if status == "completed" and frame is not None:
                outputs: dict[str, Any] | None = interp.outputs(frame)
            elif frame is not None:
                outputs = {o.name: frame.scope.get(o.name) for o in frame.compiled.workflow.outputs
                           if o.name in frame.results
                           and frame.results[o.name].status == "completed"}
            else:
                outputs = None
            # The ledger is the batch's: what this row spent is what its calls recorded.
            journal.flush()
            usd, tokens, unknown = journal.spend(run_id)
            elapsed = time.monotonic() - started
            journal.finish_run(run_id, status, spent_usd=usd, tokens=tokens,
                               unknown_cost_calls=unknown, elapsed_s=elapsed,
                               done_tasks=interp.done_tasks, error=error, outputs=outputs)
            if events.active:
                events.emit("run_finished", None, status=status, spent_usd=round(usd, 6),
                            tokens=tokens, elapsed_s=round(elapsed, 3), error=error)
            events.close()
            progress = self.progress
            progress.finished_here += 1
            if status == "completed":
                progress.completed += 1
            else:
                progress.failed += 1

    async def _report_progress(self, started: float) -> None:
        while True:
            await anyio.sleep(PROGRESS_INTERVAL_S)
            self.progress.elapsed_s = time.monotonic() - started
            self._emit_progress()
            self.journal.db.execute("UPDATE batches SET spent_usd=?, tokens=?, updated_at=? "
                                    "WHERE id=?", (self.ledger.spent_usd, self.ledger.spent_tokens,
                                                   time.time(), self.batch_id))

    def _emit_progress(self) -> None:
        self.progress.spent_usd = self.ledger.spent_usd
        self.progress.tokens = self.ledger.spent_tokens
        if self.request.on_progress is not None:
            self.request.on_progress(self.progress)

    async def _watch_signals(self, scope: anyio.CancelScope, signals) -> None:
        """Cancel the batch at the first stop signal (SIGHUP too; one queued while the batch was
        being recorded included). The receiver stays open after this returns, until the batch's
        end is recorded (`execute_batch_async`): a second Ctrl-C is absorbed there."""
        async for _ in signals:
            self.cancelled = True
            for interp in self.active.values():
                interp.cancelled = True
            scope.cancel()
            return


def _stopped(exc: BaseException) -> bool:
    """Is `exc` a stop (a cancellation, a KeyboardInterrupt), alone or as all of a task group's?"""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split((KeyboardInterrupt, anyio.get_cancelled_exc_class()))[1] is None
    return isinstance(exc, (KeyboardInterrupt, anyio.get_cancelled_exc_class()))


# -- the batch in the journal -------------------------------------------------------------------

def find_batch(journal: Journal, batch_id: str) -> dict[str, Any] | None:
    """A batch by id or unique prefix."""
    cur = journal.db.execute("SELECT * FROM batches WHERE id=?", (batch_id,))
    row = cur.fetchone()
    if row is None:
        if not batch_id:
            return None
        from bmad.runtime.journal import PREFIX_MATCH, like_prefix

        # Literally (`%` and `_` are no wildcards); None when several match (`batches_with_prefix`).
        cur = journal.db.execute(f"SELECT * FROM batches WHERE {PREFIX_MATCH} LIMIT 2",
                                 (like_prefix(batch_id),))
        rows = cur.fetchall()
        if len(rows) != 1:
            return None
        row = rows[0]
    return dict(zip([c[0] for c in cur.description], row))


def batches_with_prefix(journal: Journal, prefix: str, limit: int = 10) -> list[str]:
    """Ids of the batches whose id starts with `prefix` (literally), in id order, at most `limit`."""
    if not prefix:
        return []
    from bmad.runtime.journal import PREFIX_MATCH, like_prefix

    return [r[0] for r in journal.db.execute(
        f"SELECT id FROM batches WHERE {PREFIX_MATCH} ORDER BY id LIMIT ?",
        (like_prefix(prefix), limit))]


def is_batch(journal: Journal, batch_id: str) -> bool:
    try:
        return find_batch(journal, batch_id) is not None
    except Exception:  # a journal from before batches existed has no such table
        return False


def batch_rows(journal: Journal, batch_id: str) -> list[RowOutcome]:
    """Every row of a batch, in input order, with its run's status (`pending`: never started)."""
    rows = journal.db.execute(
        "SELECT b.row_index, b.run_id, r.status, r.spent_usd, r.tokens, r.error FROM batch_rows b "
        "LEFT JOIN runs r ON r.id = b.run_id WHERE b.batch_id=? ORDER BY b.row_index", (batch_id,))
    return [RowOutcome(i, run_id, status or "pending", spent or 0.0, tokens or 0, error)
            for i, run_id, status, spent, tokens, error in rows]


def batch_results(journal: Journal, batch_id: str) -> list[dict[str, Any]]:
    """One record per row in input order: its inputs, status, outputs (what completed) and error."""
    outputs: dict[str, dict[str, Any]] = {}
    for run_id, name, value in journal.db.execute(
            "SELECT o.run_id, o.name, o.value_json FROM outputs o JOIN batch_rows b "
            "ON b.run_id = o.run_id WHERE b.batch_id=?", (batch_id,)):
        outputs.setdefault(run_id, {})[name] = json.loads(value) if value is not None else None
    inputs = dict(journal.db.execute("SELECT row_index, inputs_json FROM batch_rows "
                                     "WHERE batch_id=?", (batch_id,)))
    return [{"row": r.index, "run_id": r.run_id, "status": r.status,
             "inputs": json.loads(inputs[r.index]), "outputs": outputs.get(r.run_id, {}),
             "spent_usd": r.spent_usd, "error": r.error}
            for r in batch_rows(journal, batch_id)]


def write_results(journal: Journal, batch_id: str, path: Path) -> int:
    records = batch_results(journal, batch_id)
    with path.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    return len(records)


def _row_runs(journal: Journal, batch_id: str) -> dict[int, dict[str, Any]]:
    rows = journal.db.execute(
        "SELECT b.row_index, r.status, r.elapsed_s FROM batch_rows b JOIN runs r ON r.id = b.run_id "
        "WHERE b.batch_id=?", (batch_id,))
    return {i: {"status": s, "elapsed_s": e} for i, s, e in rows}


def _batch_spend(journal: Journal, batch_id: str) -> tuple[float, int, int]:
    usd, tokens, unknown = journal.db.execute(
        "SELECT COALESCE(SUM(c.cost_usd), 0), COALESCE(SUM(c.input_tokens + c.output_tokens), 0), "
        "SUM(CASE WHEN c.cost_usd IS NULL THEN 1 ELSE 0 END) FROM batch_rows b "
        "JOIN calls c ON c.run_id = b.run_id WHERE b.batch_id=? AND c.cached=0",
        (batch_id,)).fetchone()
    return float(usd), int(tokens), int(unknown or 0)



