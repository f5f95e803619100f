"""`bmad new`: scaffold a project from a standard-library pattern (`bmad new --list` shows them)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from bmad.cli.common import examples

NEW_HELP = ("Scaffold a project from a standard pattern: a workflow that uses it, models.bmad, "
            "bmad.toml (key variables) and a README.")
NEW_EPILOG = examples(
    ("bmad new --list", "the templates: one per standard pattern"),
    ("bmad new --template code-review review", "a project in ./review using std.code_review"),
    ("bmad new -t decision-support --set criteria='cost, risk' --name pick_db db",
     "give inputs defaults and name the workflow"),
)
EXIT_USAGE = 2


def register(app: typer.Typer) -> None:
    @app.command("new", help=NEW_HELP, epilog=NEW_EPILOG)
    def new(
        directory: Optional[Path] = typer.Argument(None, metavar="[DIR]",
                                                   help="Where to write it (default: ./TEMPLATE)."),
        template: Optional[str] = typer.Option(None, "--template", "-t", metavar="NAME",
                                               help="The pattern to start from (see --list)."),
        list_: bool = typer.Option(False, "--list", help="List the templates and exit."),
        name: Optional[str] = typer.Option(None, "--name", help="The workflow's name (default: my_PATTERN)."),
        values: list[str] = typer.Option([], "--set", metavar="INPUT=VALUE",
                                         help="A default for one of the pattern's inputs (repeatable)."),
        budget: str = typer.Option("1.00", "--budget", metavar="USD", help="The per-run budget in dollars."),
        force: bool = typer.Option(False, "--force", help="Write into a folder that already has files."),
    ) -> None:
        from bmad.cli.scaffold import ScaffoldError, list_templates, scaffold

        if list_:
            templates = list_templates()
            width = max(len(t.name) for t in templates)
            for t in templates:
                typer.echo(f"{t.name:<{width}}  {t.about}")
            typer.echo(f"\n{len(templates)} templates; `bmad new --template NAME [DIR]` writes one.")
            return
        if not template:
            typer.echo("error: name a template: `bmad new --template NAME [DIR]`", err=True)
            typer.echo("  = help: `bmad new --list` shows the templates", err=True)
            raise typer.Exit(EXIT_USAGE)
        parsed: dict[str, str] = {}
        for pair in values:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                typer.echo(f"error: --set {pair}: expected INPUT=VALUE", err=True)
                raise typer.Exit(EXIT_USAGE)
            parsed[key.strip()] = value
        try:
            amount = float(budget.lstrip("$"))
        except ValueError:
            amount = -1.0
        if amount < 0:
            typer.echo(f"error: --budget {budget}: expected an amount in dollars like 1.50", err=True)
            raise typer.Exit(EXIT_USAGE)
        try:
            target = directory or Path(template.strip().lower().replace("_", "-"))
            written = scaffold(template, target, name=name, values=parsed, force=force,
                               budget=f"{amount:.2f}")
        except ScaffoldError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        except OSError as exc:
            typer.echo(f"error: cannot write {exc.filename or ''}: {exc.strerror or exc}", err=True)
            raise typer.Exit(EXIT_USAGE) from None
        for path in written:
            typer.echo(f"wrote {path}")
        typer.echo(f"next: cd {target} && bmad check workflow.bmad && bmad plan workflow.bmad --provider sim",
                   file=sys.stdout)
