"""Ctrl-C at any moment of a `bmad` process ends it with 130 and at most the word "interrupted":
while the command line loads (before `run()`), inside a task group, where Python can't raise it
(a weakref callback), and while Python shuts down (exit callbacks, finalization). Never a
traceback, never "Exception ignored in ... KeyboardInterrupt"."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# Ctrl-C as a terminal delivers it, whatever the test runner's own SIGINT disposition is.
PRELUDE = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
"""


def python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("BMAD_DEBUG", None)
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
                          capture_output=True, text=True, env=env, timeout=120)


def assert_quiet(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert "Exception ignored" not in result.stderr, result.stderr
    assert "KeyboardInterrupt" not in result.stderr, result.stderr


def test_ctrl_c_while_the_command_line_loads():
    """The console script imports `bmad.cli.main` (typer, every command module: ~0.2 s) before
    `run()` can catch anything: a Ctrl-C then printed a KeyboardInterrupt traceback."""
    result = python("""
        import builtins
        real_import = builtins.__import__
        def import_then_ctrl_c(name, *args, **kwargs):
            if name == "typer" and not getattr(import_then_ctrl_c, "sent", False):
                import_then_ctrl_c.sent = True
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while typer is being imported
            return real_import(name, *args, **kwargs)
        builtins.__import__ = import_then_ctrl_c
        from bmad.cli.main import run
        run(["--version"])
    """)
    assert_quiet(result, 130)
    assert result.stderr == "interrupted\n"
    assert result.stdout == ""


def test_once_loaded_ctrl_c_is_a_keyboard_interrupt_again():
    """The loading handler is only for loading: an importer of `bmad.cli.main` (a test, a tool)
    keeps Python's own Ctrl-C."""
    result = python("""
        import bmad.cli.main
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


def test_ctrl_c_inside_a_task_group_is_an_interrupt():
    result = python("""
        import bmad.cli.main as main
        @main.app.command("boom")
        def boom():
            raise BaseExceptionGroup("unhandled errors in a TaskGroup", [KeyboardInterrupt()])
        main.run(["boom"])
    """)
    assert_quiet(result, 130)
    assert result.stderr == "interrupted\n"


def test_ctrl_c_python_cannot_raise_is_not_printed():
    """A second Ctrl-C landing in a weakref callback (a stopped run winding down) was printed as
    "Exception ignored in: ... KeyboardInterrupt"."""
    result = python("""
        import weakref
        import bmad.cli.main as main
        class Thing:
            pass
        def callback(ref):
            raise KeyboardInterrupt
        @main.app.command("wind-down")
        def wind_down():
            thing = Thing()
            ref = weakref.ref(thing, callback)
            del thing  # the callback runs now, and can't raise
            print("done")
        main.run(["wind-down"])
    """)
    assert_quiet(result, 0)
    assert result.stdout == "done\n"


def test_ctrl_c_while_python_runs_its_exit_callbacks():
    """Ctrl-C pressed again while the process ends (threads joined, exit callbacks run) printed
    "Exception ignored in atexit callback ... KeyboardInterrupt"."""
    result = python("""
        import atexit, time
        from bmad.cli.main import run
        def joining_workers():  # registered after bmad's: runs first
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
            print("not reached", flush=True)
        atexit.register(joining_workers)
        run(["--version"])
    """)
    assert_quiet(result, 130)
    assert "not reached" not in result.stdout


def test_ctrl_c_after_the_exit_callbacks_leaves_the_exit_status():
    """From bmad's last exit callback on, Ctrl-C is ignored: Python would otherwise reset its
    handler as it finalizes, and the process would die by SIGINT (exit -2)."""
    result = python("""
        import atexit
        def late():  # registered before bmad's: runs after them
            os.kill(os.getpid(), signal.SIGINT)
        atexit.register(late)
        from bmad.cli.main import run
        run(["--version"])
    """)
    assert_quiet(result, 0)
    assert result.stdout.startswith("bmad ")
