"""The budget ledger: a hard cap on dollars, tokens and wall time, enforced with reservations.

Before each call the caller reserves the call's worst case (input tokens x input price + max_tokens
x output price); afterwards it settles the actual cost, which frees the difference. A reservation
that would take committed spend (settled + reserved) past a cap is refused: when other calls are in
flight it first waits for them to settle (they usually cost less than their worst case), and only
when nothing is in flight does it give up with `BudgetExhausted`. So `spent <= budget` holds at every
instant, whatever runs concurrently, as long as providers bill no more than the worst case.

A provider can still report more than that (usage beyond `max_tokens`, an estimate from a long
answer without usage): the real spend is recorded, never trimmed, and spend over a cap is an
*overrun* (`BudgetOverrun`, in `exhausted`): no further call is admitted and the run ends
`budget_exhausted`, saying by how much it went over. Negative amounts are never recorded: spend
never goes down.

Alerts (`on_alert`) fire once per cap at 50%, 80% and 100%: dollars and tokens when a call settles,
wall time when the elapsed time crosses the mark. Time is checked at each call's start and end, and
while calls are in flight a timer on the event loop wakes at the next mark, so a long call doesn't
hold its alert back; with nothing in flight there is nothing to alert about until the next call.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

import anyio

ALERT_THRESHOLDS = (0.5, 0.8, 1.0)


class BudgetExhausted(Exception):
    """A call could break the cap; it was not started."""

    def __init__(self, kind: str, needed: float, remaining: float):
        if kind == "time_s":  # a call's duration isn't known ahead: the clock has simply run out
            message = "time budget exhausted: no time is left for another call"
        else:
            unit = "$" if kind == "usd" else ""
            message = (f"{kind} budget exhausted: the next call needs up to {unit}{needed:.6g}, "
                       f"{unit}{remaining:.6g} remains")
        super().__init__(message)
        self.kind = kind
        self.needed = needed
        self.remaining = remaining


class BudgetOverrun(BudgetExhausted):
    """Recorded spend went past a cap (calls cost more than their reserved worst case)."""

    def __init__(self, kind: str, spent: float, cap: float):
        super().__init__(kind, 0.0, 0.0)
        unit = "$" if kind == "usd" else ""
        over = spent - cap
        fmt = (lambda v: f"{v:.6f}".rstrip("0").rstrip(".")) if kind == "usd" \
            else (lambda v: f"{int(v):,}")
        ratio = spent / cap if cap > 0 else 0.0
        times = "" if not ratio else f", {ratio:,.0f}x the cap" if ratio >= 10 \
            else f", {ratio:.2f}x the cap"
        what = "spent" if kind == "usd" else "used"
        message = (f"{kind} budget exhausted: the run {what} {unit}{fmt(spent)} of its "
                   f"{unit}{fmt(cap)} cap, over by {unit}{fmt(over)}{times} (calls already in "
                   "flight, or answers that cost more than their reserved worst case)")
        self.args = (message,)
        self.spent = spent
        self.cap = cap
        self.over = over


def _non_negative(value: float) -> float:
    """A reported amount as spend: negative or NaN counts as 0, never as a credit."""
    return value if value > 0 else 0.0


class UnpricedModel(Exception):
    """A dollar budget is set and a model has no price: its cost can't be bounded."""


@dataclass(slots=True)
class Reservation:
    usd: float
    tokens: int
    settled: bool = False


class BudgetLedger:
    """Spend so far, reservations in flight, and the caps (None: no cap of that kind)."""

    def __init__(self, *, usd: float | None = None, tokens: int | None = None,
                 time_s: float | None = None, spent_usd: float = 0.0, spent_tokens: int = 0,
                 elapsed_s: float = 0.0, on_alert: Callable[[str, float, float, float], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.usd_cap = usd
        self.tokens_cap = tokens
        self.time_cap = time_s
        self.spent_usd = _non_negative(spent_usd)
        self.spent_tokens = max(0, spent_tokens)
        self.unknown_cost_calls = 0
        self.reserved_usd = 0.0
        self.reserved_tokens = 0
        self._in_flight = 0
        self._clock = clock
        self._started = clock() - elapsed_s
        self._on_alert = on_alert
        self._alerted: set[tuple[str, float]] = set()
        self._time_timer: asyncio.TimerHandle | None = None
        self._settled_event: anyio.Event | None = None
        self.exhausted: BudgetExhausted | None = None
        # Alerts already passed before a resume are not repeated (the clock is not read here:
        # the time already used is `elapsed_s`).
        self._check_alerts(quiet=True, elapsed=elapsed_s)

    @property
    def overrun(self) -> "BudgetOverrun | None":
        """Recorded spend past a dollar or token cap (None: within every cap)."""
        if self.usd_cap is not None and self.spent_usd > self.usd_cap * (1 + 1e-9) + 1e-12:
            return BudgetOverrun("usd", self.spent_usd, self.usd_cap)
        if self.tokens_cap is not None and self.spent_tokens > self.tokens_cap:
            return BudgetOverrun("tokens", self.spent_tokens, self.tokens_cap)
        return None

    # -- reading ------------------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def remaining_time_s(self) -> float | None:
        return None if self.time_cap is None else self.time_cap - self.elapsed_s

    def remaining_usd(self) -> float | None:
        return None if self.usd_cap is None else self.usd_cap - self.spent_usd - self.reserved_usd

    @property
    def limited(self) -> bool:
        return self.usd_cap is not None or self.tokens_cap is not None or self.time_cap is not None

    # -- reserving ----------------------------------------------------------------------------
    def try_reserve(self, usd: float | None, tokens: int) -> Reservation | BudgetExhausted:
        """Reserve now or say which cap refuses (never waits)."""
        if self.time_cap is not None:
            elapsed = self.elapsed_s  # read once: the alert and the refusal agree
            self._check_time_alerts(elapsed)
            if elapsed >= self.time_cap:
                return BudgetExhausted("time_s", 0.0, 0.0)
        if self.usd_cap is not None:
            if usd is None:
                raise UnpricedModel("a model without a price can't run under a dollar budget")
            room = self.usd_cap - self.spent_usd - self.reserved_usd
            if usd > room + 1e-12:
                return BudgetExhausted("usd", usd, max(room, 0.0))
        if self.tokens_cap is not None:
            room_t = self.tokens_cap - self.spent_tokens - self.reserved_tokens
            if tokens > room_t:
                return BudgetExhausted("tokens", tokens, max(room_t, 0))
        usd_r = usd or 0.0
        self.reserved_usd += usd_r
        self.reserved_tokens += tokens
        self._in_flight += 1
        if self.time_cap is not None and self._time_timer is None:
            self._arm_time_alert()
        return Reservation(usd_r, tokens)

    async def reserve(self, usd: float | None, tokens: int) -> Reservation:
        """Reserve, waiting for calls in flight to settle when they hold the room we need."""
        while True:
            outcome = self.try_reserve(usd, tokens)
            if isinstance(outcome, Reservation):
                return outcome
            if self._in_flight == 0 or outcome.kind == "time_s":
                if outcome.kind != "time_s":  # over the cap already: say so, and by how much
                    outcome = self.overrun or outcome
                self.exhausted = outcome
                self._alert_exhausted(outcome.kind)
                raise outcome
            if self._settled_event is None:
                self._settled_event = anyio.Event()
            await self._settled_event.wait()

    def settle(self, reservation: Reservation, usd: float | None, tokens: int) -> None:
        """Replace the reservation by what the call actually cost (None: unknown cost)."""
        if reservation.settled:
            return
        reservation.settled = True
        self.reserved_usd -= reservation.usd
        self.reserved_tokens -= reservation.tokens
        if self.reserved_usd < 1e-12:
            self.reserved_usd = max(self.reserved_usd, 0.0)
        self._in_flight -= 1
        self._add(usd, tokens)
        if self.time_cap is not None:
            self._check_time_alerts(self.elapsed_s)
            if self._in_flight == 0 and self._time_timer is not None:
                # nothing in flight: the next call's start checks, and a finished run stays quiet
                self._time_timer.cancel()
                self._time_timer = None
        if self.usd_cap is not None or self.tokens_cap is not None:
            self._check_spend_alerts()
            if self.exhausted is None:
                overrun = self.overrun
                if overrun is not None:  # recorded in full; no further call is admitted
                    self.exhausted = overrun
                    self._alert_exhausted(overrun.kind)
        if self._settled_event is not None:
            self._settled_event.set()
            self._settled_event = None

    def release(self, reservation: Reservation) -> None:
        """The call never reached the provider (or failed before any usage): free its room."""
        self.settle(reservation, 0.0, 0)

    def record(self, usd: float | None, tokens: int) -> None:
        """Spend that was not reserved beforehand (e.g. restored from the journal)."""
        self._add(usd, tokens)
        self._check_alerts()

    def _add(self, usd: float | None, tokens: int) -> None:
        if usd is None:
            self.unknown_cost_calls += 1
        elif usd > 0:  # a negative (or NaN) amount is never a credit
            self.spent_usd += usd
        if tokens > 0:
            self.spent_tokens += tokens

    # -- alerts -------------------------------------------------------------------------------
    def _alert_exhausted(self, kind: str) -> None:
        """The cap stopped a call: that is the 100% alert, even if spend itself is just below it."""
        key = (kind, 1.0)
        if key in self._alerted or self._on_alert is None:
            return
        self._alerted.add(key)
        spent, cap = {"usd": (self.spent_usd, self.usd_cap), "tokens": (self.spent_tokens, self.tokens_cap),
                      "time_s": (self.elapsed_s, self.time_cap)}[kind]
        self._on_alert(kind, 1.0, float(spent), float(cap or 0.0))

    def _check_alerts(self, quiet: bool = False, elapsed: float | None = None) -> None:
        """Alerts for every mark passed; `elapsed`: the time used, when known without the clock."""
        self._check_spend_alerts(quiet)
        if self.time_cap:
            self._alert_marks("time_s", self.elapsed_s if elapsed is None else elapsed,
                              self.time_cap, quiet)

    def _check_spend_alerts(self, quiet: bool = False) -> None:
        self._alert_marks("usd", self.spent_usd, self.usd_cap, quiet)
        self._alert_marks("tokens", float(self.spent_tokens), self.tokens_cap, quiet)

    def _check_time_alerts(self, elapsed: float) -> None:
        if self.time_cap:
            self._alert_marks("time_s", elapsed, self.time_cap, False)

    def _alert_marks(self, kind: str, spent: float, cap: float | None, quiet: bool) -> None:
        if not cap:
            return
        for threshold in ALERT_THRESHOLDS:
            key = (kind, threshold)
            if spent >= cap * threshold - 1e-12 and key not in self._alerted:
                self._alerted.add(key)
                if not quiet and self._on_alert is not None:
                    self._on_alert(kind, threshold, spent, float(cap))

    def _arm_time_alert(self) -> None:
        """Wake at the next time mark while calls are in flight (asyncio's loop; without a
        running loop the calls' starts and ends still check)."""
        if self._on_alert is None or not self.time_cap:
            return
        mark = next((t for t in ALERT_THRESHOLDS if ("time_s", t) not in self._alerted), None)
        if mark is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = max(0.0, self.time_cap * mark - self.elapsed_s)
        self._time_timer = loop.call_later(delay, self._time_mark_due)

    def _time_mark_due(self) -> None:
        self._time_timer = None
        if self._in_flight == 0:  # the run is between calls or done: the next call checks
            return
        self._check_time_alerts(self.elapsed_s)
        self._arm_time_alert()


class LedgerShare:
    """One run's share of a ledger that several runs draw on (a batch's rows): the caps are the
    shared ledger's, the spend and the exhaustion are this run's own.

    Reservations go to the shared ledger, so the caps hold across every run; what this run spent
    and how long it has run are counted here, so its progress shows its own figures. `exhausted`
    is set only when the cap stopped this run's own work: a call of this run refused (or admitted
    no more once another run exhausted the shared ledger), or its own answer pushing spend past
    the cap. A run whose work all finished before another run hit the cap is not exhausted.
    """

    def __init__(self, shared: BudgetLedger, *, spent_usd: float = 0.0, spent_tokens: int = 0,
                 unknown_cost_calls: int = 0, elapsed_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        self.shared = shared
        self.spent_usd = _non_negative(spent_usd)
        self.spent_tokens = max(0, spent_tokens)
        self.unknown_cost_calls = unknown_cost_calls
        self._clock = clock
        self._started = clock() - elapsed_s
        self.exhausted: BudgetExhausted | None = None

    # -- reading ------------------------------------------------------------------------------
    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    @property
    def time_cap(self) -> float | None:
        return self.shared.time_cap

    @property
    def limited(self) -> bool:
        return self.shared.limited

    @property
    def overrun(self) -> "BudgetOverrun | None":
        return self.shared.overrun

    def remaining_time_s(self) -> float | None:
        return self.shared.remaining_time_s()

    def remaining_usd(self) -> float | None:
        return self.shared.remaining_usd()

    # -- reserving ----------------------------------------------------------------------------
    def try_reserve(self, usd: float | None, tokens: int) -> Reservation | BudgetExhausted:
        if self.shared.exhausted is not None:  # another run hit the cap: no new call starts
            return self.shared.exhausted
        return self.shared.try_reserve(usd, tokens)

    async def reserve(self, usd: float | None, tokens: int) -> Reservation:
        try:
            if self.shared.exhausted is not None:
                raise self.shared.exhausted
            return await self.shared.reserve(usd, tokens)
        except BudgetExhausted as exc:
            if self.exhausted is None:
                self.exhausted = exc
            raise

    def settle(self, reservation: Reservation, usd: float | None, tokens: int) -> None:
        if reservation.settled:
            return
        before = self.shared.exhausted
        self.shared.settle(reservation, usd, tokens)
        if usd is None:
            self.unknown_cost_calls += 1
        elif usd > 0:
            self.spent_usd += usd
        if tokens > 0:
            self.spent_tokens += tokens
        if before is None and self.shared.exhausted is not None and self.exhausted is None:
            self.exhausted = self.shared.exhausted  # this run's answer went past the cap

    def release(self, reservation: Reservation) -> None:
        self.settle(reservation, 0.0, 0)

    def _alert_exhausted(self, kind: str) -> None:
        """This run's call found the clock run out (`calls._out_of_time`): the shared ledger is
        exhausted too, so no other run starts a call either."""
        if self.shared.exhausted is None:
            self.shared.exhausted = self.exhausted
        self.shared._alert_exhausted(kind)


class ScopeBudgetExhausted(BudgetExhausted):
    """A task's or a called workflow's own `budget` refused a call: that task fails, the run goes on."""

    def __init__(self, scope: str, kind: str, needed: float, remaining: float):
        super().__init__(kind, needed, remaining)
        self.scope = scope
        self.args = (f"{scope}: {self.args[0]}",)


@dataclass(slots=True)
class ScopedReservation(Reservation):
    parent: Reservation | None = None


class ScopedLedger:
    """A `budget` of one task execution or one workflow call, nested in its parent ledger.

    A call must fit both: it reserves in its own caps and in the parent's (so the run's cap still
    holds), and settles or releases both. Its own refusal is a `ScopeBudgetExhausted` naming the
    scope; the parent's refusal passes through unchanged (the run's own exhaustion stays run-wide).
    """

    def __init__(self, parent: "BudgetLedger | ScopedLedger", *, scope: str, usd: float | None = None,
                 tokens: int | None = None, time_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_alert: Callable[[str, float, float, float], None] | None = None):
        self.parent = parent
        self.scope = scope
        # `on_alert`: this scope's own 50/80/100% alerts (the parent raises its own)
        self.own = BudgetLedger(usd=usd, tokens=tokens, time_s=time_s, clock=clock, on_alert=on_alert)
        self.exhausted: BudgetExhausted | None = None

    # -- reading ------------------------------------------------------------------------------
    @property
    def spent_usd(self) -> float:
        return self.own.spent_usd

    @property
    def spent_tokens(self) -> int:
        return self.own.spent_tokens

    @property
    def time_cap(self) -> float | None:
        """The tighter wall-time cap of this scope and its parents (None: none applies)."""
        caps = [c for c in (self.own.time_cap, self.parent.time_cap) if c is not None]
        return min(caps) if caps else None

    def remaining_time_s(self) -> float | None:
        return _tighter(self.own.remaining_time_s(), self.parent.remaining_time_s())

    def remaining_usd(self) -> float | None:
        return _tighter(self.own.remaining_usd(), self.parent.remaining_usd())

    # -- reserving ----------------------------------------------------------------------------
    def _scoped(self, refusal: BudgetExhausted) -> ScopeBudgetExhausted:
        scoped = ScopeBudgetExhausted(self.scope, refusal.kind, refusal.needed, refusal.remaining)
        if isinstance(refusal, BudgetOverrun):  # keep the overrun's own account of the spend
            scoped.args = (f"{self.scope}: {refusal.args[0]}",)
        return scoped

    def _try(self, usd: float | None, tokens: int) -> tuple[Reservation | BudgetExhausted, bool]:
        """Reserve in both, or say who refuses (True: this scope's own cap)."""
        own = self.own.try_reserve(usd, tokens)
        if isinstance(own, BudgetExhausted):
            return self._scoped(own), True
        held = self.parent.try_reserve(usd, tokens)
        if isinstance(held, BudgetExhausted):
            self.own.release(own)
            return held, False
        return ScopedReservation(own.usd, own.tokens, parent=held), False

    def try_reserve(self, usd: float | None, tokens: int) -> Reservation | BudgetExhausted:
        return self._try(usd, tokens)[0]

    async def reserve(self, usd: float | None, tokens: int) -> Reservation:
        """Reserve in both, waiting (in whichever refuses) for calls in flight to settle."""
        while True:
            outcome, own_refused = self._try(usd, tokens)
            if not isinstance(outcome, BudgetExhausted):
                return outcome
            if own_refused:
                try:  # waits for this scope's calls in flight, or gives up
                    held = await self.own.reserve(usd, tokens)
                except BudgetExhausted as exc:
                    self.exhausted = self._scoped(exc)
                    raise self.exhausted from None
                self.own.release(held)
            else:  # the parent waits for its own calls, or raises its own exhaustion
                held = await self.parent.reserve(usd, tokens)
                self.parent.release(held)

    def settle(self, reservation: Reservation, usd: float | None, tokens: int) -> None:
        if reservation.settled:
            return
        self.own.settle(reservation, usd, tokens)  # marks it settled
        parent = getattr(reservation, "parent", None)
        if parent is not None:
            self.parent.settle(parent, usd, tokens)

    def release(self, reservation: Reservation) -> None:
        self.settle(reservation, 0.0, 0)


def spent_text(usd: float | None, unknown_cost_calls: int = 0) -> str:
    """What a run spent, as its summary lines print it: the dollars of the priced calls, and how many
    calls had no price (an unpriced model is never counted as free, so `$0` alone would mislead)."""
    return f"${usd or 0.0:.6f}" + unpriced_note(unknown_cost_calls)


def unpriced_note(unknown_cost_calls: int) -> str:
    """` and N calls of unknown price` after a dollar figure, or nothing when every call was priced."""
    if not unknown_cost_calls:
        return ""
    return f" and {unknown_cost_calls} call{'s' if unknown_cost_calls != 1 else ''} of unknown price"


def _tighter(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)
