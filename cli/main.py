"""The `bmad` command line: wires the compiler, runtime and language server together.

How commands are added (one line per command group):

    1. Write `cli/<group>_cmd.py` with a function `register(app: typer.Typer) -> None` that adds
       the group's commands to `app`: `@app.command("run", help=..., epilog=...)`, or for a group
       with subcommands `app.add_typer(sub_app, name="workflow", help=...)`.
    2. Add the module's name to `COMMAND_MODULES` below, one name per line.

Keep imports of heavy modules (the compiler pipeline, the runtime, pygls) inside the command
functions, so `bmad --help` and `bmad --version` start fast. Share rendering, exit codes and help
examples through `bmad.cli.common` (`print_diagnostics`, `exit_code`, `examples`, `fail_usage`).
Exit codes: 0 ok (warnings allowed), 1 errors in the user's files, 2 usage or internal errors.
Unexpected exceptions never show a traceback (unless BMAD_DEBUG=1): `run()` turns them into a
one-line internal error.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer

import bmad

# Command groups, in the order `bmad --help` lists them.
COMMAND_MODULES = (
    "check_cmd",
    "fmt_cmd",
    "schema_cmd",
    "lsp_cmd",
    "plan_cmd",
    "workflow_cmd",
    "run_cmd",
    "models_cmd",
    "new_cmd",
)

app = typer.Typer(
    name="bmad",
    help="bmad: a declarative workflow language for LLM work. Check, plan, then run within budget.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,  # run() reports unexpected errors in one line
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bmad {bmad.__version__}")
        raise typer.Exit()


@app.callback(epilog="Run `bmad COMMAND --help` for a command's options and examples. "
                     "Docs: docs/language.md (the language), docs/diagnostics.md (every error code).")
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """bmad: compile .bmad workflows into a reviewable plan, then run it within budget."""


def _register_broken(module: str, exc: BaseException) -> None:
    """A command group that fails to load must not take the others down: it reports when used."""
    name = module.removesuffix("_cmd").replace("_", "-")
    reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"

    @app.command(name, help=f"(failed to load: {reason})", add_help_option=False,
                 context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
    def broken() -> None:
        sys.stderr.write(f"bmad: internal error: the `{name}` commands failed to load: {reason}\n"
                         "  = help: this is a bug in bmad; please report it (BMAD_DEBUG=1 shows the "
                         "traceback)\n")
        if os.environ.get("BMAD_DEBUG") == "1":
            traceback.print_exception(exc)
        raise typer.Exit(2)


for _module in COMMAND_MODULES:
    try:
        importlib.import_module(f"bmad.cli.{_module}").register(app)
    except Exception as _exc:  # noqa: BLE001 - reported when the command is used
        _register_broken(_module, _exc)


def run(argv: list[str] | None = None) -> None:
    """The console entry point: any unexpected exception becomes a one-line internal error, exit 2."""
    try:
        app(args=argv, prog_name="bmad")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
        if os.environ.get("BMAD_DEBUG") == "1":
            traceback.print_exc()
        detail = (str(exc).strip().splitlines() or [""])[0]
        sys.stderr.write(
            f"bmad: internal error: {type(exc).__name__}: {detail}\n"
            "  = help: this is a bug in bmad, not in your files; please report it with the command "
            "you ran (set BMAD_DEBUG=1 to see the traceback)\n")
        sys.exit(2)
