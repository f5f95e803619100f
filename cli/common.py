"""What the command modules share: exit codes, where output goes, and how diagnostics are shown.

Text diagnostics go to stderr (colored only when stderr is a terminal and NO_COLOR is unset);
`--format json` output goes to stdout, so it can be piped. Exit codes are the same for every
command: 0 clean (warnings allowed), 1 errors in the user's files, 2 usage errors (a missing file, a
bad option) and internal errors.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Iterable

import typer

from bmad.compiler.diagnostics import Diagnostic, error, render_all_text, render_json
from bmad.compiler.ir import Span

EXIT_OK = 0
EXIT_ERRORS = 1
EXIT_USAGE = 2

# A file named on the command line that can't be read: the loader's code for the same situation
# (compiler/load.py reports an unreadable main file or import as BMAD-E053).
E_UNREADABLE_FILE = "BMAD-E053"


class OutputFormat(str, enum.Enum):
    text = "text"
    json = "json"


def color_enabled(stream=None) -> bool:
    stream = stream or sys.stderr
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return bool(getattr(stream, "isatty", lambda: False)())


def print_diagnostics(diagnostics: Iterable[Diagnostic], sources: dict[str, str],
                      output: OutputFormat = OutputFormat.text) -> None:
    items = list(diagnostics)
    if output is OutputFormat.json:
        sys.stdout.write(render_json(items) + "\n")
    elif items:
        sys.stderr.write(render_all_text(items, sources, color=color_enabled(sys.stderr)) + "\n")


def exit_code(diagnostics: Iterable[Diagnostic], *, usage_error: bool = False) -> int:
    if usage_error:
        return EXIT_USAGE
    return EXIT_ERRORS if any(d.is_error for d in diagnostics) else EXIT_OK


def unreadable_file(path: str, reason: str) -> Diagnostic:
    return error(E_UNREADABLE_FILE, Span(path, 1, 1, 1, 1, 0, 0), f"cannot read `{path}`: {reason}",
                 "check the path; files are named relative to the current directory")


def _not_utf8(path: str, exc: UnicodeDecodeError) -> Diagnostic:
    """Where the first byte that isn't UTF-8 sits, as a line and column (`bmad fmt` rewrites files
    only when it can read them exactly; `bmad check` reads on, with a warning)."""
    before = bytes(exc.object[:exc.start])
    line = before.count(b"\n") + 1
    column = len(before) - (before.rfind(b"\n") + 1) + 1
    return error(E_UNREADABLE_FILE, Span(path, line, column, line, column + 1, exc.start, exc.start + 1),
                 f"cannot read `{path}`: it is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})",
                 "save the file as UTF-8; `bmad check` reads it anyway and marks the bytes it replaced")


def read_source(path: str) -> tuple[str | None, Diagnostic | None]:
    """A file's text, or a diagnostic saying why it can't be read (never an exception)."""
    p = Path(path)
    try:
        if p.is_dir():
            return None, unreadable_file(path, "it is a directory")
        return p.read_text(encoding="utf-8"), None
    except FileNotFoundError:
        return None, unreadable_file(path, "no such file")
    except UnicodeDecodeError as exc:
        return None, _not_utf8(path, exc)
    except OSError as exc:
        return None, unreadable_file(path, exc.strerror or str(exc))


def read_stdin_source(name: str = "<stdin>") -> tuple[str | None, Diagnostic | None]:
    """Standard input as text, read as strictly as a file is: bytes that aren't UTF-8 are
    reported where they sit instead of being replaced (which `fmt -` would then write out)."""
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, _not_utf8(name, exc)


def file_problem(path: str) -> Diagnostic | None:
    """Why a path named on the command line can't be compiled, if it can't (checked up front)."""
    p = Path(path)
    if not p.exists():
        return unreadable_file(path, "no such file")
    if p.is_dir():
        return unreadable_file(path, "it is a directory")
    if not os.access(p, os.R_OK):
        return unreadable_file(path, "permission denied")
    return None


def output_problem(path: Path) -> str | None:
    """Why `-o PATH` can't be written, checked before any work is done (so no result is lost)."""
    if path.is_dir():
        return "it is a directory"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        return f"the folder {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a folder"
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        return "permission denied"
    return None


def check_output(path: Path | None, option: str = "-o") -> None:
    """Refuse an unwritable `-o PATH` up front with a usage error naming it."""
    if path is None:
        return
    problem = output_problem(path)
    if problem is not None:
        raise fail_usage(f"{option} {path}: can't write there: {problem}",
                         "name a file in an existing folder (create the folder first)")


def examples(*lines: tuple[str, str]) -> str:
    """An `Examples` epilog for `--help`: pairs of (command, what it does)."""
    body = "\n".join(f"  [cyan]{cmd}[/cyan]  [dim]# {what}[/dim]" for cmd, what in lines)
    return f"[bold]Examples[/bold]\n\n{body}"


def fail_usage(message: str, hint: str | None = None) -> typer.Exit:
    """Print a one-line usage error (and hint) to stderr; return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"  = help: {hint}", err=True)
    return typer.Exit(EXIT_USAGE)
