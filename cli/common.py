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
from typing import Any, Iterable

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
    only when it can read them exactly; `bmad check` reads on, with a warning).

    Counted as `bmad check` counts for its BMAD-W050 at the same byte: in the decoded text, after a
    BOM, with `\r\n`, a lone `\r` and `\n` each one line break, and columns in characters."""
    from bmad.compiler.parse import decode_source  # the compiler's own reading of a file's bytes

    before = decode_source(bytes(exc.object[:exc.start]))
    offset = len(before)
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return error(E_UNREADABLE_FILE, Span(path, line, column, line, column + 1, offset, offset + 1),
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


def output_problem(path: Path) -> tuple[str, str] | None:
    """Why `-o PATH` can't be written and what to do about it, checked before any work is done (so
    no result is lost); None when it can be written. Each case has its own hint: a missing folder
    is created, but a folder that exists and refuses writing is not fixed by creating it."""
    if path.is_dir():
        return "it is a directory", "name a file, not a folder"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        return (f"the folder {parent} does not exist",
                f"create the folder first (mkdir -p {parent}), or name a file in an existing folder")
    if not parent.is_dir():
        return f"{parent} is not a folder", "name a file in an existing folder"
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        if _read_only_file_system(target):
            return (f"{parent} is on a read-only file system",
                    "name a file on a writable disk (the current folder, or /tmp)")
        if path.exists():
            return (f"the file {path} is read-only (permission denied)",
                    "make it writable (chmod u+w), or name another file")
        return (f"the folder {parent} exists but isn't writable (permission denied)",
                "name a file in a folder you can write to")
    return None


def _read_only_file_system(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows): report a permission problem
        return False


def write_problem(exc: OSError) -> str:
    """An OSError from writing a file, as a reason a user can act on (no errno jargon)."""
    import errno

    reasons = {errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.ENOSPC: "no space left on the disk",
               errno.EISDIR: "it is a directory", errno.ENOENT: "its folder does not exist"}
    return reasons.get(exc.errno or 0, exc.strerror or str(exc))


def check_output(path: Path | None, option: str = "-o") -> None:
    """Refuse an unwritable `-o PATH` up front with a usage error naming it."""
    if path is None:
        return
    problem = output_problem(path)
    if problem is not None:
        reason, hint = problem
        raise fail_usage(f"{option} {path}: can't write there: {reason}", hint)


class UserFileError(Exception):
    """A file named on the command line can't be read as what it should be. `reason` says why in
    plain words (no errno, no codec jargon): these are mistakes in what was given, never bugs."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def read_user_text(path: Path | str) -> str:
    """A file's text (UTF-8), or `UserFileError` saying why it can't be read: missing, a folder,
    permission, or bytes that aren't UTF-8 (with where the first one sits)."""
    p = Path(path)
    try:
        if p.is_dir():
            raise UserFileError(path, "it is a directory")
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserFileError(path, "no such file") from None
    except UnicodeDecodeError as exc:
        raise UserFileError(path, f"not UTF-8 text (byte {exc.start} is "
                                  f"{exc.object[exc.start]:#04x})") from None
    except OSError as exc:
        raise UserFileError(path, exc.strerror or str(exc)) from None


def read_user_json(path: Path | str) -> Any:
    """A JSON file's value, or `UserFileError` (unreadable, not JSON, or nested too deeply for
    Python's JSON reader)."""
    return parse_user_json(read_user_text(path), path)


def parse_user_json(text: str, path: Path | str) -> Any:
    """The JSON value in a file's text, or `UserFileError`: `runtime.inputs.load_json`, which every
    JSON a user gives goes through, so JSON nested too deeply is a message, not a RecursionError."""
    from bmad.runtime.inputs import JsonTooDeep, load_json

    try:
        return load_json(text)
    except JsonTooDeep as exc:
        raise UserFileError(path, str(exc)) from None
    except ValueError as exc:
        raise UserFileError(path, f"not JSON ({exc})") from None


_stdout_released = False


def release_stdout() -> None:
    """Stdout's reader went away (a closed pipe): point file descriptor 1 at /dev/null, so later
    writes and the interpreter's final flush go nowhere instead of failing again. A command that
    does this on purpose keeps its own exit status (`stdout_released()` tells `main.run`)."""
    global _stdout_released
    _stdout_released = True
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def stdout_released() -> bool:
    return _stdout_released


def examples(*lines: tuple[str, str]) -> str:
    """An `Examples` epilog for `--help`: pairs of (command, what it does)."""
    body = "\n".join(f"  [cyan]{cmd}[/cyan]  [dim]# {what}[/dim]" for cmd, what in lines)
    return f"[bold]Examples[/bold]\n\n{body}"


def fail_usage(message: str, hint: str | None = None, code: int = EXIT_USAGE) -> typer.Exit:
    """Print a one-line error (and hint) to stderr; return the Exit to raise (a usage error, 2,
    unless `code` says otherwise)."""
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"  = help: {hint}", err=True)
    return typer.Exit(code)


def parse_input_options(pairs: list[str], input_file: Path | None) -> tuple[dict[str, Any], dict[str, str]]:
    """`--input NAME=VALUE` (`@FILE` reads a file) and `--input-file F`, as `bmad run` and `bmad plan`
    read them: the file's JSON values, and each `--input`'s text (parsed later by its declared type)."""
    values: dict[str, Any] = {}
    if input_file is not None:
        try:
            data = read_user_json(input_file)
        except UserFileError as exc:
            raise fail_usage(f"--input-file {exc}", "pass a JSON object of input values")
        if not isinstance(data, dict):
            raise fail_usage(f"--input-file {input_file}: not a JSON object", "write {\"name\": value, ...}")
        values.update(data)
    texts: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise fail_usage(f"--input {pair}: expected NAME=VALUE", "e.g. --input topic=bees")
        key, value = pair.split("=", 1)
        if key.strip() in texts:  # two values for one name: which one was meant is a guess
            raise fail_usage(f"--input {key.strip()} is given twice",
                             "pass each input once (a list input takes a JSON list: -i NAME='[...]')")
        if value.startswith("@"):
            try:
                value = read_user_text(value[1:])
            except UserFileError as exc:
                raise fail_usage(f"--input {key}: can't read {exc}",
                                 "@FILE reads a UTF-8 text file; pass binary data another way "
                                 "(e.g. base64-encoded)")
        texts[key.strip()] = value
    return values, texts
