"""Runtime benchmarks: scheduling overhead against raw asyncio, makespan, and peak memory.

    python bench/runtime_bench.py              # everything (about a minute on 2 cores)
    python bench/runtime_bench.py --quick      # 1k-task shapes only
    python bench/runtime_bench.py --makespan   # the two makespan measurements only
    python bench/runtime_bench.py --rss 10000  # (internal) one 10k-task run, print peak RSS

Overhead: no-op tasks on the zero-latency sim provider, as a chain, a wide fan-out and random
layers, with the journal on and off, beside raw asyncio running the same DAG (one coroutine per
node awaiting its dependencies' futures) in the same process. Makespan: seeded sim latencies, the
ratio of the run's wall time to max(critical path, total work / concurrency) computed from the
latencies the journal recorded. Figures go to bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import heapq
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from bmad.compiler import ir
from bmad.compiler.plan import Plan, TaskPlan, WorkflowPlan
from bmad.runtime.events import CallbackSink
from bmad.runtime.executors.local import RunRequest, execute_plan_async
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.journal import ROWS_OF_RUN, Journal


# ----------------------------------------------------------------------------------------------
# DAG shapes: deps[i] lists the indexes node i waits for (always smaller than i)

def scratch_dir() -> Path:
    """A temporary folder for a measured run's journal, removed when the benchmark exits (runs of
    this benchmark left one per measurement in /tmp)."""
    path = Path(tempfile.mkdtemp(prefix="bmad-bench-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def chain(n: int) -> list[list[int]]:
    return [[]] + [[i - 1] for i in range(1, n)]


def fan_out(n: int) -> list[list[int]]:
    return [[]] + [[0] for _ in range(1, n)]


def random_layers(n: int, width: int = 100, seed: int = 1) -> list[list[int]]:
    rng = random.Random(seed)
    deps: list[list[int]] = []
    for i in range(n):
        layer_start = (i // width) * width
        prev = list(range(max(0, layer_start - width), layer_start))
        deps.append(sorted(rng.sample(prev, min(len(prev), rng.randint(1, 3)))) if prev else [])
    return deps


def build_plan(deps: list[list[int]], *, latency: ir.Latency | None = None) -> Plan:
    provider = ir.Provider(name="sim", kind="sim")
    model = ir.Model(name="m", provider=ir.Name("sim"), price=ir.Price(0.1, 0.2), latency=latency)
    prompt = ir.Template("noop", (ir.TextPart("noop"),))
    tasks, plans = [], []
    for i, ds in enumerate(deps):
        name = f"t{i}"
        tasks.append(ir.Task(name=name, prompt=prompt, depends=tuple(ir.Name(f"t{d}") for d in ds),
                             model=ir.Name("m"), max_tokens=8))
        plans.append(TaskPlan(id=name, model="m", depends=tuple(f"t{d}" for d in ds), rank=i))
    workflow = ir.Workflow(name="bench", tasks=tuple(tasks), outputs=(ir.Output(f"t{len(deps) - 1}"),))
    program = ir.Program(providers=(provider,), models=(model,), workflows=(workflow,), entry="bench")
    return Plan(workflow="bench", program=program, entry=WorkflowPlan("bench", tuple(plans)),
                plan_hash="bench", provider_concurrency={"sim": 64})


# ----------------------------------------------------------------------------------------------
# Raw asyncio on the same DAG

async def raw_asyncio(deps: list[list[int]]) -> None:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in deps]

    async def node(i: int) -> None:
        for d in deps[i]:
            await futures[d]
        futures[i].set_result(i)

    await asyncio.gather(*(node(i) for i in range(len(deps))))


async def raw_asyncio_timed(deps: list[list[int]], latency: list[float], concurrency: int,
                            rank: list[int]) -> float:
    """The same DAG with the same latencies under a bare list scheduler: `concurrency` coroutines
    taking ready nodes in the plan's rank order and sleeping each node's latency. Its makespan is
    what asyncio's timers and this machine allow; the runtime's is compared with it too."""
    waiting = [len(ds) for ds in deps]
    children: list[list[int]] = [[] for _ in deps]
    for i, ds in enumerate(deps):
        for d in ds:
            children[d].append(i)
    ready = [(rank[i], i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    left = len(deps)
    wake = asyncio.Event()

    async def worker() -> None:
        nonlocal left, wake
        while left:
            if not ready:
                event = wake
                await event.wait()
                continue
            _, i = heapq.heappop(ready)
            await asyncio.sleep(latency[i])
            left -= 1
            for child in children[i]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, (rank[child], child))
            wake.set()
            wake = asyncio.Event()
        wake.set()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


def time_raw(deps: list[list[int]]) -> float:
    start = time.perf_counter()
    asyncio.run(raw_asyncio(deps))
    return time.perf_counter() - start


def time_bmad(deps: list[list[int]], *, journal: bool, concurrency: int = 64,
              latency_scale: float = 0.0, plan: Plan | None = None,
              journal_path: Path | None = None, sinks: list | None = None
              ) -> tuple[float, str | None, Path | None]:
    plan = plan or build_plan(deps)
    path = journal_path or scratch_dir() / "runs.db"
    request = RunRequest(config=RunConfig(concurrency=concurrency), provider_mode="sim",
                         sim_latency_scale=latency_scale, use_journal=journal,
                         journal_path=path, sinks=list(sinks or []))
    start = time.perf_counter()
    outcome = anyio.run(execute_plan_async, plan, request)
    elapsed = time.perf_counter() - start
    assert outcome.status == "completed", outcome.error
    return elapsed, outcome.run_id, path if journal else None


def cpu_and_wall(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call: on a shared machine the CPU figure is the steadier one."""
    cpu = time.process_time()
    wall = fn()
    return wall, time.process_time() - cpu


def overhead(sizes: list[int]) -> list[tuple]:
    rows = []
    for n in sizes:
        for shape_name, shape in (("chain", chain), ("fan-out", fan_out), ("random layers", random_layers)):
            deps = shape(n)
            plan = build_plan(deps)
            raw = min(time_raw(deps) for _ in range(3))
            off, off_cpu = min(cpu_and_wall(lambda: time_bmad(deps, journal=False, plan=plan)[0])
                               for _ in range(3))
            # One journal across runs, as in use: the first run also stores the sealed plan
            # (once per plan hash); later runs of the same plan measure the run alone.
            journal = scratch_dir() / "runs.db"
            first = time_bmad(deps, journal=True, plan=plan, journal_path=journal)[0]
            on, on_cpu = min(cpu_and_wall(lambda: time_bmad(deps, journal=True, plan=plan,
                                                            journal_path=journal)[0])
                             for _ in range(3))
            rows.append((shape_name, n, n / raw, n / off, n / on, raw / off))
            print(f"{shape_name:>13} {n:>6}: raw asyncio {n / raw:>9,.0f}/s | bmad journal off "
                  f"{n / off:>8,.0f}/s ({100 * raw / off:4.1f}% of raw; {n / off_cpu:,.0f} per "
                  f"CPU-s) | journal on {n / on:>8,.0f}/s ({n / on_cpu:,.0f} per CPU-s) | first "
                  f"run, storing the plan: {n / first:,.0f}/s", flush=True)
    return rows


def ideal_list_schedule(deps: list[list[int]], latency: list[float], concurrency: int,
                        key: list[float]) -> float:
    """The makespan of a list scheduler with no overhead and exact timers: `concurrency`
    workers, ready nodes taken smallest `key` first (an event simulation, not a run)."""
    waiting = [len(ds) for ds in deps]
    children: list[list[int]] = [[] for _ in deps]
    for i, ds in enumerate(deps):
        for d in ds:
            children[d].append(i)
    ready = [(key[i], i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    now, free, done = 0.0, concurrency, 0
    while done < len(deps):
        while ready and free:
            _, i = heapq.heappop(ready)
            heapq.heappush(running, (now + latency[i], i))
            free -= 1
        now, i = heapq.heappop(running)
        free += 1
        done += 1
        for child in children[i]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (key[child], child))
    return now


async def sleep_overshoot(latency: list[float], count: int) -> float:
    """Mean time `asyncio.sleep(x)` takes beyond x here, for the first `count` latencies, one at a
    time (epoll waits in whole milliseconds, rounded up)."""
    over = 0.0
    for x in latency[:count]:
        start = time.perf_counter()
        await asyncio.sleep(x)
        over += time.perf_counter() - start - x
    return over / min(count, len(latency))


def planned(deps: list[list[int]], *, latency: ir.Latency) -> Plan:
    """The bench DAG planned by the real optimizer (`plan_program`, as `bmad run` plans a file):
    the ready queue's rank comes from `compiler/passes/schedule_tasks.py` (critical path first,
    then the longest remaining path by estimated latency), not from the workflow's order."""
    # Imported here: the optimizer loads the token counter's tables (~50 MB), which would count
    # in the peak RSS measured by `--rss` (a bare run of a built plan).
    from bmad.compiler.passes import make_context, plan_program

    program = build_plan(deps, latency=latency).program
    provider = ir.replace(program.providers[0], limits=ir.Limits(concurrent=64))
    program = ir.replace(program, providers=(provider,))
    plan, diagnostics = plan_program(program, make_context(program, environment={},
                                                           provider_mode="sim"))
    assert plan is not None, [d.message for d in diagnostics]
    return plan


def makespan(n: int = 400, concurrency: int = 16, scale: float = 0.02, overshoot_samples: int = 50,
             raw_runs: int = 3) -> float:
    """Seeded latencies: the run's makespan (from `run_started` to `run_finished`, so start-up
    such as opening the journal and compiling the nodes is left out) over the lower bound from the
    recorded latencies. The sim's latency is the model's estimate (0.5 s) times `scale` with
    seeded noise: 0.02 gives ~10 ms calls, where asyncio's millisecond timers are a tenth of each
    call; 0.3 gives ~150 ms, closer to real model calls (0.3-30 s), where they are not."""
    deps = random_layers(n, width=40, seed=7)
    plan = planned(deps, latency=ir.Latency(0.5, 0.0))
    rank_of = {tp.id: tp.rank for tp in plan.entry.tasks}
    rank = [rank_of[f"t{i}"] for i in range(n)]
    stamps: dict[str, float] = {}
    clock = CallbackSink(lambda e: stamps.setdefault(e.kind, time.perf_counter()))
    clock.kinds = frozenset({"run_started", "run_finished"})  # type: ignore[attr-defined]
    total, run_id, db = time_bmad(deps, journal=True, concurrency=concurrency, latency_scale=scale,
                                  plan=plan, sinks=[clock])
    wall = stamps["run_finished"] - stamps["run_started"]
    journal = Journal(db, readonly=True)
    latency = {t: l for t, l in journal.db.execute(
        f"SELECT task_id, latency_s FROM calls WHERE {ROWS_OF_RUN} AND status='ok'",
        journal.rows_of(run_id))}
    # How long each task really took, start to finish: its call's latency plus the timer's
    # overshoot (and the runtime's own few microseconds).
    taken = {t: end - start for t, start, end in journal.db.execute(
        f"SELECT task_id, started_at, finished_at FROM tasks WHERE {ROWS_OF_RUN}",
        journal.rows_of(run_id))}
    journal.db.close()
    critical, work = _lower_bound(deps, latency, concurrency)
    bound = max(critical, work)
    ratio = wall / bound
    taken_bound = max(_lower_bound(deps, taken, concurrency))
    ordered = [latency[f"t{i}"] for i in range(n)]
    raw = min(asyncio.run(raw_asyncio_timed(deps, ordered, concurrency, rank))
              for _ in range(raw_runs))
    mean_ms = 1e3 * sum(ordered) / n
    print(f"makespan, ~{mean_ms:.0f} ms calls (latency scale {scale}): {n} tasks, concurrency "
          f"{concurrency}, the planner's ranks: run {wall:.3f}s (with start-up {total:.3f}s), "
          f"critical path {critical:.3f}s, work/concurrency {work:.3f}s -> ratio {ratio:.3f}; raw "
          f"asyncio list scheduler on the same latencies and ranks {raw:.3f}s -> ratio "
          f"{raw / bound:.3f}; over the bound from the durations the tasks took (the timers' "
          f"overshoot in them) {wall / taken_bound:.3f}", flush=True)
    # Where the rest goes: the order itself (no overhead, exact timers) and the timers.
    upward = [0.0] * n
    for i in reversed(range(n)):
        upward[i] += ordered[i]
        for d in deps[i]:
            upward[d] = max(upward[d], upward[i])
    in_rank = ideal_list_schedule(deps, ordered, concurrency, rank) / bound
    in_index = ideal_list_schedule(deps, ordered, concurrency, list(range(n))) / bound
    by_upward = ideal_list_schedule(deps, ordered, concurrency, [-u for u in upward]) / bound
    over = asyncio.run(sleep_overshoot(ordered, overshoot_samples))
    print(f"  ideal list scheduler (no overhead, exact timers): in the planner's rank order "
          f"{in_rank:.3f} (in workflow order {in_index:.3f}), by upward rank of the recorded "
          f"latencies {by_upward:.3f}; asyncio.sleep overshoots by {1e3 * over:.2f} ms on average "
          f"({100 * over / (mean_ms / 1e3):.1f}% of the mean latency)", flush=True)
    return ratio


def _lower_bound(deps: list[list[int]], duration: dict[str, float], concurrency: int
                 ) -> tuple[float, float]:
    """(critical path, total work / concurrency) of the DAG with these task durations."""
    finish: list[float] = []
    for i, ds in enumerate(deps):
        finish.append(max((finish[d] for d in ds), default=0.0) + duration[f"t{i}"])
    return max(finish), sum(duration.values()) / concurrency


def peak_rss(n: int) -> None:
    time_bmad(random_layers(n), journal=True)
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{kb / 1024:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rss", type=int, default=None)
    parser.add_argument("--makespan", action="store_true", help="the makespan measurements only")
    args = parser.parse_args()
    if args.rss:
        peak_rss(args.rss)
        return
    print(f"python {sys.version.split()[0]}, anyio on asyncio; load average "
          f"{os.getloadavg()[0]:.2f} at the start")
    if not args.makespan:
        overhead([1000] if args.quick else [1000, 10_000])
    makespan()  # ~10 ms calls: asyncio's timer granularity shows
    # ~150 ms calls (real model calls take 0.3-30 s): the figure the goal is judged on
    makespan(scale=0.3, overshoot_samples=10, raw_runs=1)
    if not (args.quick or args.makespan):
        mb = subprocess.run([sys.executable, __file__, "--rss", "10000"], capture_output=True,
                            text=True, check=True).stdout.strip()
        print(f"peak RSS of a 10k-task run (random layers, journal on): {mb} MB")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
