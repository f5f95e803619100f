"""Soak: 10,000 tasks on the sim provider with 20% injected faults and cancellations, in one process.

    python bench/soak.py                      # 20 rounds x 500 tasks (about a minute on 2 cores)
    python bench/soak.py --rounds 4 --tasks 100   # a quick look

Each round runs a 500-task workflow (independent tasks and short dependency chains, `retry 3`,
`on_error skip`) against `sim` with a 20% failure rate (transient, rate-limited and timeout
failures); every fourth round is cancelled part-way and then resumed to completion (`--resume`
semantics: completed tasks are not run again). The same journal file takes every round.

It prints, per round, the run status, tasks done, calls made, RSS now and the peak RSS so far
(ru_maxrss) and the open file descriptors; then the growth of RSS and of descriptors after the
warm-up rounds, and `PRAGMA integrity_check`. It exits 1 when a round did not complete, the
journal is not ok, or descriptors grew (figures, not timing, go to bench/README.md).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import anyio

from bmad.compiler.compile import compile_source
from bmad.compiler.limits import use_limits
from bmad.compiler.passes import plan_program
from bmad.compiler.passes.context import make_context
from bmad.runtime.executors.local import RunRequest, execute_plan_async
from bmad.runtime.interpreter import RunConfig

CATALOG = """
provider p1 { kind sim }
provider p2 { kind sim }
model fast { provider p1  price input $0.1 output $0.2 per 1M  skills { writing 0.7 } }
model sure { provider p2  price input $1 output $2 per 1M  skills { writing 0.9 } }
"""


def workflow_source(tasks: int) -> str:
    lines = ["workflow soak {", '  input topic: text = "soak"']
    for i in range(tasks):
        depends = f"depends t{i - 1}  " if i % 10 else ""  # chains of ten
        lines.append(f'  task t{i} {{ {depends}prompt "Note {i} on {{{{ topic }}}}"  model fast  '
                     "fallback [sure]  retry 3 backoff fixed 1ms to 1ms  on_error skip  max_tokens 32 }")
    lines += [f"  output t{tasks - 1}", "}"]
    return CATALOG + "\n".join(lines) + "\n"


def rss_now_kb() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def one_round(plan, journal: Path, index: int, cancel: bool) -> dict:
    request = dict(config=RunConfig(concurrency=32), provider_mode="sim", sim_seed=index,
                   sim_latency_scale=0.0005, sim_failure_rate=0.2,
                   sim_failure_kinds=("transient", "rate_limited", "timeout"),
                   journal_path=journal, inputs={"topic": f"round {index}"})
    run_id = f"soak-{index:04d}"
    cancelled = False
    if cancel:
        with anyio.move_on_after(0.05):  # part-way through: the run records `cancelled`
            await execute_plan_async(plan, RunRequest(run_id=run_id, **request))
        cancelled = True
        request.pop("inputs")
        outcome = await execute_plan_async(plan, RunRequest(resume=run_id, **request))
    else:
        outcome = await execute_plan_async(plan, RunRequest(run_id=run_id, **request))
    return {"round": index, "status": outcome.status, "cancelled_then_resumed": cancelled,
            "tasks": len(outcome.task_statuses),
            "completed": sum(s == "completed" for s in outcome.task_statuses.values()),
            "skipped": sum(s == "skipped" for s in outcome.task_statuses.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    compiled = compile_source(workflow_source(args.tasks), "soak.bmad")
    assert compiled.ok, [d.message for d in compiled.errors]
    plan, diagnostics = plan_program(compiled.program, make_context(compiled.program, provider_mode="sim"))
    assert plan is not None, [d.message for d in diagnostics if d.is_error]

    rows = []
    with tempfile.TemporaryDirectory() as tmp, use_limits():
        journal = Path(tmp) / "soak.db"
        started = time.perf_counter()
        for index in range(args.rounds):
            row = anyio.run(one_round, plan, journal, index, index % 4 == 3)
            gc.collect()
            row.update(rss_kb=rss_now_kb(), peak_rss_kb=peak_rss_kb(), fds=open_fds())
            rows.append(row)
            if not args.json:
                print(f"round {index:3d}: {row['status']:9s} {row['completed']:4d} completed "
                      f"{row['skipped']:3d} skipped{' (cancelled, resumed)' if row['cancelled_then_resumed'] else ''}"
                      f"  rss {row['rss_kb'] / 1024:7.1f} MB  peak {row['peak_rss_kb'] / 1024:7.1f} MB"
                      f"  fds {row['fds']}", flush=True)
        wall = time.perf_counter() - started
        db = sqlite3.connect(journal)
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        calls = db.execute("SELECT COUNT(*), SUM(status='error') FROM calls").fetchone()
        tasks = db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
        db.close()
        size_mb = journal.stat().st_size / 2**20

    base = rows[min(args.warmup, len(rows) - 1)]
    last = rows[-1]
    figures = {
        "rounds": args.rounds, "tasks_per_round": args.tasks, "tasks_run": tasks,
        "calls": calls[0], "failed_calls": calls[1], "failed_call_share": round(calls[1] / calls[0], 3),
        "all_completed": all(r["status"] == "completed" for r in rows),
        "cancelled_and_resumed_rounds": sum(r["cancelled_then_resumed"] for r in rows),
        "rss_after_warmup_mb": round(base["rss_kb"] / 1024, 1),
        "rss_end_mb": round(last["rss_kb"] / 1024, 1),
        "rss_growth_after_warmup_mb": round((last["rss_kb"] - base["rss_kb"]) / 1024, 1),
        "peak_rss_after_warmup_mb": round(base["peak_rss_kb"] / 1024, 1),
        "peak_rss_end_mb": round(last["peak_rss_kb"] / 1024, 1),
        "fds_after_warmup": base["fds"], "fds_end": last["fds"],
        "integrity_check": integrity, "journal_mb": round(size_mb, 1), "wall_s": round(wall, 1),
    }
    if args.json:
        print(json.dumps({"figures": figures, "rounds": rows}, indent=2))
    else:
        print()
        for key, value in figures.items():
            print(f"{key:30s} {value}")
    ok = figures["all_completed"] and integrity == "ok" and last["fds"] <= base["fds"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
