"""Client-side rate limits: rpm and tpm token buckets per provider, corrected by what it tells us.

A bucket refills continuously at `rate` per minute up to its capacity. Before a call we take one
request and the call's estimated tokens (waiting when the bucket is short); providers that report
their remaining quota (`base.RateLimitInfo`, parsed from x-ratelimit-* headers, on responses and
errors) shrink the bucket to what the server says, and a 429's Retry-After pauses the provider.
A pause is at most `MAX_PAUSE_S` (a reset or Retry-After of days, or infinity, is read as that),
and callers bound their wait by the run's remaining time.
"""

from __future__ import annotations

import time
import anyio

from bmad.compiler import ir
from bmad.runtime.providers.base import RateLimitInfo

MAX_PAUSE_S = 300.0  # the longest a provider is paused for, whatever a server says


def _pause_length(seconds: float) -> float:
    """A pause asked for, as seconds to wait: NaN or negative is none, beyond the cap the cap."""
    try:
        seconds = float(seconds)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if seconds != seconds or seconds <= 0:
        return 0.0
    return min(seconds, MAX_PAUSE_S)


class TokenBucket:
    __slots__ = ("capacity", "per_s", "level", "stamp", "paused_until", "_clock")

    def __init__(self, per_minute: float, clock=time.monotonic):
        self.capacity = float(per_minute)
        self.per_s = per_minute / 60.0
        self.level = float(per_minute)
        self._clock = clock
        self.stamp = clock()
        self.paused_until = 0.0

    def _refill(self) -> float:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.per_s)
        self.stamp = now
        return now

    def wait_time(self, amount: float) -> float:
        now = self._refill()
        amount = min(amount, self.capacity)  # a single oversized call still gets to run
        pause = max(0.0, self.paused_until - now)
        short = max(0.0, amount - self.level)
        return max(pause, short / self.per_s if self.per_s else 0.0)

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= min(amount, self.capacity)

    def observe(self, remaining: float | None, reset_s: float | None) -> None:
        if remaining is not None:
            self._refill()
            self.level = min(self.level, float(remaining))
        if remaining is not None and remaining <= 0 and reset_s:
            self.pause(reset_s)

    def pause(self, seconds: float) -> None:
        seconds = _pause_length(seconds)
        if seconds:
            self.paused_until = max(self.paused_until, self._clock() + seconds)


class ProviderRateLimit:
    """The rpm and tpm buckets of one provider (either may be absent)."""

    def __init__(self, limits: ir.Limits | None):
        self.requests = TokenBucket(limits.rpm) if limits and limits.rpm else None
        self.tokens = TokenBucket(limits.tpm) if limits and limits.tpm else None
        self.paused_until = 0.0  # a 429's Retry-After pauses the provider even without limits

    async def acquire(self, tokens: int) -> None:
        if self.requests is None and self.tokens is None and not self.paused_until:
            return
        while (wait := self.wait_time(tokens)) > 0:
            await anyio.sleep(wait)
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens)

    def observe(self, info: RateLimitInfo | None) -> None:
        if info is None:
            return
        # A provider that reports limits we weren't told about gets buckets now.
        if self.requests is None and info.requests_limit:
            self.requests = TokenBucket(info.requests_limit)
        if self.tokens is None and info.tokens_limit:
            self.tokens = TokenBucket(info.tokens_limit)
        if self.requests is not None:
            self.requests.observe(info.requests_remaining, info.requests_reset_s)
        if self.tokens is not None:
            self.tokens.observe(info.tokens_remaining, info.tokens_reset_s)

    def pause(self, seconds: float) -> None:
        seconds = _pause_length(seconds)
        if seconds:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def wait_time(self, tokens: int) -> float:
        """Seconds `acquire` would wait now (0: none). A pause holds whatever the buckets say."""
        wait = self.paused_until - time.monotonic()
        if self.requests is not None:
            wait = max(wait, self.requests.wait_time(1))
        if self.tokens is not None:
            wait = max(wait, self.tokens.wait_time(tokens))
        return max(wait, 0.0)
