"""Garbage collection timed for an editor: young objects as usual, the whole heap when typing pauses.

A full collection walks every live object: with a 10,000-line document open that is ~0.1 s, and
Python starts one whenever enough objects have survived, which is in the middle of some keystroke's
compile. The server therefore freezes what it built at start-up (it lives as long as the server),
lets Python collect only the young generations on its own, and runs the full collection itself
once the documents have been quiet for a moment (or after many compiles without a pause, so that
memory stays bounded while someone types for minutes).
"""

from __future__ import annotations

import asyncio
import gc

IDLE_S = 2.0  # quiet time before a full collection
MAX_COMPILES_BETWEEN = 200  # a full collection at the latest after this many compiles
_NEVER = 1_000_000_000  # gen-1 collections before Python would start a full one by itself


def freeze_startup_heap() -> None:
    """Exempt everything alive now from collection and stop automatic full collections."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _NEVER)


class IdleCollector:
    """Runs `gc.collect()` when no compile has happened for `IDLE_S` seconds."""

    def __init__(self, idle_s: float = IDLE_S) -> None:
        self.idle_s = idle_s
        self._timer: asyncio.TimerHandle | None = None
        self._compiles = 0

    def compiled(self) -> None:
        """Called after each compile: (re)arm the idle timer."""
        self._compiles += 1
        if self._compiles >= MAX_COMPILES_BETWEEN:
            self.collect()
            return
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._timer = asyncio.get_running_loop().call_later(self.idle_s, self.collect)
        except RuntimeError:  # no loop (a test calling the store directly): collect now
            self.collect()

    def collect(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._compiles = 0
        gc.collect()
