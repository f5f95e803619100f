"""Retry delays (exponential or linear backoff with jitter kept within the written MIN to MAX, or a
fixed wait of MIN; a server's longer Retry-After wins) and a per-provider circuit breaker that
opens after consecutive failures and half-opens after a cooldown.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from bmad.compiler import ir
from bmad.runtime.providers import base

from bmad.compiler.plan import DEFAULT_ATTEMPTS  # tries per model without `retry` (3), as the planner counts
DEFAULT_MIN_S = 0.5
DEFAULT_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = DEFAULT_ATTEMPTS  # tries in total per model, the first included
    backoff: str = "exponential"
    min_s: float = DEFAULT_MIN_S
    max_s: float = DEFAULT_MAX_S

    @staticmethod
    def from_ir(retry: ir.Retry | None) -> "RetryPolicy":
        if retry is None:
            return RetryPolicy()
        min_s, max_s = retry.min_s, retry.max_s
        # The seed's YAML may give one bound alone: the default of the other yields to it, so
        # `max_delay: 0.2` does not wait 0.5 s, nor `initial_delay: 60` stop at 30 s.
        if min_s is None:
            min_s = DEFAULT_MIN_S if max_s is None else min(DEFAULT_MIN_S, max_s)
        if max_s is None:
            max_s = max(DEFAULT_MAX_S, min_s)
        # IR attempts count tries in total (`retry N` lowers to N + 1); never fewer than one
        return RetryPolicy(attempts=max(1, retry.attempts), backoff=retry.backoff,
                           min_s=min_s, max_s=max_s)

    def delay(self, attempt: int, error: BaseException | None, rng: random.Random) -> float:
        """Seconds to wait before try `attempt + 1` (attempt counts from 1): never less than MIN,
        never more than MAX unless a server's Retry-After asks for more."""
        if self.backoff == "fixed":
            wait = self.min_s  # fixed means fixed: no jitter; MAX only bounds a Retry-After
        else:
            # 2 ** 64 steps pass any MAX; a larger power overflows a float (`retry 2000`)
            step = attempt if self.backoff == "linear" else 2 ** min(attempt - 1, 64)
            nominal = min(self.min_s * step, self.max_s)
            # Jitter spreads the retries of calls that failed together: a uniform draw from half
            # the nominal wait to all of it, but never below the written MIN.
            low = min(max(self.min_s, nominal / 2), nominal)
            wait = low + rng.random() * (nominal - low)
        retry_after = requested_wait(error)
        if retry_after is not None and retry_after > wait:
            wait = retry_after  # the server knows best; never retry before it allows
        return wait

    def longest_wait(self, timeout_s: float) -> float:
        """The longest a retry of one call may wait, whatever a server's Retry-After asks: the
        larger of the backoff's maximum and the call's own timeout. A server asking for more
        (999999 s, a date years ahead, 1e400) is not waited for: the model counts as failed for
        this task and the next model of its fallback chain is asked."""
        return max(self.max_s, timeout_s)


def requested_wait(error: BaseException | None) -> float | None:
    """The wait a server asked for (Retry-After and its variants) in seconds, or None. A
    negative, NaN or unreadable value counts as none; infinity stays (it is far too long)."""
    value = getattr(error, "retry_after_s", None)
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if value != value or value <= 0:
        return None
    return value


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, base.ProviderError) and error.retryable


def moves_to_fallback(error: BaseException) -> bool:
    """Errors no retry of the same model can fix, but another model might."""
    return isinstance(error, (base.ContextTooLong, base.Unavailable, base.Auth,
                              base.ContentFiltered, base.BadRequest)) or is_retryable(error)


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; lets one probe through after `cooldown_s`."""

    __slots__ = ("threshold", "cooldown_s", "failures", "opened_at", "_clock")

    def __init__(self, threshold: int = 5, cooldown_s: float = 30.0, clock=time.monotonic):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None
        self._clock = clock

    @property
    def open(self) -> bool:
        if self.opened_at is None:
            return False
        if self._clock() - self.opened_at >= self.cooldown_s:
            return False  # half-open: the next call is a probe
        return True

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self._clock()
