"""`bmad new`: scaffold a project from a standard-library pattern (`bmad new --list` shows them).

`new_project` is the whole command; the seed's `bmad workflow create` calls it too (cli/seed_cmds.py).
`--customize` asks for what the flags would otherwise say (the pattern's inputs, the workflow's
name, the budget, the folder): flags given on the command line answer their question up front.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from bmad.cli.common import EXIT_USAGE, examples
from bmad.cli.scaffold import DEFAULT_BUDGET

NEW_HELP = ("Scaffold a project from a standard pattern: a workflow that uses it, models.bmad, "
            "bmad.toml (key variables) and a README.")
NEW_EPILOG = examples(
    ("bmad new --list", "the templates: one per standard pattern"),
    ("bmad new --template code-review review", "a project in ./review using std.code_review"),
    ("bmad new -t decision-support --set criteria='cost, risk' --name pick_db db",
     "give inputs defaults and name the workflow"),
    ("bmad new -t code-review --customize", "ask for the inputs' defaults, the name, the budget and the folder"),
)


def _usage_error(message: str, hint: str | None = None) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"  = help: {hint}", err=True)
    return typer.Exit(EXIT_USAGE)


BUDGET_PROBLEM = "expected an amount in dollars of at least 0.01, like 1.50"


def _budget_text(budget: str) -> str | None:
    """`1.5`, `$1.50` -> `1.50`; None when it isn't an amount the project can be planned with:
    written in cents, so it must be finite and at least $0.01 (`$0.00` fails `bmad check`)."""
    try:
        amount = float(budget.strip().lstrip("$"))
    except ValueError:
        return None
    text = f"{amount:.2f}"
    return text if math.isfinite(amount) and float(text) >= 0.01 else None


def _ask(question: str, default: str = "") -> str:
    """One answer read from the terminal (or stdin); an empty answer takes the default."""
    try:
        answer = typer.prompt(question, default=default, show_default=bool(default))
    except typer.Abort:  # end of input (or Ctrl-C / Ctrl-D at the terminal)
        raise _usage_error("--customize ran out of answers (stdin closed)",
                           "answer the questions, or give the values as flags: --set INPUT=VALUE, "
                           "--name, --budget and DIR") from None
    return answer.strip()


def _customize(template, directory: Optional[Path], name: Optional[str], values: dict[str, str],
               budget: Optional[str]) -> tuple[Path, str, dict[str, str], str]:
    """Ask for everything the flags left open; each answer is checked, and asked again if it's wrong."""
    from bmad.cli.scaffold import ScaffoldError, check_workflow_name, default_workflow_name, value_text

    typer.echo(f"std.{template.pattern}: {template.about}".rstrip(": "))
    typer.echo("Defaults for the workflow's inputs (Enter keeps the pattern's; a required input left "
               "empty is asked for at run time):")
    for item in template.inputs:
        if item.name in values:
            continue
        shown = "required" if item.default is None else f"default {item.default}"
        while True:
            answer = _ask(f"  {item.name} ({item.type}, {shown})")
            if not answer:
                break
            try:
                value_text(template, item.name, answer)
            except ScaffoldError as exc:
                typer.echo(f"error: {exc}", err=True)
                continue
            values[item.name] = answer
            break
    while name is None:
        try:
            name = check_workflow_name(template, _ask("Workflow name", default_workflow_name(template)))
        except ScaffoldError as exc:
            typer.echo(f"error: {exc}", err=True)
    while budget is None:
        budget = _budget_text(_ask("Budget per run, in dollars", DEFAULT_BUDGET))
        if budget is None:
            typer.echo(f"error: {BUDGET_PROBLEM}", err=True)
    if directory is None:
        directory = Path(_ask("Folder", template.name) or template.name)
    return directory, name, values, budget


def new_project(template_name: Optional[str], directory: Optional[Path], *, list_: bool = False,
                name: Optional[str] = None, values: list[str] = (), budget: Optional[str] = None,
                force: bool = False, customize: bool = False, command: str = "bmad new") -> None:
    """List the templates, or scaffold one (asking for its parameters with `customize`)."""
    from bmad.cli.scaffold import ScaffoldError, find_template, list_templates, scaffold

    if list_:
        templates = list_templates()
        width = max(len(t.name) for t in templates)
        for t in templates:
            typer.echo(f"{t.name:<{width}}  {t.about}")
        typer.echo(f"\n{len(templates)} templates; `{command} --template NAME [DIR]` writes one.")
        return
    if not template_name:
        raise _usage_error(f"missing --template: name a template, `{command} --template NAME [DIR]`",
                           f"e.g. --template code-review; `{command} --list` shows the templates")
    parsed: dict[str, str] = {}
    for pair in values:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _usage_error(f"--set {pair}: expected INPUT=VALUE")
        parsed[key.strip()] = value
    if budget is not None:
        amount = _budget_text(budget)
        if amount is None:
            raise _usage_error(f"--budget {budget}: {BUDGET_PROBLEM}", "e.g. --budget 1.50 or --budget '$0.25'")
        budget = amount
    try:
        template = find_template(template_name)
        if customize:
            directory, name, parsed, budget = _customize(template, directory, name, parsed, budget)
        target = directory or Path(template.name)
        written = scaffold(template.name, target, name=name, values=parsed, force=force,
                           budget=budget or DEFAULT_BUDGET)
    except ScaffoldError as exc:
        raise _usage_error(str(exc)) from None
    except OSError as exc:
        raise _usage_error(f"cannot write {exc.filename or ''}: {exc.strerror or exc}") from None
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"next: cd {target} && bmad check workflow.bmad && bmad plan workflow.bmad --provider sim")


def register(app: typer.Typer) -> None:
    @app.command("new", help=NEW_HELP, epilog=NEW_EPILOG)
    def new(
        directory: Optional[Path] = typer.Argument(None, metavar="[DIR]",
                                                   help="Where to write it (default: ./TEMPLATE)."),
        template: Optional[str] = typer.Option(None, "--template", "-t", metavar="NAME",
                                               help="The pattern to start from (see --list)."),
        list_: bool = typer.Option(False, "--list", help="List the templates and exit."),
        customize: bool = typer.Option(False, "--customize",
                                       help="Ask for the inputs' defaults, the name, the budget and the folder."),
        name: Optional[str] = typer.Option(None, "--name", help="The workflow's name (default: my_PATTERN)."),
        values: list[str] = typer.Option([], "--set", metavar="INPUT=VALUE",
                                         help="A default for one of the pattern's inputs (repeatable)."),
        budget: Optional[str] = typer.Option(None, "--budget", metavar="USD",
                                             help=f"The per-run budget in dollars (default {DEFAULT_BUDGET})."),
        force: bool = typer.Option(False, "--force", help="Write into a folder that already has files."),
    ) -> None:
        new_project(template, directory, list_=list_, name=name, values=values, budget=budget, force=force,
                    customize=customize)
