"""One model call, done properly: reuse a recorded response, reserve the worst case, respect rate
and concurrency limits, time out, retry with backoff, settle the actual cost, journal every try.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio

from bmad.compiler.call_shapes import JUDGE_MAX_TOKENS, REVIEW_MAX_TOKENS
from bmad.compiler.limits import current_limits
from bmad.runtime.events import EventBus
from bmad.runtime.journal import RecordedCall
from bmad.runtime.ledger import (BudgetExhausted, BudgetLedger, ScopeBudgetExhausted,
                                  ScopedLedger)
from bmad.runtime.model_pool import ModelPool
from bmad.runtime.providers import base, keys
from bmad.runtime.providers.record_builder import positional_builder
from bmad.runtime.retry import is_retryable, requested_wait
from bmad.runtime.slots import Slots

if TYPE_CHECKING:
    from bmad.runtime.interpreter import Node, Tally

DEFAULT_TIMEOUT_S = 120.0
MESSAGE_OVERHEAD_TOKENS = 8


_request = positional_builder(base.CompletionRequest)
_blake2b = hashlib.blake2b


class ModelFailed(Exception):
    """This model could not answer (retries used up, or an error no retry fixes)."""

    def __init__(self, model: str, reason: str, kind: str = "error"):
        super().__init__(f"{model}: {reason}")
        self.model = model
        self.reason = reason
        self.kind = kind


def worst_input_tokens(messages: tuple[base.Message, ...]) -> int:
    """An upper bound on input tokens: every token of a BPE vocabulary is at least one byte."""
    if len(messages) == 1:  # the common case; ASCII text is as many bytes as characters
        content = messages[0].content
        return (len(content) if content.isascii() else len(content.encode("utf-8"))) \
            + MESSAGE_OVERHEAD_TOKENS
    return sum(len(m.content.encode("utf-8")) for m in messages) \
        + MESSAGE_OVERHEAD_TOKENS * len(messages)


def prompt_exceeds_context(context: int | None, messages: tuple[base.Message, ...],
                           ratio: float = 1.0) -> str | None:
    """Why a rendered prompt can't fit the model's context (estimated at 4 characters a token, the
    estimate used wherever usage is not reported), or None when it fits or the context is unknown."""
    if not context:
        return None
    estimated = sum(len(m.content) for m in messages) // 4 + MESSAGE_OVERHEAD_TOKENS * len(messages)
    if estimated <= context * ratio:
        return None
    return (f"[BMAD-E504] the prompt is about {estimated:,} tokens, more than this model's context "
            f"of {context:,}" + (f" x {ratio:g}" if ratio != 1.0 else "") + "; not sent")


def request_hash(path: str, slot: str, model: str, purpose: str, max_tokens: int,
                 temperature: float | None, shape: str, messages: tuple[base.Message, ...]) -> str:
    # The same bytes as ever (a resume matches hashes a journal recorded earlier), built as one
    # string and hashed in one call.
    head = f"{path}\x00{slot}\x00{model}\x00{purpose}\x00{max_tokens}\x00{temperature}\x00{shape}\x00"
    if len(messages) == 1:
        m = messages[0]
        text = f"{head}{m.role}\x01{m.content}\x02"
    else:
        text = head + "".join([f"{m.role}\x01{m.content}\x02" for m in messages])
    return _blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_INF = float("inf")


def _sane_usage(response: base.CompletionResponse, ms: Any,
                messages: tuple[base.Message, ...]) -> base.CompletionResponse:
    """A response whose usage can't be true (negative token counts, a negative or non-finite
    cost): a negative count is read like a missing one (estimated at 4 characters a token, as
    the providers do), and the cost is priced from the counts. Spend never goes down."""
    input_tokens = response.input_tokens
    output_tokens = response.output_tokens
    if input_tokens < 0:
        input_tokens = max(1, sum(len(m.content) for m in messages) // 4)
    if output_tokens < 0:
        output_tokens = max(1, len(response.text) // 4)
    cost = ms.cost(input_tokens, output_tokens)
    if cost is not None and not 0.0 <= cost < _INF:
        cost = None  # unknown rather than a credit
    raw = dict(response.raw or {})
    raw["usage_estimated"] = True
    return replace(response, input_tokens=input_tokens, output_tokens=output_tokens,
                   cost_usd=cost, raw=raw)


def _seconds(value: float) -> str:
    if value == _INF:
        return "forever"
    if value < 1000:
        return f"{value:.3g}s"
    return f"{value:,.0f}s" + (f" (~{value / 86400:,.0f} days)" if value >= 2 * 86400 else "")


def _explain(error: base.ProviderError, why: str) -> None:
    message = f"{error.message}; {why}"
    error.message, error.args = message, (message,)


async def _take_within_time(slots: Any, ledger: Any) -> None:
    """Wait for a concurrency slot, never past the time budget (a hard cap: a call queued behind
    others must not start once the time is up)."""
    if ledger.time_cap is None:
        await slots.take()
        return
    with anyio.move_on_after(max(0.0, ledger.remaining_time_s())) as waited:
        await slots.take()
    if waited.cancelled_caught:
        raise _out_of_time(ledger)


def _out_of_time(ledger: Any) -> BudgetExhausted:
    """The time budget ends before this call could start (a rate-limit wait outlasts it): the
    refusal of whichever cap is the tighter, recorded as the ledger's own."""
    if isinstance(ledger, ScopedLedger):
        own, parent = ledger.own.remaining_time_s(), ledger.parent.remaining_time_s()
        if own is not None and (parent is None or own <= parent):
            ledger.exhausted = ScopeBudgetExhausted(ledger.scope, "time_s", 0.0, 0.0)
            return ledger.exhausted
        return _out_of_time(ledger.parent)
    refusal = BudgetExhausted("time_s", 0.0, 0.0)
    if ledger.exhausted is None:
        ledger.exhausted = refusal
        ledger._alert_exhausted("time_s")
    return ledger.exhausted


class ModelCaller:
    def __init__(self, *, pool: ModelPool, ledger: BudgetLedger, events: EventBus, journal: Any,
                 run_id: str, concurrency: int, breakers: bool,
                 recorded: dict[str, RecordedCall] | None = None,
                 default_timeout_s: float = DEFAULT_TIMEOUT_S, seed: int = 0):
        # Called when the run's ledger is exhausted by spend recorded past a cap.
        self.on_budget_exhausted: Any = None
        self.pool = pool
        self.ledger = ledger
        self.events = events
        self.journal = journal
        self.run_id = run_id
        self.limiter = Slots(concurrency)
        self.breakers = breakers
        self.recorded = recorded or {}
        self.default_timeout_s = default_timeout_s
        self.seed = seed
        self.context_ratio = current_limits().prompt_context_ratio  # read once per run

    def healthy_order(self, chain: tuple[str, ...]) -> tuple[str, ...]:
        """With circuit breakers on, models whose provider's breaker is open go last."""
        if not self.breakers or len(chain) < 2:
            return chain
        healthy = [m for m in chain if not self.pool.get(m).provider.breaker.open]
        if len(healthy) == len(chain):
            return chain
        return tuple(healthy + [m for m in chain if m not in healthy])

    async def call(self, node: "Node", path: str, model: str, messages: tuple[base.Message, ...],
                   slot: str, tally: "Tally", *, purpose: str = "answer",
                   schema: dict | None = None, metadata: dict | None = None) -> base.CompletionResponse:
        ms = self.pool.get(model)
        answering = purpose == "answer" or purpose == "repair"
        if answering:  # the request's shape was worked out once per task (see `Node`)
            max_tokens = node.max_tokens
            if node.answer_schema is not None:
                schema = node.answer_schema
            enum_values = node.enum_values
            shape = node.schema_key
            temperature = node.temperature
        else:
            max_tokens = JUDGE_MAX_TOKENS if purpose == "judge" else REVIEW_MAX_TOKENS
            enum_values = ()
            shape = purpose
            temperature = 0.0 if purpose == "judge" else node.temperature
        # The hash is what a resume matches recorded calls by: only worth computing when a
        # journal keeps it or a resume offers recorded calls.
        rhash = request_hash(path, slot, model, purpose, max_tokens, temperature, shape, messages) \
            if self.journal is not None or self.recorded else ""

        recorded = self.recorded.get(rhash) if self.recorded else None
        if recorded is not None:  # resume: this exact call already ran and was paid for
            tally.add(recorded.cost_usd, recorded.input_tokens + recorded.output_tokens)
            self._journal_call(path, slot, model, rhash, "ok", recorded.text, recorded.input_tokens,
                               recorded.output_tokens, 0.0, recorded.latency_s, None, None, True,
                               purpose, node.capability)
            return base.CompletionResponse(recorded.text, recorded.input_tokens,
                                           recorded.output_tokens, recorded.latency_s,
                                           recorded.cost_usd)

        too_long = prompt_exceeds_context(ms.decl.context, messages, self.context_ratio) \
            if ms.decl.context else None
        if too_long is not None:  # refused before the call: a larger-context fallback may take it
            if answering:
                tally.attempts += 1
            self._journal_call(path, slot, model, rhash, "error", None, 0, 0, 0.0, 0.0, too_long,
                               base.ContextTooLong.kind, False, purpose, node.capability,
                               tally.attempts if answering else None)
            raise ModelFailed(model, f"{base.ContextTooLong.kind}: {too_long}",
                              base.ContextTooLong.kind)
        worst_in = worst_input_tokens(messages)
        worst_usd = ms.cost(worst_in, max_tokens)
        provider = ms.provider
        policy = node.retry
        timeout = node.timeout_s or provider.timeout_s or self.default_timeout_s
        capability = node.capability
        if metadata:
            meta = {"capability": capability, "purpose": purpose}
            meta.update(metadata)
        else:
            meta = None
        rng: random.Random | None = None
        error: base.ProviderError | None = None
        ledger = tally.ledger or self.ledger  # a task's or called workflow's own budget, else the run's
        limiter = self.limiter
        for attempt in range(1, policy.attempts + 1):
            reservation = ledger.try_reserve(worst_usd, worst_in + max_tokens)
            if isinstance(reservation, BudgetExhausted):  # no room now: wait for calls in flight
                reservation = await ledger.reserve(worst_usd, worst_in + max_tokens)
            limit = timeout if ledger.time_cap is None else \
                max(0.001, min(timeout, ledger.remaining_time_s()))  # type: ignore[type-var]
            if meta is None:  # the common case: one dict per try, in the same key order
                request_meta = {"capability": capability, "purpose": purpose,
                                "attempt": f"{slot}#{attempt}"}
            else:
                meta["attempt"] = f"{slot}#{attempt}"
                request_meta = dict(meta)
            request = _request(  # every field of `CompletionRequest`, in order
                ms.model_id, messages, max_tokens, temperature, schema, enum_values, False, limit,
                (), node.id, model, request_meta)
            started = time.time()
            try:
                rate_limit = provider.rate_limit
                if rate_limit.paused_until or rate_limit.requests is not None \
                        or rate_limit.tokens is not None:
                    if ledger.time_cap is None:
                        await rate_limit.acquire(worst_in + max_tokens)
                    else:  # a rate-limit wait never outlasts the time budget
                        with anyio.move_on_after(max(0.0, ledger.remaining_time_s())) as waited:
                            await rate_limit.acquire(worst_in + max_tokens)
                        if waited.cancelled_caught:
                            raise _out_of_time(ledger)
                if not limiter.try_take():
                    await _take_within_time(limiter, ledger)
                try:
                    stopped = self.ledger.exhausted
                    if stopped is not None:  # the run's budget ran out while this call waited
                        raise stopped
                    if not provider.limiter.try_take():
                        await _take_within_time(provider.limiter, ledger)
                    try:
                        if ledger.time_cap is not None:
                            # queued behind the run's or the provider's concurrency: the call
                            # gets the time that is left now, and none once it's gone
                            left = ledger.remaining_time_s()
                            if left <= 0:
                                raise _out_of_time(ledger)
                            if left < limit:
                                limit = max(0.001, left)
                                request = replace(request, timeout_s=limit)
                        if provider.instant:  # never suspends, so no scope could ever fire
                            response = await provider.client.complete(request)
                        else:
                            with anyio.fail_after(limit):
                                response = await provider.client.complete(request)
                    finally:
                        provider.limiter.give()
                finally:
                    limiter.give()
            except TimeoutError:
                error = base.Timeout(f"no answer within {limit:.3g}s", provider=provider.name)
            except base.ProviderError as exc:
                error = exc
                # Every provider's message (not only the HTTP ones, which mask their own) is
                # masked before the journal, the events and the escalation reason see it.
                masked = keys.redact(exc.message)
                if masked != exc.message:
                    exc.message, exc.args = masked, (masked,)
            except BudgetExhausted:  # out of time, or the run's budget is spent: not sent
                ledger.release(reservation)
                raise
            except Exception as exc:  # a provider bug must not take the run down with a traceback
                error = base.ProviderError(keys.redact(f"{type(exc).__name__}: {exc}"),
                                           provider=provider.name)
            except BaseException:
                # Cancelled mid-call (quorum lost, SIGINT): free the room this call held.
                ledger.release(reservation)
                raise
            else:
                cost = response.cost_usd
                if response.input_tokens < 0 or response.output_tokens < 0 \
                        or (cost is not None and not 0.0 <= cost < _INF):
                    response = _sane_usage(response, ms, messages)
                    cost = response.cost_usd
                elif cost is None:
                    cost = ms.cost(response.input_tokens, response.output_tokens)
                tokens = response.input_tokens + response.output_tokens
                ledger.settle(reservation, cost, tokens)
                tally.add(cost, tokens)
                if self.ledger.exhausted is not None and self.on_budget_exhausted is not None:
                    # Spend past the run's cap (a provider billed more than the worst case):
                    # recorded in full; the run starts nothing more.
                    self.on_budget_exhausted(self.ledger.exhausted)
                if answering:
                    tally.attempts += 1
                if self.breakers:
                    provider.breaker.record_success()
                if response.rate_limit is not None:
                    provider.rate_limit.observe(response.rate_limit)
                # A replayed answer took the time it recorded (none recorded: no time), not this
                # machine's queueing, which would make history, and so routing, vary run to run.
                replayed = bool(response.raw and response.raw.get("replayed"))
                latency = response.latency_s if response.latency_s or replayed \
                    else time.time() - started
                if ms.latency_base_s is not None:  # no estimate: nothing to compare with
                    ms.observe_latency(latency, response.output_tokens)
                if self.journal is not None or "call_finished" in self.events.wanted:
                    self._journal_call(path, slot, model, rhash, "ok", response.text,
                                       response.input_tokens, response.output_tokens, cost,
                                       latency, None, None, False, purpose, capability,
                                       tally.attempts if answering else None)
                return response
            # a timeout at a limit the time budget set (ours, or the provider's own reading of
            # the request's timeout) is the budget running out, not this model failing
            cut_by_budget = isinstance(error, base.Timeout) and limit < timeout
            # The call failed: nothing was spent (providers don't bill errors), except for an
            # answer that came back empty, which the server billed.
            billed = getattr(error, "billed_tokens", None)
            spent_usd = ms.cost(*billed) if billed else 0.0
            if billed:
                ledger.settle(reservation, spent_usd, sum(billed))
                tally.add(spent_usd, sum(billed))
            else:
                ledger.release(reservation)
            if answering:
                tally.attempts += 1
            if self.breakers:
                provider.breaker.record_failure()
            if error.rate_limit is not None:
                provider.rate_limit.observe(error.rate_limit)
            asked = requested_wait(error)
            longest = policy.longest_wait(timeout)
            if asked is not None and asked > longest:
                # Waiting that long would hang the run: this model failed for this task, and
                # the next model of the chain is asked (no provider-wide pause either).
                _explain(error, f"the server asks to wait {_seconds(asked)} before a retry, "
                                f"longer than the {_seconds(longest)} a retry may wait; "
                                "not retried")
            elif isinstance(error, base.RateLimited) and asked:
                provider.rate_limit.pause(asked)
            delay = None
            if asked is None or asked <= longest:
                if is_retryable(error) and attempt < policy.attempts:
                    if rng is None:
                        rng = random.Random(f"{self.seed}/{path}/{slot}")
                    delay = policy.delay(attempt, error, rng)
                    left = ledger.remaining_time_s() if ledger.time_cap is not None else None
                    if left is not None and delay >= left:
                        _explain(error, f"a retry after {_seconds(delay)} would pass the time "
                                        f"budget ({_seconds(max(left, 0.0))} left); not retried")
                        delay = None
            if cut_by_budget:
                _explain(error, "the time budget ran out")
            self._journal_call(path, slot, model, rhash, "error", None, *(billed or (0, 0)),
                               spent_usd, time.time() - started, error.message, error.kind, False,
                               purpose, node.capability, tally.attempts if answering else None)
            if cut_by_budget:
                # The budget's end, not this model's failure: the run (or the task, for its own
                # budget) stops as budget_exhausted, whether or not a fallback is written
                raise _out_of_time(ledger)
            if delay is None:
                break
            if self.events.active:
                self.events.emit("task_retried", path, model=model, attempt=attempt,
                                 error=error.message, error_kind=error.kind, delay_s=round(delay, 3))
            await anyio.sleep(delay)
        assert error is not None
        raise ModelFailed(model, f"{error.kind}: {error.message}", error.kind)

    def _journal_call(self, path: str, slot: str, model: str, rhash: str, status: str,
                      text: str | None, input_tokens: int, output_tokens: int,
                      cost: float | None, latency: float, error: str | None,
                      error_kind: str | None, cached: bool, purpose: str,
                      capability: str | None, attempt: int | None = None) -> None:
        if self.journal is not None:  # by position: text, input_tokens, output_tokens, cost_usd,
            # latency_s, error, error_kind, cached, purpose, capability, quality, attempt
            self.journal.add_call(self.run_id, path, slot, model, rhash, status, text,
                                  input_tokens, output_tokens, cost, latency, error, error_kind,
                                  cached, purpose, capability, None, attempt)
        if "call_finished" in self.events.wanted:
            provider = self.pool.get(model).provider
            self.events.emit("call_finished", path, model=model, provider=provider.name,
                             provider_kind=provider.kind, slot=slot, purpose=purpose,
                             status=status, input_tokens=input_tokens, output_tokens=output_tokens,
                             cost_usd=cost, latency_s=round(latency, 6), cached=cached, error=error)
