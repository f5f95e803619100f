"""`bmad fmt FILE...`: rewrite workflows in the canonical layout, keeping comments."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Callable

import typer

from bmad.cli.common import (EXIT_ERRORS, EXIT_OK, EXIT_USAGE, OutputFormat, examples, fail_usage,
                             print_diagnostics, read_source, read_stdin_source, write_problem)
from bmad.compiler.diagnostics import Diagnostic
from bmad.compiler.source_map import YAML_SUFFIXES  # seed-format workflows: fmt has no layout for them

HELP = """Format .bmad workflow files in place (the canonical layout; comments are kept).

Only .bmad files are formatted: folders are searched for `*.bmad` (YAML files in them are skipped
with a note), and naming a seed-format .yaml/.yml file is a usage error.

With --check nothing is written: the exit status is 1 when a file would change. With --diff the
changes are printed as a unified diff on stdout instead of being written. `-` reads stdin and writes
the formatted text to stdout. Exit status: 0 done (or nothing to change), 1 a file has errors or
would change under --check, 2 usage errors (a file that can't be read or written).
"""

EPILOG = examples(
    ("bmad fmt examples/*.bmad", "format files in place"),
    ("bmad fmt --check .", "fail (exit 1) when a file is not formatted, e.g. in CI"),
    ("bmad fmt --diff flow.bmad", "show what would change, write nothing"),
    ("cat flow.bmad | bmad fmt -", "format stdin to stdout (for editors)"),
)

Formatter = Callable[[str, str], "tuple[str | None, list[Diagnostic]]"]


def load_formatter() -> Formatter | None:
    try:
        from bmad.compiler.format import format_source
    except ImportError:
        return None
    return format_source


def expand_paths(paths: list[str], skipped: list[str] | None = None) -> list[str]:
    """Files as given; directories become the .bmad files under them (sorted). The YAML files in
    those directories, which fmt does not format, are added to `skipped` when it is given."""
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if path != "-" and p.is_dir():
            out.extend(str(f) for f in sorted(p.rglob("*.bmad")) if not _hidden(f.relative_to(p)))
            if skipped is not None:
                skipped.extend(str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in YAML_SUFFIXES
                               and f.is_file() and not _hidden(f.relative_to(p)))
        else:
            out.append(path)
    return out


def is_yaml(path: str) -> bool:
    return path.lower().endswith(YAML_SUFFIXES)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"{path} (original)", tofile=f"{path} (formatted)"))


def register(app: typer.Typer) -> None:
    @app.command("fmt", help=HELP, epilog=EPILOG)
    def fmt(
        files: list[str] = typer.Argument(..., metavar="FILE", show_default=False,
                                          help="Files or folders to format; `-` for stdin."),
        check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if a file would change."),
        diff: bool = typer.Option(False, "--diff", help="Print a unified diff instead of writing."),
    ) -> None:
        format_source = load_formatter()
        if format_source is None:
            raise fail_usage("the formatter is not available in this installation "
                             "(bmad.compiler.format is missing)",
                             "reinstall bmad: `pip install -e .` from a complete checkout")
        named_yaml = [f for f in files if f != "-" and is_yaml(f) and not Path(f).is_dir()]
        if named_yaml:
            raise fail_usage(f"`bmad fmt` formats .bmad files only; {named_yaml[0]} is a YAML "
                             "(seed format) workflow",
                             "leave YAML workflows out of `bmad fmt`; `bmad check FILE.yaml` checks them")
        status = EXIT_OK
        changed: list[str] = []
        skipped: list[str] = []
        paths = expand_paths(files, skipped)
        if skipped:
            count = f"{len(skipped)} YAML file{'s' if len(skipped) != 1 else ''}"
            typer.echo(f"note: skipped {count} (fmt formats .bmad files only): "
                       f"{', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''}", err=True)
        for path in paths:
            if path == "-":
                text, problem = read_stdin_source()
            else:
                text, problem = read_source(path)
            if problem is not None:
                print_diagnostics([problem], {}, OutputFormat.text)
                status = max(status, EXIT_USAGE)
                continue
            name = "<stdin>" if path == "-" else path
            formatted, diagnostics = format_source(text, name)
            if formatted is None or any(d.is_error for d in diagnostics):
                print_diagnostics(diagnostics, {name: text}, OutputFormat.text)
                status = max(status, EXIT_ERRORS)
                continue
            if path == "-" and not (check or diff):
                sys.stdout.write(formatted)
                continue
            if formatted == text:
                continue
            changed.append(name)
            if diff:
                sys.stdout.write(unified_diff(name, text, formatted))
            if check:
                typer.echo(f"would reformat {name}", err=True)
                status = max(status, EXIT_ERRORS)
            elif not diff:
                try:
                    Path(path).write_text(formatted, encoding="utf-8")
                except OSError as exc:  # a read-only file or file system, a full disk
                    typer.echo(f"error: can't write {name}: {write_problem(exc)}", err=True)
                    typer.echo("  = help: make the file writable, or see the change without "
                               f"writing: bmad fmt --diff {name}", err=True)
                    status = max(status, EXIT_USAGE)
                    continue
                typer.echo(f"reformatted {name}", err=True)
        if not changed and status == EXIT_OK and files != ["-"]:
            typer.echo("nothing to reformat", err=True)
        if status != EXIT_OK:
            raise typer.Exit(status)
