"""The `bmad` command line: wires the compiler, runtime and language server together."""

from __future__ import annotations

import typer

import bmad

app = typer.Typer(
    name="bmad",
    help="bmad: a declarative workflow language for LLM work. Check, plan, then run within budget.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bmad {bmad.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """bmad: compile .bmad workflows into a reviewable plan, then run it within budget."""


def run() -> None:
    app()
