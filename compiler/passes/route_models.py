"""Route models: choose who does each task, capability-aware, and record why.

Candidates for a task are the program's models whose skills cover every `needs` capability with an
expected quality >= the task's floor (the task's `quality >= X`, else the workflow's, raised to
`--min-quality`). Expected quality is the weakest needed skill (history first); a task without
`needs` takes the model's mean skill. A model whose `context` is smaller than the task's measured
prompt (`measure_prompts`' expected input tokens, times `bmad.toml`'s `prompt_context_ratio`, the
ratio at which the runtime refuses a call with BMAD-E504) can't take the task: it is not qualified
(reason `context N < prompt ~M tokens`), so it is never routed to, chosen as a participant, an
automatic fallback or a cascade member; a pinned model, named participant, named judge or written
`fallback [...]` model that can't is kept, with BMAD-W204. Under the run's dollar budget (`--budget`,
else the entry workflow's) a model without a price is not qualified either (`bmad run` would refuse
the run, BMAD-E307); one the author names is kept, and enforce_budget warns (BMAD-W215). Under a
task's per-attempt `timeout`, a model expected to take longer per call is not qualified (reason
`latency Xs > timeout Ys`) when another qualified available model answers within it; a model the
task is sent to anyway (pinned, or the only one left) gets BMAD-W206: every attempt will time out.
Only available models are routed to. The choice:
- `model M` (pinned): M, if available (else routed as below, with BMAD-W201; under `fallback
  only [...]`, the first available written model instead, also BMAD-W201, so that no model from
  outside the group answers; under `fallback none`, or `fallback only` with none of its models
  available, which forbid any other model, M stays and the task will fail, BMAD-W205);
- `route cheapest|fastest|best [models]`: least expected cost / least latency / best quality among
  the listed (or all) qualified models; `route cascade [models]`: the cheapest available first, the
  rest in order of cost as the escalation chain, less those history shows doing worse than a
  cheaper member (`cascade_order`);
- otherwise the objective (`--optimize`, else the workflow's `optimize`, else balanced):
  cost = least expected cost, latency = least expected latency, quality = highest expected
  quality (then cost), balanced = highest `0.5*quality - 0.3*cost - 0.2*latency`, each min-max
  normalised over the qualified candidates;
- consensus forms: named participants (an unavailable one is replaced, BMAD-W203), or counted ones
  chosen by the same ranking, one per provider first, so their strengths complement each other;
- `strategy collaborative` (the run's, i.e. the entry workflow's, or the task's own workflow's):
  a prompt task without a consensus form that `expand` left alone (it routes itself, or it is in
  a called workflow) becomes a panel (`TaskPlan.participants`, `TaskPlan.method`): the routed model
  and the next-best qualified available models by the same ranking (only the `route [...]` list's,
  when written), another provider first, `COLLABORATIVE_DEFAULT.count` (3) distinct models at most,
  decided by `vote` for exact answers (`returns enum|json`) and `similarity` for text. Not a panel:
  a pinned task (`model M`: M answers, with its fallbacks), `fallback none` (must not reach another
  model) or `fallback only [...]` (only the written models may), `route cascade` (one model at a time, cheapest first), and a task with fewer than two
  qualified models to ask;
- nothing qualified available: the embedded `local` model (BMAD-W200); nothing reaches the floor at
  all: the best model that covers the needs (BMAD-W202).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Iterator

from bmad.compiler import ir
from bmad.compiler.catalog import LOCAL_MODEL, CatalogEntry
from bmad.compiler.diagnostics import Diagnostic, error, warning
from bmad.compiler.limits import count_text, current_limits
from bmad.compiler.money import format_usd
from bmad.compiler.passes.cascade_order import describe_skipped, learn_cascade
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, TaskDraft, WorkflowDraft, revise
from bmad.compiler.passes.expand import COLLABORATIVE_DEFAULT
from bmad.compiler.passes.estimate_cost import out_of_reach
from bmad.compiler.passes.solo_estimate import SoloEstimate, pool_profile
from bmad.compiler.plan import Candidate, TaskPlan, format_seconds

BALANCED_WEIGHTS = {"quality": 0.5, "cost": 0.3, "latency": 0.2}
ROUTE_OBJECTIVES = {"cheapest": "cost", "fastest": "latency", "best": "quality"}

# Whether routing writes its explanations into the plan: the shown candidate table (ordered, the
# chosen marked) and the route reason. `check_plan` turns it off: no diagnostic reads them, and the
# later passes only filter the candidates (tests/compiler/passes/test_check_plan_feasibility.py).
_explaining: ContextVar[bool] = ContextVar("route_models_explaining", default=True)


@contextmanager
def without_explanations() -> Iterator[None]:
    """Route without building the shown candidate tables and reasons (for `bmad check`)."""
    token = _explaining.set(False)
    try:
        yield
    finally:
        _explaining.reset(token)


_new_candidate = object.__new__
_CANDIDATE_SETTERS = tuple(getattr(Candidate, name).__set__ for name in (
    "model", "provider", "available", "qualified", "expected_quality", "cost_usd_expected", "latency_s",
    "reason"))


def _candidate(model: str, provider: str, available: bool, qualified: bool, expected_quality: float | None,
               cost_usd_expected: float | None, latency_s: float | None, reason: str) -> Candidate:
    """`Candidate(...)` at half the cost (the frozen dataclass's __init__ sets each slot through
    `object.__setattr__`; this sets them directly): one is built per (task, model)."""
    c = _new_candidate(Candidate)
    s0, s1, s2, s3, s4, s5, s6, s7 = _CANDIDATE_SETTERS
    s0(c, model)
    s1(c, provider)
    s2(c, available)
    s3(c, qualified)
    s4(c, expected_quality)
    s5(c, cost_usd_expected)
    s6(c, latency_s)
    s7(c, reason)
    return c


CONTEXT_REASON = "context "  # how a candidate's reason starts when the prompt doesn't fit it
LATENCY_REASON = "latency "  # how it starts when the model's expected latency exceeds the timeout
UNPRICED_REASON = "no price, under a dollar budget"  # `bmad run` would refuse the run (BMAD-E307)


def run_dollar_budget(draft: Draft, context: PassContext) -> bool:
    """Whether the run has a dollar budget (`--budget`, else the entry workflow's), under which
    `bmad run` refuses to start if the plan may call a model without a price."""
    if context.budget is not None and context.budget.usd is not None:
        return True
    entry = draft.program.workflow(draft.entry) if draft.entry else None
    return entry is not None and entry.budget is not None and entry.budget.usd is not None


def context_misfit(context_tokens: int | None, prompt_tokens: float, ratio: float = 1.0) -> str | None:
    """Why a model with `context_tokens` can't take a prompt of `prompt_tokens` (the runtime
    refuses such a call with BMAD-E504), or None when it can or its context is unknown."""
    if not context_tokens or prompt_tokens <= context_tokens * ratio:
        return None
    return (f"{CONTEXT_REASON}{context_tokens:,}" + (f" x {ratio:g}" if ratio != 1.0 else "")
            + f" < prompt ~{math.ceil(prompt_tokens):,} tokens")


def _context_fitted(fit: tuple[float | None, bool, str], misfit: str | None) -> tuple[float | None, bool, str]:
    """`_fit`'s (quality, qualified, reason) for a task whose prompt the model can't take
    (`misfit`): not qualified; the reason says so unless the model is unavailable or lacks a need."""
    if misfit is None:
        return fit
    quality, _qualified, reason = fit
    if reason.startswith(("unavailable", "lacks")):
        return quality, False, reason
    return quality, False, misfit


def timeout_misfit(latency_s: float, timeout_s: float | None) -> str | None:
    """Why a model expected to take `latency_s` per call can't answer within the task's
    per-attempt `timeout` (every attempt would time out), or None when it can."""
    if timeout_s is None or latency_s <= timeout_s:
        return None
    return f"{LATENCY_REASON}{latency_s:.1f}s > timeout {format_seconds(timeout_s)}"


def call_latency(entry: CatalogEntry, td: TaskDraft, context: PassContext) -> float:
    """`entry`'s expected latency for one call of `td` (one attempt, which `timeout` bounds)."""
    return entry.call_latency(td.shape.output_expected, td.needs, context.history)


def can_not_take(c: Candidate) -> bool:
    """The candidate was excluded because the task's prompt doesn't fit its context."""
    return c.reason.startswith(CONTEXT_REASON)


def prompt_context_ratio() -> float:
    """The share of a model's context a prompt may fill before the runtime refuses it (E504)."""
    return current_limits().prompt_context_ratio


def quality_floor(task: ir.Task, workflow: ir.Workflow, context: PassContext) -> float | None:
    floor = task.quality.threshold if task.quality is not None else workflow.quality
    if task.quality is not None and task.quality.learned:  # a target agreement, not a floor:
        floor = workflow.quality  # learn_bars sets the learned bar once models are routed
    if context.min_quality is not None:
        floor = max(floor or 0.0, context.min_quality)
    return floor


def workflow_objective(workflow: ir.Workflow, context: PassContext) -> str:
    return context.objective or workflow.optimize or "balanced"


def candidate_signature(td: TaskDraft, floor: float | None) -> tuple:
    """Everything a candidate's evaluation reads from a task: tasks with one signature (most
    tasks of a big workflow share a few) get the same candidates, so each is evaluated once."""
    task, shape = td.task, td.shape
    gate, reduce = task.quality, task.reduce
    return (
        td.needs, floor, shape.input_expected, shape.input_worst, shape.output_expected, shape.output_worst,
        td.plan.fan_out,
        None if reduce is None else (reduce.chunk_size, td.reduce_items),
        # the bar too: a model it is out of reach of is priced for every round (`out_of_reach`)
        None if gate is None else (gate.otherwise, gate.rounds, gate.judge.name if gate.judge else None,
                                   gate.threshold, gate.learned),
        task.retry.attempts if task.retry is not None else None,
        task.timeout_s,
    )


def evaluate(td: TaskDraft, entry: CatalogEntry, floor: float | None, context: PassContext,
             cache: dict | None = None, signature: tuple | None = None,
             solo: SoloEstimate | None = None, ratio: float = 1.0) -> Candidate:
    """What the router expects of `entry` doing `td` alone (cached on the task, and in `cache`
    per (model, task signature)); `solo`: the task's model-independent estimate, when the caller
    evaluates several models; `ratio`: `prompt_context_ratio()`."""
    cached = td.evaluated.get(entry.name)
    if cached is not None:
        return cached
    key = None
    if cache is not None:
        key = (entry.name, signature if signature is not None else candidate_signature(td, floor))
        cached = cache.get(key)
        if cached is not None:
            td.evaluated[entry.name] = cached
            return cached
    fit = _fit(entry, td.needs, floor, context, cache)
    quality, qualified, reason = _context_fitted(
        fit, context_misfit(entry.context, td.shape.input_expected, ratio))
    if solo is None:
        solo = SoloEstimate(td, context.catalog, context.history)
    cost, latency = solo.cost_and_latency(entry)
    candidate = Candidate(
        model=entry.name, provider=entry.provider, available=entry.available, qualified=qualified,
        expected_quality=None if quality is None else round(quality, 4),
        cost_usd_expected=None if cost is None else round(cost, 6),
        latency_s=round(latency, 3), reason=reason,
    )
    td.evaluated[entry.name] = candidate
    if key is not None:
        cache[key] = candidate
    return candidate


def _fit(entry: CatalogEntry, needs: tuple[str, ...], floor: float | None, context: PassContext,
         cache: dict | None) -> tuple[float | None, bool, str]:
    """(expected quality, qualified, reason) of `entry` for `needs` at `floor`: it reads neither
    the task's size nor its clauses, so tasks that differ only in size share it (`cache`)."""
    key = ("fit", entry.name, needs, floor)
    found = cache.get(key) if cache is not None else None
    if found is not None:
        return found
    quality = entry.expected_quality(needs, context.history)
    covers = entry.covers(needs) or (context.history is not None and quality is not None)
    # not qualified below the floor (BMAD-W202 for a pinned model): `out_of_reach`, which
    # estimate_cost prices a gate's rounds by; an unknown quality doesn't qualify either
    qualified = covers and (floor is None or (quality is not None and quality >= floor))
    if not entry.available:
        reason = f"unavailable: {entry.unavailable_reason}"
    elif not covers:
        missing = [n for n in needs if n not in entry.skills]
        reason = f"lacks {', '.join(missing)}"
    elif not qualified:
        reason = f"quality {quality:.2f} < floor {floor:.2f}" if quality is not None else "quality unknown"
    else:
        reason = "qualified"
    found = (quality, qualified, reason)
    if cache is not None:
        cache[key] = found
    return found


def _cost_key(c: Candidate) -> tuple:
    return (c.cost_usd_expected is None, c.cost_usd_expected or 0.0, c.latency_s or 0.0, c.model)


def _rank_key(candidates: list[Candidate], objective: str):
    """The sort key of `rank_candidates` for these candidates (balanced scores are relative to
    them): best first, by the objective; ties broken by cost, then name (no two keys are equal)."""
    if objective == "cost":
        return _cost_key
    # the keys below are `(first,) + _cost_key(c)` built in one tuple (ranking runs per task)
    if objective == "latency":
        def key(c: Candidate) -> tuple:
            cost = c.cost_usd_expected
            return (c.latency_s or 0.0, cost is None, cost or 0.0, c.latency_s or 0.0, c.model)
    elif objective == "quality":
        def key(c: Candidate) -> tuple:
            cost = c.cost_usd_expected
            return (-(c.expected_quality or 0.0), cost is None, cost or 0.0, c.latency_s or 0.0, c.model)
    else:
        scores = _balanced_scores(candidates)

        def key(c: Candidate) -> tuple:
            cost = c.cost_usd_expected
            return (-scores[c.model], cost is None, cost or 0.0, c.latency_s or 0.0, c.model)
    return key


def rank_candidates(candidates: list[Candidate], objective: str) -> list[Candidate]:
    """Best first, by the objective; ties broken by cost, then name (deterministic)."""
    candidates = list(candidates)  # any iterable; none at all ranks as none (no crash)
    return sorted(candidates, key=_rank_key(candidates, objective))


def best_candidate(candidates: list[Candidate], objective: str) -> Candidate | None:
    """`rank_candidates(candidates, objective)[0]` (None for none) without ordering the rest:
    `min` by the same key finds the same first, since no two keys are equal."""
    candidates = list(candidates)
    if not candidates:
        return None
    if objective in ("cost", "latency", "quality"):
        return min(candidates, key=_rank_key(candidates, objective))
    # balanced: the key is (-score,) + _cost_key, so the best is the highest score, ties broken
    # by _cost_key (a NaN score, which max would misplace, takes the general path)
    scores = _balanced_score_list(candidates)
    top = max(scores)
    if top != top or any(s != s for s in scores):
        return min(candidates, key=_rank_key(candidates, objective))
    tied = [c for c, score in zip(candidates, scores) if score == top]
    return tied[0] if len(tied) == 1 else min(tied, key=_cost_key)


def _balanced_scores(candidates: list[Candidate]) -> dict[str, float]:
    candidates = list(candidates)  # an iterator would be spent by the first pass below
    return dict(zip([c.model for c in candidates], _balanced_score_list(candidates)))


def _balanced_score_list(candidates: list[Candidate]) -> list[float]:
    """Each candidate's `0.5*quality - 0.3*cost - 0.2*latency`, min-max normalised over them."""
    def normalise(values: list[float]) -> list[float]:
        lo, hi = min(values), max(values)
        if hi == lo:
            return [0.0] * len(values)
        span = hi - lo
        return [(v - lo) / span for v in values]

    if not candidates:  # nothing to score (no model at all): no crash, the router reports it
        return []
    costs = [c.cost_usd_expected for c in candidates]
    known = [c for c in costs if c is not None]
    worst_cost = max(known) if known else 0.0
    q = normalise([c.expected_quality or 0.0 for c in candidates])
    cost = normalise([worst_cost if c is None else c for c in costs])
    lat = normalise([c.latency_s or 0.0 for c in candidates])
    wq, wc, wl = BALANCED_WEIGHTS["quality"], BALANCED_WEIGHTS["cost"], BALANCED_WEIGHTS["latency"]
    return [wq * qi - wc * ci - wl * li for qi, ci, li in zip(q, cost, lat)]


def participant_count(count: int) -> int:
    """How many participants a counted consensus gets: `count`, at most `models_per_task` (a
    larger count is BMAD-E507 at compile time; a plan of such IR, the language server's among
    them, still stays that small)."""
    return max(0, min(count, current_limits().models_per_task))


def _spread_providers(ranked: list[Candidate], count: int) -> list[str]:
    """`count` participants (`participant_count`): the best of each provider first, then the
    rest, repeating if short."""
    chosen: list[Candidate] = []
    providers: set[str] = set()
    for c in ranked:
        if c.provider not in providers:
            chosen.append(c)
            providers.add(c.provider)
    seen = {c.model for c in chosen}
    chosen += [c for c in ranked if c.model not in seen]
    names = [c.model for c in chosen]
    if not names:
        return []
    return [names[i % len(names)] for i in range(participant_count(count))]


def _describe(c: Candidate) -> str:
    cost = "cost ?" if c.cost_usd_expected is None else format_usd(c.cost_usd_expected)
    quality = "q ?" if c.expected_quality is None else f"q {c.expected_quality:.2f}"
    return f"{c.model} ({quality}, {cost}, {c.latency_s:.1f}s)"


class TaskRouter:
    """Routes the tasks of one workflow; also used by enforce_budget to find cheaper plans.

    Candidate lists and rankings are cached per task signature (`candidate_signature`) in the
    draft's `routing_cache`, shared by every router of one planning run.
    """

    def __init__(self, draft: Draft, wd: WorkflowDraft, context: PassContext):
        self.draft, self.wd, self.context = draft, wd, context
        declared = {m.name for m in draft.program.models}
        self.pool = [e for e in context.catalog if e.name in declared]
        self.pool_key = tuple(e.name for e in self.pool)
        self.pool_profile = pool_profile(self.pool)
        self.local = context.catalog.get(LOCAL_MODEL)
        self.cache = draft.routing_cache
        self.ratio = prompt_context_ratio()
        self.contexts = tuple(e.context for e in self.pool)
        self.min_context = min((n for n in self.contexts if n), default=None)
        # `strategy collaborative` is the run's (the entry workflow's, or the context's override,
        # which the runtime applies to every workflow it runs) or this workflow's own
        self.collaborative = "collaborative" in (wd.workflow.strategy, draft.strategy)
        # under the run's dollar budget `bmad run` refuses any model without a price that the plan
        # may call (BMAD-E307): the router never picks one itself (enforce_budget warns, BMAD-W215,
        # about the ones the author names)
        self.dollar_run = run_dollar_budget(draft, context)

    def span(self, td: TaskDraft) -> ir.Span:
        return td.task.name_span if td.task.name_span != ir.NO_SPAN else td.task.span

    def candidates(self, td: TaskDraft, floor: float | None, names: tuple[str, ...] = (),
                   signature: tuple | None = None) -> list[Candidate]:
        """The pool's candidates for `td` in catalog order (only `names`, when given)."""
        signature = signature if signature is not None else candidate_signature(td, floor)
        key = ("pool", self.pool_key, signature)
        listed = self.cache.get(key)
        if listed is None:
            # one model-independent estimate of the task, then cheap arithmetic per model
            solo = SoloEstimate(td, self.context.catalog, self.context.history)
            listed = self._evaluate_pool(td, floor, solo)
            self.cache[key] = listed
        else:
            evaluated = td.evaluated
            for c in listed:
                evaluated.setdefault(c.model, c)
        if names:
            wanted = set(names)
            return [c for c in listed if c.model in wanted]
        return listed

    def _evaluate_pool(self, td: TaskDraft, floor: float | None, solo: SoloEstimate) -> list[Candidate]:
        """`evaluate` for every pool model, with the fits shared per (needs, floor): the same
        candidates, without `evaluate`'s per-model cache lookups (a new signature finds none)."""
        fits_key = ("pool-fits", self.pool_key, td.needs, floor)
        fits = self.cache.get(fits_key)
        if fits is None:  # per model: (name, provider, available, qualified, quality, reason)
            fits = []
            for entry in self.pool:
                quality, qualified, reason = _fit(entry, td.needs, floor, self.context, self.cache)
                if qualified and self.dollar_run and not entry.priced:
                    qualified, reason = False, UNPRICED_REASON
                fits.append((entry.name, entry.provider, entry.available, qualified,
                             None if quality is None else round(quality, 4), reason))
            self.cache[fits_key] = fits
        prompt, ratio = td.shape.input_expected, self.ratio
        if self.min_context and prompt > self.min_context * ratio:  # some model can't take the prompt
            adjusted = []
            for (name, provider, available, qualified, quality, reason), n in zip(fits, self.contexts):
                misfit = context_misfit(n, prompt, ratio)
                if misfit is not None:
                    quality, qualified, reason = _context_fitted((quality, qualified, reason), misfit)
                adjusted.append((name, provider, available, qualified, quality, reason))
            fits = adjusted
        evaluated = td.evaluated
        make = _candidate
        costs = solo.pool_costs(self.pool, self.pool_profile)  # already rounded as `evaluate` rounds
        if not evaluated:  # a task routed for the first time (the usual case): `_candidate` inlined
            listed = []
            append, new = listed.append, _new_candidate
            s0, s1, s2, s3, s4, s5, s6, s7 = _CANDIDATE_SETTERS
            for (name, provider, available, qualified, quality, reason), (cost, latency) in zip(fits, costs):
                c = new(Candidate)
                s0(c, name)
                s1(c, provider)
                s2(c, available)
                s3(c, qualified)
                s4(c, quality)
                s5(c, cost)
                s6(c, latency)
                s7(c, reason)
                append(c)
            evaluated.update(zip(self.pool_key, listed))
            return listed
        listed = []
        for (name, provider, available, qualified, quality, reason), (cost, latency) in zip(fits, costs):
            c = evaluated.get(name)
            if c is None:
                c = evaluated[name] = make(name, provider, available, qualified, quality, cost, latency, reason)
            listed.append(c)
        return listed

    def _timeout_fitted(self, td: TaskDraft, listed: list[Candidate], key: tuple) -> list[Candidate]:
        """`listed` with the qualified models whose expected latency per call exceeds the task's
        per-attempt `timeout` made not qualified (reason `latency Xs > timeout Ys`), when another
        qualified available one of them answers within it; when none does, they stay (the chosen
        one gets BMAD-W206). Cached per `key` (the task's signature and the list's names)."""
        key = ("timeout-fitted",) + key
        found = self.cache.get(key)
        if found is not None:
            return found
        timeout = td.task.timeout_s
        entries = [self.context.catalog.get(c.model) for c in listed]
        misfits = [timeout_misfit(call_latency(e, td, self.context), timeout)
                   if e is not None and c.qualified else None for c, e in zip(listed, entries)]
        found = listed
        if any(misfits) and any(c.qualified and c.available and m is None for c, m in zip(listed, misfits)):
            found = [c if m is None else replace(c, qualified=False, reason=m) for c, m in zip(listed, misfits)]
        self.cache[key] = found
        return found

    def _ranked(self, considered: list[Candidate], deciding: str, key: tuple,
                whole: bool = True) -> tuple[list[Candidate], list[Candidate]]:
        """(usable: available and qualified, ranked best first), cached per `key`; not `whole`:
        only the best of the ranking (at most one), for a caller that reads nothing after it."""
        key = key + (whole,)
        found = self.cache.get(key)
        if found is None:
            usable = [c for c in considered if c.available and c.qualified]
            if whole:
                found = (usable, rank_candidates(usable, deciding))
            else:
                best = best_candidate(usable, deciding)
                found = (usable, [] if best is None else [best])
            self.cache[key] = found
        return found

    def route(self, td: TaskDraft, objective: str | None = None,
              budget_move: bool = False) -> tuple[TaskPlan, list[Diagnostic]]:
        """The TaskPlan routing fields for `td`; `budget_move`: enforce_budget's cheaper re-route."""
        task, wd, ctx = td.task, self.wd, self.context
        diags: list[Diagnostic] = []
        floor = quality_floor(task, wd.workflow, ctx)
        signature = candidate_signature(td, floor)
        objective = objective or workflow_objective(wd.workflow, ctx)
        rule, deciding = f"objective:{objective}", objective
        route = task.route
        route_names = tuple(n.name for n in route.models) if route is not None else ()
        if route is not None and route.strategy != "cascade" and not budget_move:
            deciding = ROUTE_OBJECTIVES[route.strategy]
            rule = f"route:{route.strategy}"
        if budget_move:
            rule = f"budget:{objective}"
        all_candidates = self.candidates(td, floor, signature=signature)
        considered = self.candidates(td, floor, route_names, signature) if route_names else all_candidates
        if task.timeout_s is not None:  # a model that can't answer within it: not qualified
            all_candidates = self._timeout_fitted(td, all_candidates, (self.pool_key, signature))
            considered = self._timeout_fitted(td, considered, (self.pool_key, signature, route_names)) \
                if route_names else all_candidates
        consensus = task.consensus
        explaining = _explaining.get()
        panel = self.collaborative and self._may_be_a_panel(task)
        # Only consensus and panels read past the first of the ranking (the judge reads its
        # models as a set): without explanations, other tasks take the best alone.
        usable, ranked = self._ranked(considered, deciding,
                                      ("ranked", self.pool_key, signature, deciding, route_names),
                                      whole=explaining or panel or (consensus is not None and task.call is None))
        participants: tuple[str, ...] = ()
        cascade: tuple[str, ...] = ()
        skipped: dict[str, str] = {}
        chosen: str | None = None

        if route is not None and route.strategy == "cascade":
            # the cascade's quality gate decides per item: the floor does not exclude members
            order = sorted((c for c in considered if c.available and not c.reason.startswith("lacks")
                            and not can_not_take(c)), key=_cost_key)
            if order:
                rule = "route:cascade"
                cascade, skipped = learn_cascade([c.model for c in order], td.needs, ctx.history)
                chosen = order[0].model
        if chosen is None and td.pinned:
            pinned = ctx.catalog.get(task.model.name)
            if pinned is not None and pinned.available:
                chosen, rule = pinned.name, "pinned"
                c = evaluate(td, pinned, floor, ctx, self.cache, signature, ratio=self.ratio)
                if can_not_take(c):
                    diags.append(self._misfit_warning(td, task.model, f"pinned model `{pinned.name}`",
                                                      c.reason, "the runtime refuses the call (BMAD-E504) "
                                                      "and asks the fallbacks; pin a model with a larger "
                                                      "context, or shorten the prompt"))
                elif not c.qualified and c.reason not in ("qualified", UNPRICED_REASON) \
                        and not c.reason.startswith(LATENCY_REASON):  # BMAD-W206 says so
                    diags.append(warning("BMAD-W202", task.model.span,
                                         f"pinned model `{pinned.name}` for task `{task.name}`: {c.reason}",
                                         "the quality gate may fail; pin a stronger model or remove the pin"))
            elif pinned is not None and task.no_fallback:
                chosen, rule = self._closed_pin(td, pinned, floor, signature, diags)
            elif pinned is not None:
                diags.append(warning("BMAD-W201", task.model.span,
                                     f"pinned model `{pinned.name}` for task `{task.name}` is unavailable "
                                     f"({pinned.unavailable_reason}); routed by the objective instead",
                                     "set the provider's key variable, or plan with --provider sim"))
        for written in task.fallback:
            entry = ctx.catalog.get(written.name)
            misfit = context_misfit(entry.context, td.shape.input_expected, self.ratio) \
                if entry is not None and entry.available else None
            if misfit is not None:
                diags.append(self._misfit_warning(
                    td, written, f"fallback `{written.name}`", misfit,
                    "the runtime refuses its call (BMAD-E504) and moves on; name a model with a "
                    "larger context, or shorten the prompt"))
        if chosen is None and consensus is not None and task.call is None:
            participants, chosen, rule = self._route_consensus(td, consensus, ranked, rule, diags)
        if chosen is None and ranked:
            chosen = ranked[0].model
        if chosen is None:
            chosen, rule = self._last_resort(td, all_candidates, floor, diags)
        if not participants and consensus is not None and task.call is None:
            participants = (chosen,) * max(1, participant_count(consensus.size or 1))
        method: str | None = None
        if panel and chosen and rule not in ("fallback:local", "best-effort", "unroutable"):
            members = self._panel(chosen, ranked)
            if len(members) > 1:
                participants = members
                method = "vote" if task.returns is not None and task.returns.kind != "text" else "similarity"
        model = participants[0] if participants else chosen
        judge = self._judge(td, model, usable, diags)
        models = participants or (model,)
        if task.timeout_s is not None and not budget_move:
            diags.extend(self._timeout_warnings(td, models))
        qualities = [self._quality(td, m) for m in models]
        known = [q for q in qualities if q is not None]
        expected_quality = round(sum(known) / len(known), 4) if known else None
        if rule == "consensus:named" and out_of_reach(expected_quality, floor) and not budget_move:
            # the author's participants: kept, but the plan says the floor is out of their reach
            listed = ", ".join(f"{m} {q:.2f}" for m, q in zip(models, qualities) if q is not None)
            diags.append(warning(
                "BMAD-W202", consensus.span if consensus.span != ir.NO_SPAN else self.span(td),
                f"consensus participants of task `{task.name}`: quality {expected_quality:.2f} < floor "
                f"{floor:.2f} ({listed})",
                "the quality gate may fail; name stronger participants, or lower the floor"))
        shown_key = ("shown", self.pool_key, signature, models)
        shown = self.cache.get(shown_key) if explaining else tuple(all_candidates)
        if shown is None:
            def shown_order(c: Candidate) -> tuple:  # the chosen first, then _cost_key's order
                cost = c.cost_usd_expected
                return (c.model not in models, not c.available, not c.qualified,
                        cost is None, cost or 0.0, c.latency_s or 0.0, c.model)

            ordered = sorted(all_candidates, key=shown_order)
            shown = tuple(Candidate(c.model, c.provider, c.available, c.qualified, c.expected_quality,
                                    c.cost_usd_expected, c.latency_s, "chosen") if c.model in models else c
                          for c in ordered)
            self.cache[shown_key] = shown
        td.cascade_skipped = skipped  # the same on every route of this task: for chain_fallbacks
        reason = self._reason(rule, model, cascade, td.evaluated.get(model), len(usable), floor,
                              skipped) if explaining else ""
        if method is not None and explaining:
            reason += f"; strategy collaborative: a panel of {len(participants)}, decided by {method}"
        # one TaskPlan per route: the fields that routing decides, the rest kept from the draft
        plan = revise(td.plan, quality_floor=floor, model=model, participants=participants, method=method,
                       judge=judge, cascade=cascade, route_rule=rule, candidates=shown,
                       expected_quality=expected_quality, route_reason=reason)
        return plan, diags

    def _closed_pin(self, td: TaskDraft, pinned: CatalogEntry, floor: float | None, signature: tuple,
                    diags: list[Diagnostic]) -> tuple[str, str]:
        """(chosen, rule) for a pinned model that is unavailable here when the task forbids the
        planner's models: under `fallback only [...]` the first available written model answers
        (BMAD-W201), the group staying closed; with none (or `fallback none`) the pin stays and
        the task will fail (BMAD-W205)."""
        task, ctx = td.task, self.context
        for written in task.fallback:
            entry = ctx.catalog.get(written.name)
            if entry is not None and entry.available:
                evaluate(td, entry, floor, ctx, self.cache, signature, ratio=self.ratio)
                diags.append(warning("BMAD-W201", task.model.span,
                                     f"pinned model `{pinned.name}` for task `{task.name}` is unavailable "
                                     f"({pinned.unavailable_reason}); `{entry.name}`, the first available "
                                     f"of its `fallback only` models, answers instead",
                                     "set the provider's key variable, or plan with --provider sim"))
                return entry.name, "fallback:only"
        evaluate(td, pinned, floor, ctx, self.cache, signature, ratio=self.ratio)
        if task.fallback:
            diags.append(warning("BMAD-W205", task.model.span,
                                 f"pinned model `{pinned.name}` of task `{task.name}` is unavailable here "
                                 f"({pinned.unavailable_reason}) and so is every model of its `fallback "
                                 f"only [...]`, which forbids another: the task will fail",
                                 "set the providers' key variables, or name an available model in "
                                 "`fallback only [...]`"))
        else:  # `fallback none`: no other model may answer, so the pin stays and the task fails
            diags.append(warning("BMAD-W205", task.model.span,
                                 f"pinned model `{pinned.name}` of task `{task.name}` is unavailable here "
                                 f"({pinned.unavailable_reason}) and `fallback none` forbids another: "
                                 f"the task will fail",
                                 "set the provider's key variable, or remove `fallback none` to let "
                                 "another model answer"))
        return pinned.name, "pinned"

    @staticmethod
    def _may_be_a_panel(task: ir.Task) -> bool:
        """Whether `strategy collaborative` makes `task` a panel (see the module docstring): a
        prompt task without a consensus form, not pinned, not `fallback none` nor `fallback only
        [...]` (`no_fallback`: a panel would ask models the author did not name), not a cascade."""
        return (task.prompt is not None and task.call is None and task.consensus is None
                and task.model is None and not task.no_fallback
                and not (task.route is not None and task.route.strategy == "cascade"))

    def _panel(self, chosen: str, ranked: list[Candidate]) -> tuple[str, ...]:
        """The collaborative panel around the routed model: it first, then the next-best of
        `ranked` (the qualified available models, best first), another provider first."""
        size = COLLABORATIVE_DEFAULT.count
        entry = self.context.catalog.get(chosen)
        providers = {entry.provider} if entry is not None else set()
        members = [chosen]
        rest = [c for c in ranked if c.model != chosen]
        for c in rest:
            if len(members) >= size:
                break
            if c.provider not in providers:
                members.append(c.model)
                providers.add(c.provider)
        for c in rest:
            if len(members) >= size:
                break
            if c.model not in members:
                members.append(c.model)
        return tuple(members)

    def _timeout_warnings(self, td: TaskDraft, models: tuple[str, ...]) -> list[Diagnostic]:
        """BMAD-W206: a model the task will ask is expected to take longer per call than the
        task's per-attempt `timeout`, so every attempt of it will time out."""
        task, out = td.task, []
        timeout = task.timeout_s
        span = task.timeout_span if task.timeout_span != ir.NO_SPAN else self.span(td)
        for name in dict.fromkeys(models):
            entry = self.context.catalog.get(name) if name else None
            if entry is None:
                continue
            latency = call_latency(entry, td, self.context)
            if timeout_misfit(latency, timeout) is not None:
                out.append(warning(
                    "BMAD-W206", span,
                    f"`{name}` is expected to take {latency:.1f}s, over task `{td.id}`'s timeout of "
                    f"{format_seconds(timeout)}: every attempt will time out",
                    "raise the timeout, or choose a faster model"))
        return out

    def _misfit_warning(self, td: TaskDraft, name: ir.Name, what: str, reason: str, fix: str) -> Diagnostic:
        """BMAD-W204: a model the author named can't take the task's prompt (`reason`, as
        `context_misfit` words it); `fix`: the help."""
        context, _, prompt = reason.removeprefix(CONTEXT_REASON).partition(" < prompt ~")
        return warning("BMAD-W204", name.span if name.span != ir.NO_SPAN else self.span(td),
                       f"{what} for task `{td.id}` can't take its prompt: about {prompt}, more than "
                       f"its context of {context}", fix)

    def _quality(self, td: TaskDraft, model: str) -> float | None:
        c = td.evaluated.get(model)
        if c is not None:
            return c.expected_quality
        entry = self.context.catalog.get(model)
        return entry.expected_quality(td.needs, self.context.history) if entry else None

    def _reason(self, rule: str, model: str | None, cascade: tuple[str, ...], chosen: Candidate | None,
                qualified: int, floor: float | None, skipped: dict[str, str]) -> str:
        what = _describe(chosen) if chosen else model or "?"
        floor_text = f", floor {floor:.2f}" if floor is not None else ""
        if rule == "pinned":
            return f"pinned to {what}"
        if rule == "route:cascade":
            return f"cascade {' -> '.join(cascade)} (cheapest first){describe_skipped(skipped)}"
        if rule.startswith("budget"):
            return f"cheapest qualified, to fit the budget{floor_text}"
        if rule.startswith("consensus"):
            return f"{rule.split(':')[1]} consensus participants{floor_text}"
        if rule == "fallback:local":
            return f"no qualified model available; embedded {model}"
        if rule == "fallback:only":
            return f"pinned model unavailable; {what}, the first available of `fallback only`"
        if rule == "best-effort":
            return f"nothing reaches the floor{floor_text}; best available {what}"
        if rule == "unroutable":
            return "no model can run this task"
        label = {"cost": "cheapest", "latency": "fastest", "quality": "best", "balanced": "best balanced"}
        key = rule.split(":")[1]
        return f"{label.get(key, key)} of {qualified} qualified{floor_text}"

    def _route_consensus(self, td, consensus, ranked, rule, diags) -> tuple[tuple[str, ...], str | None, str]:
        """(participants, the first of them or None, the deciding rule)."""
        ctx = self.context
        if consensus.participants:
            names, used = [], set()
            spare = [c.model for c in ranked]
            for p in consensus.participants:
                entry = ctx.catalog.get(p.name)
                if entry is not None and entry.available:
                    names.append(p.name)
                    used.add(p.name)
                    misfit = context_misfit(entry.context, td.shape.input_expected, self.ratio)
                    if misfit is not None:
                        diags.append(self._misfit_warning(
                            td, p, f"participant `{p.name}`", misfit,
                            "the runtime refuses its call (BMAD-E504), so it never votes; name a model "
                            "with a larger context, or shorten the prompt"))
                    continue
                used_providers = {ctx.catalog.get(n).provider for n in names if ctx.catalog.get(n)}
                substitutes = [m for m in spare if m not in used]
                substitutes.sort(key=lambda m: ctx.catalog.get(m).provider in used_providers)
                substitute = substitutes[0] if substitutes else (self.local.name if self.local else None)
                if substitute is None:
                    continue
                reason = entry.unavailable_reason if entry else "not declared"
                diags.append(warning("BMAD-W203", p.span,
                                     f"participant `{p.name}` of task `{td.id}` is unavailable ({reason}); "
                                     f"`{substitute}` takes its place",
                                     "set the provider's key variable, or plan with --provider sim"))
                names.append(substitute)
                used.add(substitute)
            if not names:
                return (), None, rule
            return tuple(names), names[0], "consensus:named"
        count = consensus.size or 1
        names = _spread_providers(ranked, count)
        if not names:
            return (), None, rule
        if len(set(names)) < count:
            diags.append(warning("BMAD-W220", consensus.span,
                                 f"task `{td.id}` asks for {count_text(count)} models but only {len(set(names))} "
                                 f"qualified one(s) are available; some answer more than once",
                                 "lower the count, lower the floor, or make more models available"))
        return tuple(names), names[0], "consensus:chosen"

    def _judge(self, td: TaskDraft, model: str | None, usable: list[Candidate], diags) -> str | None:
        """The task's judge; `usable`: the qualified available candidates, in any order (the best
        judge is found by a key no two of them share)."""
        task, ctx = td.task, self.context
        named = None
        if task.consensus is not None and task.consensus.method in ("judge", "ensemble", "best_of"):
            named = task.consensus.judge
            if named is None:
                best = sorted(usable, key=lambda c: (-(c.expected_quality or 0.0),) + _cost_key(c))
                return best[0].model if best else model
        elif task.quality is not None:
            named = task.quality.judge
        if named is None:
            return None
        entry = ctx.catalog.get(named.name)
        if entry is not None and entry.available:
            # the judge reads the request and an answer
            misfit = context_misfit(entry.context, td.shape.input_expected + td.shape.output_expected,
                                    self.ratio)
            if misfit is not None:
                diags.append(self._misfit_warning(
                    td, named, f"judge `{named.name}`", misfit,
                    "the runtime refuses the judge's call (BMAD-E504) and the task fails; name a "
                    "judge with a larger context, or shorten the prompt"))
        if entry is not None and not entry.available:
            substitute = sorted(usable, key=lambda c: (-(c.expected_quality or 0.0),) + _cost_key(c))
            other = substitute[0].model if substitute else model
            diags.append(warning("BMAD-W203", named.span,
                                 f"judge `{named.name}` of task `{td.id}` is unavailable "
                                 f"({entry.unavailable_reason}); `{other}` judges instead",
                                 "set the provider's key variable, or plan with --provider sim"))
            return other
        return named.name

    def _last_resort(self, td: TaskDraft, all_candidates: list[Candidate], floor, diags) -> tuple[str, str]:
        covering = [c for c in all_candidates if c.available and not c.reason.startswith("lacks")
                    and not can_not_take(c)]
        if covering:  # available models that cover the needs but sit below the floor
            best = sorted(covering, key=lambda c: (-(c.expected_quality or 0.0),) + _cost_key(c))[0]
            qualified_somewhere = any(c.qualified for c in all_candidates)
            if not qualified_somewhere:
                diags.append(warning(
                    "BMAD-W202", self.span(td),
                    f"no model reaches quality {floor:.2f} for task `{td.id}`; "
                    f"the best, `{best.model}`, expects {best.expected_quality}",
                    "lower the quality floor, or declare a stronger model"))
                return best.model, "best-effort"
        local = self.local
        if local is None:
            # no embedded model to fall back on: the best available model, or nothing at all
            available = [c for c in all_candidates if c.available]
            best = sorted(available, key=lambda c: (c.reason.startswith("lacks"), can_not_take(c),
                                                    -(c.expected_quality or 0.0)) + _cost_key(c))
            if best:
                return best[0].model, "best-effort"
            unavailable = sorted({c.reason.removeprefix("unavailable: ") for c in all_candidates})
            diags.append(error(
                "BMAD-E231", self.span(td),
                f"no model can run task `{td.id}`: "
                + (f"none is available ({'; '.join(unavailable)})" if unavailable
                   else "the program declares no models and there is no embedded model to fall back on"),
                "declare a model (or `use std.models`), set its provider's key variable, "
                "or plan with --provider sim"))
            return "", "unroutable"
        self.draft.needs_local = True
        why = "" if local.available else f"; the local model itself is unavailable ({local.unavailable_reason})"
        unavailable = sorted({c.reason.removeprefix("unavailable: ") for c in all_candidates
                              if c.qualified and not c.available})
        diags.append(warning(
            "BMAD-W200", self.span(td),
            f"no qualified model is available for task `{td.id}`"
            + (f" ({'; '.join(unavailable)})" if unavailable else "")
            + f"; it runs on the embedded `{local.name}` model{why}",
            "set the missing key variables, or plan with --provider sim to simulate every model"))
        td.routed_by_fallback = True
        if local.name not in td.evaluated:
            evaluate(td, local, floor, self.context, self.cache, ratio=self.ratio)
        return local.name, "fallback:local"


def add_local_model(draft: Draft, context: PassContext) -> None:
    """Put the embedded model into the plan's program so the runtime can find it."""
    if context.local_model is None or draft.program.model(context.local_model.name) is not None:
        return
    program = draft.program
    providers = program.providers
    if program.provider(context.local_provider.name) is None:
        providers = providers + (context.local_provider,)
    draft.program = replace(program, models=program.models + (context.local_model,), providers=providers)


def route_models(draft: Draft, context: PassContext) -> Draft:
    draft.needs_local = False
    for wd in draft.workflows.values():
        wd.objective = workflow_objective(wd.workflow, context)
        router = TaskRouter(draft, wd, context)
        for name in wd.order:
            td = wd.tasks[name]
            if td.plan.kind == "call":
                td.plan = revise(td.plan, route_rule="call", quality_floor=quality_floor(td.task, wd.workflow, context),
                                  route_reason=f"runs workflow {td.plan.subworkflow}")
                continue
            td.plan, diags = router.route(td)
            for d in diags:
                draft.report(d, td.id)
    if draft.needs_local:
        add_local_model(draft, context)
    return draft
