"""Batch benchmark: rows/s and overhead per call, local executor and Ray, and the journal's cost.

    python bench/scale_bench.py                     # 10,000 rows, 50 ms per call, local and Ray
    python bench/scale_bench.py --rows 2000 --skip-ray
    python bench/scale_bench.py --ray-child ADDR --out f.json   # (internal) the Ray driver

Workload: a one-task workflow (one model call per row) on the sim provider, the model declared
with `latency 50ms` (the sim draws each call's latency around it, log-normal, sigma 0.15), the
provider allowing `--concurrency` calls at once, and the batch running as many rows at once.

Figures:
- rows/s: rows over the batch's wall time (planning, cluster start and connection excluded);
- ideal: calls x mean latency / concurrency, the wall time with zero overhead;
- overhead per call: (wall - ideal) x concurrency / calls, the time each call holds a slot
  beyond the provider's latency (the driver's scheduling, journal writes, Ray round trips);
- driver CPU per row: the driver process's CPU time over rows;
- journal cost per row: the time spent inside the journal's methods (create/finish run, buffered
  writes and their group commits, spend queries) per row, in a local run with latency 0 so nothing
  hides it, and the journal file's bytes per row.

Ray runs on a real two-node cluster on this machine (tests/scale/loopback_cluster.py: a network
namespace, `ray start --head` and a second `ray start`), the driver inside the namespace.
Needs root for the namespace; `--skip-ray` otherwise.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKFLOW = """
provider lab {{
  kind sim
  limits {{ concurrent {concurrency} }}
}}
model steady {{
  provider lab
  price input $1 output $2 per 1M
  latency {latency_ms}ms
}}
workflow label {{
  input item: text
  task classify {{
    model steady
    max_tokens 64
    prompt "Label this item: {{{{ item }}}}"
  }}
  output classify
}}
"""


def scratch_dir() -> Path:
    """A temporary folder for a measured run's journal, removed when the benchmark exits (runs of
    this benchmark left one per measurement in /tmp)."""
    path = Path(tempfile.mkdtemp(prefix="bmad-scale-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def build_plan(folder: Path, latency_ms: float, concurrency: int):
    from bmad.compiler.compile import compile_file
    from bmad.compiler.passes import plan_program
    from bmad.compiler.passes.context import make_context

    path = folder / "label.bmad"
    path.write_text(WORKFLOW.format(concurrency=concurrency, latency_ms=latency_ms),
                    encoding="utf-8")
    result = compile_file(path)
    assert result.ok, [d.message for d in result.diagnostics]
    plan, diagnostics = plan_program(result.program, make_context(result.program,
                                                                  provider_mode="sim"))
    assert plan is not None, [d.message for d in diagnostics]
    return plan


def run_batch(plan, rows: int, journal: Path, *, concurrency: int, latency_scale: float,
              executor: str = "local", address: str | None = None) -> dict:
    from bmad.runtime.batch import BatchRequest, execute_batch
    from bmad.runtime.executors.local import RunRequest
    from bmad.runtime.interpreter import RunConfig

    run = RunRequest(provider_mode="sim", sim_latency_scale=latency_scale, journal_path=journal,
                     config=RunConfig(concurrency=concurrency))
    request = BatchRequest(run=run, rows=[{"item": f"item {i}"} for i in range(rows)],
                           executor=executor, ray_address=address)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcome = execute_batch(plan, request)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    import sqlite3

    db = sqlite3.connect(journal)
    calls, mean_latency = db.execute("SELECT COUNT(*), AVG(latency_s) FROM calls "
                                     "WHERE status='ok'").fetchone()
    db.close()
    assert outcome.status == "completed", (outcome.status, outcome.error)
    # The batch's own wall time (ray.init and the actors' start are outside `outcome.elapsed_s`).
    return {"rows": rows, "wall_s": outcome.elapsed_s, "total_wall_s": wall, "cpu_s": cpu,
            "calls": calls, "mean_latency_s": mean_latency or 0.0, "notes": outcome.notes,
            "journal_bytes": journal.stat().st_size + _wal_size(journal)}


def _wal_size(journal: Path) -> int:
    wal = journal.with_name(journal.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def figures(result: dict, concurrency: int) -> dict:
    calls, wall = result["calls"], result["wall_s"]
    ideal = calls * result["mean_latency_s"] / concurrency
    return {"rows/s": result["rows"] / wall, "wall_s": wall, "ideal_s": ideal,
            "overhead_per_call_ms": 1000 * (wall - ideal) * concurrency / calls,
            "driver_cpu_per_row_ms": 1000 * result["cpu_s"] / result["rows"]}


def journal_cost(plan, rows: int, folder: Path, concurrency: int) -> dict:
    """Time inside the journal's methods per row, with latency 0 so nothing hides it."""
    from bmad.runtime import journal as journal_mod

    spent = {"s": 0.0}
    originals = {}
    names = ("flush", "create_run", "finish_run", "reopen_run", "spend", "final_tasks",
             "recorded_calls", "add_task", "add_call", "add_event", "add_attempt",
             "update_run_progress", "store_plan")
    for name in names:
        original = getattr(journal_mod.Journal, name, None)
        if original is None:
            continue
        originals[name] = original

        def timed(self, *args, __original=original, **kwargs):
            started = time.perf_counter()
            try:
                return __original(self, *args, **kwargs)
            finally:
                spent["s"] += time.perf_counter() - started

        setattr(journal_mod.Journal, name, timed)
    try:
        journal = folder / "journal-cost.db"
        result = run_batch(plan, rows, journal, concurrency=concurrency, latency_scale=0.0)
    finally:
        for name, original in originals.items():
            setattr(journal_mod.Journal, name, original)
    return {"journal_ms_per_row": 1000 * spent["s"] / rows,
            "total_ms_per_row": 1000 * result["wall_s"] / rows,
            "bytes_per_row": result["journal_bytes"] / rows}


def ray_child(args) -> None:
    """Inside the cluster's namespace: drive the batch on Ray, write the figures as JSON."""
    folder = scratch_dir()
    plan = build_plan(folder, args.latency_ms, args.concurrency)
    result = run_batch(plan, args.rows, folder / "runs.db", concurrency=args.concurrency,
                       latency_scale=1.0, executor="ray", address=args.ray_child)
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")


def run_on_ray(args) -> dict:
    sys.path.insert(0, str(REPO / "tests" / "scale"))
    from loopback_cluster import LoopbackCluster, can_make_namespaces

    why = can_make_namespaces()
    if why is not None:
        raise SystemExit(f"can't start a local Ray cluster: {why} (use --skip-ray)")
    out = scratch_dir() / "ray.json"
    with LoopbackCluster(cpus_per_node=2) as cluster:
        started = time.perf_counter()
        cluster.start(nodes=args.nodes)
        print(f"  cluster of {args.nodes} nodes up in {time.perf_counter() - started:.1f}s",
              flush=True)
        child = cluster.popen([sys.executable, __file__, "--ray-child", cluster.address,
                               "--out", str(out), "--rows", str(args.rows),
                               "--latency-ms", str(args.latency_ms),
                               "--concurrency", str(args.concurrency)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err = child.communicate(timeout=3600)
        if child.returncode != 0:
            raise SystemExit("the Ray driver failed:\n" + err.decode(errors="replace")[-3000:])
    return json.loads(out.read_text(encoding="utf-8"))


def report(name: str, result: dict, concurrency: int) -> None:
    f = figures(result, concurrency)
    print(f"{name:>6}: {result['rows']} rows, {result['calls']} calls in {f['wall_s']:.2f}s "
          f"(ideal {f['ideal_s']:.2f}s at mean latency {1000 * result['mean_latency_s']:.1f} ms, "
          f"{100 * f['ideal_s'] / f['wall_s']:.0f}% of it): "
          f"{f['rows/s']:.0f} rows/s, overhead {f['overhead_per_call_ms']:.1f} ms per call, "
          f"driver CPU {f['driver_cpu_per_row_ms']:.2f} ms per row")
    for note in result.get("notes", []):
        print(f"        {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--ray-child", metavar="ADDRESS")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.ray_child:
        return ray_child(args)

    folder = scratch_dir()
    plan = build_plan(folder, args.latency_ms, args.concurrency)
    print(f"{args.rows} rows, one call each, {args.latency_ms:g} ms latency, "
          f"{args.concurrency} rows and calls at once; load average {os.getloadavg()[0]:.1f}")
    local = run_batch(plan, args.rows, folder / "local.db", concurrency=args.concurrency,
                      latency_scale=1.0)
    report("local", local, args.concurrency)
    if not args.skip_ray:
        report("ray", run_on_ray(args), args.concurrency)
    cost = journal_cost(plan, args.rows, folder, args.concurrency)
    print(f"journal: {cost['journal_ms_per_row']:.2f} ms per row inside the journal "
          f"(of {cost['total_ms_per_row']:.2f} ms per row at zero latency), "
          f"{cost['bytes_per_row'] / 1024:.1f} KiB per row on disk")


if __name__ == "__main__":
    main()
