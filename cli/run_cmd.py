"""`bmad run`, `bmad export`, `bmad runs`, `bmad show` and `bmad workflow status`: the runtime's commands.

`bmad run FILE|plan.json` compiles and plans a workflow (or loads a sealed plan, refusing a stale one
unless --replan), then runs it with the durable interpreter. Exit codes: 0 completed, 1 failed,
2 invalid input or plan, 3 budget exhausted, 130 cancelled.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from bmad.cli.common import check_output, examples, print_diagnostics
from bmad.cli.plan_cmd import Objective

EXIT_INVALID = 2

RUN_HELP = """Run a workflow (a .bmad/.yaml file, planned first) or a sealed plan (plan.json).

Every model call is journaled in SQLite (`.bmad/runs.db`, or `--journal`, or `$BMAD_HOME`): a run
that crashed or was cancelled continues with `--resume RUN_ID` without re-running completed tasks
or paying twice for a call. The budget is a hard cap: no call starts that could break it.
Exit status: 0 completed, 1 failed, 2 invalid input or plan, 3 budget exhausted, 130 cancelled.
"""

RUN_EPILOG = examples(
    ("bmad run review.bmad --input diff=@change.patch", "plan and run; @FILE reads a value from a file"),
    ("bmad run plan.json --input-file inputs.json -o out.json", "run a sealed plan exactly"),
    ("bmad run review.bmad --provider sim --sim-seed 7", "every model simulated (no keys, no cost)"),
    ("bmad run review.bmad --budget '$0.20' --json-events", "a hard budget, JSON-lines events on stdout"),
    ("bmad run --resume 20260101-120000-ab12cd", "continue a crashed or cancelled run"),
    ("bmad run review.bmad --cache --explain-cache", "reuse unchanged task results across runs"),
)


def _fail(message: str, hint: str | None = None, code: int = EXIT_INVALID) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"  = help: {hint}", err=True)
    return typer.Exit(code)


def _journal_path(journal: Optional[Path]) -> Path:
    from bmad.runtime.journal import default_journal_path

    return journal if journal is not None else default_journal_path()


def _existing_journal_path(journal: Optional[Path], as_json: bool) -> Optional[Path]:
    """The journal's path, or None after saying there are no runs yet (an empty JSON list with
    --json) when the file does not exist: listing runs before any run is not an error."""
    path = _journal_path(journal)
    if not path.exists():
        sys.stderr.write(f"no runs yet ({path} does not exist)\n")
        if as_json:
            sys.stdout.write("[]\n")
        return None
    return path


def _retention_rules():
    """bmad.toml's `[journal]` rules, read before a run so a mistake there stops it up front."""
    from bmad.compiler.settings import SettingsError, read_settings
    from bmad.runtime.retention import RetentionError, configured_retention

    try:
        read_settings()
    except SettingsError as exc:  # the file itself, whatever table the mistake is in
        raise _fail(str(exc), "fix bmad.toml where the message points (TOML syntax)")
    try:
        return configured_retention()
    except RetentionError as exc:
        raise _fail(str(exc), "fix the [journal] table of bmad.toml (keep_days, keep_runs, prune_after_run)")


def _open_journal(journal: Optional[Path]):
    from bmad.runtime.journal import Journal, JournalError

    path = _journal_path(journal)
    try:
        return Journal(path, readonly=True)
    except JournalError as exc:
        raise _fail(str(exc), "runs are journaled where `bmad run` ran (or pass --journal PATH)")


def _parse_inputs(pairs: list[str], input_file: Optional[Path]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    if input_file is not None:
        try:
            data = json.loads(input_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _fail(f"--input-file {input_file}: {exc}", "pass a JSON object of input values")
        if not isinstance(data, dict):
            raise _fail(f"--input-file {input_file}: not a JSON object", "write {\"name\": value, ...}")
        values.update(data)
    texts: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise _fail(f"--input {pair}: expected NAME=VALUE", "e.g. --input topic=bees")
        key, value = pair.split("=", 1)
        if value.startswith("@"):
            try:
                value = Path(value[1:]).read_text(encoding="utf-8")
            except OSError as exc:
                raise _fail(f"--input {key}: can't read {value[1:]}: {exc.strerror or exc}")
        texts[key.strip()] = value
    return values, texts


def _budget(text: Optional[str]):
    if text is None:
        return None
    from bmad.cli.plan_cmd import parse_budget

    parsed = parse_budget(text)
    if isinstance(parsed, str):
        raise _fail(f"--budget {text}: {parsed}", "write $2.50, 400k tokens or 10m")
    return parsed


def _fallback_notes(journal_path: Path, run_id: str, plan, limit: int = 5) -> list[str]:
    """One line per task a fallback answered instead of its planned model, so a summary that says
    `completed` doesn't hide that another model (maybe one the file never named) did the work."""
    from bmad.runtime.journal import Journal, JournalError

    planned = {t.id: t.model for t in plan.tasks if t.model and not t.participants}
    if not planned:
        return []
    try:
        journal = Journal(journal_path, readonly=True)
    except JournalError:
        return []
    try:
        rows = journal.task_rows(run_id)
    finally:
        journal.db.close()
    answered: dict[tuple[str, str, str], int] = {}
    for row in rows:
        task = str(row["task_id"]).split("[", 1)[0]  # `t[3]`: an item of `for each`
        want = planned.get(task)
        if want and row["status"] == "completed" and row["model"] and row["model"] != want:
            key = (task, want, row["model"])
            answered[key] = answered.get(key, 0) + 1
    notes = [f"  note: task {task} was answered by {got}, a fallback, as {want} failed"
             + (f" ({n} items)" if n > 1 else "") for (task, want, got), n in answered.items()]
    if len(notes) > limit:
        notes = notes[:limit] + [f"  note: and {len(notes) - limit} more; see `bmad show {run_id}`"]
    return notes


def _load_plan(file: str, *, replan: bool, provider: Optional[str], budget, optimize):
    """A sealed plan from FILE: plan a workflow file, or load (and verify) a plan JSON."""
    from bmad.cli.common import file_problem

    if isinstance(optimize, Objective):
        optimize = optimize.value

    problem = file_problem(file)
    if problem is not None:
        print_diagnostics([problem], {})
        raise typer.Exit(EXIT_INVALID)
    if file.endswith(".json"):
        from bmad.compiler.passes import verify_plan
        from bmad.compiler.plan import Plan

        try:
            plan = Plan.from_json(json.loads(Path(file).read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise _fail(f"{file} is not a sealed plan: {exc}",
                        "write one with `bmad plan FILE -o plan.json`")
        problems = verify_plan(plan, plan_file=file)
        if not problems:
            return plan
        if not replan:
            print_diagnostics(problems, {})
            raise typer.Exit(EXIT_INVALID)
        from bmad.compiler.passes.seal_plan import locate_source

        main = next((f.path for f in plan.program.files if f.role == "main"), None)
        found = locate_source(main, file) if main else None
        if found is None:
            raise _fail(f"--replan: the plan's source file {main} is gone", "plan the workflow again")
        file = str(found)
    from bmad.cli.plan_cmd import compile_and_plan

    plan, diagnostics, sources, program = compile_and_plan(file, provider=provider, budget=budget,
                                                           optimize=optimize)
    print_diagnostics([d for d in diagnostics if d.is_error], sources)
    if plan is None:
        if program is not None and not program.workflows:
            raise _fail(f"{file} declares no workflow", "run a file with a `workflow { ... }`")
        raise typer.Exit(EXIT_INVALID)
    return plan


def register(app: typer.Typer) -> None:
    @app.command("run", help=RUN_HELP, epilog=RUN_EPILOG)
    def run_command(
        file: Optional[str] = typer.Argument(None, metavar="FILE|plan.json", show_default=False),
        inputs: list[str] = typer.Option([], "--input", "-i", metavar="NAME=VALUE",
                                         help="An input value (repeatable); @FILE reads a file."),
        input_file: Optional[Path] = typer.Option(None, "--input-file", help="A JSON object of inputs."),
        strategy: Optional[str] = typer.Option(None, "--strategy",
                                               help="sequential, parallel, adaptive or collaborative."),
        budget: Optional[str] = typer.Option(None, "--budget", metavar="$X",
                                             help="Hard budget: $2.50, 400k tokens or 10m."),
        provider: Optional[str] = typer.Option(None, "--provider",
                                               help="`sim`: simulate every model (no keys, no cost)."),
        cache: bool = typer.Option(False, "--cache", help="Reuse unchanged task results across runs."),
        explain_cache: bool = typer.Option(False, "--explain-cache",
                                           help="Say why each task did or didn't hit the cache."),
        resume: Optional[str] = typer.Option(None, "--resume", metavar="RUN_ID",
                                             help="Continue a crashed or cancelled run."),
        json_events: bool = typer.Option(False, "--json-events", help="JSON-lines events on stdout."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the outputs (JSON) here."),
        journal: Optional[Path] = typer.Option(None, "--journal", help="The journal file (SQLite)."),
        replan: bool = typer.Option(False, "--replan", help="Re-plan a stale plan.json instead of refusing it."),
        optimize: Optional[Objective] = typer.Option(None, "--optimize",
                                                     help="Override the objective when planning."),
        concurrency: int = typer.Option(64, "--concurrency", min=1, help="Tasks and calls at once."),
        seed: int = typer.Option(0, "--seed", help="Seed for the runtime's own choices (judge order, jitter)."),
        sim_seed: Optional[int] = typer.Option(None, "--sim-seed", help="sim: the seed."),
        sim_latency_scale: Optional[float] = typer.Option(None, "--sim-latency-scale", min=0.0,
                                                          help="sim: latency multiplier (0: none)."),
        sim_failure_rate: Optional[float] = typer.Option(None, "--sim-failure-rate", min=0.0, max=1.0,
                                                         help="sim: probability that a call fails."),
        sim_failure_kinds: Optional[str] = typer.Option(None, "--sim-failure-kinds",
                                                        help="sim: e.g. transient,rate_limited,timeout."),
        rows: Optional[Path] = typer.Option(None, "--inputs", metavar="ROWS.jsonl|csv",
                                            help="A batch: run once per row (results: -o results.jsonl)."),
        executor: str = typer.Option("local", "--executor", help="local, or ray (model calls on a Ray cluster)."),
        ray_address: Optional[str] = typer.Option(None, "--ray-address", metavar="HOST:PORT",
                                                  help="--executor ray: the cluster (default: RAY_ADDRESS, or a local one)."),
    ) -> None:
        from bmad.cli.batch_cmd import resumes_batch, run_batch

        check_output(output)  # before any work: a run's outputs must not be lost at the end
        if rows is not None or resumes_batch(resume, _journal_path(journal)):
            try:
                run_batch(dict(locals()))  # every option of `bmad run`, applied to each row
            except OSError as exc:  # writing -o failed after the check (the rows are journaled)
                raise _fail(f"can't write {exc.filename or output}: {exc.strerror or exc}",
                            "the batch's runs are journaled: `bmad runs` lists them, "
                            "`bmad export RUN_ID` exports one")
        from bmad.runtime.events import JsonLinesSink, LiveDisplay
        from bmad.runtime.otel_export import start_tracing
        from bmad.runtime.executors.local import RunRefused, RunRequest, execute_plan, load_run_plan
        from bmad.runtime.interpreter import RunConfig
        from bmad.runtime.journal import Journal, JournalError

        if provider not in (None, "sim", "real"):
            raise _fail(f"unknown --provider `{provider}`", "use `sim` (simulated) or `real`")
        if strategy not in (None, "sequential", "parallel", "adaptive", "collaborative"):
            raise _fail(f"unknown --strategy `{strategy}`",
                        "use sequential, parallel, adaptive or collaborative")
        override = _budget(budget)
        journal_path = _journal_path(journal)
        retention = _retention_rules()
        if resume is not None and file is None:
            try:
                j = Journal(journal_path, readonly=True)
            except JournalError as exc:
                raise _fail(str(exc), "pass --journal PATH where the run was journaled")
            row = j.run(resume)
            plan = load_run_plan(j, resume) if row else None
            options = json.loads(row["options_json"] or "{}") if row else {}
            missing = j.missing_run(resume) if plan is None else None
            j.db.close()
            if missing is not None:
                raise _fail(missing, "list runs with `bmad runs`")
            resume = row["id"]
            # A resumed run keeps its provider mode and simulation settings unless overridden.
            provider = provider or options.get("provider_mode")
            sim_seed = sim_seed if sim_seed is not None else options.get("sim_seed")
            sim_latency_scale = sim_latency_scale if sim_latency_scale is not None \
                else options.get("sim_latency_scale")
            sim_failure_rate = sim_failure_rate if sim_failure_rate is not None \
                else options.get("sim_failure_rate")
            strategy = strategy or options.get("strategy")
        elif file is None:
            raise _fail("missing FILE", "bmad run FILE|plan.json (see bmad run --help)")
        else:
            plan = _load_plan(file, replan=replan, provider=provider, budget=override,
                              optimize=optimize)
        values, texts = _parse_inputs(inputs, input_file)
        if resume is not None and (values or texts):
            raise _fail("--input can't change a resumed run's inputs", "start a new run instead")

        sinks: list[Any] = []
        live = None
        if json_events:
            sinks.append(JsonLinesSink(sys.stdout))
        elif sys.stderr.isatty():
            live = LiveDisplay(override.usd if override and override.usd is not None else plan.budget.usd)
            sinks.append(live)
        stop_tracing = start_tracing(sinks, sys.stderr.write)
        kinds = tuple(k.strip() for k in sim_failure_kinds.split(",")) if sim_failure_kinds else None
        request = RunRequest(
            inputs=values, input_texts=texts,
            config=RunConfig(strategy=strategy, concurrency=concurrency, seed=seed, cache=cache or explain_cache),
            budget_usd=override.usd if override else None,
            budget_tokens=override.tokens if override else None,
            budget_time_s=override.time_s if override else None,
            provider_mode=provider if provider != "real" else None,
            sim_seed=sim_seed, sim_latency_scale=sim_latency_scale, sim_failure_rate=sim_failure_rate,
            sim_failure_kinds=kinds, journal_path=journal_path, resume=resume,
            explain_cache=explain_cache, sinks=sinks, handle_signals=True, source=file)
        try:
            if executor == "ray":
                from bmad.runtime.executors.ray import execute_plan_on_ray

                outcome = execute_plan_on_ray(plan, request, address=ray_address)
            elif executor == "local":
                outcome = execute_plan(plan, request)
            else:
                raise RunRefused(f"unknown --executor `{executor}`", "BMAD-E326", "use local or ray")
            if stop_tracing is not None:
                stop_tracing()  # export what is left before the process ends
        except RunRefused as exc:
            if live is not None:
                live.close()
            raise _fail(f"[{exc.code}] {exc.message}", exc.hint)
        except ValueError as exc:  # e.g. an unknown sim failure kind
            raise _fail(str(exc))
        except JournalError as exc:  # a corrupt, foreign or newer journal file
            if live is not None:
                live.close()
            raise _fail(str(exc), "pass --journal PATH to use another journal file")
        if explain_cache:
            for d in outcome.cache_decisions:
                sys.stderr.write(f"cache {d['task']}: {d['reason']}\n")
        outputs_json = json.dumps(outcome.outputs, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        write_error = None
        if output is not None:
            try:
                output.write_text(outputs_json, encoding="utf-8")
            except OSError as exc:  # checked up front, but the disk can still refuse
                write_error = exc.strerror or str(exc)
        if (output is None or write_error) and not json_events:
            sys.stdout.write(outputs_json)  # the outputs are never lost to a bad -o
        spent = f"${outcome.spent_usd:.6f}"
        sys.stderr.write(f"run {outcome.run_id}: {outcome.status}, spent {spent}, "
                         f"{outcome.tokens} tokens, {outcome.elapsed_s:.2f}s"
                         + (f"\n  {outcome.error}" if outcome.error else "") + "\n")
        if outcome.status == "cancelled":
            sys.stderr.write(f"  = help: continue with `bmad run --resume {outcome.run_id}`\n")
        for note in _fallback_notes(journal_path, outcome.run_id, plan):
            sys.stderr.write(note + "\n")
        if retention.after_run:
            from bmad.cli.runs_prune import prune_after_run

            prune_after_run(journal_path, retention, frozenset({outcome.run_id}))
        if write_error:
            raise _fail(f"can't write {output}: {write_error}",
                        ("the outputs are printed above; " if not json_events else "")
                        + f"the run is journaled: `bmad export {outcome.run_id}`",
                        code=outcome.exit_code or EXIT_INVALID)
        raise typer.Exit(outcome.exit_code)

    @app.command("export", help="Export a journaled run: json (run, tasks, calls, events, outputs), yaml, "
                                "detailed (a text report) or html (a self-contained report page).",
                 epilog=examples(("bmad export 20260101-120000-ab12cd --format json", "the whole run"),
                                 ("bmad export 20260101-120000-ab12cd --format html -o run.html",
                                  "a report to open in a browser: timeline, costs, routing, votes"),
                                 ("bmad export 20260101 --format detailed", "the report as text (a unique id prefix is enough)")))
    def export_command(
        run_id: str = typer.Argument(..., metavar="RUN_ID"),
        fmt: str = typer.Option("json", "--format", "-f", help="json, yaml, detailed or html."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", help="Write the export here."),
        journal: Optional[Path] = typer.Option(None, "--journal", help="The journal file."),
    ) -> None:
        from bmad.cli.run_export import write_export

        write_export(run_id, fmt, output, journal)

    @app.command("runs", help="List journaled runs, newest first.")
    def runs_command(
        limit: int = typer.Option(20, "--limit", "-n", min=1),
        status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status."),
        as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
        journal: Optional[Path] = typer.Option(None, "--journal", help="The journal file."),
        prune: bool = typer.Option(False, "--prune", help="Delete old runs (never running ones): "
                                   "by --older-than/--keep, else bmad.toml's [journal] keep_days/keep_runs."),
        older_than: Optional[float] = typer.Option(None, "--older-than", metavar="DAYS", min=0.0,
                                                   help="With --prune: runs started more than DAYS ago."),
        keep: Optional[int] = typer.Option(None, "--keep", metavar="N", min=0,
                                           help="With --prune: keep only the N newest runs."),
    ) -> None:
        path = _existing_journal_path(journal, as_json)
        if path is None:
            return
        if prune or older_than is not None or keep is not None:
            from bmad.cli.runs_prune import prune_journal

            prune_journal(path, older_than, keep, as_json)
            return
        j = _open_journal(journal)
        rows = j.runs(limit=limit, status=status)
        j.db.close()
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
            return
        _print_runs(rows)

    @app.command("show", help="Summarise one run: status, spend, each task, the outputs.")
    def show_command(
        run_id: str = typer.Argument(..., metavar="RUN_ID"),
        journal: Optional[Path] = typer.Option(None, "--journal", help="The journal file."),
    ) -> None:
        from bmad.runtime.export import export_run

        j = _open_journal(journal)
        data = export_run(j, run_id)
        missing = j.missing_run(run_id) if data is None else None
        j.db.close()
        if missing is not None:
            raise _fail(missing, "list runs with `bmad runs`", code=1)
        _print_show(data)

    from bmad.cli.workflow_cmd import workflow_app

    @workflow_app.command("status", help="Show runs in progress (from the journal, from any process).")
    def status_command(
        active: bool = typer.Option(False, "--active", help="Only runs still running."),
        show_progress: bool = typer.Option(False, "--show-progress", help="A progress bar per run."),
        as_json: bool = typer.Option(False, "--json", help="JSON instead of text."),
        journal: Optional[Path] = typer.Option(None, "--journal", help="The journal file."),
    ) -> None:
        from bmad.runtime.journal import process_alive

        path = _existing_journal_path(journal, as_json)
        if path is None:
            return
        j = _open_journal(journal)
        rows = j.runs(limit=200, status="running" if active else None)
        j.db.close()
        if active:
            rows = [r for r in rows if r["pid"] and process_alive(r["pid"])]
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
            return
        if not rows:
            sys.stdout.write("no active runs\n" if active else "no runs\n")
            return
        for r in rows:
            total, done = r["total_tasks"] or 0, r["done_tasks"] or 0
            line = f"{r['id']}  {r['workflow']}  {r['status']}  {done}/{total} tasks"
            if show_progress and total:
                width = 30
                filled = int(width * min(done, total) / total)
                line += f"  [{'#' * filled}{'.' * (width - filled)}] {100 * done // total}%"
            budget = f" / ${r['budget_usd']:.4f}" if r["budget_usd"] is not None else ""
            line += f"  spent ${r['spent_usd'] or 0:.4f}{budget}"
            if r["updated_at"]:
                line += f"  (updated {max(0.0, time.time() - r['updated_at']):.0f}s ago)"
            sys.stdout.write(line + "\n")


def _print_runs(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from bmad.runtime.export import iso

    if not rows:
        sys.stdout.write("no runs\n")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("run", "workflow", "status", "tasks", "spent", "budget", "started"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["workflow"] or "", r["status"] or "",
                      f"{r['done_tasks'] or 0}/{r['total_tasks'] or 0}",
                      f"${r['spent_usd'] or 0:.4f}",
                      f"${r['budget_usd']:.2f}" if r["budget_usd"] is not None else "-",
                      (iso(r["started_at"]) or "")[:19])
    Console(file=sys.stdout, width=160, highlight=False).print(table)


def _print_show(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    # answers and errors are untrusted: markup escaped, nothing the terminal acts on
    from bmad.runtime.report_text import safe_markup as escape

    run = data["run"]
    console = Console(file=sys.stdout, width=160, highlight=False)
    budget = f" of ${run['budget_usd']:.4f}" if run["budget_usd"] is not None else ""
    console.print(f"[bold]{run['id']}[/] {run['workflow']}: {run['status']}, spent "
                  f"${run['spent_usd'] or 0:.6f}{budget}, {run['tokens'] or 0} tokens")
    console.print(f"started {run['started_at']}, finished {run['finished_at'] or '-'}")
    if run["error"]:
        console.print(f"[red]{escape(run['error'])}[/]")
    table = Table(box=None, pad_edge=False)
    for col in ("task", "status", "model", "attempts", "cost", "quality"):
        table.add_column(col)
    for t in data["tasks"]:
        table.add_row(escape(t["id"]), t["status"], escape(t["model"] or "-"), str(t["attempts"] or 0),
                      f"${t['cost_usd']:.6f}" if t["cost_usd"] is not None else "?",
                      f"{t['quality']:.2f}" if t["quality"] is not None else "-")
    console.print(table)
    calls = data["calls"]
    failed = sum(1 for c in calls if c["status"] != "ok")
    cached = sum(1 for c in calls if c["cached"])
    console.print(f"{len(calls)} calls ({failed} failed, {cached} reused)")
    for name, value in data["outputs"].items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        console.print(f"[bold]output {escape(name)}[/]: "
                      + escape(f"{text[:300]}{'...' if len(text) > 300 else ''}"))
