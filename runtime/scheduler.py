"""Dependency-driven dispatch: a pool of workers takes ready tasks in rank order, with group commits.

No stage barriers: a task becomes ready the moment its last dependency is released. Workers are a
pool of at most the task concurrency, so there is no task spawned per node and an idle worker is
woken individually; the pool grows only as far as ready work needs (a chain never has more than
one worker, a wide fan-out the whole pool). A finished node is only *released* (its dependents
made ready) after `commit` has run for it; nodes that finish in the same scheduling tick share one
commit, so the journal writes one transaction per tick rather than one per task.
"""

from __future__ import annotations

import heapq
from typing import Awaitable, Callable, Generic, Sequence, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

N = TypeVar("N")


class Topology:
    """What a node list's dependencies say before anything ran: each node's count of
    dependencies, each node's dependents, and the nodes ready at the start (a sorted list is a
    heap). Worked out once and shared, read-only, by every run of the same compiled nodes."""

    __slots__ = ("deps", "keys", "waiting", "dependents", "ready")

    def __init__(self, deps: Sequence[Sequence[int]], keys: Sequence[tuple]):
        n = len(deps)
        self.deps = deps
        self.keys = keys
        self.waiting = [0] * n
        self.dependents: list[list[int]] = [[] for _ in range(n)]
        for i, ds in enumerate(deps):
            for d in ds:
                self.waiting[i] += 1
                self.dependents[d].append(i)
        self.ready = sorted((keys[i], i) for i in range(n) if self.waiting[i] == 0)


class Scheduler(Generic[N]):
    """Runs `run(node)` for every node once its dependencies are released.

    `deps[i]` lists the indexes node i waits for; `keys[i]` orders the ready queue (smaller first).
    `run` must not raise except on cancellation; failure handling is the caller's business.
    """

    def __init__(self, nodes: Sequence[N], deps: Sequence[Sequence[int]], keys: Sequence[tuple],
                 run: Callable[[N], Awaitable[None]], *, workers: int,
                 commit: Callable[[list[int]], None] | None = None,
                 done: Sequence[int] = (), topology: Topology | None = None):
        """`topology`: the same `deps` and `keys` worked out beforehand (used when nothing is
        `done` yet; a resume works its own out)."""
        self.nodes = nodes
        self.run = run
        self.workers = max(1, workers)
        self.commit = commit
        self.keys = keys
        n = len(nodes)
        already = set(done)
        if topology is not None and not already:
            self.waiting = topology.waiting.copy()
            self.dependents = topology.dependents  # read-only
            self.heap: list[tuple] = topology.ready.copy()
        else:
            self.waiting = [0] * n
            self.dependents = [[] for _ in range(n)]
            for i, ds in enumerate(deps):
                for d in ds:
                    if d not in already:
                        self.waiting[i] += 1
                        self.dependents[d].append(i)
            self.heap = [(keys[i], i) for i in range(n)
                         if self.waiting[i] == 0 and i not in already]
            heapq.heapify(self.heap)
        self.remaining = n - len(already)
        self.running = 0
        self.stopping = False
        self._idle: list[anyio.Event] = []
        self._finished: list[int] = []
        self._flush_scheduled = False
        self._group: anyio.abc.TaskGroup | None = None
        self._spawned = 0  # workers started so far (at most `workers`)
        self._starting = 0  # of those, the ones that haven't taken a node yet

    def stop(self) -> None:
        """Start no more nodes; the ones running finish normally."""
        self.stopping = True
        self._wake(len(self._idle))

    async def run_all(self) -> None:
        if self.remaining == 0:
            return
        async with anyio.create_task_group() as tg:
            self._group = tg
            self._spawn(min(self.workers, max(1, len(self.heap))))

    def _spawn(self, count: int) -> None:
        self._spawned += count
        self._starting += count
        for _ in range(count):
            self._group.start_soon(self._worker)  # type: ignore[union-attr]

    # -- internals ----------------------------------------------------------------------------
    def _finished_all(self) -> bool:
        return (self.remaining == 0 or (self.stopping and self.running == 0)) \
            and not self._flush_scheduled

    def _wake(self, count: int) -> None:
        while count > 0 and self._idle:
            self._idle.pop().set()
            count -= 1

    async def _worker(self) -> None:
        heap = self.heap
        self._starting -= 1
        while True:
            if heap and not self.stopping:
                _, index = heapq.heappop(heap)
                self.running += 1
                try:
                    await self.run(self.nodes[index])
                finally:
                    self.running -= 1
                self.remaining -= 1
                if self.commit is None:
                    self._release((index,))
                elif self.running or heap or self._flush_scheduled:
                    self._finished.append(index)
                    await self._group_commit()
                else:
                    # Nobody can join this commit (a chain: the next node waits for it), so it
                    # is made here, with no group to gather.
                    self.commit([index])
                    self._release((index,))
                continue
            if self._finished_all():
                self._wake(len(self._idle))
                return
            event = anyio.Event()
            self._idle.append(event)
            await event.wait()

    async def _group_commit(self) -> None:
        if self._flush_scheduled:
            return  # the worker that scheduled the flush releases this node too
        self._flush_scheduled = True
        try:
            # Let the other workers that finish in this same tick join the transaction. With no
            # node running and none ready nobody can, so the trip through the event loop is
            # skipped (the worker commits without this call when it knows that beforehand).
            if self.running or self.heap:
                await anyio.lowlevel.checkpoint()
        finally:
            self._flush_scheduled = False
            self.commit(list(self._finished))  # type: ignore[misc]
            self._release_finished()

    def _release_finished(self) -> None:
        finished, self._finished = self._finished, []
        self._release(finished)

    def _release(self, finished: Sequence[int]) -> None:
        heap, waiting, keys, dependents = self.heap, self.waiting, self.keys, self.dependents
        for index in finished:
            for child in dependents[index]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(heap, (keys[child], child))
        if not self._idle:  # nobody to wake: a chain, or every worker busy (or not started yet)
            if len(heap) > 1 and self._spawned < self.workers and not self.stopping:
                self._grow(len(heap) - 1)  # this worker takes one itself
            return
        if self._finished_all():
            self._wake(len(self._idle))
        elif heap and not self.stopping:
            # This worker takes one itself; idle workers, then new ones, take the rest.
            unstaffed = len(heap) - 1 - len(self._idle)
            self._wake(len(heap) - 1)
            self._grow(unstaffed)

    def _grow(self, unstaffed: int) -> None:
        """Start workers for ready nodes no worker will take (those starting take one each),
        up to the pool's size."""
        more = min(unstaffed - self._starting, self.workers - self._spawned)
        if more > 0:
            self._spawn(more)
