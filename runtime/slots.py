"""Concurrency slots: at most N calls at once, globally or per provider.

A counting semaphore with FIFO hand-over. Unlike `anyio.CapacityLimiter` it does not track which
task holds a slot, so taking a free one is a counter decrement (no task lookup, no trip through the
event loop) — it sits on the path of every model call.
"""

from __future__ import annotations

from collections import deque

import anyio


class Slots:
    __slots__ = ("total", "free", "_waiters")

    def __init__(self, total: int):
        self.total = max(1, int(total))
        self.free = self.total
        self._waiters: deque[anyio.Event] = deque()

    @property
    def in_use(self) -> int:
        return self.total - self.free

    def try_take(self) -> bool:
        """Take a free slot now (the common case), or say there is none."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def take(self) -> None:
        if self.try_take():
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.give()  # handed a slot while being cancelled: pass it on
            else:
                self._waiters.remove(event)
            raise

    def give(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # the slot goes straight to the longest waiter
        else:
            self.free += 1
