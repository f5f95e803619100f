"""`bmad run FILE --inputs rows.jsonl|csv` and `bmad run --resume BATCH_ID`: batch runs.

`bmad run` hands over here when it gets `--inputs` or a batch id to resume. Every other option of
`bmad run` applies to each row (`--budget` caps the whole batch). While it runs, a live summary
(rows done and failed, spend, rate, ETA) on a terminal, a line every few seconds otherwise; at the
end a table, and the results, one JSON line per row in input order (`-o results.jsonl`, or stdout).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

PLAIN_PROGRESS_EVERY_S = 10.0


def resumes_batch(resume: str | None, journal_path: Path) -> bool:
    """Is `--resume ID` a batch (rather than one run)?"""
    if not resume or not journal_path.exists():
        return False
    from bmad.runtime.batch import is_batch
    from bmad.runtime.journal import Journal, JournalError

    try:
        journal = Journal(journal_path, readonly=True)
    except JournalError:
        return False
    try:
        return is_batch(journal, resume)
    finally:
        journal.db.close()


def run_batch(options: dict[str, Any]) -> None:
    """Run (or resume) a batch with `bmad run`'s options; always ends with `typer.Exit`."""
    from bmad.cli.run_cmd import (_ReaderMayLeave, _budget, _fail, _journal_path, _load_plan,
                                  _retention_rules)
    from bmad.runtime.batch import BatchRequest, execute_batch, write_results
    from bmad.runtime.events import JsonLinesSink
    from bmad.runtime.otel_export import start_tracing
    from bmad.runtime.executors.local import RunRefused, RunRequest
    from bmad.runtime.interpreter import RunConfig

    o = options
    if o["executor"] not in ("local", "ray"):
        raise _fail(f"unknown --executor `{o['executor']}`", "use local or ray")
    if o["provider"] not in (None, "sim", "real"):
        raise _fail(f"unknown --provider `{o['provider']}`", "use `sim` (simulated) or `real`")
    if o["strategy"] not in (None, "sequential", "parallel", "adaptive", "collaborative"):
        raise _fail(f"unknown --strategy `{o['strategy']}`",
                    "use sequential, parallel, adaptive or collaborative")
    if o["inputs"] or o["input_file"] is not None:
        raise _fail("--input and --input-file set one run's inputs; a batch takes them from "
                    "--inputs rows", "put the values in every row of the rows file")
    override = _budget(o["budget"])
    journal_path = _journal_path(o["journal"])
    provider, strategy = o["provider"], o["strategy"]
    sim = {"sim_seed": o["sim_seed"], "sim_latency_scale": o["sim_latency_scale"],
           "sim_failure_rate": o["sim_failure_rate"]}
    kinds = tuple(k.strip() for k in o["sim_failure_kinds"].split(",")) \
        if o["sim_failure_kinds"] else None
    resume = None
    if o["rows"] is None:  # resuming a batch: its plan and settings come from the journal
        plan, batch = _journaled_batch(journal_path, o["resume"])
        resume = batch["id"]
        saved = json.loads(batch["options_json"] or "{}")
        provider = provider or saved.get("provider_mode")
        strategy = strategy or saved.get("strategy")
        for key in sim:
            sim[key] = sim[key] if sim[key] is not None else saved.get(key)
        kinds = kinds or tuple(saved.get("sim_failure_kinds") or ()) or None
    else:
        if o["resume"] is not None:
            raise _fail("--inputs starts a new batch; --resume continues one",
                        "resume with `bmad run --resume BATCH_ID` alone")
        if o["file"] is None:
            raise _fail("missing FILE", "bmad run FILE --inputs rows.jsonl")
        plan = _load_plan(o["file"], replan=o["replan"], provider=provider, budget=override,
                          optimize=o["optimize"], journal=journal_path, strategy=strategy)

    sinks: list[Any] = [_ReaderMayLeave(JsonLinesSink(sys.stdout))] if o["json_events"] else []
    stop_tracing = start_tracing(sinks, sys.stderr.write)  # a trace per row's run
    run = RunRequest(
        config=RunConfig(strategy=strategy, concurrency=o["concurrency"], seed=o["seed"],
                         cache=o["cache"] or o["explain_cache"]),
        budget_usd=override.usd if override else None,
        budget_tokens=override.tokens if override else None,
        budget_time_s=override.time_s if override else None,
        provider_mode=provider if provider != "real" else None, sim_failure_kinds=kinds,
        journal_path=journal_path, explain_cache=o["explain_cache"], sinks=sinks,
        handle_signals=True, source=o["file"], **sim)
    display = BatchDisplay(sys.stderr)
    retention = _retention_rules()  # a mistake in bmad.toml stops the batch before it starts
    request = BatchRequest(run=run, inputs_path=o["rows"], resume=resume, executor=o["executor"],
                           ray_address=o["ray_address"], on_progress=display.update)
    try:
        outcome = execute_batch(plan, request)
    except RunRefused as exc:
        display.close()
        raise _fail(f"[{exc.code}] {exc.message}", exc.hint)
    except ValueError as exc:  # e.g. an unknown sim failure kind
        display.close()
        raise _fail(str(exc))
    display.close()
    if stop_tracing is not None:
        stop_tracing()

    from bmad.runtime.journal import Journal

    journal = Journal(journal_path, readonly=True)
    try:
        batch_runs = frozenset(r for (r,) in journal.db.execute(
            "SELECT run_id FROM batch_rows WHERE batch_id=? AND run_id IS NOT NULL", (outcome.batch_id,)))
        if o["output"] is not None:
            write_results(journal, outcome.batch_id, o["output"])
        elif not o["json_events"]:
            from bmad.runtime.batch import batch_results

            for record in batch_results(journal, outcome.batch_id):
                sys.stdout.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
    finally:
        journal.db.close()
    print_final_table(outcome, sys.stderr)
    if retention.after_run:
        from bmad.cli.runs_prune import prune_after_run

        prune_after_run(journal_path, retention, batch_runs)  # never the batch's own rows' runs
    raise typer.Exit(outcome.exit_code)


def _journaled_batch(journal_path: Path, batch_id: str):
    from bmad.cli.run_cmd import _fail
    from bmad.compiler.plan import Plan
    from bmad.runtime.batch import find_batch
    from bmad.runtime.journal import Journal, JournalError

    try:
        journal = Journal(journal_path, readonly=True)
    except JournalError as exc:
        raise _fail(str(exc), "pass --journal PATH where the batch was journaled")
    try:
        batch = find_batch(journal, batch_id)
        row = journal.db.execute("SELECT plan_json FROM plans WHERE plan_hash=?",
                                 (batch["plan_hash"],)).fetchone() if batch else None
    finally:
        journal.db.close()
    if batch is None or row is None:
        raise _fail(f"[BMAD-E323] no batch `{batch_id}` in {journal_path}",
                    "list runs with `bmad runs` (a batch's rows are BATCH_ID.N)")
    return Plan.from_json(json.loads(row[0])), batch


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def summary_line(p) -> str:
    return (f"batch {p.batch_id}: {p.completed}/{p.total} rows done, {p.failed} failed, "
            f"{p.running} running, ${p.spent_usd:.4f} spent, {p.rows_per_s:.1f} rows/s, "
            f"ETA {_duration(p.eta_s)}")


class BatchDisplay:
    """The live summary: a rich status line on a terminal, a plain line now and then otherwise."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.live = None
        self.last_plain = time.monotonic()
        if stream.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live("", console=Console(file=stream), refresh_per_second=4, transient=True)
            self.live.start()

    def update(self, progress) -> None:
        line = summary_line(progress)
        if self.live is not None:
            self.live.update(line)
        elif time.monotonic() - self.last_plain >= PLAIN_PROGRESS_EVERY_S:
            self.last_plain = time.monotonic()
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def print_final_table(outcome, stream) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=stream, width=120, highlight=False)
    counts = outcome.counts()
    console.print(f"batch {outcome.batch_id} ({outcome.executor} executor): {outcome.status}")
    table = Table(box=None, pad_edge=False)
    table.add_column("rows")
    table.add_column("count", justify="right")
    for status in ("completed", "failed", "budget_exhausted", "cancelled", "interrupted", "pending"):
        if counts.get(status):
            table.add_row(status, str(counts[status]))
    table.add_row("total", str(len(outcome.rows)))
    console.print(table)
    console.print(f"spent ${outcome.spent_usd:.6f}, {outcome.tokens} tokens, "
                  f"{_duration(outcome.elapsed_s)} ({outcome.rows_per_s:.1f} rows/s)")
    failed = [r for r in outcome.rows if r.status not in ("completed", "pending")]
    for r in failed[:5]:
        console.print(f"  row {r.index} ({r.run_id}): {r.status}" +
                      (f": {escape(r.error[:200])}" if r.error else ""))
    if len(failed) > 5:
        console.print(f"  ... and {len(failed) - 5} more (see `bmad runs`)")
    for note in outcome.notes:
        console.print(escape(note))
    if outcome.error:
        console.print(escape(outcome.error))
    if outcome.status != "completed":
        console.print(f"  = help: continue with `bmad run --resume {outcome.batch_id}`")
