"""Estimate cost: dollars, tokens and latency per task (expected and worst case) and per workflow.

The *expected* figures, from a task's clauses (all documented in docs/planning.md):
- one call per attempt by the routed model, or one per consensus participant (`vote`, `weighted`,
  `similarity`, and the panels `strategy collaborative` makes: `TaskPlan.method`), plus one judge
  call (`consensus judge`, `best_of`), one synthesiser call (`ensemble`), or 2 x rounds more calls
  per participant (`peer_review`: review, then revise);
- a quality gate adds a judge call per attempt (the `judged by` model, else the task's own; a
  consensus or panel only with `judged by`, its agreement being its quality otherwise);
  `else refine max N` / `else retry N` re-run the task: expected sum(p^k, k=0..N) attempts with
  p = `GATE_FAILURE_PROBABILITY` (0.3); `else escalate` walks the cascade, model k weighted by
  p^k; a consensus or panel that escalates asks its participants first, then the escalation
  models the runtime would (its written `fallback [...]`, else the cascade and fallbacks beyond
  the participants), the k-th (from 1) weighted by p^k;
- p is 1 for an answer the gate's bar is out of reach of (`out_of_reach`, BMAD-W202's verdict:
  the model's expected quality, a panel's participants' mean, below the bar): every refine /
  retry round runs, and each escalation step after such a model is as sure as the one before;
- 1 + the observed failure rate (history), else 1, tries per call;
- `for each` multiplies by the fan-out size (0 for a list known to be empty: no call);
  `reduce ... in chunks of N` makes a tree of calls; a call task is its callee's totals times
  its fan-out, its invocations running `call_concurrency` at a time.

The *worst* figures (`worst_case`) bound what the runtime can spend on the task: every call it
may make, each tried as often as its retry policy allows (`retry N`: N + 1 tries, else
`DEFAULT_ATTEMPTS`, 3), every try billed for the whole prompt and `max_tokens` of answer:
- a single model: every model of the chain the runtime walks (the routed model, the pinned one,
  the cascade, the fallbacks, the written `fallback [...]`), each with its answer, one repair
  round-trip for `returns enum|json`, and with a quality gate (or a `route cascade` floor) the
  judges' scores (each judge tried in turn, each with one re-ask for an unreadable score);
  `else refine|retry` adds its rounds (answer and score) to one model;
- a consensus or panel: each participant's answer, the judge's choice or the ensemble's synthesis
  or the peer reviews and revisions, the gate judge's score; `else retry N` asks the panel N more
  times, `else refine` revises the decision N times (each scored), and the escalation models
  (written `fallback [...]`, else the cascade and fallbacks beyond the participants) answer once;
- `strategy adaptive` may put the cheapest qualified candidate under the answering model's cost
  in front of a single model's chain (`adaptive_fronts`): that model is counted too (not for a
  closed chain, `fallback none` or `fallback only [...]`, which it only reorders).
The prompts of judges, repairs, re-asks, reviews and refine rounds quote the request and the
answers (at most `max_tokens` each) plus at most `WRAPPER_TOKENS` of the runtime's own text.
Latency: per call, the model's profile (history first) for the expected output; participants run
in parallel; fan-out items, and the chunks of each `reduce` level, run `concurrency` at a time
(the provider's `concurrent` limit; one for a model run in this process: catalog.py).
Under `strategy sequential` a workflow's latency is the sum of its tasks' (one runs at a time).
Unknown prices make the cost None (never $0); `bmad plan` warns. Under a dollar budget a model
without a price adds nothing to the worst case (`worst_options`): under a task's or a called
workflow's own budget the runtime refuses its calls; under the run's, `bmad run` refuses to start
(BMAD-E307), which enforce_budget reports (BMAD-W215) and the router avoids.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Iterable

from bmad.compiler.call_shapes import JUDGE_MAX_TOKENS, REVIEW_MAX_TOKENS, RUN_CONCURRENCY, gate_rounds
from bmad.compiler.adaptive import cheaper_candidates
from bmad.compiler.catalog import DEFAULT_PROVIDER_CONCURRENCY, CatalogEntry, ModelCatalog
from bmad.compiler.diagnostics import warning
from bmad.compiler.history import ModelHistory
from bmad.compiler.passes.context import PassContext
from bmad.compiler.passes.draft import Draft, TaskDraft, WorkflowDraft, revise
from bmad.compiler.passes.measure_prompts import instruction_tokens, reduce_calls, reduce_levels, reduce_waves
from bmad.compiler.plan import DEFAULT_ATTEMPTS, Estimate, TaskPlan
from bmad.compiler.tokens import count_tokens

GATE_FAILURE_PROBABILITY = 0.3
JUDGE_OUTPUT_TOKENS = 100  # a judge's answer, expected
DEFAULT_PEER_REVIEW_ROUNDS = 1
# Rounds up to this many are summed term by term (the figures tests pin down); more, in closed form.
SERIES_TERMS = 1_000

# What the runtime does that the worst case counts (compiler/call_shapes.py holds the rest, shared
# with the runtime; tests/compiler/passes/test_worst_case_bound.py checks these agree):
DEFAULT_RUBRIC_TOKENS = 24  # the judge's rubric when the gate names none
# The runtime's own text around what a judge, repair, re-ask, review, refine round or ensemble
# prompt quotes (the request, the answers, a critique): at most this many tokens.
WRAPPER_TOKENS = 160
LISTING_TOKENS = 12  # per quoted answer in a judge's or an ensemble's listing ("Candidate 2:")


class SoloAssignment:
    """The router's question: what if `model` did the task alone? (duck-types a TaskPlan)"""

    __slots__ = ("model", "fan_out")
    participants: tuple[str, ...] = ()
    cascade: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    judge = None
    method = None
    quality_floor = None
    candidates: tuple = ()

    def __init__(self, model: str, fan_out: int | None):
        self.model, self.fan_out = model, fan_out


class _Sum:
    """Accumulates the expected calls of one task: cost stays None once an unpriced model is involved."""

    __slots__ = ("cost_exp", "tokens_exp", "calls_exp")

    def __init__(self) -> None:
        self.cost_exp: float | None = 0.0
        self.tokens_exp = 0.0
        self.calls_exp = 0.0

    def add(self, entry: CatalogEntry | None, calls_exp: float, in_exp: float, out_exp: float) -> None:
        self.calls_exp += calls_exp
        self.tokens_exp += calls_exp * (in_exp + out_exp)
        if entry is None or not entry.priced:
            self.cost_exp = None
            return
        if self.cost_exp is not None:
            self.cost_exp += calls_exp * entry.call_cost(in_exp, out_exp)


class Bound:
    """A worst-case tally: dollars (None once a model without a price may be billed), tokens and
    calls (tries: the journal's call rows)."""

    __slots__ = ("cost", "tokens", "calls")

    def __init__(self, cost: float | None = 0.0, tokens: float = 0.0, calls: float = 0.0):
        self.cost, self.tokens, self.calls = cost, tokens, calls

    def tries(self, entry: CatalogEntry | None, n: float, in_tokens: float, out_tokens: float) -> "Bound":
        """`n` tries of `entry`, each billed for `in_tokens` + `out_tokens`."""
        self.calls += n
        self.tokens += n * (in_tokens + out_tokens)
        if entry is None or not entry.priced:
            self.cost = None
        elif self.cost is not None:
            self.cost += n * entry.call_cost(in_tokens, out_tokens)
        return self

    def add(self, other: "Bound", times: float = 1) -> "Bound":
        self.calls += times * other.calls
        self.tokens += times * other.tokens
        self.cost = None if self.cost is None or other.cost is None else self.cost + times * other.cost
        return self

    @staticmethod
    def most(bounds: Iterable["Bound"]) -> "Bound":
        """Each figure's largest (one of them happens, whichever spends most)."""
        out, any_bound = Bound(), False
        for b in bounds:
            if not any_bound:
                out, any_bound = Bound(b.cost, b.tokens, b.calls), True
                continue
            out.calls, out.tokens = max(out.calls, b.calls), max(out.tokens, b.tokens)
            out.cost = None if out.cost is None or b.cost is None else max(out.cost, b.cost)
        return out


def round_up(usd: float, places: int = 6) -> float:
    """`usd` rounded up to `places` decimals (a bound must not round down), float noise aside."""
    scale = 10 ** places
    return math.ceil(usd * scale - 1e-6) / scale


def gate_bar(task_quality) -> float | None:
    """The score a gate holds an answer to, when the plan knows it: the written threshold (the
    runtime's `_gate_bar`). `quality >= auto` (a learned agreement bar) and no gate: None."""
    if task_quality is None or task_quality.learned:
        return None
    return task_quality.threshold


def out_of_reach(quality: float | None, bar: float | None) -> bool:
    """BMAD-W202's verdict (route_models.py): a model, or a panel by its participants' mean,
    whose expected quality (history first, else its catalog skill) is below the bar is not
    expected to reach it. An unknown quality or no bar: within reach."""
    return quality is not None and bar is not None and quality < bar


def gate_attempts(task_quality, failure_p: float = GATE_FAILURE_PROBABILITY) -> tuple[float, int]:
    """(expected, worst) attempts a quality gate allows (refine / retry rounds)."""
    if task_quality is None or task_quality.otherwise not in ("refine", "retry"):
        return 1.0, 1
    rounds = gate_rounds(task_quality)
    if rounds <= SERIES_TERMS:
        expected = sum(failure_p ** k for k in range(rounds + 1))
    else:  # the closed form, for IR whose rounds are past every limit (BMAD-E507): no O(N) sum
        expected = (1 - failure_p ** (rounds + 1)) / (1 - failure_p) if failure_p < 1 else float(rounds + 1)
    return expected, 1 + rounds


def attempts_per_call(task) -> int:
    """Tries the runtime makes of one call before the next model is asked (runtime/retry.py)."""
    return max(1, task.retry.attempts) if task.retry is not None else DEFAULT_ATTEMPTS


def _dedupe(names: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(n for n in names if n))


def model_chain(task, plan) -> list[str]:
    """The models a single-model task may ask, in order (runtime/interpreter.py `_node`): the
    routed model, the pinned one, the cascade, the fallbacks, the written `fallback [...]`."""
    own = task.model.name if task.model else None
    return _dedupe([plan.model, own, *plan.cascade, *plan.fallbacks, *(f.name for f in task.fallback)])


def consensus_escalation(task, plan) -> list[str]:
    """Who settles a consensus (or panel) that falls short, in order (runtime/interpreter.py
    `_consensus_escalation`): the written `fallback [...]` models the plan kept; without them,
    for `else escalate`, the cascade and fallbacks; never a participant."""
    written = [f.name for f in task.fallback]
    if written:
        kept = set(plan.fallbacks) | set(plan.cascade)
        return [m for m in written if m in kept and m not in plan.participants]
    if task.quality is None or task.quality.otherwise != "escalate":
        return []
    return [m for m in _dedupe([*plan.cascade, *plan.fallbacks]) if m not in plan.participants]


def answers_as_consensus(task, plan, solo: bool = False) -> bool:
    """Whether the runtime decides the task by its participants (`_consensus`) rather than one
    model at a time (`_single`)."""
    if solo or task.call is not None:
        return False
    if task.consensus is not None:
        return True
    return plan.method is not None and len(plan.participants) > 1


class _Refused:
    """A model without a price under a dollar cap: the runtime refuses its calls before sending
    them (`UnpricedModel`, the task fails), so it bills nothing."""

    priced = True

    @staticmethod
    def call_cost(input_tokens: float, output_tokens: float) -> float:
        return 0.0


class _WorstCase:
    """The worst case of one execution of a task's prompt (one `for each` item, one reduce call)."""

    def __init__(self, td: TaskDraft, plan, catalog: ModelCatalog, dollar_capped: bool = False):
        task, shape = td.task, td.shape
        self.task, self.plan, self.catalog = task, plan, catalog
        self.dollar_capped = dollar_capped
        self.tries = attempts_per_call(task)
        self.in_w, self.out_w = shape.input_worst, shape.output_worst
        if task.reduce is not None and task.reduce.chunk_size:
            # the upper levels of the tree read the task's own summaries, a chunk at a time
            self.in_w += task.reduce.chunk_size * self.out_w
        self.instruction = instruction_tokens(task.returns)
        self.repairs = task.returns is not None and task.returns.kind != "text"
        gate = task.quality
        rubric = gate.rubric if gate is not None else None
        self.rubric = count_tokens(rubric) if rubric else DEFAULT_RUBRIC_TOKENS
        self._entries: dict[str, CatalogEntry | None] = {}
        self._answers: dict[tuple, Bound] = {}  # shared: never changed once made (`add` copies)
        self._scores: dict[tuple, Bound] = {}

    def entry(self, model: str) -> CatalogEntry | None:
        found = self._entries.get(model, self)
        if found is self:
            found = self.catalog.get(model)
            if self.dollar_capped and (found is None or not found.priced):
                found = _Refused()
            self._entries[model] = found
        return found  # type: ignore[return-value]

    # one model's answer: the call, and one repair round-trip when `returns` is not met
    def answer(self, model: str, extra_in: float = 0.0, in_tokens: float | None = None) -> Bound:
        key = (model, extra_in, in_tokens)
        found = self._answers.get(key)
        if found is None:
            found = self._answers[key] = self._answer(model, extra_in, in_tokens)
        return found

    def _answer(self, model: str, extra_in: float, in_tokens: float | None) -> Bound:
        entry, a, out = self.entry(model), self.tries, self.out_w
        first = (self.in_w if in_tokens is None else in_tokens) + extra_in
        b = Bound().tries(entry, a, first, out)
        if self.repairs:  # the answer, then what was wrong with it and the form once more
            b.tries(entry, a, first + 2 * out + self.instruction + WRAPPER_TOKENS, out)
        return b

    # a score of one answer by the gate's judges: each asked in turn when one fails, each with one
    # re-ask for an unreadable score
    def score(self, judges: list[str]) -> Bound:
        key = tuple(judges)
        found = self._scores.get(key)
        if found is None:
            found = self._scores[key] = self._score(judges)
        return found

    def _score(self, judges: list[str]) -> Bound:
        judge_in = self.in_w + self.out_w + self.rubric + WRAPPER_TOKENS
        b = Bound()
        for judge in judges:
            entry = self.entry(judge)
            b.tries(entry, self.tries, judge_in, JUDGE_MAX_TOKENS)
            b.tries(entry, self.tries, judge_in + JUDGE_MAX_TOKENS + WRAPPER_TOKENS, JUDGE_MAX_TOKENS)
        return b

    def single(self, chain: list[str], extra: Iterable[str] = ()) -> Bound:
        """`_single`: the chain in order until a model answers (and passes the gate). `extra`:
        models `strategy adaptive` may put in front of the chain, one of them at most."""
        task, plan = self.task, self.plan
        gate = task.quality
        route = task.route
        floor = plan.quality_floor if (route is not None and route.strategy == "cascade"
                                       and plan.cascade) else None
        answers = Bound()
        for m in chain:
            answers.add(self.answer(m))
        extra = list(extra)
        if gate is None and not floor:
            if not extra:
                return answers
            return Bound.most(Bound().add(answers).add(self.answer(m)) for m in extra)
        otherwise = (gate.otherwise if gate else None) or ("escalate" if plan.cascade else "accept")
        written = gate.judge.name if gate is not None and gate.judge is not None else None
        rounds = gate_rounds(gate) if otherwise in ("refine", "retry") else 0
        follow = self.out_w + JUDGE_MAX_TOKENS + WRAPPER_TOKENS if otherwise == "refine" else 0.0

        def block(m: str) -> Bound:
            """What model `m` spends once it answers: its score, and the gate's rounds."""
            judges = _dedupe([plan.judge, written]) or [m]
            b = Bound().add(self.score(judges))
            if rounds:
                b.add(self.answer(m, follow), rounds).add(self.score(judges), rounds)
            return b

        blocks = [block(m) for m in chain]
        # `else escalate`: every model answers, is scored and sends the task up; otherwise the
        # first model that answers is the only one scored (and runs the rounds)
        if otherwise == "escalate":
            total = Bound().add(answers)
            for b in blocks:
                total.add(b)
            if not extra:
                return total
            return Bound().add(total).add(Bound.most(Bound().add(self.answer(m)).add(block(m))
                                                     for m in extra))
        scored = Bound.most(blocks)
        total = Bound().add(answers).add(scored)
        if not extra:
            return total
        # one more model in front: its answer, and it may be the one scored
        return Bound.most([total, *(Bound().add(answers).add(self.answer(m)).add(Bound.most([scored, block(m)]))
                                    for m in extra)])

    def consensus(self) -> Bound:
        """`_consensus`: the panel decides, the gate measures the decision, and below the bar the
        gate's `else` asks the panel again, revises the decision, or escalates."""
        task, plan = self.task, self.plan
        consensus, gate = task.consensus, task.quality
        participants = list(plan.participants)
        method = consensus.method if consensus is not None else plan.method
        decider = plan.judge or (consensus.judge.name if consensus and consensus.judge else None) \
            or (gate.judge.name if gate and gate.judge else None) or participants[0]
        n = len(participants)
        panel = Bound()
        for p in participants:
            panel.add(self.answer(p))
        listing = n * (self.out_w + LISTING_TOKENS)
        if method in ("judge", "best_of"):  # the judge picks one, with one re-ask
            choose_in = self.in_w + listing + self.rubric + WRAPPER_TOKENS
            entry = self.entry(decider)
            panel.tries(entry, self.tries, choose_in, JUDGE_MAX_TOKENS)
            panel.tries(entry, self.tries, choose_in + JUDGE_MAX_TOKENS + WRAPPER_TOKENS, JUDGE_MAX_TOKENS)
        elif method == "ensemble":  # the synthesiser merges them (an answer: it may need a repair)
            panel.add(self.answer(decider, in_tokens=self.in_w + self.instruction + listing + WRAPPER_TOKENS))
        elif method == "peer_review":
            rounds = (consensus.rounds if consensus else None) or DEFAULT_PEER_REVIEW_ROUNDS
            for p in participants:
                review = Bound().tries(self.entry(p), self.tries, self.in_w + self.out_w + WRAPPER_TOKENS,
                                       REVIEW_MAX_TOKENS)
                revise_ = self.answer(p, self.out_w + REVIEW_MAX_TOKENS + WRAPPER_TOKENS)
                panel.add(review, rounds).add(revise_, rounds)
        written = gate.judge.name if gate is not None and gate.judge is not None else None
        judged = method in ("judge", "ensemble", "best_of")

        def judges(m: str) -> list[str]:
            order = (written, plan.judge) if judged else (plan.judge, written)
            return _dedupe(order) or [m]

        if written is not None:  # the gate's judge scores each decision
            panel.add(self.score(judges(decider)))
        otherwise = (gate.otherwise if gate is not None else None) or "accept"
        panels = 1 + (gate_rounds(gate) if gate is not None and otherwise == "retry" else 0)
        total = Bound().add(panel, panels)
        for m in consensus_escalation(task, plan):  # they answer one at a time
            total.add(self.answer(m))
        if gate is not None and otherwise == "refine":  # the decided answer's model revises it
            rounds = gate_rounds(gate)
            extra = self.out_w + JUDGE_MAX_TOKENS + WRAPPER_TOKENS
            deciders = _dedupe([*participants, decider if method == "ensemble" else None])
            total.add(Bound.most(Bound().add(self.answer(m, extra)).add(self.score(judges(m)))
                                 for m in deciders), rounds)
        return total


def worst_case(td: TaskDraft, plan, catalog: ModelCatalog, *, solo: bool = False,
               adaptive: bool = False, dollar_capped: bool = False,
               expected_cost: float | None = None) -> Bound:
    """What the runtime can spend on `td` executed as `plan` says, at most (the module docstring):
    one execution of its prompt times its `for each` items (a reduce: its calls).

    `solo`: `plan.model` alone; `adaptive`: the run's strategy is `adaptive`, which may put a
    cheaper candidate (expected cost below `expected_cost`) in front of the chain;
    `dollar_capped`: a dollar budget applies to the task (the run's, its workflow's or its own),
    under which a model without a price is refused and bills nothing."""
    task = td.task
    if task.reduce is not None:
        times, _levels = reduce_calls(td.reduce_items, task.reduce.chunk_size)
    else:
        times = fan_size(plan)
    w = _WorstCase(td, plan, catalog, dollar_capped or _own_dollar_cap(task))
    if answers_as_consensus(task, plan, solo) and plan.participants:
        one = w.consensus()
    else:
        chain = [plan.model] if solo else model_chain(task, plan)
        if not chain:
            return Bound()
        extra = adaptive_fronts(plan, chain, expected_cost, task.no_fallback) \
            if adaptive and not solo else []
        one = w.single(chain, extra)
    return Bound().add(one, times)


def adaptive_fronts(plan, chain: list[str], expected_cost: float | None,
                    closed: bool = False) -> list[str]:
    """The models not in `chain` that `strategy adaptive` may put in front of it, short of money:
    the cheapest of `cheaper_candidates` (compiler/adaptive.py, the rule runtime/interpreter.py
    `_adapt` applies) below the model about to answer, which is the chain's first, or its second
    when the first was moved back for running slow. One of them goes in front at most
    (`_WorstCase.single` counts the costliest). A closed chain (`fallback none`, `fallback only
    [...]`) gets none: `_adapt` moves only a model of its chain to the front."""
    fronts: list[str] = []
    for head in chain[:2]:
        cheaper = cheaper_candidates(plan.candidates, chain, head, expected_cost, closed)
        if cheaper:
            # the runtime takes the first of the cheapest: any of them, whatever the table's order
            low = min(c.cost_usd_expected for c in cheaper)
            fronts += [c.model for c in cheaper if c.cost_usd_expected == low
                       and c.model not in chain and c.model not in fronts]  # a chain model is counted already
    return fronts


def _own_dollar_cap(task) -> bool:
    return task.budget is not None and task.budget.usd is not None


def worst_options(wd: WorkflowDraft, draft: Draft, context: PassContext) -> dict:
    """What the worst case of `wd`'s tasks depends on besides the task: the run's strategy, and
    whether a dollar budget applies (the run's: `--budget`, else the entry workflow's; or the
    workflow's own)."""
    entry = draft.program.workflow(draft.entry)
    run_usd = context.budget.usd if context.budget is not None else None
    if run_usd is None and entry is not None and entry.budget is not None:
        run_usd = entry.budget.usd
    own = wd.workflow.budget.usd if wd.workflow.budget is not None else None
    return {"adaptive": draft.strategy == "adaptive", "dollar_capped": run_usd is not None or own is not None}


def estimate_task(td: TaskDraft, plan: TaskPlan, catalog: ModelCatalog,
                  history: ModelHistory | None, *, solo: bool = False, adaptive: bool = False,
                  dollar_capped: bool = False) -> Estimate:
    """The estimate of `td` executed as `plan` says (model, participants, judge, cascade).

    `solo`: as if `plan.model` did the whole task alone (the router's view of one candidate);
    `adaptive`, `dollar_capped`: the worst case's (`worst_options`).
    """
    task, shape = td.task, td.shape
    fan = fan_size(plan)
    if task.reduce is not None:
        per_level = reduce_levels(td.reduce_items, task.reduce.chunk_size)
        fan = sum(per_level)
    else:
        per_level = (1,)
    in_e, out_e = shape.input_expected, shape.output_expected
    s = _Sum()
    entry = catalog.get(plan.model) if plan.model else None
    consensus = None if solo else task.consensus
    panel = not solo and bool(plan.participants) and (consensus is not None or plan.method is not None)
    bar = gate_bar(task.quality)

    def reachable(member: CatalogEntry | None) -> bool:
        if bar is None or member is None:
            return True
        return not out_of_reach(member.expected_quality(td.needs, history), bar)

    # who the gate's rounds score: the panel's decision (its participants' mean quality, as the
    # plan shows it), else the model that answers; a bar out of its reach fails every round
    answering = not out_of_reach(plan.expected_quality, bar) if panel else reachable(entry)
    attempts_e, _attempts_w = gate_attempts(task.quality, GATE_FAILURE_PROBABILITY if answering else 1.0)
    failure = (history.failure_rate(plan.model, td.needs) if history and plan.model else None) or 0.0
    attempts_e *= 1 + failure

    participants = [catalog.get(m) for m in plan.participants] if panel else [entry]
    cascade = [catalog.get(m) for m in plan.cascade] if (not solo and plan.cascade) else []
    escalating = task.quality is not None and task.quality.otherwise == "escalate"
    call_latencies: list[float] = []

    if cascade and escalating and not panel:
        # expected: each further model runs with the probability that every cheaper one failed,
        # p for one that may pass, 1 for one the bar is out of reach of
        k, reached = 0, []
        for member in cascade:
            reached.append(k)
            s.add(member, GATE_FAILURE_PROBABILITY ** k * fan, in_e, out_e)
            k += reachable(member)
        # in a row: the first model, and every later one surely reached (each answer is scored)
        certain = [member for member, k in zip(cascade, reached) if k == 0]
        call_latencies.append(sum(_latency(m, out_e, td.needs, history) for m in certain))
        judge_rounds_e = sum(GATE_FAILURE_PROBABILITY ** k for k in reached)
        scores_in_a_row = len(certain)
    else:
        for member in participants:
            s.add(member, attempts_e * fan, in_e, out_e)
        call_latencies.append(max(_latency(m, out_e, td.needs, history) for m in participants))
        judge_rounds_e = attempts_e
        scores_in_a_row = 1
        n = len(participants)
        if consensus is not None:
            method = consensus.method
            judge = catalog.get(plan.judge) if plan.judge else participants[0]
            if method in ("judge", "best_of"):
                s.add(judge, attempts_e * fan, in_e + n * out_e, JUDGE_OUTPUT_TOKENS)
                call_latencies.append(_latency(judge, JUDGE_OUTPUT_TOKENS, (), history))
            elif method == "ensemble":
                s.add(judge, attempts_e * fan, in_e + n * out_e, out_e)
                call_latencies.append(_latency(judge, out_e, (), history))
            elif method == "peer_review":
                rounds = consensus.rounds or DEFAULT_PEER_REVIEW_ROUNDS
                for member in participants:
                    s.add(member, 2 * rounds * attempts_e * fan, in_e + 2 * out_e, out_e)
                if rounds <= SERIES_TERMS:
                    call_latencies.extend([call_latencies[0]] * (2 * rounds))
                else:  # past every limit (BMAD-E507): one entry, not a list of 2 x rounds
                    call_latencies.append(call_latencies[0] * 2 * rounds)
        if panel and escalating:  # below the bar, the escalation models answer one at a time
            k = int(answering)  # the panel falls short with p, or surely when out of its reach
            for name in consensus_escalation(task, plan):
                member = catalog.get(name)
                s.add(member, GATE_FAILURE_PROBABILITY ** k * fan, in_e, out_e)
                k += reachable(member)
    # a consensus (or panel) scores its decision only with a `judged by` judge: its agreement is
    # its quality otherwise
    if task.quality is not None and not (panel and task.quality.judge is None):
        judged_by_consensus = consensus is not None and consensus.method in ("judge", "ensemble", "best_of")
        if plan.judge and not judged_by_consensus:  # the router's judge (a substitute if unavailable)
            gate_judge = catalog.get(plan.judge)
        else:
            gate_judge = catalog.get(task.quality.judge.name) if task.quality.judge else entry
        s.add(gate_judge, judge_rounds_e * fan, in_e + out_e, JUDGE_OUTPUT_TOKENS)
        judge_latency = _latency(gate_judge, JUDGE_OUTPUT_TOKENS, (), history)
        call_latencies.append(judge_latency if scores_in_a_row == 1 else judge_latency * scores_in_a_row)

    per_item = sum(call_latencies) * (attempts_e if not cascade else 1.0)
    concurrency = entry.concurrency if entry else DEFAULT_PROVIDER_CONCURRENCY
    if task.reduce is not None:
        latency = per_item * reduce_waves(per_level, concurrency)
    else:
        latency = per_item * math.ceil(fan / max(1, concurrency))
    cost_exp = None if s.cost_exp is None else round(s.cost_exp, 6)
    worst = worst_case(td, plan, catalog, solo=solo, adaptive=adaptive, dollar_capped=dollar_capped,
                       expected_cost=cost_exp)
    return Estimate(
        cost_usd_expected=cost_exp,
        cost_usd_worst=None if worst.cost is None else round_up(worst.cost),
        tokens_expected=round(s.tokens_exp), tokens_worst=math.ceil(worst.tokens - 1e-6),
        latency_s=round(latency, 3), calls_expected=round(s.calls_exp, 3),
        calls_worst=math.ceil(worst.calls - 1e-9),
    )


def _latency(entry: CatalogEntry | None, out_tokens: float, needs: tuple[str, ...],
             history: ModelHistory | None) -> float:
    if entry is None:
        return 0.0
    return entry.call_latency(out_tokens, needs, history)


def fan_size(plan) -> int:
    """How many times a task's prompt (or call) runs for its `for each`: its items, 0 for a list
    known to be empty; once without a `for each` (`fan_out` None). An unknown size was already
    assumed (`DEFAULT_FAN_OUT`) by `expand`."""
    return 1 if plan.fan_out is None else plan.fan_out


def call_concurrency(callee: WorkflowDraft, draft: Draft, catalog: ModelCatalog) -> int:
    """How many invocations of `callee` a `for each` call runs at once, as the runtime does
    (runtime/interpreter.py `_fan_out`): up to the run's item concurrency (`RUN_CONCURRENCY`, the
    runtime's default), each invocation's calls then waiting for their provider's slots. So: the
    tightest of that and the concurrency of every provider the callee's tasks call on their
    expected path (the routed model, the participants, the judge), through nested calls too.

    A bound rather than a schedule: a callee that uses several providers one after another runs
    at the pace of the tightest, and its latency (its critical path) is counted once per such
    wave, whereas the looser providers' stages in fact overlap with the next wave."""
    limit = RUN_CONCURRENCY
    seen = {callee.name}
    pending = [callee]
    while pending:
        wd = pending.pop()
        for td in wd.tasks.values():
            plan = td.plan
            if plan.kind == "call":
                inner = draft.workflows.get(plan.subworkflow or "")
                if inner is not None and inner.name not in seen:
                    seen.add(inner.name)
                    pending.append(inner)
                continue
            for model in (plan.model, *plan.participants, plan.judge):
                entry = catalog.get(model) if model else None
                if entry is not None:
                    limit = min(limit, max(1, entry.concurrency))
    return limit


def estimate_call(td: TaskDraft, draft: Draft, catalog: ModelCatalog) -> Estimate:
    """A subworkflow call: the callee's totals times the fan-out; its latency, the callee's times
    the waves of invocations (`call_concurrency` at a time)."""
    callee = draft.workflows.get(td.plan.subworkflow or "")
    if callee is None:
        return Estimate()
    fan = fan_size(td.plan)
    t = callee.totals
    waves = math.ceil(fan / call_concurrency(callee, draft, catalog)) if td.plan.fan_out is not None else 1
    return Estimate(
        cost_usd_expected=None if t.cost_usd_expected is None else t.cost_usd_expected * fan,
        cost_usd_worst=None if t.cost_usd_worst is None else t.cost_usd_worst * fan,
        tokens_expected=t.tokens_expected * fan, tokens_worst=t.tokens_worst * fan,
        latency_s=round(t.latency_s * waves, 3),
        calls_expected=round(t.calls_expected * fan, 3), calls_worst=t.calls_worst * fan,
    )


def sum_estimates(estimates: list[Estimate], latency_s: float) -> Estimate:
    def total(values):
        return None if any(v is None for v in values) else round(sum(values), 6)

    return Estimate(
        cost_usd_expected=total([e.cost_usd_expected for e in estimates]),
        cost_usd_worst=total([e.cost_usd_worst for e in estimates]),
        tokens_expected=sum(e.tokens_expected for e in estimates),
        tokens_worst=sum(e.tokens_worst for e in estimates),
        latency_s=round(latency_s, 3),
        calls_expected=round(sum(e.calls_expected for e in estimates), 3),
        calls_worst=sum(e.calls_worst for e in estimates),
    )


def critical_latency(wd: WorkflowDraft) -> tuple[float, list[str]]:
    """The longest path through the DAG by task latency, and its tasks (linear in the graph)."""
    best: dict[str, float] = {}
    prev: dict[str, str | None] = {}
    for name in wd.order:
        td = wd.tasks[name]
        preds = td.plan.depends
        p = max(preds, key=lambda d: (best.get(d, 0.0), d), default=None)
        best[name] = (best[p] if p else 0.0) + td.plan.estimate.latency_s
        prev[name] = p
    if not best:
        return 0.0, []
    # the longest path; among equals, the one that ends first in dependency order
    end = max(enumerate(wd.order), key=lambda item: (best[item[1]], -item[0]))[1]
    path = []
    node: str | None = end
    while node is not None:
        path.append(node)
        node = prev[node]
    return best[end], path[::-1]


def sequential_latency(wd: WorkflowDraft) -> tuple[float, list[str]]:
    """Under `strategy sequential` the runtime runs one task at a time: the latency is the sum of
    every task's, and every task is on the critical path (here in dependency order;
    `schedule_tasks` lists it in the order the run takes)."""
    return sum(wd.tasks[name].plan.estimate.latency_s for name in wd.order), list(wd.order)


def total_workflow(wd: WorkflowDraft) -> None:
    latency, path = sequential_latency(wd) if wd.sequential else critical_latency(wd)
    wd.totals = sum_estimates([td.plan.estimate for td in wd.tasks.values()], latency)
    wd.critical_path = tuple(path)


def rounded(e: Estimate) -> Estimate:
    return replace(
        e,
        cost_usd_expected=None if e.cost_usd_expected is None else round(e.cost_usd_expected, 6),
        cost_usd_worst=None if e.cost_usd_worst is None else round(e.cost_usd_worst, 6),
    )


def estimate_workflow(wd: WorkflowDraft, draft: Draft, context: PassContext) -> None:
    options = worst_options(wd, draft, context)
    for name in wd.order:
        td = wd.tasks[name]
        if td.plan.kind == "call":
            td.plan = revise(td.plan, estimate=rounded(estimate_call(td, draft, context.catalog)))
        elif td.plan.model is not None:
            td.plan = revise(td.plan, estimate=estimate_task(td, td.plan, context.catalog, context.history,
                                                             **options))
    total_workflow(wd)


def estimate_cost(draft: Draft, context: PassContext) -> Draft:
    unpriced: dict[str, list[str]] = {}
    for wd in draft.workflows.values():
        estimate_workflow(wd, draft, context)
        for td in wd.tasks.values():
            models = {td.plan.model, *td.plan.participants, td.plan.judge}
            if td.plan.estimate.cost_usd_worst is None:  # a model it may fall back on bills unknown sums
                models.update((*td.plan.fallbacks, *td.plan.cascade, *(f.name for f in td.task.fallback)))
            for model in models - {None}:
                entry = context.catalog.get(model)
                if entry is not None and not entry.priced:
                    unpriced.setdefault(model, []).append(td.id)
    for model, tasks in sorted(unpriced.items()):
        wd = draft.workflows[draft.entry] if draft.entry in draft.workflows else None
        span = wd.workflow.span if wd else None
        if span is None:
            continue
        draft.report(warning(
            "BMAD-W212", span,
            f"model `{model}` has no price, so the cost of {', '.join(sorted(set(tasks))[:5])} is unknown",
            f"declare `price input $X output $Y per 1M` in model `{model}`; unknown prices are never counted as $0"))
    return draft
