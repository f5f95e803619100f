"""The interpreter: runs a sealed plan's workflows task by task, honouring every clause of the IR.

`Interpreter.run_workflow` compiles a `WorkflowPlan` into nodes (templates compiled, dependencies
and model chains resolved once) and hands them to the `Scheduler`. Each node's body here renders
the prompt, calls models through `ModelCaller` (budget, limits, retries, journal), parses
`returns`, runs consensus, applies the quality gate, fans out `for each`, reduces in chunks, calls
subworkflows, and turns failures into `on_error` outcomes. Results are journaled as they finish;
the scheduler commits them before any dependent starts.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Callable, Sequence

import anyio
import anyio.lowlevel

from bmad.compiler import ir
from bmad.compiler.adaptive import cheaper_candidates
from bmad.compiler.call_shapes import DEFAULT_MAX_TOKENS, gate_rounds
from bmad.compiler.limits import current_limits
from bmad.compiler.plan import Plan, TaskPlan, WorkflowPlan
from bmad.runtime import quality as scorers
from bmad.runtime import returns as returns_mod
from bmad.runtime.cache import TaskCache
from bmad.runtime.calls import ModelCaller, ModelFailed
from bmad.runtime.consensus import (Candidate, ConsensusOutcome, QuorumNotMet, decide_escalated,
                                     decide_medoid, decide_vote, run_consensus, verdicts)
from bmad.runtime.events import EventBus
from bmad.runtime.expressions import evaluate, truthy
from bmad.runtime.inputs import InputError, check_type
from bmad.runtime.ledger import (BudgetExhausted, BudgetLedger, BudgetOverrun,
                                 ScopeBudgetExhausted, ScopedLedger, UnpricedModel)
from bmad.runtime.model_pool import ModelPool, ModelUnknown
from bmad.runtime.providers.base import Message
from bmad.runtime.retry import RetryPolicy
from bmad.runtime.scheduler import Scheduler, Topology
from bmad.runtime.templates import CompiledTemplate, TemplateError

PRIORITY_WEIGHT = {"critical": 3, "high": 2, "medium": 1, "low": 0, None: 1}
LATENCY_REROUTE_FACTOR = 3.0
_NO_RETRY = RetryPolicy.from_ir(None)  # frozen: one shared by every task without `retry`


class CompiledPlans:
    """Compiled nodes shared by the runs of one sealed plan in this process (batches, `serve`,
    repeated runs): nodes are read-only during a run, so later runs skip compiling them. An entry
    is used only for the very same `Plan` object (same hash is not enough: spans, which error
    messages quote, are not part of the hash); the few most recent plans are kept, strongly."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._entries: dict[str, tuple[Plan, dict[tuple[str, str], CompiledWorkflow]]] = {}

    def get(self, plan: Plan, strategy: str, workflow: str) -> "CompiledWorkflow | None":
        entry = self._entries.get(plan.plan_hash)
        if entry is None or entry[0] is not plan:
            return None
        return entry[1].get((strategy, workflow))

    def put(self, plan: Plan, strategy: str, workflow: str, compiled: "CompiledWorkflow") -> None:
        entry = self._entries.pop(plan.plan_hash, None)  # re-inserted: the newest entry is last
        if entry is None or entry[0] is not plan:
            entry = (plan, {})
        entry[1][(strategy, workflow)] = compiled
        self._entries[plan.plan_hash] = entry
        while len(self._entries) > self.keep:
            del self._entries[next(iter(self._entries))]


class TaskFailure(Exception):
    """A task could not produce its result (after retries, fallbacks and escalation)."""


@dataclass(slots=True)
class RunConfig:
    strategy: str | None = None  # overrides the plan's
    concurrency: int = 64  # workers (tasks at once) and the global call limit
    for_each_concurrency: int | None = None  # items of one fan-out at once (default: concurrency)
    default_timeout_s: float = 120.0
    seed: int = 0
    cache: bool = False
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0


@dataclass(slots=True)
class TaskResult:
    status: str  # completed | skipped | failed | budget_exhausted | cancelled
    output: Any = None
    model: str | None = None
    attempts: int = 0
    cost_usd: float | None = 0.0
    tokens: int = 0
    quality: float | None = None
    error: str | None = None
    cached: bool = False


@dataclass(slots=True)
class Tally:
    """What one task spent, across all its calls."""

    attempts: int = 0
    cost_usd: float | None = 0.0
    tokens: int = 0
    # The budget this execution's calls reserve in: its own `budget` nested in the enclosing
    # call's, or None for the run's ledger. Per execution, never on the (cached) `Node`.
    ledger: "BudgetLedger | ScopedLedger | None" = None
    # `for each` items that failed under `on_error continue` (index, why): the task completes
    # with None in their places, and its journal row says which and why.
    failed_items: list[tuple[int, str]] = field(default_factory=list)

    def add(self, cost: float | None, tokens: int) -> None:
        if cost is None or self.cost_usd is None:
            self.cost_usd = None if cost is None else self.cost_usd
        else:
            self.cost_usd += cost
        self.tokens += tokens


@dataclass(slots=True)
class Node:
    """A task, with everything that can be worked out before the run."""

    id: str
    index: int
    task: ir.Task
    plan: TaskPlan
    deps: tuple[int, ...]
    dep_ids: tuple[str, ...]
    prompt: CompiledTemplate | None
    system: CompiledTemplate | None
    chain: tuple[str, ...]  # primary model, then cascade / fallbacks
    participants: tuple[str, ...]
    method: str | None
    judge: str | None
    retry: RetryPolicy
    max_tokens: int
    timeout_s: float | None
    instruction: str | None
    schema_key: str
    capability: str | None
    key: tuple = ()
    expected_cost: float = 0.0
    # What every answer request of this task carries (the JSON schema or enum values asked for).
    answer_schema: dict | None = None
    enum_values: tuple[str, ...] = ()
    temperature: float | None = None
    # A prompt to one model with no clause beyond fallbacks and retries (no consensus, quality
    # gate, cascade floor, `returns` shape, `for each`, `reduce` or call): it runs on a lean path
    # and joins the general one only if its first model fails.
    plain: bool = False


@dataclass(slots=True)
class CompiledWorkflow:
    workflow: ir.Workflow
    plan: WorkflowPlan
    nodes: list[Node]
    by_id: dict[str, Node]
    # Worked out on first use, then shared by the runs of the plan (read-only):
    topology: Topology | None = None  # the scheduler's dependency counts, dependents, roots
    models: dict[str, list[str]] | None = None  # `Interpreter.models_used` of this workflow


_COMPILED_PLANS = CompiledPlans()


@dataclass(slots=True)
class Frame:
    """One execution of a workflow: its scope (inputs and task outputs) and its results."""

    compiled: CompiledWorkflow
    prefix: str
    scope: dict[str, Any]
    results: dict[str, TaskResult] = field(default_factory=dict)
    scheduler: Scheduler | None = None
    failure: str | None = None
    running: set[str] = field(default_factory=set)  # started, not finished
    ledger: "BudgetLedger | ScopedLedger | None" = None  # a called workflow's budget, else None


class Interpreter:
    def __init__(self, plan: Plan, *, pool: ModelPool, ledger: BudgetLedger, events: EventBus,
                 journal: Any, run_id: str, config: RunConfig,
                 resumed: dict[str, dict[str, Any]] | None = None,
                 cache: TaskCache | None = None):
        self.plan = plan
        self.program = plan.program
        self.pool = pool
        self.ledger = ledger
        self.events = events
        self.journal = journal
        self.run_id = run_id
        self.config = config
        self.strategy = config.strategy or plan.strategy or "parallel"
        self.resumed = resumed or {}
        self.cache = cache
        self.caller = ModelCaller(pool=pool, ledger=ledger, events=events, journal=journal,
                                  run_id=run_id, concurrency=config.concurrency,
                                  breakers=self.strategy == "adaptive")
        self.caller.on_budget_exhausted = self._budget_exhausted
        self._compiled: dict[str, CompiledWorkflow] = {}
        self.budget_stop: BudgetExhausted | None = None
        self._item_flush = False  # a flush of finished `for each` items is scheduled
        self.cancelled = False
        self.done_tasks = len(self.resumed)
        self._remaining_expected = 0.0
        self._progress_at = 0.0
        self._schedulers: list[Scheduler] = []

    # ------------------------------------------------------------------------------------------
    # Compiling a workflow plan into nodes

    def compile(self, workflow_name: str) -> CompiledWorkflow:
        hit = self._compiled.get(workflow_name)
        if hit is not None:
            return hit
        shared = _COMPILED_PLANS.get(self.plan, self.strategy, workflow_name)
        if shared is not None:  # an earlier run of this very plan in this process compiled it
            self._compiled[workflow_name] = shared
            return shared
        workflow = self.program.workflow(workflow_name)
        wplan = self.plan.subplan(workflow_name)
        if workflow is None or wplan is None:
            raise TaskFailure(f"workflow `{workflow_name}` is not in the plan")
        plans = {t.id: t for t in wplan.tasks}
        order = {t.name: i for i, t in enumerate(workflow.tasks)}
        names = order.keys()
        task_ids = tuple(order)
        # One pass: a dependency's index is its place in the workflow, so nodes need no second
        # pass to resolve them (the plan only names the workflow's own tasks).
        nodes: list[Node] = []
        for i, task in enumerate(workflow.tasks):
            tp = plans.get(task.name) or TaskPlan(id=task.name,
                                                  model=task.model.name if task.model else None)
            prompt = CompiledTemplate(task.prompt) if task.prompt else None
            system = CompiledTemplate(task.system) if task.system else None
            found = _ir_dependencies(task, prompt, system, names)
            if tp.depends:
                found.update(tp.depends)
            found.discard(task.name)
            deps = tuple(sorted([order[d] for d in found])) if found else ()
            node = self._node(task, tp, i, tuple([task_ids[d] for d in deps]), prompt, system)
            node.deps = deps
            nodes.append(node)
        by_id = dict(zip(task_ids, nodes))
        compiled = CompiledWorkflow(workflow, wplan, nodes, by_id)
        self._compiled[workflow_name] = compiled
        _COMPILED_PLANS.put(self.plan, self.strategy, workflow_name, compiled)
        return compiled

    def _node(self, task: ir.Task, tp: TaskPlan, index: int, dep_ids: tuple[str, ...],
              prompt: CompiledTemplate | None, system: CompiledTemplate | None) -> Node:
        own_model = task.model.name if task.model else None
        if tp.cascade or tp.fallbacks or task.fallback or (own_model and own_model != tp.model):
            chain = _dedupe([m for m in (tp.model, own_model) if m] + list(tp.cascade)
                            + list(tp.fallbacks) + [f.name for f in task.fallback])
        else:  # one model (the common case): nothing to merge
            chain = [tp.model or own_model] if tp.model or own_model else []
        consensus = task.consensus
        participants = tuple(tp.participants)
        method = consensus.method if consensus else None
        if consensus and not participants:
            participants = tuple(p.name for p in consensus.participants) or \
                tuple(chain[:1] * max(1, consensus.size))
        if not consensus and tp.method and len(participants) > 1:
            method = tp.method  # the plan's panel (`strategy collaborative`, docs/planning.md)
        if participants and not chain:
            chain = (participants[0],)
        judge = tp.judge or (consensus.judge.name if consensus and consensus.judge else None) \
            or (task.quality.judge.name if task.quality and task.quality.judge else None)
        returns = task.returns
        instruction = returns_mod.format_instruction(returns) if returns is not None else None
        schema_key = returns_mod.schema_fingerprint(returns) if returns is not None else ""
        prio = PRIORITY_WEIGHT.get(task.priority, 1)
        key = (tp.rank, -prio, index)
        plain = (task.prompt is not None and bool(chain) and task.for_each is None
                 and task.call is None and task.reduce is None and task.quality is None
                 and not (participants and method) and instruction is None
                 and (returns is None or returns.kind == "text")
                 and not (task.route is not None and task.route.strategy == "cascade"
                          and tp.cascade))
        return Node(
            id=task.name, index=index, task=task, plan=tp, deps=(), dep_ids=dep_ids,
            prompt=prompt, system=system,
            chain=tuple(chain), participants=participants, method=method, judge=judge,
            retry=RetryPolicy.from_ir(task.retry) if task.retry is not None else _NO_RETRY,
            max_tokens=task.max_tokens or DEFAULT_MAX_TOKENS,
            timeout_s=task.timeout_s, instruction=instruction, schema_key=schema_key,
            capability=task.needs[0].name if task.needs else None, key=key,
            expected_cost=tp.estimate.cost_usd_expected or 0.0,
            answer_schema=(returns.schema if isinstance(returns.schema, dict) else {})
            if returns is not None and returns.kind == "json" else None,
            enum_values=tuple(returns.values) if returns is not None and returns.kind == "enum"
            else (),
            temperature=task.temperature, plain=plain,
        )

    def models_used(self, workflow_name: str, seen: set[str] | None = None) -> dict[str, list[str]]:
        """Every model any task may call, with the tasks that may call it (for price checks)."""
        top = seen is None
        seen = seen if seen is not None else set()
        if workflow_name in seen:
            return {}
        seen.add(workflow_name)
        compiled = self.compile(workflow_name)
        if top and compiled.models is not None:  # an earlier run of this plan worked it out
            return compiled.models
        used: dict[str, list[str]] = {}
        for n in compiled.nodes:
            for m in (*n.chain, *n.participants, *((n.judge,) if n.judge else ())):
                used.setdefault(m, []).append(n.id)
            if n.task.call is not None:
                for m, ts in self.models_used(n.task.call.workflow.name, seen).items():
                    used.setdefault(m, []).extend(f"{n.id}/{t}" for t in ts)
        if top:
            compiled.models = used
        return used

    # ------------------------------------------------------------------------------------------
    # Running a workflow

    async def run_workflow(self, workflow_name: str, inputs: dict[str, Any],
                           prefix: str = "",
                           ledger: "BudgetLedger | ScopedLedger | None" = None) -> Frame:
        compiled = self.compile(workflow_name)
        frame = Frame(compiled, prefix, dict(inputs), ledger=ledger)
        nodes = compiled.nodes
        done: list[int] = []
        # Only `adaptive` reads the expected remaining cost; only a resume has results already.
        if self.resumed or self.strategy == "adaptive":
            for n in nodes:
                record = self.resumed.get(prefix + n.id)
                if record is not None:
                    frame.results[n.id] = TaskResult(record["status"], record["output"],
                                                     record["model"], record["attempts"] or 0,
                                                     record["cost_usd"], record["tokens"] or 0,
                                                     record["quality"])
                    frame.scope[n.id] = record["output"]
                    done.append(n.index)
                else:
                    self._remaining_expected += n.expected_cost
        workers = 1 if self.strategy == "sequential" else self.config.concurrency
        commit = self._commit if self.journal is not None else None
        topology = compiled.topology
        if topology is None:
            topology = compiled.topology = Topology([n.deps for n in nodes], [n.key for n in nodes])

        scheduler = Scheduler(nodes, topology.deps, topology.keys,
                              functools.partial(self._run_node, frame),
                              workers=workers, commit=commit, done=done, topology=topology)
        frame.scheduler = scheduler
        if self.budget_stop is not None or self.cancelled:
            scheduler.stop()
        self._schedulers.append(scheduler)
        try:
            await scheduler.run_all()
        finally:
            self._schedulers.remove(scheduler)
            if self.budget_stop is None and self.ledger.exhausted is not None:
                # Spend went past the cap (calls in flight together, or answers that cost more
                # than their worst case): the run is over budget whatever else finished.
                self.budget_stop = self.ledger.exhausted
            if isinstance(self.budget_stop, BudgetOverrun):  # the overrun as it stands now
                self.budget_stop = self.ledger.overrun or self.budget_stop
            if len(frame.results) < len(nodes):
                self._record_unfinished(frame)
        return frame

    def _record_unfinished(self, frame: Frame) -> None:
        """A workflow that stopped early (budget exhausted, a failure under `on_error fail`, a
        cancellation) still accounts for every task: those in flight when it stopped are
        `cancelled`, those that never started `not_started`. A resume runs both."""
        if self.cancelled:
            why = "the run was cancelled"
        elif self.budget_stop is not None:
            why = f"the run stopped: {self.budget_stop}"
        else:
            why = f"the run stopped: {frame.failure}" if frame.failure else "the run stopped"
        now = time.time()
        for node in frame.compiled.nodes:
            if node.id in frame.results:
                continue
            status = "cancelled" if node.id in frame.running else "not_started"
            frame.results[node.id] = TaskResult(status, error=why)
            if self.journal is not None:
                self.journal.add_task(self.run_id, frame.prefix + node.id, status, error=why,
                                      finished_at=now, capability=node.capability)

    def _commit(self, finished: list[int]) -> None:
        self._note_progress()
        self.journal.flush()

    def _note_progress(self) -> None:
        """The run's spend so far on its row, for `bmad runs`, `workflow status` and the monitor's
        budget alerts, a few times a second: as tasks finish, and as the items of a long `for
        each` do (else the row read $0 until the whole task ended, and forever after a crash)."""
        now = time.monotonic()
        if now - self._progress_at > 0.25:
            self._progress_at = now
            led = self.ledger
            self.journal.update_run_progress(self.run_id, led.spent_usd, led.spent_tokens,
                                             led.unknown_cost_calls, led.elapsed_s, self.done_tasks)

    def outputs(self, frame: Frame) -> dict[str, Any]:
        out = {}
        for o in frame.compiled.workflow.outputs:
            out[o.name] = frame.scope.get(o.name)
        return out

    # ------------------------------------------------------------------------------------------
    # One node

    async def _run_node(self, frame: Frame, node: Node) -> None:
        path = frame.prefix + node.id
        started = time.time()
        frame.running.add(node.id)
        self._remaining_expected -= node.expected_cost
        if self.budget_stop is not None or self.cancelled:
            return self._finish(frame, node, path, TaskResult("budget_exhausted" if self.budget_stop
                                                              else "cancelled"), started)
        task = node.task
        for d in node.dep_ids:
            dep = frame.results.get(d)
            if dep is None or dep.status not in ("completed", "failed"):
                # A `when` that reads a skipped task handles it: it sees null (its scope value).
                if (dep is not None and dep.status == "skipped" and task.when is not None
                        and d in _expr_roots(task.when)):
                    continue
                reason = f"dependency `{d}` was {dep.status if dep else 'not run'}"
                return self._skip(frame, node, path, reason, started)
        try:
            if task.when is not None and not truthy(evaluate(task.when, frame.scope)):
                return self._skip(frame, node, path, "`when` condition is false", started)
        except TemplateError as exc:
            return self._fail(frame, node, path, f"`when`: {exc.message}", started, Tally())
        events = self.events
        if "task_started" in events.wanted:
            events.emit("task_started", path, model=node.chain[0] if node.chain else None)
        tally = Tally(ledger=frame.ledger if node.task.budget is None
                      else self._task_ledger(frame, node, path))
        try:
            cache_key = None
            if self.cache is not None:
                cache_key, hit = self.cache.lookup(frame, node, path)
                if hit is not None:
                    result = TaskResult("completed", hit["output"], hit["model"], 0, 0.0, 0,
                                        hit["quality"], cached=True)
                    return self._finish(frame, node, path, result, started, cache_key)
            if self.strategy == "adaptive":
                node = self._adapt(node, path)
            if node.plain:
                # `_plain`'s body, inlined: one coroutine fewer on every plain task.
                caller = self.caller
                messages = self._messages(node, frame.scope)
                chain = caller.healthy_order(node.chain) if caller.breakers else node.chain
                try:
                    response = await caller.call(node, path, chain[0], messages, "m0/", tally)
                    value, model, quality = response.text, chain[0], None
                except ModelFailed as exc:
                    value, model, quality = await self._single(node, path, messages, "", tally,
                                                               chain=chain, failed=exc)
            else:
                value, model, quality = await self._execute(frame, node, path, tally)
            result = TaskResult("completed", value, model, tally.attempts, tally.cost_usd,
                                tally.tokens, quality, error=_failed_items_note(tally.failed_items))
            if cache_key is not None and self.cache is not None:
                self.cache.store(cache_key, frame, node, path, result)
            self._finish(frame, node, path, result, started, cache_key)
        except ScopeBudgetExhausted as exc:  # its own (or its call's) budget: this task fails
            self._fail(frame, node, path, str(exc), started, tally)
        except BudgetExhausted as exc:
            self.budget_stop = exc
            self._stop_all()
            self._finish(frame, node, path, TaskResult("budget_exhausted", None, None, tally.attempts,
                                                       tally.cost_usd, tally.tokens, error=str(exc)),
                         started)
        except UnpricedModel as exc:
            self._fail(frame, node, path, str(exc), started, tally, force_fail=True)
        except (TaskFailure, ModelFailed, QuorumNotMet, TemplateError, ModelUnknown) as exc:
            message = exc.message if isinstance(exc, TemplateError) else str(exc)
            self._fail(frame, node, path, message, started, tally)

    def _task_ledger(self, frame: Frame, node: Node, path: str) -> "BudgetLedger | ScopedLedger | None":
        budget = node.task.budget
        if budget is None or (budget.usd is None and budget.tokens is None and budget.time_s is None):
            return frame.ledger
        return ScopedLedger(frame.ledger or self.ledger, scope=f"task `{path}` budget", usd=budget.usd,
                            tokens=budget.tokens, time_s=budget.time_s, on_alert=self._scope_alerts(path))

    def _scope_alerts(self, path: str) -> Callable[[str, float, float, float], None]:
        """`budget_alert` events for a task's (or the workflow it calls) own budget: the event's
        task is `path`; the run's own alerts have none."""
        def on_alert(kind: str, threshold: float, spent: float, cap: float) -> None:
            if self.events.active:
                self.events.emit("budget_alert", path, kind=kind, threshold=threshold,
                                 spent=round(spent, 6), budget=cap)
        return on_alert

    def _adapt(self, node: Node, path: str) -> Node:
        """`strategy adaptive`: move work off slow models and, when money runs short, to cheaper ones."""
        if self.strategy != "adaptive" or not node.chain:
            return node
        chain = list(node.chain)
        # Latency: a model running far slower than the plan expected loses work to the next one.
        first = self.pool.get(chain[0])
        if (len(chain) > 1 and first.latency_samples >= 3
                and first.latency_ratio > LATENCY_REROUTE_FACTOR):
            chain.append(chain.pop(0))
            self._reroute(node, path, first.name, chain[0],
                          f"observed latency {first.latency_ratio:.1f}x the estimate")
        # Budget: remaining money below the expected cost of the remaining work -> cheaper models.
        remaining = self.ledger.remaining_usd()
        if remaining is not None and remaining < self._remaining_expected + node.expected_cost:
            # the planner bounds the same choice (compiler/adaptive.py)
            cheaper = cheaper_candidates(node.plan.candidates, chain, chain[0],
                                         node.plan.estimate.cost_usd_expected, node.task.no_fallback)
            if cheaper:
                best = min(cheaper, key=lambda c: c.cost_usd_expected)  # type: ignore[arg-type]
                self._reroute(node, path, chain[0], best.model,
                              f"remaining budget ${remaining:.4f} is below the expected "
                              f"remaining cost")
                chain = [best.model] + [m for m in chain if m != best.model]
        if tuple(chain) == node.chain:
            return node
        from dataclasses import replace
        return replace(node, chain=tuple(chain))

    def _reroute(self, node: Node, path: str, old: str, new: str, reason: str) -> None:
        if self.events.active:
            self.events.emit("task_rerouted", path, from_model=old, to_model=new, reason=reason)

    def _budget_exhausted(self, exc: BudgetExhausted) -> None:
        """The run's ledger recorded spend past its cap: nothing more starts."""
        if self.budget_stop is None:
            self.budget_stop = exc
            self._stop_all()

    async def _item_finished(self) -> None:
        """A `for each` item (or `reduce` chunk) finished: its calls are journaled now, not when
        the whole task ends, so a crash (SIGKILL) loses no paid call and a resume replays it.
        Items finishing in the same scheduling tick share one commit."""
        if self._item_flush:
            return
        self._item_flush = True
        try:
            await anyio.lowlevel.checkpoint()
        finally:
            self._item_flush = False
            if self.journal is not None and self.journal.pending:
                self._note_progress()
                self.journal.flush()

    def _stop_all(self) -> None:
        for scheduler in self._schedulers:
            scheduler.stop()

    def _skip(self, frame: Frame, node: Node, path: str, reason: str, started: float) -> None:
        if self.events.active:
            self.events.emit("task_skipped", path, reason=reason)
        self._finish(frame, node, path, TaskResult("skipped", error=reason), started)

    def _fail(self, frame: Frame, node: Node, path: str, message: str, started: float,
              tally: Tally, force_fail: bool = False) -> None:
        on_error = node.task.on_error or "fail"
        result = TaskResult("failed", None, None, tally.attempts, tally.cost_usd, tally.tokens,
                            error=message)
        if on_error == "skip" and not force_fail:
            result.status = "skipped"
            if self.events.active:
                self.events.emit("task_skipped", path, reason=f"on_error skip: {message}")
        elif on_error == "fail" or force_fail:
            frame.failure = frame.failure or f"task `{path}` failed: {message}"
            if frame.scheduler is not None:
                frame.scheduler.stop()
        self._finish(frame, node, path, result, started)

    def _finish(self, frame: Frame, node: Node, path: str, result: TaskResult, started: float,
                cache_key: str | None = None) -> None:
        frame.results[node.id] = result
        frame.scope[node.id] = result.output
        frame.running.discard(node.id)
        if result.status in ("completed", "skipped", "failed"):
            self.done_tasks += 1
        if self.journal is not None:
            # By position: model, attempts, cost_usd, tokens, quality, output, error, started_at,
            # finished_at, cache_key, cached, capability.
            self.journal.add_task(self.run_id, path, result.status, result.model, result.attempts,
                                  result.cost_usd, result.tokens, result.quality, result.output,
                                  result.error, started, time.time(), cache_key, result.cached,
                                  node.capability)
        if "task_finished" in self.events.wanted:
            self.events.emit("task_finished", path, status=result.status, model=result.model,
                             attempts=result.attempts, cost_usd=result.cost_usd,
                             quality=result.quality, error=result.error, cached=result.cached)

    # ------------------------------------------------------------------------------------------
    # Task bodies

    async def _execute(self, frame: Frame, node: Node, path: str,
                       tally: Tally) -> tuple[Any, str | None, float | None]:
        task = node.task
        if task.for_each is not None:
            items = evaluate(task.for_each.source, frame.scope)
            if not isinstance(items, list):
                raise TaskFailure(_not_a_list(task.for_each, items))
            fan_out_limit = current_limits().for_each_items
            if len(items) > fan_out_limit:
                raise TaskFailure(f"[BMAD-E503] `for each {task.for_each.var}` would fan out over "
                                  f"{len(items):,} items, more than the limit of {fan_out_limit:,} "
                                  "(`for_each_items` in bmad.toml's [limits])")
            return await self._fan_out(frame, node, path, items, tally)
        if task.call is not None:
            return await self._call_workflow(frame, node, path, frame.scope, "", tally), None, None
        if task.reduce is not None:
            return await self._reduce(frame, node, path, tally)
        return await self._prompt(node, path, frame.scope, "", tally)

    async def _fan_out(self, frame: Frame, node: Node, path: str, items: list,
                       tally: Tally) -> tuple[Any, str | None, float | None]:
        var = node.task.for_each.var  # type: ignore[union-attr]
        results: list[Any] = [None] * len(items)
        qualities: list[float] = []
        models: list[str] = []
        limiter = anyio.CapacityLimiter(self.config.for_each_concurrency or self.config.concurrency)
        on_error = node.task.on_error or "fail"
        journaled = self.journal is not None and len(items) > 1

        async def one(i: int, item: Any) -> None:
            async with limiter:
                scope = dict(frame.scope)
                scope[var] = item
                try:
                    if node.task.call is not None:
                        results[i] = await self._call_workflow(frame, node, f"{path}[{i}]", scope,
                                                               f"i{i}/", tally)
                    else:
                        key, hit = (self.cache.lookup_item(frame, node, path, i, item)
                                    if self.cache is not None else (None, None))
                        if hit is not None:
                            value, model, q = hit["output"], hit["model"], hit["quality"]
                        else:
                            value, model, q = await self._prompt(node, path, scope, f"i{i}/", tally)
                            if key is not None and self.cache is not None:
                                self.cache.store_item(key, frame, node, path, i, item, value, model, q)
                        results[i] = value
                        if model:
                            models.append(model)
                        if q is not None:
                            qualities.append(q)
                except (TaskFailure, ModelFailed, QuorumNotMet, TemplateError,
                        ScopeBudgetExhausted) as exc:
                    # A budget of the task (or of a call it makes) refusing an item is that item's
                    # failure: under `continue`, the items already paid for are kept.
                    if on_error != "continue":
                        raise
                    results[i] = None
                    tally.failed_items.append(
                        (i, exc.message if isinstance(exc, TemplateError) else str(exc)))
                    if self.events.active:
                        self.events.emit("task_skipped", f"{path}[{i}]",
                                         reason=f"item failed, on_error continue: {exc}")
            if journaled:
                await self._item_finished()

        try:
            async with anyio.create_task_group() as tg:
                for i, item in enumerate(items):
                    tg.start_soon(one, i, item)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        model = max(set(models), key=models.count) if models else None
        quality = sum(qualities) / len(qualities) if qualities else None
        return results, model, quality

    async def _reduce(self, frame: Frame, node: Node, path: str,
                      tally: Tally) -> tuple[Any, str | None, float | None]:
        """`reduce SOURCE in chunks of N`: summarise chunks, then the summaries, until one is left."""
        reduce = node.task.reduce
        assert reduce is not None
        source = frame.scope.get(reduce.source.name)
        items = list(source) if isinstance(source, list) else [source]
        size = reduce.chunk_size
        level = 0
        while True:
            if not size or len(items) <= size:
                scope = dict(frame.scope)
                scope[reduce.source.name] = items
                return await self._prompt(node, path, scope, f"L{level}/", tally)
            chunks = [items[i:i + size] for i in range(0, len(items), size)]
            partials: list[Any] = [None] * len(chunks)

            async def one(c: int, chunk: list, level: int = level) -> None:
                scope = dict(frame.scope)
                scope[reduce.source.name] = chunk
                partials[c] = (await self._prompt(node, path, scope, f"L{level}c{c}/", tally))[0]
                if self.journal is not None:
                    await self._item_finished()

            try:
                async with anyio.create_task_group() as tg:
                    for c, chunk in enumerate(chunks):
                        tg.start_soon(one, c, chunk)
            except BaseExceptionGroup as group:
                raise first_error(group) from None
            items = partials
            level += 1

    async def _call_workflow(self, frame: Frame, node: Node, path: str, scope: dict[str, Any],
                             slot: str, tally: Tally) -> Any:
        call = node.task.call
        assert call is not None
        called = self.program.workflow(call.workflow.name)
        if called is None:
            raise TaskFailure(f"workflow `{call.workflow.name}` is not in the plan")
        declared = {decl.name: decl for decl in called.inputs}
        inputs: dict[str, Any] = {}
        for arg in call.arguments:
            decl = declared.get(arg.name)
            if decl is None:  # the checker refuses it (BMAD-E106); IR from other tools may not
                raise TaskFailure(f"`{call.workflow.name}` has no input `{arg.name}`")
            inputs[arg.name] = _fitting_argument(call.workflow.name, decl, arg.value, scope)
        for decl in called.inputs:
            if decl.name not in inputs:
                if decl.default is None:
                    raise TaskFailure(f"`{call.workflow.name}` needs input `{decl.name}`")
                inputs[decl.name] = _fitting_argument(call.workflow.name, decl, decl.default, {})
        ledger = tally.ledger  # one scope per invocation (each `for each` item its own)
        budget = called.budget
        if budget is not None and (budget.usd is not None or budget.tokens is not None
                                   or budget.time_s is not None):
            ledger = ScopedLedger(ledger or self.ledger, usd=budget.usd, tokens=budget.tokens,
                                  time_s=budget.time_s,
                                  scope=f"workflow call `{path}` (`{call.workflow.name}` budget)",
                                  on_alert=self._scope_alerts(path))
        sub = await self.run_workflow(call.workflow.name, inputs, prefix=f"{path}/", ledger=ledger)
        for r in sub.results.values():
            tally.attempts += r.attempts
            tally.add(r.cost_usd, r.tokens)
        if self.budget_stop is not None:
            raise self.budget_stop
        if sub.failure:
            raise TaskFailure(sub.failure)
        return self.outputs(sub)

    # ------------------------------------------------------------------------------------------
    # A prompt: one model (with fallbacks and the quality gate) or a consensus

    def _messages(self, node: Node, scope: dict[str, Any]) -> tuple[Message, ...]:
        text = node.prompt.render(scope) if node.prompt else ""
        if node.instruction:
            text = f"{text}\n\n{node.instruction}"
        if node.system is not None:
            return (Message("system", node.system.render(scope)), Message("user", text))
        return (Message("user", text),)

    async def _prompt(self, node: Node, path: str, scope: dict[str, Any], slot: str,
                      tally: Tally) -> tuple[Any, str | None, float | None]:
        if node.prompt is None:
            raise TaskFailure("the task has no prompt")
        messages = self._messages(node, scope)
        if not node.chain:
            raise TaskFailure("no model is routed to this task")
        if node.participants and node.method:
            return await self._consensus(node, path, messages, slot, tally)
        return await self._single(node, path, messages, slot, tally)

    async def _answer(self, node: Node, path: str, model: str, messages: tuple[Message, ...],
                      slot: str, tally: Tally, followup: Sequence[tuple[str, str]] = ()) -> Candidate:
        """One model's parsed answer, with one repair round-trip when `returns` is not met."""
        if followup:
            messages = messages + tuple(Message(r, c) for r, c in followup)  # type: ignore[arg-type]
        response = await self.caller.call(node, path, model, messages, slot, tally)
        parsed = returns_mod.parse(response.text, node.task.returns)
        if parsed.ok:
            return Candidate(model, parsed.value, response.text, slot)
        repair = messages + (Message("assistant", response.text),
                             Message("user", returns_mod.repair_prompt(
                                 response.text, parsed.error or "invalid", node.task.returns)))
        response = await self.caller.call(node, path, model, repair, slot + "repair/", tally,
                                          purpose="repair")
        parsed = returns_mod.parse(response.text, node.task.returns)
        if not parsed.ok:
            raise ModelFailed(model, f"answer does not match `returns` after one repair: "
                                     f"{parsed.error}")
        return Candidate(model, parsed.value, response.text, slot)

    async def _single(self, node: Node, path: str, messages: tuple[Message, ...], slot: str,
                      tally: Tally, *, chain: tuple[str, ...] | None = None,
                      failed: ModelFailed | None = None) -> tuple[Any, str | None, float | None]:
        """The chain in order until a model answers (and passes the gate). `failed`: the first
        model already failed with this on the lean path (plain tasks, in `_run_node`), so it is not
        asked again."""
        gate = node.task.quality
        chain = chain if chain is not None else self.caller.healthy_order(node.chain)
        last_error: Exception | None = None
        # The last answer the gate sent up the chain: it stands if no later model answers, as
        # when the chain runs out (it was paid for, and it is better than no answer).
        turned_down: tuple[Candidate, float | None, float] | None = None
        for step, model in enumerate(chain):
            try:
                if failed is not None and step == 0:
                    raise failed
                cand = await self._answer(node, path, model, messages, f"{slot}m{step}/", tally)
            except ModelFailed as exc:
                last_error = exc
                if step + 1 < len(chain) and self.events.active:
                    self.events.emit("task_escalated", path, from_model=model,
                                     to_model=chain[step + 1], reason=f"fallback: {exc.reason}")
                continue
            floor = self._cascade_floor(node)
            if gate is None and not floor:
                return cand.value, model, None
            threshold = _gate_bar(node) if gate else floor
            assert threshold is not None
            score, critique = await self._score(node, path, messages, cand, f"{slot}m{step}/", tally)
            self._record_score(path, node, cand, score)
            otherwise = (gate.otherwise if gate else None) or ("escalate" if node.plan.cascade
                                                               else "accept")
            rounds = 0
            limit = gate_rounds(gate)
            best = (cand, score)  # `else retry`: the best of the fresh answers stands at the end
            while _below(score, threshold):
                if otherwise in ("refine", "retry") and rounds < limit:
                    rounds += 1
                    follow: tuple[tuple[str, str], ...] = ()
                    if otherwise == "refine":
                        follow = scorers.refine_followup(
                            cand.text, scorers.review_note(score, threshold, critique))
                    cand = await self._answer(node, path, model, messages,
                                              f"{slot}m{step}/{otherwise}{rounds}/", tally, follow)
                    score, critique = await self._score(node, path, messages, cand,
                                                        f"{slot}m{step}/{otherwise}{rounds}/", tally)
                    if otherwise == "retry":  # a fresh answer (a refined one owes the critique)
                        self._record_score(path, node, cand, score)
                        if _better(score, best[1]):
                            best = (cand, score)
                    continue
                if otherwise == "escalate" and step + 1 < len(chain):
                    break
                if otherwise == "fail":
                    raise TaskFailure(_quality_failure(score, threshold))
                if otherwise == "retry":
                    cand, score = best
                self._below_bar(path, model, score, threshold,
                                _why_it_stands(gate, otherwise, rounds))
                return cand.value, model, score
            else:
                return cand.value, model, score
            turned_down = (cand, score, threshold)
            if self.events.active:
                self.events.emit("task_escalated", path, from_model=model, to_model=chain[step + 1],
                                 reason=_shortfall(score, threshold))
        if turned_down is not None:  # the models after it failed: it stands, below its bar
            cand, score, threshold = turned_down
            self._below_bar(path, cand.model, score, threshold,
                            f"no later model answered; last: {last_error}")
            return cand.value, cand.model, score
        raise TaskFailure(f"every model failed; last: {last_error}" if last_error
                          else "no model could answer")

    def _cascade_floor(self, node: Node) -> float | None:
        if node.task.route is not None and node.task.route.strategy == "cascade" and node.plan.cascade:
            return node.plan.quality_floor
        return None

    def _below_bar(self, path: str, model: str | None, quality: float | None, bar: float,
                   reason: str) -> None:
        """A gated task that ends below its bar still completes, but the journal says so: its
        `completed` status alone would read as a pass."""
        if self.events.active:
            self.events.emit("quality_below_bar", path, model=model,
                             quality=None if quality is None else round(quality, 4),
                             bar=bar if bar != float("inf") else None, reason=reason)

    def _gate_judges(self, node: Node, cand: Candidate) -> list[str]:
        """Who judges a gated answer, in the order asked when one fails. The plan's judge is the
        written one, or its stand-in when that one is unavailable (BMAD-W203); on a consensus
        judged by a model (`judge`, `ensemble`, `best_of`) it is the panel's, and the gate's own
        `judged by` comes first. Neither: the answering model judges its own answer."""
        gate = node.task.quality
        written = gate.judge.name if gate is not None and gate.judge is not None else None
        planned = node.plan.judge
        consensus = node.task.consensus
        if consensus is not None and consensus.method in ("judge", "ensemble", "best_of"):
            order = (written, planned)
        else:
            order = (planned, written)
        return _dedupe([m for m in order if m]) or [cand.model]

    async def _score(self, node: Node, path: str, messages: tuple[Message, ...], cand: Candidate,
                     slot: str, tally: Tally) -> tuple[float | None, str]:
        """The gate's verdict on an answer: a 0..1 score (None: unreadable, which every gate counts
        as below its bar) and a critique. A judge that fails hands over to the next judge the plan
        has; with none left the task fails, naming the judge rather than the answering model."""
        gate = node.task.quality
        request_text = "\n\n".join(m.content for m in messages)
        prompt = scorers.judge_prompt(request_text, cand.text, gate.rubric if gate else None)
        judges = self._gate_judges(node, cand)
        for i, judge in enumerate(judges):
            try:
                score, critique = await self._verdict(node, path, judge, prompt, cand, slot, tally)
                break
            except ModelFailed as exc:
                if i + 1 == len(judges):
                    raise TaskFailure(f"the quality gate's judge failed: {exc}") from None
                if self.events.active:
                    self.events.emit("task_escalated", path, from_model=judge,
                                     to_model=judges[i + 1],
                                     reason=f"the quality gate's judge failed: {exc.reason}")
        if node.task.returns is not None and node.task.returns.kind == "json" and score is not None:
            score = min(score, scorers.schema_validity(cand.value, node.task.returns.schema))
        return score, critique

    async def _verdict(self, node: Node, path: str, judge: str, prompt: str, cand: Candidate,
                       slot: str, tally: Tally) -> tuple[float | None, str]:
        """One judge's score of an answer. A reply with no readable score (prose, cut short) gets
        one more ask, showing the reply; still none is journaled (`judge_unreadable`)."""
        response = await self.caller.call(
            node, path, judge, (Message("user", prompt),), slot + "judge/", tally,
            purpose="judge", schema=scorers.JUDGE_SCHEMA,
            metadata={"judged_model": cand.model})
        score, critique = scorers.parse_score(response.text)
        if score is None:
            response = await self.caller.call(
                node, path, judge, (Message("user", scorers.reask_prompt(prompt, response.text,
                                                                         "score")),),
                slot + "judge/again/", tally, purpose="judge", schema=scorers.JUDGE_SCHEMA,
                metadata={"judged_model": cand.model})
            score, critique = scorers.parse_score(response.text)
            if score is None and self.events.active:
                self.events.emit("judge_unreadable", path, judge=judge, model=cand.model,
                                 reply=_excerpt(response.text), action="counted below the bar")
        return score, critique

    async def _consensus(self, node: Node, path: str, messages: tuple[Message, ...], slot: str,
                         tally: Tally) -> tuple[Any, str | None, float | None]:
        """The panel decides; a quality bar then measures the decision (its agreement, or the
        gate's judge) and, below it, applies the gate's `else`: escalate to stronger models, fail,
        ask the whole panel again (`retry N`), or have the decided answer revised (`refine max N`)."""
        interp = self

        class Ops:
            def __init__(self, prefix: str) -> None:
                self.prefix = prefix  # each panel of a `retry` has its own slots

            async def answer(self, model: str, s: str,
                             followup: Sequence[tuple[str, str]] = ()) -> Candidate:
                return await interp._answer(node, path, model, messages, f"{self.prefix}{s}/",
                                            tally, followup)

            async def ask(self, model: str, prompt: str, s: str, *, purpose: str,
                          schema: dict | None = None, metadata: dict | None = None) -> str:
                response = await interp.caller.call(node, path, model, (Message("user", prompt),),
                                                     f"{self.prefix}{s}/", tally, purpose=purpose,
                                                     schema=schema, metadata=metadata)
                return response.text

            async def synthesise(self, model: str, prompt: str, s: str) -> Candidate:
                synth = (*messages[:-1], Message("user", prompt + (
                    f"\n\n{node.instruction}" if node.instruction else "")))
                return await interp._answer(node, path, model, synth, f"{self.prefix}{s}/", tally)

        needs = tuple(n.name for n in node.task.needs)
        weights = self.pool.vote_weights(node.participants, node.plan.candidates, needs)
        exact = node.task.returns is not None and node.task.returns.kind != "text"
        escalation = self._consensus_escalation(node)
        gate = node.task.quality
        bar = _gate_bar(node)
        otherwise = (gate.otherwise if gate is not None else None) or "accept"
        limit = gate_rounds(gate)
        best: tuple[ConsensusOutcome, float | None, str] | None = None
        rounds = 0
        ended = ""
        for rounds in range(1 + (limit if otherwise == "retry" else 0)):
            prefix = f"{slot}retry{rounds}/" if rounds else slot
            try:
                outcome = await self._panel(node, path, Ops(prefix), prefix, messages, weights,
                                            exact)
            except QuorumNotMet as exc:
                if best is not None:  # a retry's panel fell short: the earlier decision stands
                    ended = f"the panel of retry {rounds} fell short: {exc}"
                    break
                if not escalation:
                    raise
                # The participants disagree (or too few answered): stronger models settle it.
                return await self._escalate_consensus(
                    node, path, messages, slot, tally, escalation, exc.candidates, exact, weights,
                    str(exc), before=_short_decision(exc.candidates, exact, weights, node.method))
            quality, critique = outcome.quality, ""
            if gate is not None and gate.judge is not None:
                cand = Candidate(outcome.model, outcome.value, outcome.text, "consensus")
                quality, critique = await self._score(node, path, messages, cand,
                                                      f"{prefix}gate/", tally)
            if gate is not None and _below(quality, bar) and otherwise == "escalate" and escalation:
                return await self._escalate_consensus(
                    node, path, messages, slot, tally, escalation, outcome.candidates, exact,
                    weights, _consensus_shortfall(quality, bar, gate), before=outcome)
            self._record_verdicts(path, node, outcome.candidates, outcome.value, exact)
            if best is None or _better(quality, best[1]):
                best = (outcome, quality, critique)
            if gate is None or not _below(quality, bar):
                return outcome.value, outcome.model, quality
            if otherwise == "fail":
                raise TaskFailure("consensus " + _quality_failure(quality, bar))
        assert best is not None and gate is not None
        outcome, quality, critique = best
        if otherwise == "refine":
            return await self._refine_decision(node, path, messages, slot, tally, outcome,
                                               quality, critique, bar, limit)
        self._below_bar(path, outcome.model, quality, bar,
                        ended or ("no model to escalate to" if otherwise == "escalate"
                                  else _why_it_stands(gate, otherwise, rounds)))
        return outcome.value, outcome.model, quality

    async def _panel(self, node: Node, path: str, ops: Any, prefix: str,
                     messages: tuple[Message, ...], weights: dict[str, float],
                     exact: bool) -> ConsensusOutcome:
        """One decision of the participants."""
        consensus = node.task.consensus
        seed = int.from_bytes(hashlib.blake2b(f"{self.config.seed}/{path}/{prefix}".encode(),
                                              digest_size=8).digest(), "big")
        try:
            return await run_consensus(
                node.method or "vote", ops, node.participants,
                quorum=consensus.quorum if consensus else None, judge=node.judge,
                request_text=messages[-1].content,
                rubric=node.task.quality.rubric if node.task.quality else None,
                rounds=consensus.rounds if consensus else None, weights=weights,
                rng=random.Random(seed), exact=exact)
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        except scorers.UnreadableVerdict as exc:
            # The judge named no answer, twice: the answers' agreement picks (not the first shown).
            if self.events.active:
                self.events.emit("judge_unreadable", path, judge=exc.judge, model=None,
                                 reply=_excerpt(exc.reply), action="decided by agreement instead")
            return decide_escalated(exc.candidates, exact=exact, quorum=1)

    async def _refine_decision(self, node: Node, path: str, messages: tuple[Message, ...],
                               slot: str, tally: Tally, outcome: ConsensusOutcome,
                               quality: float | None, critique: str, bar: float,
                               limit: int) -> tuple[Any, str | None, float | None]:
        """`else refine max N` on a consensus: the model whose answer was decided revises it, and
        the gate's judge (else the judge a single model's gate would have) scores each revision."""
        gate = node.task.quality
        if (gate is not None and gate.judge is not None) or node.method in ("judge", "best_of"):
            note = scorers.review_note(quality, bar, critique)  # a judge's score, not agreement
        else:
            note = (f"The other models' answers agreed with this one only {quality or 0.0:.2f} "
                    f"(needed {bar:.2f}). Check it and correct what they would dispute.")
        cand = Candidate(outcome.model, outcome.value, outcome.text, "consensus")
        for rounds in range(1, limit + 1):
            follow = scorers.refine_followup(cand.text, note)
            cand = await self._answer(node, path, cand.model, messages, f"{slot}refine{rounds}/",
                                      tally, follow)
            quality, critique = await self._score(node, path, messages, cand,
                                                  f"{slot}refine{rounds}/", tally)
            if not _below(quality, bar):
                return cand.value, cand.model, quality
            note = scorers.review_note(quality, bar, critique)
        self._below_bar(path, cand.model, quality, bar, _why_it_stands(gate, "refine", limit))
        return cand.value, cand.model, quality

    def _consensus_escalation(self, node: Node) -> tuple[str, ...]:
        """Who settles a consensus that falls short: the task's own `fallback [...]` models (in the
        order written); without them, `quality >= X else escalate` uses the plan's escalation
        cascade beyond the participants. Neither written: nobody (a short quorum fails)."""
        written = [f.name for f in node.task.fallback]
        available = set(node.plan.fallbacks) | set(node.plan.cascade)
        if written:
            return tuple(m for m in written if m in available and m not in node.participants)
        gate = node.task.quality
        if gate is None or gate.otherwise != "escalate":
            return ()
        return tuple(m for m in _dedupe([*node.plan.cascade, *node.plan.fallbacks])
                     if m not in node.participants)

    async def _escalate_consensus(self, node: Node, path: str, messages: tuple[Message, ...],
                                  slot: str, tally: Tally, escalation: tuple[str, ...],
                                  candidates: list[Candidate], exact: bool,
                                  weights: dict[str, float], reason: str,
                                  before: ConsensusOutcome | None = None
                                  ) -> tuple[Any, str | None, float | None]:
        """Ask the escalation models one at a time; each answer joins the vote. Stop once the
        decision meets the quorum (and the `quality >= X else escalate` bar, when written); when
        the chain runs out, the last (strongest) model's answer stands."""
        consensus = node.task.consensus
        gate = node.task.quality
        bar = gate.threshold if gate is not None and gate.otherwise == "escalate" else None
        learned = gate is not None and gate.learned
        quorum = (consensus.quorum if consensus else None) or 1
        pool = list(candidates)
        last: Candidate | None = None
        previous = pool[-1].model if pool else (node.participants[0] if node.participants else "?")
        for i, model in enumerate(escalation):
            if self.events.active:
                self.events.emit("task_escalated", path, from_model=previous, to_model=model,
                                 reason=f"consensus: {reason}")
            previous = model
            try:
                cand = await self._answer(node, path, model, messages, f"{slot}esc{i}/", tally)
            except ModelFailed as exc:
                reason = f"{model} failed: {exc.reason}"
                continue
            pool.append(cand)
            if last is None and before is not None:
                self._record_calibration(path, node, before, cand, exact)
            last = cand
            if learned:  # the bar said the panel is not to be trusted here: the answer stands
                break
            try:
                decided = decide_escalated(pool, exact=exact, quorum=quorum,
                                           weights=weights if node.method == "weighted" else None)
            except QuorumNotMet as exc:
                reason = str(exc)
                continue
            if bar is None or decided.agreement >= bar:
                self._record_verdicts(path, node, pool, decided.value, exact)
                return decided.value, decided.model, decided.agreement
            reason = f"agreement {decided.agreement:.2f} below {bar:.2f}"
        if last is None:
            raise TaskFailure(f"consensus fell short ({reason}) and no escalation model answered")
        self._record_verdicts(path, node, pool, last.value, exact)
        share = sum(v for _m, v in verdicts(pool, last.value, exact=exact)) / len(pool)
        if bar is not None and not learned:  # a learned bar lets the escalation's answer stand
            self._below_bar(path, last.model, share, bar,
                            f"escalation models ran out; last: {reason}")
        return last.value, last.model, share

    def _record_calibration(self, path: str, node: Node, before: ConsensusOutcome,
                            settled: Candidate, exact: bool) -> None:
        if self.journal is None:
            return
        matched = (1.0 if scorers.canonical(before.value) == scorers.canonical(settled.value)
                   else 0.0) if exact else scorers.similarity(before.value, settled.value)
        self.journal.add_calibration(self.run_id, path, node.capability, before.agreement,
                                     matched, settled.slot)

    def _record_score(self, path: str, node: Node, cand: Candidate, score: float | None) -> None:
        """A gated answer's score measures its model whether or not the gate let it through: the
        tasks table credits only the answer that stood, which in a cascade over-rates the cheap
        models (kept only when they passed) and under-rates the strong (asked only on hard items)."""
        if self.journal is not None and score is not None:
            self.journal.add_verdict(self.run_id, path, cand.model, node.capability, score,
                                     cand.slot)

    def _record_verdicts(self, path: str, node: Node, candidates: Sequence[Candidate],
                         decided: Any, exact: bool) -> None:
        if self.journal is None or len(candidates) < 2:
            return
        for cand, (model, agreed) in zip(candidates, verdicts(candidates, decided, exact=exact)):
            self.journal.add_verdict(self.run_id, path, model, node.capability, agreed, cand.slot)


def _gate_bar(node: Node) -> float:
    """The agreement a consensus must reach before `else escalate`: the written threshold, or for
    `quality >= auto` the bar the planner learned (quality_floor); none learned yet: above any
    agreement, so every decision escalates and the journal learns from it."""
    gate = node.task.quality
    if gate is None:
        return 0.0
    if not gate.learned:
        return gate.threshold
    return node.plan.quality_floor if node.plan.quality_floor is not None else float("inf")


def _below(score: float | None, bar: float) -> bool:
    """An unreadable verdict (None) is below any bar: a result never scored can't pass a gate."""
    return score is None or score < bar


def _better(score: float | None, than: float | None) -> bool:
    return score is not None and (than is None or score > than)


def _bar_text(bar: float) -> str:
    return "no learned bar yet" if bar == float("inf") else f"{bar:.2f}"


def _shortfall(score: float | None, bar: float) -> str:
    """Why a gate turned an answer down, for events and errors."""
    if score is None:
        return f"no readable score from the judge (bar {_bar_text(bar)})"
    if bar == float("inf"):
        return f"quality {score:.2f}, no learned bar yet"
    return f"quality {score:.2f} below {bar:.2f}"


def _consensus_shortfall(quality: float | None, bar: float, gate: ir.Quality) -> str:
    if bar == float("inf"):
        return "no learned bar yet (learning: every decision escalates)"
    if quality is None:
        return f"no readable score from the gate's judge (bar {bar:.2f})"
    return f"{'quality' if gate.judge is not None else 'agreement'} {quality:.2f} below {bar:.2f}"


def _quality_failure(score: float | None, bar: float) -> str:
    if score is None:
        return (f"quality unknown: the quality gate's judge gave no readable score "
                f"(bar {_bar_text(bar)})")
    return f"quality {score:.2f} is below {_bar_text(bar)}"


def _why_it_stands(gate: ir.Quality | None, otherwise: str, rounds: int) -> str:
    """What let a below-bar answer stand (`quality_below_bar`'s reason)."""
    if otherwise == "retry":
        return f"`else retry`: {rounds} retr{'y' if rounds == 1 else 'ies'} used up"
    if otherwise == "refine":
        return f"`else refine`: {rounds} revision{'' if rounds == 1 else 's'} used up"
    if otherwise == "escalate":
        return "no stronger model left to escalate to"
    if gate is not None and gate.otherwise == "accept":
        return "`else accept`"
    return "no `else` action"


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _failed_items_note(failed: list[tuple[int, str]]) -> str | None:
    """The journal's record of `for each` items lost under `on_error continue`."""
    if not failed:
        return None
    failed = sorted(failed)
    shown = "; ".join(f"[{i}] {why}" for i, why in failed[:3])
    more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
    return (f"{len(failed)} item(s) failed and are null in the output "
            f"(on_error continue): {shown}{more}")


def _short_decision(candidates: Sequence[Candidate], exact: bool, weights: dict[str, float],
                    method: str | None) -> ConsensusOutcome | None:
    """What the participants that answered would have decided without a quorum (for calibration)."""
    if not candidates:
        return None
    if not exact:
        return decide_medoid(candidates)
    return decide_vote(candidates, weights if method == "weighted" else None, 1)


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The exception that matters in a task group's failure: a budget stop first, then any error."""
    errors = [e for e in _leaves(group) if not isinstance(e, anyio.get_cancelled_exc_class())]
    for kind in (BudgetExhausted, UnpricedModel, ScopeBudgetExhausted):
        for e in errors:  # the run's own exhaustion before a scope's
            if isinstance(e, kind) and (kind is ScopeBudgetExhausted
                                        or not isinstance(e, ScopeBudgetExhausted)):
                return e
    return errors[0] if errors else group


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


def _dedupe(items: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _not_a_list(loop: ir.ForEach, value: Any) -> str:
    """Why a `for each` can't fan out over `value`, in the language's terms."""
    from bmad.compiler.checks.expressions import show  # only on this error path

    source = show(loop.source)
    head = f"`for each {loop.var} in {source}`: `{source}`"
    if value is None:
        return f"{head} is null (missing), not a list"
    if isinstance(value, bool):
        kind = "a bool"
    elif isinstance(value, (int, float)):
        kind = "a number"
    elif isinstance(value, str):
        kind = "text"
    elif isinstance(value, dict):
        kind = "a json object"
    else:
        return f"{head} is not a list"
    return f"{head} is {kind}, not a list"


def _fitting_argument(workflow: str, decl: ir.Input, expr: ir.Expr, scope: dict[str, Any]) -> Any:
    """The value of a call's argument (or of the input's default), checked against the called
    input's type as `--input` and batch rows are (a value is never coerced; null fits only `json`):
    a misfit fails the call (BMAD-E330) instead of running the callee with it."""
    value = evaluate(expr, scope)
    try:
        check_type(decl.name, value, decl.type, of=workflow)
    except InputError as exc:
        from bmad.compiler.checks.expressions import show  # only on this error path

        notes = []
        if expr is decl.default:
            notes.append("its default")
        elif not isinstance(expr, ir.Literal):
            notes.append(f"from `{_excerpt(show(expr), 80)}`")
        if value is None and isinstance(expr, ir.Ref) and len(expr.path) > 1:
            notes.append("a missing field reads as null")
        if value is None and decl.default is not None and expr is not decl.default:
            notes.append("leave the argument out to use the default")
        detail = f" ({'; '.join(notes)})" if notes else ""
        raise TaskFailure(f"[BMAD-E330] {exc}{detail}") from None
    return value


def _expr_roots(expr: ir.Expr | None) -> set[str]:
    if expr is None:
        return set()
    if isinstance(expr, ir.Ref):
        return {expr.root}
    if isinstance(expr, ir.ListExpr):
        return set().union(*(_expr_roots(e) for e in expr.items)) if expr.items else set()
    if isinstance(expr, ir.Unary):
        return _expr_roots(expr.operand)
    if isinstance(expr, ir.Binary):
        return _expr_roots(expr.left) | _expr_roots(expr.right)
    return set()


def _ir_dependencies(task: ir.Task, prompt: CompiledTemplate | None,
                     system: CompiledTemplate | None, task_names: AbstractSet[str]) -> set[str]:
    """Tasks this one reads: `depends`, template references (the compiled templates' roots),
    `when`, `for each`, `reduce`, call args."""
    roots: set[str] = {d.name for d in task.depends}
    if prompt is not None:
        roots |= prompt.roots
    if system is not None:
        roots |= system.roots
    if task.when is not None:
        roots |= _expr_roots(task.when)
    if task.for_each is not None:
        roots |= _expr_roots(task.for_each.source)
    if task.reduce is not None:
        roots.add(task.reduce.source.name)
    if task.call is not None:
        for arg in task.call.arguments:
            roots |= _expr_roots(arg.value)
    if task.for_each is not None:
        roots.discard(task.for_each.var)
    return roots & task_names if roots else roots
