"""`bmad plan FILE`: route models, estimate cost, check the budget, and show or seal the plan."""

from __future__ import annotations

import enum
import math
import sys
from pathlib import Path
from typing import Any

import typer

from bmad.cli.common import (EXIT_ERRORS, EXIT_OK, EXIT_USAGE, check_output, examples,
                             UserFileError, exit_code, fail_usage, file_problem, parse_input_options,
                             print_diagnostics, read_user_json, write_problem)
from bmad.compiler.ir import STRATEGIES
from bmad.compiler.literals import TOKEN_BUDGET_CEILING

HELP = """Plan a workflow before spending anything: which model does each task and why, what it
costs (expected and worst case), what runs in parallel, the critical path, and whether the budget
holds. Nothing is sent to any model.

Models whose provider key variable is unset (or whose local extra is missing) are unavailable and
shown so; `--provider sim` plans as if every model were available. `-o plan.json` writes the
sealed plan that `bmad run plan.json` executes exactly.
Exit status: 0 planned (warnings allowed), 1 errors (e.g. an impossible budget), 2 usage errors
(and a bmad.toml that holds a key: BMAD-E400).
"""

EPILOG = examples(
    ("bmad plan examples/code_review.bmad", "the plan as tables, per parallel stage"),
    ("bmad plan --provider sim -o plan.json review.bmad", "seal a plan with every model available"),
    ("bmad plan --format mermaid review.bmad", "the task graph with model and cost on each node"),
    ("bmad plan --format html -o plan.html review.bmad", "the graph and cost table as a page for a browser"),
    ("bmad plan --diff old.json review.bmad", "what changed in routing and cost since old.json"),
    ("bmad plan --optimize quality --budget '$2' review.bmad", "override the file's objective and budget"),
    ("bmad plan --passes", "list the optimizer passes in order"),
)


class PlanFormat(str, enum.Enum):
    text = "text"
    json = "json"
    yaml = "yaml"
    mermaid = "mermaid"
    dot = "dot"
    html = "html"


# What an `-o FILE` extension means (`bmad plan -o FILE` without --format writes that format;
# with a --format that names another one, the pair is refused). Other extensions (.txt, none)
# take --format as given, text by default.
EXTENSION_FORMATS = {
    ".json": PlanFormat.json, ".yaml": PlanFormat.yaml, ".yml": PlanFormat.yaml,
    ".mmd": PlanFormat.mermaid, ".mermaid": PlanFormat.mermaid, ".dot": PlanFormat.dot,
    ".gv": PlanFormat.dot, ".html": PlanFormat.html, ".htm": PlanFormat.html,
}


def output_format_for(requested: "PlanFormat | None", out: Path | None) -> "PlanFormat":
    """The format to write: --format, else what -o's extension means, else text. A --format that
    contradicts the extension (`--format mermaid -o plan.json`: a .json file is the sealed plan)
    is a usage error, so no file ever holds another format than its name says."""
    implied = EXTENSION_FORMATS.get(out.suffix.lower()) if out is not None else None
    if requested is None:
        return implied or PlanFormat.text
    if implied is not None and implied is not requested:
        suggestion = next(ext for ext, f in EXTENSION_FORMATS.items() if f is requested) \
            if requested is not PlanFormat.text else ".txt"
        meaning = "is the sealed plan (json)" if implied is PlanFormat.json \
            else f"holds the plan as {implied.value}"
        raise fail_usage(f"--format {requested.value} doesn't match -o {out}: a {out.suffix} file "
                         f"{meaning}",
                         f"drop --format (the extension chooses), or name the file "
                         f"{out.with_suffix(suggestion).name}")
    return requested


class Objective(str, enum.Enum):
    cost = "cost"
    latency = "latency"
    quality = "quality"
    balanced = "balanced"


class Scheduling(str, enum.Enum):
    priority_first = "priority_first"
    cost_optimized = "cost_optimized"
    latency_optimized = "latency_optimized"
    balanced = "balanced"


# The ceiling a file's token budget has (BMAD-E193): far inside SQLite's INTEGER, which the journal
# stores it as (counts are parsed through a float, so not 2**63-1 itself).
MAX_BUDGET_TOKENS = TOKEN_BUDGET_CEILING


def parse_budget(text: str):
    """`$2`, `2.5` (dollars), `400k tokens`, `10m` (wall time) -> an ir.Budget, or a message.

    A budget is a finite amount of zero or more, and at most MAX_BUDGET_TOKENS tokens. Dollars are
    one number with or without `$` in front, read the same either way (`$1e3` is `1e3`, `$-1` is
    `-1`: refused as negative); a sign in front of a count or a duration is refused the same way."""
    from bmad.compiler import ir
    from bmad.compiler.literals import parse_count, parse_duration

    value = text.strip()
    if value.endswith("tokens"):
        amount = value.removesuffix("tokens").strip()
        if amount.startswith("-") and isinstance(parse_count(amount[1:].strip()), int):
            return "a budget can't be negative"
        count = parse_count(amount)
        if not isinstance(count, int):
            return count.message
        if count > MAX_BUDGET_TOKENS:
            return f"a token budget can be at most {MAX_BUDGET_TOKENS:,} tokens"
        return ir.Budget(tokens=count)
    dollars = value.startswith("$")
    number = value[1:].strip() if dollars else value
    try:
        usd = float(number)  # a bare number is dollars too
    except ValueError:
        if dollars:
            return (f"`{value}` is not an amount of money: write a number after `$`, "
                    "e.g. $2.50")
    else:
        return _amount_problem(usd) or ir.Budget(usd=usd)
    if value.startswith("-") and isinstance(parse_duration(value[1:].strip()), float):
        return "a budget can't be negative"
    duration = parse_duration(value)
    if not isinstance(duration, float):
        return duration.message
    if duration == 0:  # every call would be cut off: as the language and the YAML front end say
        return "a time budget must be longer than zero"
    return _amount_problem(duration) or ir.Budget(time_s=duration)


def _amount_problem(amount: float) -> str | None:
    """Why a parsed amount can't be a budget: negative, or not finite (inf, nan, 400 digits)."""
    if not math.isfinite(amount):
        return "the amount is not a finite number"
    if amount < 0:
        return "a budget can't be negative"
    return None


def load_history(enabled: bool, *, simulated: bool = False, journal: Path | None = None):
    """The journal's per-model history (`journal`, else the default one), when the runtime
    provides it and a journal exists.

    `simulated`: for a `--provider sim` plan, the history of simulated runs only; a real plan
    reads only real calls (a sim run must never steer the routing of real models).
    """
    if not enabled:
        return None
    try:
        from bmad.runtime import history as runtime_history  # the runtime owns the journal
    except ImportError:
        return None
    loader = getattr(runtime_history, "load_model_history", None)
    if loader is None:
        return None
    try:
        return loader(journal, simulated=simulated)
    except Exception:  # noqa: BLE001 - a broken journal must not stop planning; plan without it
        return None


def known_inputs(program, values: dict[str, Any] | None, texts: dict[str, str] | None) -> dict[str, Any]:
    """The entry workflow's input values the planner sizes the plan by (`PassContext.inputs`):
    `--input-file` values and `--input` texts parsed by their declared type, as `bmad run` binds
    them (runtime/inputs.py). Names the workflow doesn't declare, and texts that don't parse, are
    left out: `bmad run` refuses them itself (BMAD-E304)."""
    from bmad.runtime.inputs import InputError, parse_text

    name = program.entry or (program.workflows[-1].name if program.workflows else None)
    workflow = program.workflow(name) if name else None
    if workflow is None:
        return {}
    values, texts = values or {}, texts or {}
    known: dict[str, Any] = {}
    for decl in workflow.inputs:
        if decl.name in texts:
            try:
                known[decl.name] = parse_text(texts[decl.name], decl.type)
            except InputError:
                continue
        elif decl.name in values:
            known[decl.name] = values[decl.name]
    return known


def compile_and_plan(path: str, *, provider: str | None = None, optimize: str | None = None,
                     budget: Any = None, min_quality: float | None = None, history: bool = True,
                     scheduling: str = "priority_first", inputs: dict[str, Any] | None = None,
                     input_texts: dict[str, str] | None = None, strategy: str | None = None,
                     journal: Path | None = None):
    """(plan or None, diagnostics, sources, program): what `bmad plan` and the workflow views use.
    `inputs` / `input_texts`: known input values (`--input-file` / `--input`), which size the
    plan; `strategy`: the run's strategy when it overrides the file's (`bmad run --strategy`)."""
    from bmad.compiler.compile import compile_file
    from bmad.compiler.diagnostics import sort_diagnostics
    from bmad.compiler.passes import make_context, plan_program

    result = compile_file(path)
    diagnostics = list(result.diagnostics)
    if not result.ok:
        return None, sort_diagnostics(diagnostics), result.sources, result.program
    program = result.program
    if not program.workflows:
        return None, sort_diagnostics(diagnostics), result.sources, program
    # Static feasibility first (every model available): an impossible budget is an error whatever
    # keys this machine happens to have. With the plan's history: the expected cost it checks
    # counts the observed failure rate, so the floor BMAD-E210 names is the plan's too.
    measured = load_history(history, simulated=provider == "sim", journal=journal)
    overrides = dict(objective=optimize, budget=budget, min_quality=min_quality, scheduling=scheduling,
                     strategy=strategy, inputs=known_inputs(program, inputs, input_texts), history=measured)
    _static_plan, static = plan_program(program, make_context(program, environment={}, provider_mode="sim",
                                                              **overrides))
    static_errors = [d for d in static if d.is_error]
    if static_errors:
        return None, sort_diagnostics(diagnostics + static_errors), result.sources, program
    context = make_context(program, provider_mode=provider, **overrides)
    plan, plan_diagnostics = plan_program(program, context)
    return plan, sort_diagnostics(diagnostics + plan_diagnostics), result.sources, program


def _catalog_text(program) -> str:
    from bmad.compiler.catalog import build_catalog

    lines = ["No workflow to plan; the models this file declares:"]
    for e in build_catalog(program):
        price = ("price ?" if not e.priced
                 else f"${e.price_input_per_m:g}/${e.price_output_per_m:g} per 1M")
        state = "available" if e.available else f"unavailable ({e.unavailable_reason})"
        skills = ", ".join(f"{k} {v:.2f}" for k, v in sorted(e.skills.items()))
        lines.append(f"  {e.name:<16} {e.provider:<12} {price:<24} {state}; {skills}")
    return "\n".join(lines) + "\n"


def _render(plan, output_format: PlanFormat) -> str:
    from bmad.compiler import plan_render

    if output_format is PlanFormat.html:
        from bmad.compiler.plan_html import render_plan_html

        return render_plan_html(plan)
    if output_format is PlanFormat.json:
        return plan_render.render_json(plan)  # the sealed plan `bmad run plan.json` executes
    return plan_render.render(plan, output_format.value)


def register(app: typer.Typer) -> None:
    @app.command("plan", help=HELP, epilog=EPILOG)
    def plan_command(
        file: str = typer.Argument(None, metavar="FILE", show_default=False,
                                   help="A workflow file: .bmad, .yaml or .yml."),
        output_format: PlanFormat = typer.Option(None, "--format", "-f", show_default=False,
                                                 help="text (the default), json (the sealed plan), yaml, mermaid, dot or html (a page with the graph and cost table). With -o, the file's extension chooses when --format is not given."),
        out: Path = typer.Option(None, "-o", "--output", help="Write the plan here, in the format its extension names: .json (the sealed plan), .yaml/.yml, .mmd, .dot, .html; other names: --format, else text. A --format that contradicts the extension is refused."),
        passes: bool = typer.Option(False, "--passes", help="List the optimizer passes and exit."),
        diff: Path = typer.Option(None, "--diff", metavar="OLD.json", help="Show what changed since an older plan."),
        optimize: Objective = typer.Option(None, "--optimize", help="Override the objective: cost, latency, quality, balanced."),
        budget: str = typer.Option(None, "--budget", metavar="$X", help="Override the budget: $2.50, 400k tokens, 10m."),
        min_quality: float = typer.Option(None, "--min-quality", min=0.0, max=1.0, help="Raise every quality floor to this."),
        history: bool = typer.Option(True, "--history/--no-history", help="Use measured quality/latency from past runs."),
        journal: Path = typer.Option(None, "--journal", help="The journal whose history the plan uses (default: bmad run's default journal); `bmad run --journal J` plans with J's."),
        provider: str = typer.Option(None, "--provider", help="`sim`: plan as if every model were available (simulated)."),
        scheduling: Scheduling = typer.Option(Scheduling.priority_first, "--scheduling",
                                              help="Ready-queue order: priority_first, cost_optimized, latency_optimized, balanced."),
        inputs: list[str] = typer.Option([], "--input", "-i", metavar="NAME=VALUE",
                                         help="A known input value (repeatable; @FILE reads a file): it sizes the plan (a `for each` over it, the prompts that quote it)."),
        input_file: Path = typer.Option(None, "--input-file", help="A JSON object of known input values, as `bmad run --input-file` takes."),
        strategy: str = typer.Option(None, "--strategy", help="Plan for this strategy instead of the file's: sequential, parallel, adaptive or collaborative (as `bmad run --strategy` runs)."),
    ) -> None:
        from bmad.compiler import plan_render

        if passes:
            from bmad.compiler.passes import describe_passes

            sys.stdout.write(plan_render.render_passes(describe_passes()))
            return
        if file is None:
            raise fail_usage("missing FILE", "bmad plan FILE (see bmad plan --help)")
        if provider not in (None, "sim"):
            raise fail_usage(f"unknown --provider `{provider}`", "the planner knows `sim` (every model simulated)")
        if strategy not in (None, *STRATEGIES):
            raise fail_usage(f"unknown --strategy `{strategy}`", "use " + ", ".join(STRATEGIES))
        problem = file_problem(file)
        if problem is not None:
            print_diagnostics([problem], {})
            raise typer.Exit(exit_code([problem], usage_error=True))
        check_output(out)
        requested = output_format
        output_format = output_format_for(requested, out)
        override = None
        if budget is not None:
            override = parse_budget(budget)
            if isinstance(override, str):
                raise fail_usage(f"--budget {budget}: {override}", "write $2.50, 400k tokens or 10m")
        old = None
        if diff is not None:
            try:
                old = read_user_json(diff)
            except UserFileError as exc:
                raise fail_usage(f"--diff {diff}: can't read a plan from it ({exc.reason})",
                                 "pass a file written by `bmad plan -o plan.json`")
            if not isinstance(old, dict) or "tasks" not in old:
                raise fail_usage(f"--diff {diff}: can't read a plan from it (not a plan)",
                                 "pass a file written by `bmad plan -o plan.json`")
        values, texts = parse_input_options(inputs, input_file)  # as `bmad run` reads them
        plan, diagnostics, sources, program = compile_and_plan(
            file, provider=provider, optimize=optimize.value if optimize else None, budget=override,
            min_quality=min_quality, history=history, scheduling=scheduling.value,
            inputs=values, input_texts=texts, journal=journal, strategy=strategy)
        print_diagnostics([d for d in diagnostics if d.is_error or plan is None], sources)
        if plan is None:
            if program is not None and not program.workflows and not any(d.is_error for d in diagnostics):
                sys.stdout.write(_catalog_text(program))
                return
            from bmad.cli.check_cmd import config_refused

            if config_refused(diagnostics):  # bmad.toml holds a key (BMAD-E400): refused
                raise typer.Exit(EXIT_USAGE)
            raise typer.Exit(exit_code(diagnostics) or EXIT_ERRORS)
        if old is not None:
            sys.stdout.write(plan_render.render_diff(old, plan))
        else:
            text = _render(plan, output_format)
            if out is not None:
                try:
                    out.write_text(text, encoding="utf-8")
                except OSError as exc:  # checked up front, but the disk can still refuse
                    raise fail_usage(f"can't write {out}: {write_problem(exc)}",
                                     "name a file in a folder you can write to")
                if requested is None or requested is PlanFormat.text:
                    # `bmad plan -o plan.json FILE` shows the plan it sealed, as before
                    sys.stdout.write(text if output_format is PlanFormat.text
                                     else _render(plan, PlanFormat.text))
                what = ("the sealed plan" if output_format is PlanFormat.json
                        else "the plan" if output_format is PlanFormat.text
                        else f"the plan as {output_format.value}")
                sys.stderr.write(f"wrote {what} to {out}\n")
            else:
                sys.stdout.write(text)
        raise typer.Exit(EXIT_OK)
