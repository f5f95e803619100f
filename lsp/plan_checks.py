"""The second diagnostics stage (the optimizer's feasibility checks) in a helper process.

`bmad check` runs the cheap passes (`check_plan`) after compiling; on a 10,000-line workflow they
take about half a second, so running them on the compile worker made the next keystroke's compile
wait behind them. Here they run in one helper process (another core, no shared interpreter lock):
the helper compiles the same text with the same unsaved buffers through its own incremental
compilers (so it finds the same program) and returns only the plan's diagnostics. Requests
coalesce: while the helper is busy only the newest request waits, older ones are dropped, and the
caller publishes a result only if its document is still at that version.

If the helper cannot be started or dies twice, the checks run in this process instead (slower for
the next edit, but never missing).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

log = logging.getLogger(__name__)

_compilers: dict[str, Any] = {}  # in the helper: one incremental compiler per document path


def _prepare_helper() -> None:
    """The helper inherits the server's stdout, which is the LSP channel: nothing may reach it. Its
    work is background work, so it yields the CPU to the server (which answers the keystrokes)."""
    try:
        os.nice(10)
    except (AttributeError, OSError):  # not on this platform: same priority, still another process
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the helper


def warm_up() -> None:
    """Import and build what the checks need, so the first request is not also the slowest."""
    from bmad.compiler import incremental, passes  # noqa: F401
    from bmad.compiler.parse import build_parser

    build_parser()


def plan_diagnostics(path: str, text: str, overrides: dict[str, str]) -> list:
    """Compile `text` as `path` and return `check_plan`'s diagnostics (none if it does not compile)."""
    from bmad.compiler.incremental import IncrementalCompiler
    from bmad.lsp.estimates import budget_diagnostics

    compiler = _compilers.get(path)
    if compiler is None:
        compiler = _compilers[path] = IncrementalCompiler(path)
    result = compiler.compile(text, overrides)
    if result.program is None or not result.ok:
        return []
    return budget_diagnostics(result.program)


class PlanChecker:
    """Runs `plan_diagnostics` in the helper, newest request first, one at a time."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._failures = 0
        self._lock = asyncio.Lock()
        self._newest: dict[str, int] = {}  # path -> ticket of its newest request

    def _executor(self) -> ProcessPoolExecutor | None:
        if self._pool is None and self._failures < 2:
            try:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_prepare_helper)
                self._pool.submit(warm_up)
            except Exception:  # no processes here: fall back to this one
                log.warning("cannot start the plan-check helper; checking in process", exc_info=True)
                self._failures = 2
        return self._pool

    def start(self) -> None:
        """Start the helper now (it warms up on another core while the first document compiles)."""
        self._executor()

    async def check(self, path: str, text: str, overrides: dict[str, str]) -> list | None:
        """The plan diagnostics for this text, or None when a newer request superseded it."""
        ticket = self._newest[path] = self._newest.get(path, 0) + 1
        async with self._lock:
            if ticket != self._newest.get(path):
                return None
            pool = self._executor()
            loop = asyncio.get_running_loop()
            if pool is None:
                return await loop.run_in_executor(None, plan_diagnostics, path, text, overrides)
            try:
                return await loop.run_in_executor(pool, plan_diagnostics, path, text, overrides)
            except BrokenProcessPool:
                log.warning("the plan-check helper died; starting another")
                self._failures += 1
                self._pool = None
                return None

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
