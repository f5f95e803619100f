"""`bmad run`, `bmad export`, `bmad runs`, `bmad show` and `bmad workflow status`: the runtime's commands.

`bmad run FILE|plan.json` compiles and plans a workflow (or loads a sealed plan, refusing a stale one
unless --replan), then runs it with the durable interpreter. Exit codes: 0 completed, 1 failed (or
errors in the workflow file, as `bmad check` and `bmad plan` report them), 2 invalid input, a bad
option or a plan.json that is stale or not a sealed plan, 3 budget exhausted, 130 cancelled.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from bmad.cli.common import (UserFileError, check_output, examples, exit_code, fail_usage,
                             parse_input_options, print_diagnostics, read_user_json, release_stdout)
from bmad.cli.plan_cmd import Objective
from bmad.compiler.ir import STRATEGIES

EXIT_INVALID = 2
# What `bmad run` records in runs.status (runtime/executors/local.py, runtime/journal.py):
# `bmad runs --status` takes one of these (or any other status the journal holds).
RUN_STATUSES = ("running", "completed", "failed", "budget_exhausted", "cancelled", "interrupted")
# SQLite's largest INTEGER: a larger `--limit` means "all of them".
MAX_LIMIT = 2**63 - 1

RUN_HELP = """Run a workflow (a .bmad/.yaml file, planned first) or a sealed plan (plan.json).

Every model call is journaled in SQLite (`.bmad/runs.db`, or `--journal`, or `$BMAD_HOME`): a run
that crashed or was cancelled continues with `--resume RUN_ID` without re-running completed tasks
or paying twice for a call. The budget is a hard cap: no call starts that could break it.
Exit status: 0 completed, 1 failed or errors in the file (as check and plan), 2 usage errors
(invalid input, a bad option, a stale or unreadable plan.json), 3 budget exhausted, 130 cancelled.
"""

RUN_EPILOG = examples(
    ("bmad run review.bmad --input diff=@change.patch", "plan and run; @FILE reads a value from a file"),
    ("bmad run plan.json --input-file inputs.json -o out.json", "run a sealed plan exactly"),
    ("bmad run review.bmad --provider sim --sim-seed 7", "every model simulated (no keys, no cost)"),
    ("bmad run review.bmad --budget '$0.20' --json-events", "a hard budget, JSON-lines events on stdout"),
    ("bmad run --resume 20260101-120000-ab12cd", "continue a crashed or cancelled run"),
    ("bmad run review.bmad --cache --explain-cache", "reuse unchanged task results across runs"),
)


def _write_stdout(text: str) -> None:
    """The run's outputs on stdout; a reader that closed the pipe early (`| head`) doesn't change
    the run's exit status (it is journaled: `bmad export RUN_ID` has the outputs)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        release_stdout()


class _ReaderMayLeave:
    """`--json-events` piped into a reader that stops early (`| head -1`): the run goes on,
    journaled as ever, and its events stop (said once on stderr) instead of failing the run."""

    def __init__(self, sink):
        self.sink = sink
        self.gone = False

    def handle(self, event) -> None:
        if not self.gone:
            self._guard(self.sink.handle, event)

    def close(self) -> None:
        if not self.gone:
            self._guard(self.sink.close)

    def _guard(self, method, *args) -> None:
        try:
            method(*args)
        except BrokenPipeError:
            self.gone = True
            release_stdout()
            sys.stderr.write("note: the reader of --json-events went away; the run goes on "
                             "(`bmad show RUN_ID` has it all)\n")


_fail = fail_usage  # the short name run_cmd and batch_cmd use


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
    from bmad.compiler.settings import (E_CONFIG, SettingsError, config_hint, providers_problem,
                                        read_settings)
    from bmad.runtime.retention import RetentionError, configured_retention

    try:
        settings = read_settings()
    except SettingsError as exc:  # the file itself, whatever table the mistake is in
        raise _fail(str(exc), "fix bmad.toml where the message points (TOML syntax)")
    problem = providers_problem(settings.data, settings.path) if settings.path else None
    if problem is not None:  # a key in bmad.toml (BMAD-E400): refused before anything runs,
        raise _fail(f"[{E_CONFIG}] {problem}", config_hint(problem))  # sealed plans included
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


def _journaled_run(journal_path: Path, run_id: str):
    """A journaled run's row and its own plan, read once for a resume ((None, None) when the
    journal can't say: the run itself then reports why)."""
    from bmad.runtime.executors.local import load_run_plan
    from bmad.runtime.journal import Journal, JournalError

    try:
        j = Journal(journal_path, readonly=True)
    except JournalError:
        return None, None
    try:
        row = j.run(run_id)
        return row, (load_run_plan(j, row["id"]) if row is not None else None)
    finally:
        j.db.close()


def _plan_if_unchanged(plan, recorded):
    """`--resume RUN FILE`: the run's own plan (`recorded`) when FILE (and all it imports) is byte
    for byte what the run was planned from. Re-planning it now would differ only by what the
    journal has learnt since (the run's own calls included), or by prices loaded since with `bmad
    models --prices` (a run keeps the prices it started with, as a resume without FILE does);
    neither must refuse the resume. An edited file still gets the plan mismatch (BMAD-E303)."""
    from bmad.compiler.prices import override_path

    if recorded is None or recorded.plan_hash == plan.plan_hash:
        return plan
    prices = str(override_path())
    files = lambda p: {(f.path, f.sha256) for f in p.program.files if f.path != prices}  # noqa: E731
    return recorded if files(recorded) == files(plan) else plan


def _check_resume_budget(row, budget) -> None:
    """A resumed run keeps what it spent: a `--budget` below that can't be kept to, and would be
    reported as a cap broken by calls in flight. Refused before anything runs or is recorded."""
    if row is None or budget is None:
        return
    spent, tokens = row["spent_usd"] or 0.0, row["tokens"] or 0
    if budget.usd is not None and budget.usd < spent:
        raise _fail(f"--budget ${budget.usd:g} is below what run {row['id']} has already spent "
                    f"(${spent:.6f})", f"resume with a budget above ${spent:.6f}, or without "
                    "--budget to keep the run's own")
    if budget.tokens is not None and budget.tokens < tokens:
        raise _fail(f"--budget {budget.tokens:,} tokens is below what run {row['id']} has already "
                    f"used ({tokens:,} tokens)", f"resume with a budget above {tokens:,} tokens, or "
                    "without --budget to keep the run's own")


def _budget(text: Optional[str]):
    if text is None:
        return None
    from bmad.cli.plan_cmd import parse_budget

    parsed = parse_budget(text)
    if isinstance(parsed, str):
        raise _fail(f"--budget {text}: {parsed}", "write $2.50, 400k tokens or 10m")
    return parsed


def _run_notes(journal_path: Path, run_id: str, plan, limit: int = 5) -> list[str]:
    """One line per task a fallback answered instead of its planned model, per task that
    completed below its quality bar, and per `for each` task that lost items under `on_error
    continue`, so a summary that says `completed` doesn't hide that another
    model (maybe one the file never named) did the work, or that the work missed its bar."""
    from bmad.runtime.journal import Journal, JournalError

    planned = {t.id: t.model for t in plan.tasks if t.model and not t.participants}
    try:
        journal = Journal(journal_path, readonly=True)
    except JournalError:
        return []
    try:
        rows = journal.task_rows(run_id)
        events = journal.event_rows(run_id)
    finally:
        journal.db.close()
    # Why the planned model was passed over: the first escalation away from it says (it failed,
    # or its answer scored below the bar).
    why: dict[tuple[str, str], str] = {}
    below: dict[str, list[dict]] = {}
    for event in events:
        task = str(event.get("task") or "").split("[", 1)[0]
        if event["event"] == "task_escalated" and not str(event.get("reason")).startswith(
                "the quality gate's judge"):  # a judge handing over, not the answering model
            why.setdefault((task, str(event.get("from_model"))), str(event.get("reason") or ""))
        elif event["event"] == "quality_below_bar":
            below.setdefault(task, []).append(event)
    answered: dict[tuple[str, str, str], int] = {}
    for row in rows:
        task = str(row["task_id"]).split("[", 1)[0]  # `t[3]`: an item of `for each`
        want = planned.get(task)
        if want and row["status"] == "completed" and row["model"] and row["model"] != want:
            key = (task, want, row["model"])
            answered[key] = answered.get(key, 0) + 1
    notes = [f"  note: task {task} was answered by {got}, " + _passed_over(want, why.get((task, want)))
             + (f" ({n} items)" if n > 1 else "") for (task, want, got), n in answered.items()]
    for task, found in below.items():
        first = found[0]
        quality = first.get("quality")
        bar = first.get("bar")
        score = "no readable score" if quality is None else f"quality {quality:.2f}"
        notes.append(f"  note: task {task} completed below its quality bar: {score}"
                     + (f" < {bar:.2f}" if bar is not None else ", no learned bar yet")
                     + f" ({first.get('reason')})"
                     + (f" ({len(found)} items)" if len(found) > 1 else ""))
    for row in rows:  # `for each` items lost under `on_error continue`: the row says which
        if row["status"] == "completed" and row["error"] and "[" not in str(row["task_id"]):
            notes.append(f"  note: task {row['task_id']} completed, but {row['error'].split(':', 1)[0]}")
    if len(notes) > limit:
        notes = notes[:limit] + [f"  note: and {len(notes) - limit} more; see `bmad show {run_id}`"]
    return notes


def _passed_over(model: str, reason: str | None) -> str:
    """Why a task's planned model did not answer, worded by what happened."""
    if reason and reason.startswith(("quality ", "no readable score")):  # the gate sent it on
        return f"escalated from {model}: {reason}"
    return f"a fallback, as {model} failed"


def _load_plan(file: str, *, replan: bool, provider: Optional[str], budget, optimize,
               journal: Optional[Path] = None,
               inputs: Optional[dict[str, Any]] = None, input_texts: Optional[dict[str, str]] = None,
               strategy: Optional[str] = None):
    """A sealed plan from FILE: plan a workflow file (sized by the run's known inputs, for the
    run's strategy), or load (and verify) a plan JSON."""
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
            plan = Plan.from_json(read_user_json(file))
        except UserFileError as exc:
            raise _fail(f"{file} is not a sealed plan: {exc.reason}",
                        "write one with `bmad plan FILE -o plan.json`")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise _fail(f"{file} is not a sealed plan: {exc}",
                        "write one with `bmad plan FILE -o plan.json`")
        problems = verify_plan(plan, plan_file=file)
        if not problems:
            # An option that re-plans would run something other than the plan that was reviewed.
            for option, wanted, sealed, what in (
                    ("--strategy", strategy, plan.strategy, "strategy"),
                    ("--optimize", optimize, plan.objective, "objective")):
                if wanted is not None and wanted != sealed:
                    raise _fail(f"{file} was planned for {what} {sealed}, not {wanted}: its models, "
                                f"panels and costs are that {what}'s",
                                f"seal a plan for it (`bmad plan SOURCE {option} {wanted} -o "
                                f"plan.json`), or run this one without {option}")
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
                                                           optimize=optimize, inputs=inputs,
                                                           input_texts=input_texts, strategy=strategy,
                                                           journal=journal)
    if plan is None:
        # As `bmad plan` does: every diagnostic (warnings too, e.g. W050 for bytes that aren't
        # UTF-8), and the same exit status: 1 for errors in the file, 2 for a refused bmad.toml.
        from bmad.cli.check_cmd import config_refused

        print_diagnostics(diagnostics, sources)
        if config_refused(diagnostics):
            raise typer.Exit(EXIT_INVALID)
        if any(d.is_error for d in diagnostics):
            raise typer.Exit(exit_code(diagnostics))
        if program is not None and not program.workflows:
            raise _fail(f"{file} declares no workflow", "run a file with a `workflow { ... }`")
        raise typer.Exit(EXIT_INVALID)
    print_diagnostics([d for d in diagnostics if d.is_error], sources)
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
        from bmad.runtime.batch import BATCH_ID_PREFIX

        if resume is not None and resume.startswith(BATCH_ID_PREFIX) and "." not in resume:
            # a batch's id (not one of its row runs, BATCH_ID.N) that the journal doesn't have
            raise _fail(f"[BMAD-E323] no batch `{resume}` in {_journal_path(journal)}",
                        "list batches with `bmad runs` (row runs are BATCH_ID.N)")
        from bmad.runtime.events import JsonLinesSink, LiveDisplay
        from bmad.runtime.otel_export import start_tracing
        from bmad.runtime.executors.local import (RunRefused, RunRequest, execute_plan, journal_inputs,
                                                  load_run_plan)
        from bmad.runtime.interpreter import RunConfig
        from bmad.runtime.journal import Journal, JournalError

        if provider not in (None, "sim", "real"):
            raise _fail(f"unknown --provider `{provider}`", "use `sim` (simulated) or `real`")
        if strategy not in (None, *STRATEGIES):
            raise _fail(f"unknown --strategy `{strategy}`", "use " + ", ".join(STRATEGIES))
        override = _budget(budget)
        journal_path = _journal_path(journal)
        retention = _retention_rules()
        values, texts = parse_input_options(inputs, input_file)
        if resume is not None and (values or texts):
            raise _fail("--input can't change a resumed run's inputs", "start a new run instead")
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
            if missing is not None:  # as with FILE, where the runtime refuses it
                raise _fail(f"[BMAD-E301] {missing}", "list runs with `bmad runs`")
            _check_resume_budget(row, override)
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
            planned_inputs, row, recorded = values, None, None
            if resume is not None:  # the run's own inputs: the plan it was made from had them too
                row, recorded = _journaled_run(journal_path, resume)
                planned_inputs = journal_inputs(row) if row is not None else {}
                _check_resume_budget(row, override)
            plan = _load_plan(file, replan=replan, provider=provider, budget=override,
                              optimize=optimize, inputs=planned_inputs, input_texts=texts,
                              strategy=strategy, journal=journal_path)
            if resume is not None:
                plan = _plan_if_unchanged(plan, recorded)

        sinks: list[Any] = []
        live = None
        if json_events:
            sinks.append(_ReaderMayLeave(JsonLinesSink(sys.stdout)))
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
            _write_stdout(outputs_json)  # the outputs are never lost to a bad -o
        from bmad.runtime.ledger import spent_text

        spent = spent_text(outcome.spent_usd, outcome.unknown_cost_calls)
        sys.stderr.write(f"run {outcome.run_id}: {outcome.status}, spent {spent}, "
                         f"{outcome.tokens} tokens, {outcome.elapsed_s:.2f}s"
                         + (f"\n  {outcome.error}" if outcome.error else "") + "\n")
        if outcome.status == "cancelled":
            sys.stderr.write(f"  = help: continue with `bmad run --resume {outcome.run_id}`\n")
        for note in _run_notes(journal_path, outcome.run_id, plan):
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

    @app.command("runs", help="List journaled runs, newest first. A run shown `running (process "
                              "gone)` was left running by a process that no longer exists (killed, "
                              "or the machine stopped): continue it with `bmad run --resume RUN_ID`. "
                              "--older-than and --keep only work with --prune, which deletes runs.",
                 epilog=examples(("bmad runs -n 5", "the five newest runs"),
                                 ("bmad runs --status failed --json", "failed runs, as JSON"),
                                 ("bmad runs --prune --keep 100", "delete all but the 100 newest runs")))
    def runs_command(
        limit: int = typer.Option(20, "--limit", "-n", min=1, help="Show at most N runs."),
        status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status: "
                                             + ", ".join(RUN_STATUSES) + "."),
        as_json: bool = typer.Option(False, "--json", help="JSON instead of a table."),
        journal: Optional[Path] = typer.Option(None, "--journal", help="The journal file."),
        prune: bool = typer.Option(False, "--prune", help="Delete old runs (never running ones): "
                                   "by --older-than/--keep, else bmad.toml's \\[journal] keep_days/keep_runs."),
        older_than: Optional[float] = typer.Option(None, "--older-than", metavar="DAYS", min=0.0,
                                                   help="With --prune: runs started more than DAYS ago."),
        keep: Optional[int] = typer.Option(None, "--keep", metavar="N", min=0,
                                           help="With --prune: keep only the N newest runs."),
    ) -> None:
        if not prune and (older_than is not None or keep is not None):
            # Deleting is never implied: `--keep 2` read as "show 2" must not cost journal history.
            given = ([f"--older-than {older_than:g}"] if older_than is not None else []) \
                + ([f"--keep {keep}"] if keep is not None else [])
            raise fail_usage(f"{' and '.join(g.split()[0] for g in given)} only work"
                             f"{'s' if len(given) == 1 else ''} with --prune, which deletes runs; "
                             "nothing was deleted",
                             f"to delete runs: bmad runs --prune {' '.join(given)}; "
                             "to list fewer runs: bmad runs --limit N")
        if status is not None and prune:
            raise fail_usage("--status only filters the list; --prune deletes by age and count",
                             "run them separately")
        path = _existing_journal_path(journal, as_json)
        if path is None:
            return
        if prune:
            from bmad.cli.runs_prune import prune_journal

            prune_journal(path, older_than, keep, as_json)
            return
        j = _open_journal(journal)
        try:
            if status is not None:
                _check_status(j, status)
            rows = j.runs(limit=min(limit, MAX_LIMIT), status=status)
        finally:
            j.db.close()
        _mark_gone(rows)
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
        from bmad.runtime.journal import holder_alive

        path = _existing_journal_path(journal, as_json)
        if path is None:
            return
        j = _open_journal(journal)
        rows = j.runs(limit=200, status="running" if active else None)
        j.db.close()
        if active:
            rows = [r for r in rows if holder_alive(r["pid"], r.get("holder"))]
        _mark_gone(rows)
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
            return
        if not rows:
            sys.stdout.write("no active runs\n" if active else "no runs\n")
            return
        for r in rows:
            total, done = r["total_tasks"] or 0, r["done_tasks"] or 0
            state = "running (process gone)" if r["process_gone"] else r["status"]
            line = f"{r['id']}  {r['workflow']}  {state}  {done}/{total} tasks"
            if show_progress and total:
                width = 30
                filled = int(width * min(done, total) / total)
                line += f"  [{'#' * filled}{'.' * (width - filled)}] {100 * done // total}%"
            budget = f" / ${r['budget_usd']:.4f}" if r["budget_usd"] is not None else ""
            line += f"  spent ${r['spent_usd'] or 0:.4f}{budget}"
            if r["updated_at"]:
                line += f"  (updated {max(0.0, time.time() - r['updated_at']):.0f}s ago)"
            sys.stdout.write(line + "\n")


def _check_status(journal, status: str) -> None:
    """Refuse a `--status` no run can have (a typo would otherwise list "no runs", exit 0)."""
    if status in RUN_STATUSES:
        return
    held = {r[0] for r in journal.db.execute("SELECT DISTINCT status FROM runs") if r[0]}
    if status in held:  # a status this bmad doesn't know, written by another version
        return
    from difflib import get_close_matches

    known = sorted(set(RUN_STATUSES) | held)
    close = get_close_matches(status, known, n=1)
    raise fail_usage(f"--status {status}: no run has that status"
                     + (f"; did you mean `{close[0]}`?" if close else ""),
                     "a run's status is one of " + ", ".join(known))


def _mark_gone(rows: list[dict[str, Any]]) -> None:
    """`process_gone` on each row: journaled as running, but the process that ran it no longer
    exists (SIGKILL, a crash, a reboot), as `bmad workflow status --active` tells them apart. Such a
    run continues with `bmad run --resume RUN_ID`; the journal marks it `interrupted` when a run next
    opens it for writing."""
    from bmad.runtime.journal import holder_alive

    for r in rows:
        holder = r.pop("holder", None)  # who holds it (pid, boot, PID namespace): not printed
        r["process_gone"] = bool(r["status"] == "running" and r["pid"]
                                 and not holder_alive(r["pid"], holder))


def _print_runs(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from bmad.runtime.export import iso

    if not rows:
        sys.stdout.write("no runs\n")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("run", "workflow", "status", "tasks", "spent", "budget", "started"):
        # the status is read whole: "running (process gone)" must not be cut to "running"
        table.add_column(col, no_wrap=col == "status", min_width=len("running (process gone)")
                         if col == "status" else None)
    for r in rows:
        state = "running (process gone)" if r.get("process_gone") else r["status"] or ""
        table.add_row(r["id"], r["workflow"] or "", state,
                      f"{r['done_tasks'] or 0}/{r['total_tasks'] or 0}",
                      # `+?`: calls to unpriced models, whose cost the dollars leave out
                      f"${r['spent_usd'] or 0:.4f}" + ("+?" if r.get("unknown_cost_calls") else ""),
                      f"${r['budget_usd']:.2f}" if r["budget_usd"] is not None else "-",
                      (iso(r["started_at"]) or "")[:19])
    Console(file=sys.stdout, width=160, highlight=False).print(table)
    gone = [r["id"] for r in rows if r.get("process_gone")]
    if gone:
        from bmad.runtime.batch import BATCH_ID_PREFIX

        # a batch's row resumes with its batch, which holds the rows to the batch's budget
        first = gone[0].split(".")[0] if gone[0].startswith(BATCH_ID_PREFIX) else gone[0]
        sys.stderr.write(f"note: {len(gone)} run(s) marked running have no process left "
                         f"(killed or crashed); resume with `bmad run --resume {first}`"
                         + (" (and likewise for the others)" if len(gone) > 1 else "") + "\n")


def _print_show(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    # answers and errors are untrusted: markup escaped, nothing the terminal acts on
    from bmad.runtime.report_text import safe_markup as escape

    run = data["run"]
    console = Console(file=sys.stdout, width=160, highlight=False)
    from bmad.runtime.ledger import spent_text

    budget = f" of ${run['budget_usd']:.4f}" if run["budget_usd"] is not None else ""
    console.print(f"[bold]{run['id']}[/] {run['workflow']}: {run['status']}, spent "
                  f"{spent_text(run['spent_usd'], run.get('unknown_cost_calls') or 0)}{budget}, "
                  f"{run['tokens'] or 0} tokens")
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
