"""`bmad workflow ...`: the seed's workflow commands. optimize, route and analyze are views of a plan.

`workflow_app` is a typer sub-app: other command modules add their own `bmad workflow X` commands
to it (`from bmad.cli.workflow_cmd import workflow_app`, then `@workflow_app.command("status")`).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from bmad.cli.common import EXIT_ERRORS, examples, exit_code, fail_usage, file_problem, print_diagnostics

workflow_app = typer.Typer(
    name="workflow",
    help="The seed's twelve workflow commands, each mapped onto the short verbs (see docs/cli.md).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

HOT_SPOTS = 5

JOURNAL_HELP = ("The journal whose run history the plan uses (default: bmad run's default journal), "
                "as `bmad plan --journal J`.")


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=140, force_terminal=False, color_system=None, highlight=False), buffer


def _plan_or_exit(file: str, **options):
    from bmad.cli.plan_cmd import compile_and_plan

    problem = file_problem(file)
    if problem is not None:
        print_diagnostics([problem], {})
        raise typer.Exit(exit_code([problem], usage_error=True))
    plan, diagnostics, sources, program = compile_and_plan(file, **options)
    print_diagnostics([d for d in diagnostics if d.is_error], sources)
    if plan is None:
        if program is not None and not program.workflows:
            raise fail_usage(f"{file} declares no workflow", "name a file with a `workflow { ... }`")
        raise typer.Exit(exit_code(diagnostics) or EXIT_ERRORS)
    return plan


@workflow_app.command("optimize", epilog=examples(
    ("bmad workflow optimize --objective cost --maintain-quality 0.8 review.bmad",
     "the cheapest plan that keeps every task's expected quality >= 0.8"),
))
def optimize(
    file: str = typer.Argument(..., metavar="FILE"),
    objective: str = typer.Option("cost", "--objective", help="cost, latency, quality or balanced."),
    maintain_quality: float = typer.Option(None, "--maintain-quality", min=0.0, max=1.0,
                                           help="Keep every task's expected quality at least this."),
    provider: str = typer.Option(None, "--provider", help="`sim`: every model available."),
    history: bool = typer.Option(True, "--history/--no-history"),
    journal: Optional[Path] = typer.Option(None, "--journal", help=JOURNAL_HELP),
) -> None:
    """Re-plan for an objective and compare it with the file's own plan."""
    from bmad.compiler.plan_render import money, render_text

    if objective not in ("cost", "latency", "quality", "balanced"):
        raise fail_usage(f"unknown objective `{objective}`", "use cost, latency, quality or balanced")
    baseline = _plan_or_exit(file, provider=provider, history=history, journal=journal)
    optimized = _plan_or_exit(file, provider=provider, optimize=objective, min_quality=maintain_quality,
                              history=history, journal=journal)
    sys.stdout.write(render_text(optimized))
    console, buffer = _console()
    table = Table(title=f"{objective} objective vs the file's ({baseline.objective})", title_justify="left")
    for column in ("task", "model before", "model after", "exp $ before", "exp $ after", "quality after"):
        table.add_column(column)
    before = {t.id: t for t in baseline.tasks}
    for t in optimized.tasks:
        b = before.get(t.id)
        table.add_row(t.id, ", ".join(b.participants) or (b.model or "-") if b else "-",
                      ", ".join(t.participants) or (t.model or "-"),
                      money(b.estimate.cost_usd_expected) if b else "-", money(t.estimate.cost_usd_expected),
                      "?" if t.expected_quality is None else f"{t.expected_quality:.2f}")
    console.print(table)
    console.print(f"expected {money(baseline.totals.cost_usd_expected)} -> {money(optimized.totals.cost_usd_expected)}, "
                  f"worst {money(baseline.totals.cost_usd_worst)} -> {money(optimized.totals.cost_usd_worst)}, "
                  f"critical path {baseline.totals.latency_s:.1f}s -> {optimized.totals.latency_s:.1f}s")
    sys.stdout.write(buffer.getvalue())


@workflow_app.command("route", epilog=examples(
    ("bmad workflow route --tasks auto --capabilities-aware review.bmad",
     "every task's candidates, what each is expected to cost and score, and the rule that decided"),
))
def route(
    file: str = typer.Argument(..., metavar="FILE"),
    tasks: str = typer.Option("auto", "--tasks", help="`auto` (every task) or task names, comma-separated."),
    capabilities_aware: bool = typer.Option(True, "--capabilities-aware",
                                            help="Route by the tasks' `needs` (always on; accepted as the seed writes it)."),
    provider: str = typer.Option(None, "--provider", help="`sim`: every model available."),
    history: bool = typer.Option(True, "--history/--no-history"),
    journal: Optional[Path] = typer.Option(None, "--journal", help=JOURNAL_HELP),
) -> None:
    """Show how each task was routed: its needs, floor, candidates and the deciding rule."""
    from bmad.compiler.plan_render import money

    plan = _plan_or_exit(file, provider=provider, history=history, journal=journal)
    wanted = None if tasks == "auto" else {t.strip() for t in tasks.split(",") if t.strip()}
    known = {t.id for t in plan.tasks}
    if wanted and not wanted <= known:
        raise fail_usage(f"no task named {', '.join(sorted(wanted - known))}", f"tasks: {', '.join(sorted(known))}")
    program_workflow = plan.program.workflow(plan.workflow)
    console, buffer = _console()
    for t in plan.tasks:
        if wanted and t.id not in wanted:
            continue
        task = program_workflow.task(t.id) if program_workflow else None
        needs = ", ".join(n.name for n in task.needs) if task and task.needs else "none"
        floor = "-" if t.quality_floor is None else f"{t.quality_floor:.2f}"
        chosen = ", ".join(t.participants) or (t.model or f"workflow {t.subworkflow}")
        console.print(f"[bold]{t.id}[/bold]: needs {needs}; floor {floor}; -> {chosen} ({t.route_rule}: {t.route_reason})")
        if not t.candidates:
            continue
        table = Table(show_edge=False)
        for column in ("candidate", "provider", "available", "qualified", "quality", "exp $", "latency", "note"):
            table.add_column(column)
        for c in t.candidates:
            table.add_row(c.model, c.provider, "yes" if c.available else "no", "yes" if c.qualified else "no",
                          "?" if c.expected_quality is None else f"{c.expected_quality:.2f}",
                          money(c.cost_usd_expected), "?" if c.latency_s is None else f"{c.latency_s:.1f}s", c.reason)
        console.print(table)
        if t.fallbacks:
            console.print(f"  fallbacks: {' -> '.join(t.fallbacks)}")
    sys.stdout.write(buffer.getvalue())


@workflow_app.command("analyze", epilog=examples(
    ("bmad workflow analyze --performance --bottlenecks review.bmad",
     "the critical path, where time and money go, and the risks"),
))
def analyze(
    file: str = typer.Argument(..., metavar="FILE"),
    performance: bool = typer.Option(False, "--performance", help="Latency per stage and on the critical path."),
    bottlenecks: bool = typer.Option(False, "--bottlenecks", help="The critical path and the cost hot spots."),
    provider: str = typer.Option(None, "--provider", help="`sim`: every model available."),
    history: bool = typer.Option(True, "--history/--no-history"),
    journal: Optional[Path] = typer.Option(None, "--journal", help=JOURNAL_HELP),
) -> None:
    """Static analysis of a plan (measured figures when the journal has history)."""
    from bmad.compiler.plan_render import money

    plan = _plan_or_exit(file, provider=provider, history=history, journal=journal)
    if not performance and not bottlenecks:
        performance = bottlenecks = True
    by_id = {t.id: t for t in plan.tasks}
    source = "measured (run history)" if plan.history_used else "estimated (model profiles; no run history)"
    console, buffer = _console()
    console.print(f"[bold]Analysis of {plan.workflow}[/bold]: latencies {source}")
    if performance:
        table = Table(title="stages", title_justify="left")
        for column in ("stage", "tasks", "slowest", "latency"):
            table.add_column(column)
        for i, stage in enumerate(plan.entry.stages):
            slowest = max(stage, key=lambda n: by_id[n].estimate.latency_s)
            table.add_row(str(i + 1), ", ".join(stage), slowest, f"{by_id[slowest].estimate.latency_s:.1f}s")
        console.print(table)
        console.print(f"critical path: {plan.totals.latency_s:.1f}s; sum of all task latencies: "
                      f"{sum(t.estimate.latency_s for t in plan.tasks):.1f}s")
    if bottlenecks:
        path = plan.entry.critical_path
        console.print("[bold]critical path[/bold]: " + " -> ".join(
            f"{n} ({by_id[n].estimate.latency_s:.1f}s)" for n in path))
        total = plan.totals.cost_usd_expected
        console.print(f"cost: expected {money(total)}, worst {money(plan.totals.cost_usd_worst)}")
        hot = sorted(plan.tasks, key=lambda t: -(t.estimate.cost_usd_expected or 0.0))[:HOT_SPOTS]
        table = Table(title="cost hot spots", title_justify="left")
        for column in ("task", "model", "exp $", "share", "worst $"):
            table.add_column(column)
        for t in hot:
            share = "?" if not total or t.estimate.cost_usd_expected is None else \
                f"{100 * t.estimate.cost_usd_expected / total:.0f}%"
            table.add_row(t.id, ", ".join(t.participants) or (t.model or f"workflow {t.subworkflow}"),
                          money(t.estimate.cost_usd_expected), share, money(t.estimate.cost_usd_worst))
        console.print(table)
        risks = [n for n in plan.notes if n.kind == "risk"]
        if risks:
            console.print("[bold]risks[/bold]")
            for n in risks:
                console.print(f"  {n.code}: {n.message}")
    sys.stdout.write(buffer.getvalue())


def register(app: typer.Typer) -> None:
    import importlib

    # The seed's other workflow commands live in their own modules and add themselves to workflow_app.
    for module in ("seed_cmds", "monitor_cmd"):
        importlib.import_module(f"bmad.cli.{module}")
    app.add_typer(workflow_app, name="workflow")
