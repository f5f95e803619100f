"""Runs a sealed plan in this process: journal, ledger, providers, signals, and the final status.

`execute_plan(plan, RunRequest(...))` is what `bmad run` (and the tests and benchmarks) call. It
opens (or resumes) a run in the journal, builds the model pool from the provider registry, enforces
the price rule (a dollar budget refuses models without a price), runs the entry workflow, and
records the outcome: `completed`, `failed`, `budget_exhausted` or `cancelled` (exit 0, 1, 3, 130).
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from bmad.compiler.plan import Plan
from bmad.runtime.cache import TaskCache
from bmad.runtime.events import EventBus, JournalSink, Sink
from bmad.runtime.heap_freeze import freeze_new, long_lived_frozen
from bmad.runtime.inputs import InputError, bind_inputs
from bmad.runtime.interpreter import Interpreter, RunConfig
from bmad.runtime.journal import Journal, RunClaimRefused, default_journal_path, journal_problem
from bmad.runtime.ledger import BudgetLedger
from bmad.runtime.model_pool import ModelPool, ModelUnknown, ProviderFactory
from bmad.runtime.providers import base, keys

EXIT_CODES = {"completed": 0, "failed": 1, "invalid": 2, "budget_exhausted": 3, "cancelled": 130}
# What stops a run as Ctrl-C does (recorded `cancelled`, resumable): SIGHUP is the terminal closing.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class RunRefused(Exception):
    """The run can't start: bad inputs, unpriced models under a dollar budget, a stale plan..."""

    def __init__(self, message: str, code: str = "BMAD-E300", hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint


@dataclass(slots=True)
class RunRequest:
    inputs: dict[str, Any] = field(default_factory=dict)  # already typed (e.g. --input-file)
    input_texts: dict[str, str] = field(default_factory=dict)  # `--input k=v`, parsed by type
    config: RunConfig = field(default_factory=RunConfig)
    budget_usd: float | None = None  # overrides the plan's
    budget_tokens: int | None = None
    budget_time_s: float | None = None
    provider_mode: str | None = None  # "sim": every model simulated
    provider_factory: ProviderFactory | None = None
    sim_seed: int | None = None
    sim_latency_scale: float | None = None
    sim_failure_rate: float | None = None
    sim_failure_kinds: tuple[str, ...] | None = None
    journal_path: Path | None = None
    use_journal: bool = True
    resume: str | None = None
    explain_cache: bool = False
    sinks: list[Sink] = field(default_factory=list)
    handle_signals: bool = False
    source: str | None = None  # the file the plan came from (shown by `bmad runs`)
    run_id: str | None = None


@dataclass(slots=True)
class RunOutcome:
    run_id: str
    status: str
    outputs: dict[str, Any]
    spent_usd: float
    tokens: int
    elapsed_s: float
    error: str | None = None
    journal_path: Path | None = None
    unknown_cost_calls: int = 0  # calls to unpriced models: their cost isn't in spent_usd
    cache_decisions: list[dict[str, Any]] = field(default_factory=list)
    task_statuses: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, 1)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def default_provider_factory(plan: Plan, request: RunRequest) -> ProviderFactory:
    from bmad.runtime.providers.registry import build_provider

    mode, options = provider_options(plan, request)

    def factory(decl):  # type: ignore[no-untyped-def]
        return build_provider(decl, mode=mode, options=options)

    return factory


def provider_options(plan: Plan, request: RunRequest):
    """The provider mode and `ProviderOptions` a run builds its providers with (the Ray executor
    ships them to its workers)."""
    from bmad.runtime.providers.registry import ProviderOptions
    from bmad.runtime.providers.sim import SimSettings

    sim_kwargs: dict[str, Any] = {}
    if request.sim_seed is not None:
        sim_kwargs["seed"] = request.sim_seed
    if request.sim_latency_scale is not None:
        sim_kwargs["latency_scale"] = request.sim_latency_scale
    if request.sim_failure_rate is not None:
        sim_kwargs["failure_rate"] = request.sim_failure_rate
    if request.sim_failure_kinds:
        sim_kwargs["failure_kinds"] = tuple(request.sim_failure_kinds)
    options = ProviderOptions(models=plan.program.models, sim=SimSettings(**sim_kwargs))
    return request.provider_mode, options


def execute_plan(plan: Plan, request: RunRequest) -> RunOutcome:
    return anyio.run(execute_plan_async, plan, request)


async def execute_plan_async(plan: Plan, request: RunRequest) -> RunOutcome:
    program = plan.program
    workflow = program.workflow(plan.workflow)
    if workflow is None:
        raise RunRefused(f"the plan's workflow `{plan.workflow}` is not in its program")

    journal: Journal | None = None
    if request.use_journal:
        path = request.journal_path or default_journal_path()
        journal = Journal(path)
        journal.fail_stale_runs()
    # The stop signals are caught from before the run is created (or claimed) until its end is
    # recorded: one arriving in between is queued and ends the run `cancelled`, never unrecorded.
    signals = anyio.open_signal_receiver(*STOP_SIGNALS) if request.handle_signals else nullcontext()
    try:
        with long_lived_frozen(), signals as receiver:  # long-lived: keep GC off the plan's IR
            return await _execute(plan, request, workflow, journal, receiver)
    finally:
        if journal is not None:
            journal.close()


def same_plan(plan: Plan, recorded: str) -> bool:
    """A hash journaled before plan hashes were portable (absolute paths) still names this plan.
    Imported only here: the optimizer's modules are not loaded for a run of a sealed plan."""
    from bmad.compiler.passes.seal_plan import plan_hash_matches

    return plan_hash_matches(plan, recorded)


async def _execute(plan: Plan, request: RunRequest, workflow, journal: Journal | None,
                   signals=None) -> RunOutcome:
    config = request.config
    resumed: dict[str, dict[str, Any]] = {}
    recorded = {}
    spent_usd, spent_tokens, unknown, elapsed = 0.0, 0, 0, 0.0
    if request.resume:
        if journal is None:
            raise RunRefused("--resume needs the journal")
        row = journal.run(request.resume)
        if row is None:
            raise RunRefused(journal.missing_run(request.resume), "BMAD-E301",
                             "list runs with `bmad runs`")
        if row["status"] == "completed":
            raise RunRefused(f"run `{row['id']}` already completed; nothing to resume", "BMAD-E302")
        if row["status"] == "running" and journal.held_elsewhere(row["id"], row["pid"]):
            # Two processes on one run would make its calls twice (and share its call ids).
            raise RunRefused(f"run `{row['id']}` is still running (process {row['pid']})",
                             "BMAD-E308", "wait for it to finish, or stop that process "
                             "(Ctrl-C, or kill PID), then resume")
        if row["plan_hash"] != plan.plan_hash and not same_plan(plan, row["plan_hash"]):
            raise RunRefused(f"run `{row['id']}` was made from plan {row['plan_hash'][:12]}, not "
                             f"{plan.plan_hash[:12]}", "BMAD-E303",
                             "resume with the run's own plan (omit FILE), or start a new run")
        run_id = row["id"]
        seen_updated_at = row["updated_at"]  # what the state read below is as of
        inputs = journal_inputs(row)
        resumed = journal.final_tasks(run_id)
        recorded = journal.recorded_calls(run_id)
        spent_usd, spent_tokens, unknown = journal.spend(run_id)
        elapsed = row.get("elapsed_s") or 0.0
        # A resume may raise the caps (e.g. after `budget_exhausted`); otherwise the run's own hold.
        budget = (request.budget_usd if request.budget_usd is not None else row["budget_usd"],
                  request.budget_tokens if request.budget_tokens is not None else row["budget_tokens"],
                  request.budget_time_s if request.budget_time_s is not None else row["budget_time_s"])
    else:
        run_id = request.run_id or new_run_id()
        try:
            inputs = bind_inputs(workflow, request.inputs, texts=request.input_texts)
        except InputError as exc:
            raise RunRefused(str(exc), "BMAD-E304",
                             "see the workflow's `input` declarations") from None
        budget = (request.budget_usd if request.budget_usd is not None else plan.budget.usd,
                  request.budget_tokens if request.budget_tokens is not None else plan.budget.tokens,
                  request.budget_time_s if request.budget_time_s is not None else plan.budget.time_s)

    events = EventBus(run_id)
    for sink in request.sinks:
        events.add(sink)
    if journal is not None:
        events.add(JournalSink(journal))

    def on_alert(kind: str, threshold: float, spent: float, cap: float) -> None:
        if events.active:
            events.emit("budget_alert", None, kind=kind, threshold=threshold, spent=round(spent, 6),
                        budget=cap)

    ledger = BudgetLedger(usd=budget[0], tokens=budget[1], time_s=budget[2], spent_usd=spent_usd,
                          spent_tokens=spent_tokens, elapsed_s=elapsed, on_alert=on_alert)
    ledger.unknown_cost_calls = unknown
    factory = request.provider_factory or default_provider_factory(plan, request)
    pool = ModelPool(plan.program, factory, provider_concurrency=plan.provider_concurrency,
                     breaker_threshold=config.breaker_threshold,
                     breaker_cooldown_s=config.breaker_cooldown_s,
                     sim=request.provider_mode == "sim")
    cache = TaskCache(journal, events, run_id, explain=request.explain_cache) \
        if config.cache and journal is not None else None
    interp = Interpreter(plan, pool=pool, ledger=ledger, events=events, journal=journal,
                         run_id=run_id, config=config, resumed=resumed, cache=cache)
    interp.caller.recorded = recorded
    interp.caller.seed = config.seed
    interp.caller.default_timeout_s = config.default_timeout_s

    refuse_unrunnable_models(interp, pool, plan, budget[0])

    if journal is not None and not request.resume and not journal.has_plan(plan.plan_hash):
        # Compact JSON (the C encoder); stored once per plan hash, so `--resume` needs no file.
        journal.store_plan(plan.plan_hash, json.dumps(plan.to_json(), separators=(",", ":"),
                                                      ensure_ascii=False))
    compiled = interp.compile(plan.workflow)
    freeze_new()
    if journal is not None:
        if request.resume:
            try:
                journal.reopen_run(run_id, budget, seen_updated_at=seen_updated_at)
            except RunClaimRefused as exc:
                raise _claim_refused(exc, journal) from None
        else:
            journal.create_run(run_id, workflow=plan.workflow, plan_hash=plan.plan_hash,
                               plan_json=None, inputs=inputs, budget=budget,
                               total_tasks=len(compiled.nodes), source=request.source,
                               options={"strategy": interp.strategy,
                                        "provider_mode": request.provider_mode,
                                        "sim_seed": request.sim_seed,
                                        "sim_latency_scale": request.sim_latency_scale,
                                        "sim_failure_rate": request.sim_failure_rate,
                                        "concurrency": config.concurrency,
                                        "cache": config.cache, "seed": config.seed})
    events.emit("run_started", None, workflow=plan.workflow, plan_hash=plan.plan_hash,
                budget_usd=budget[0], budget_tokens=budget[1], budget_time_s=budget[2],
                tasks=len(compiled.nodes), resumed=bool(request.resume))

    status = "completed"
    error: str | None = None
    frame = None
    started = time.monotonic()
    try:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                if signals is not None:
                    tg.start_soon(_watch_signals, scope, interp, signals)

                async def main() -> None:
                    nonlocal frame
                    frame = await interp.run_workflow(plan.workflow, inputs)
                    tg.cancel_scope.cancel()  # stop the signal watcher

                tg.start_soon(main)
        if interp.cancelled:
            status = "cancelled"
            error = "cancelled by a signal; resume with --resume " + run_id
        elif interp.budget_stop is not None:
            status = "budget_exhausted"
            error = str(interp.budget_stop)
        elif frame is not None and frame.failure:
            status = "failed"
            error = frame.failure
        elif frame is None:
            status = "cancelled"
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, anyio.get_cancelled_exc_class())):
            status, error = "cancelled", "cancelled"
        elif journal is not None and (problem := journal_problem(exc, journal.path)) is not None:
            status, error = "interrupted", problem.run_error(run_id)  # the journal failed: resumable
        else:
            status, error = "failed", keys.redact(f"internal error: {type(exc).__name__}: {exc}")
        _record_finish(journal, run_id, status, ledger, interp, error, None)
        events.emit("run_finished", None, status=status, spent_usd=round(ledger.spent_usd, 6),
                    tokens=ledger.spent_tokens, elapsed_s=round(time.monotonic() - started, 3),
                    error=error)
        events.close()
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await pool.aclose()

    outputs = interp.outputs(frame) if frame is not None else {}
    _record_finish(journal, run_id, status, ledger, interp, error,
                   outputs if status == "completed" else _partial_outputs(frame, interp))
    events.emit("run_finished", None, status=status, spent_usd=round(ledger.spent_usd, 6),
                tokens=ledger.spent_tokens, elapsed_s=round(time.monotonic() - started, 3),
                error=error)
    events.close()
    return RunOutcome(run_id=run_id, status=status, outputs=outputs, spent_usd=ledger.spent_usd,
                      tokens=ledger.spent_tokens, elapsed_s=ledger.elapsed_s, error=error,
                      unknown_cost_calls=ledger.unknown_cost_calls,
                      journal_path=journal.path if journal is not None else None,
                      cache_decisions=cache.decisions if cache is not None else [],
                      task_statuses={k: r.status for k, r in frame.results.items()} if frame else {})


def refuse_unrunnable_models(interp: Interpreter, pool: ModelPool, plan: Plan,
                             usd_cap: float | None) -> None:
    """Refuse up front what can't run: unknown models, unpriced ones under a dollar budget."""
    try:
        used = interp.models_used(plan.workflow)
        slots = {m: pool.get(m) for m in used}
    except ModelUnknown as exc:
        raise RunRefused(str(exc), "BMAD-E305", "re-plan the workflow against its catalog") from None
    except keys.RefusedProvider as exc:  # BMAD-E400 (bmad.toml), E401 (bad key value): own fix
        raise RunRefused(exc.detail, exc.code, exc.hint) from None
    except base.Unavailable as exc:
        raise RunRefused(f"provider unavailable: {exc.message}", "BMAD-E306",
                         "set the provider's key variable, or run with --provider sim") from None
    if usd_cap is not None:
        unpriced = sorted(m for m, s in slots.items() if not s.priced)
        if unpriced:
            tasks = sorted({t for m in unpriced for t in used[m]})
            raise RunRefused(
                f"a ${usd_cap:g} budget can't be enforced: no price for {', '.join(unpriced)} "
                f"(used by {', '.join(tasks)}); unknown prices are never counted as $0",
                "BMAD-E307", "declare `price input $X output $Y per 1M` for these models, or run "
                             "without a dollar budget")


def _partial_outputs(frame, interp: Interpreter) -> dict[str, Any] | None:
    """Outputs of a run that stopped early: those whose tasks completed (the rest are left out)."""
    if frame is None:
        return None
    return {o.name: frame.scope.get(o.name) for o in frame.compiled.workflow.outputs
            if o.name in frame.results and frame.results[o.name].status == "completed"}


def _record_finish(journal: Journal | None, run_id: str, status: str, ledger: BudgetLedger,
                   interp: Interpreter, error: str | None, outputs: dict[str, Any] | None) -> None:
    if journal is None:
        return
    journal.finish_run(run_id, status, spent_usd=ledger.spent_usd, tokens=ledger.spent_tokens,
                       unknown_cost_calls=ledger.unknown_cost_calls, elapsed_s=ledger.elapsed_s,
                       done_tasks=interp.done_tasks, error=error, outputs=outputs)


async def _watch_signals(scope: anyio.CancelScope, interp: Interpreter, signals) -> None:
    """Cancel the run at the first stop signal (one queued before the run started included); the
    receiver stays open after this returns, until the run's end is recorded."""
    async for _ in signals:
        interp.cancelled = True
        scope.cancel()
        return


def _claim_refused(exc: RunClaimRefused, journal: Journal) -> RunRefused:
    """A resume that lost its run between reading it and claiming it (`Journal.reopen_run`)."""
    if exc.status is None:
        return RunRefused(f"no run `{exc.run_id}` in {journal.path} any more: it was removed "
                          "(pruned) while this resume was starting", "BMAD-E301",
                          "list runs with `bmad runs`")
    if exc.status == "completed":
        return RunRefused(f"run `{exc.run_id}` already completed (another process finished it); "
                          "nothing to resume", "BMAD-E302")
    if not exc.changed:
        return RunRefused(f"run `{exc.run_id}` is still running (process {exc.pid})", "BMAD-E308",
                          "wait for it to finish, or stop that process (Ctrl-C, or kill PID), "
                          "then resume")
    return RunRefused(f"run `{exc.run_id}` was resumed by another process (process {exc.pid}) "
                      "while this resume was starting", "BMAD-E308",
                      "see `bmad runs`; resume it again if it is still unfinished")


def journal_inputs(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["inputs_json"] or "{}")


def load_run_plan(journal: Journal, run_id: str) -> Plan | None:
    """The plan a journaled run was started with (so `--resume RUN_ID` needs no file)."""
    row = journal.run(run_id)
    text = journal.plan_json(row["id"]) if row is not None else None
    if text is None:
        return None
    return Plan.from_json(json.loads(text))

