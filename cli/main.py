"""The `bmad` command line: wires the compiler, runtime and language server together.

How commands are added (one line per command group):

    1. Write `cli/<group>_cmd.py` with a function `register(app: typer.Typer) -> None` that adds
       the group's commands to `app`: `@app.command("run", help=..., epilog=...)`, or for a group
       with subcommands `app.add_typer(sub_app, name="workflow", help=...)`.
    2. Add the module's name to `COMMAND_MODULES` below, one name per line.

Keep imports of heavy modules (the compiler pipeline, the runtime, pygls) inside the command
functions, so `bmad --help` and `bmad --version` start fast. Share rendering, exit codes and help
examples through `bmad.cli.common` (`print_diagnostics`, `exit_code`, `examples`, `fail_usage`).
Exit codes: 0 ok (warnings allowed), 1 errors in the user's files, 2 usage or internal errors,
130 interrupted (Ctrl-C). Unexpected exceptions never show a traceback (unless BMAD_DEBUG=1):
`run()` turns them into a one-line internal error, and a journal that is locked, damaged or on a
full disk (BMAD-E343 to E345, from any command) into its diagnostic.
"""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import sys
import threading
import traceback


def _interrupted_while_loading(signum, frame) -> None:  # noqa: ANN001 - a signal handler
    """Ctrl-C while the command line loads (typer and the command modules: the first ~0.2 s):
    nothing has run yet, so the process just ends, as an interrupted command does."""
    try:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


# Only while this module loads, and only over Python's own Ctrl-C handler (not one a host
# process set, nor an ignored SIGINT): `run()` and any importer get the usual KeyboardInterrupt.
_LOADING_HANDLER = (threading.current_thread() is threading.main_thread()
                    and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
if _LOADING_HANDLER:
    signal.signal(signal.SIGINT, _interrupted_while_loading)

import typer  # noqa: E402 - after the Ctrl-C handler above

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

if _LOADING_HANDLER and signal.getsignal(signal.SIGINT) is _interrupted_while_loading:
    signal.signal(signal.SIGINT, signal.default_int_handler)  # loaded: Ctrl-C is KeyboardInterrupt again


def _file_identity(fd: int | str) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd) if isinstance(fd, int) else os.stat(fd)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _reader_went_away(stdout_before: tuple[int, int] | None) -> bool:
    """Whether output stopped because its reader closed the pipe (`bmad models | head -1`).

    Neither library lets the BrokenPipeError through. Typer's click exits 1 after swapping stdout
    for a `PacifyFlushWrapper` (known by name: typer vendors its own click, `typer._click`); rich
    exits 1 after pointing file descriptor 1 at /dev/null. Either mark is how we know."""
    if type(sys.stdout).__name__ == "PacifyFlushWrapper":
        return True
    devnull = _file_identity(os.devnull)
    return devnull is not None and stdout_before != devnull and _file_identity(1) == devnull


def run(argv: list[str] | None = None) -> None:
    """The console entry point: any unexpected exception becomes a one-line internal error, exit 2.

    A reader that stops early (`bmad runs | head -1`) is not an error: bmad stops writing and
    exits 0 without a word, as `cat` or `ls` piped into `head` do."""
    stdout_before = _file_identity(1)
    _quiet_unraisable_interrupts()
    try:
        app(args=argv, prog_name="bmad")
    except SystemExit as exc:
        from bmad.cli.common import release_stdout, stdout_released

        if not stdout_released() and _reader_went_away(stdout_before):
            sys.exit(0)  # cut short by the closed pipe: the libraries' exit 1 is no failure of ours
        try:
            sys.stdout.flush()  # what is still buffered, while a closed pipe can still be told apart
        except BrokenPipeError:
            release_stdout()  # the command did its work: its own exit status stands
        except (OSError, ValueError):
            pass
        raise exc from None
    except BrokenPipeError:  # a write to a closed pipe that reached us without click
        from bmad.cli.common import release_stdout

        release_stdout()
        sys.exit(0)
    except KeyboardInterrupt:
        _exit_interrupted()
    except BaseExceptionGroup as group:  # a task group's failure (anyio), Ctrl-C within one too
        import asyncio

        if group.split((KeyboardInterrupt, asyncio.CancelledError))[1] is None:
            _exit_interrupted()
        _unexpected(group)
    except Exception as exc:  # noqa: BLE001 - the last line of defence, by design
        _unexpected(exc)
    finally:
        _quiet_shutdown()


def _quiet_unraisable_interrupts() -> None:
    """A Ctrl-C that lands where Python can't raise it (a weakref callback, a `__del__`, an exit
    callback: a second Ctrl-C while a stopped run winds down) is not reported as "Exception
    ignored in ... KeyboardInterrupt": the first one is already being acted on."""
    previous = sys.unraisablehook
    if getattr(previous, "_bmad_quiet", False):
        return

    def hook(unraisable) -> None:  # noqa: ANN001 - sys.UnraisableHookArgs
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            return
        previous(unraisable)

    hook._bmad_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _exit_interrupted() -> None:
    sys.stderr.write("interrupted\n")
    sys.exit(130)


def _quiet_shutdown() -> None:
    """The command is over: a Ctrl-C from here on (while Python joins threads and runs its
    exit callbacks) ends the process at once with 130, not with "Exception ignored in atexit
    callback ... KeyboardInterrupt" or a death by signal."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # a host process's own handler (or an ignored SIGINT) is left as it is

    def interrupted(signum, frame) -> None:  # noqa: ANN001 - a signal handler
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(130)

    signal.signal(signal.SIGINT, interrupted)
    _SHUTDOWN_HANDLER.append(interrupted)


_SHUTDOWN_HANDLER: list = []  # the handler `_quiet_shutdown` installed


@atexit.register  # registered while loading: runs after the exit callbacks registered later
def _ignore_interrupts_while_finalizing() -> None:
    """Python resets a handler set in Python code to the default (death by SIGINT, exit -2) as
    it finalizes; an ignored SIGINT it leaves alone. The command's exit status stands."""
    if _SHUTDOWN_HANDLER and signal.getsignal(signal.SIGINT) is _SHUTDOWN_HANDLER[-1]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _unexpected(exc: BaseException) -> None:
    """An exception no command handled: a journal problem is told as its diagnostic (the file is
    locked, damaged, on a full disk: not a bug), anything else as a one-line internal error."""
    if os.environ.get("BMAD_DEBUG") == "1":
        traceback.print_exception(exc)
    journal = sys.modules.get("bmad.runtime.journal")  # no journal opened, no journal problem
    problem = journal.journal_problem(exc) if journal is not None else None
    if problem is not None:
        sys.stderr.write(f"error: {problem}\n  = help: {problem.full_hint()}\n")
        sys.exit(2)
    if journal is not None and isinstance(exc, journal.JournalError):  # one no command caught
        sys.stderr.write(f"error: {exc}\n  = help: pass --journal PATH to use another journal file\n")
        sys.exit(2)
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]  # a task group's failure: the error itself says more
    detail = (str(exc).strip().splitlines() or [""])[0]
    sys.stderr.write(
        f"bmad: internal error: {type(exc).__name__}: {detail}\n"
        "  = help: this is a bug in bmad, not in your files; please report it with the command "
        "you ran (set BMAD_DEBUG=1 to see the traceback)\n")
    sys.exit(2)
