"""The command line's frame: --version, --help with examples, `bmad schema`, `bmad fmt`, the error guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from bmad.cli.main import COMMAND_MODULES

REPO_ROOT = Path(__file__).resolve().parents[2]


def bmad(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "120", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True,
                          input=stdin, env=environment, cwd=cwd, timeout=120)


def python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_version():
    result = bmad("--version")
    assert result.returncode == 0
    import bmad as package
    assert result.stdout.strip() == f"bmad {package.__version__}"


def test_no_arguments_shows_help():
    result = bmad()
    assert "Usage" in result.stdout + result.stderr
    assert result.returncode in (0, 2)


def test_top_level_help_lists_every_registered_command():
    result = bmad("--help")
    assert result.returncode == 0
    for module in COMMAND_MODULES:
        command = module.removesuffix("_cmd")
        assert command in result.stdout


@pytest.mark.parametrize("command", ["check", "fmt", "schema"])
def test_every_command_has_help_with_examples(command: str):
    result = bmad(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Examples" in result.stdout and f"bmad {command}" in result.stdout
    assert bmad(command, "-h").stdout == result.stdout


def test_schema_ir_prints_the_shipped_schema():
    result = bmad("schema", "ir")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$ref"] == "#/$defs/Program"
    assert result.stdout == (REPO_ROOT / "compiler" / "schema" / "ir.v1.json").read_text()


def test_schema_lists_what_is_shipped():
    result = bmad("schema")
    assert result.returncode == 0
    names = {line.split("\t")[0] for line in result.stdout.splitlines()}
    shipped = {p.name.split(".")[0] for p in (REPO_ROOT / "compiler" / "schema").glob("*.v*.json")}
    assert names == shipped and "ir" in names


def test_unknown_schema_is_a_usage_error():
    result = bmad("schema", "nope")
    assert result.returncode == 2
    assert "unknown schema `nope`" in result.stderr and "ir" in result.stderr
    assert bmad("schema", "ir", "--version", "99").returncode == 2


def test_unexpected_exceptions_become_one_line_internal_errors():
    code = """
        import bmad.cli.main as main
        @main.app.command("boom")
        def boom():
            raise RuntimeError("kaboom\\nsecond line")
        main.run(["boom"])
    """
    result = python(code, env={"BMAD_DEBUG": "0"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0] == "bmad: internal error: RuntimeError: kaboom"
    assert "report" in result.stderr
    debug = python(code, env={"BMAD_DEBUG": "1"})
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_fmt_without_a_formatter_says_so(tmp_path: Path):
    flow = tmp_path / "a.bmad"
    flow.write_text("workflow w {\n}\n")
    code = f"""
        import sys
        sys.modules["bmad.compiler.format"] = None  # as if the module were missing
        import bmad.cli.main as main
        main.run(["fmt", {str(flow)!r}])
    """
    result = python(code)
    assert result.returncode == 2
    assert "formatter is not available" in result.stderr and "Traceback" not in result.stderr


def test_fmt_check_diff_write_and_stdin(tmp_path: Path, spec_dir: Path):
    from bmad.compiler.format import format_source

    source = (spec_dir / "hello.bmad").read_text()
    formatted, _ = format_source(source, "hello.bmad")
    assert formatted is not None
    messy = formatted.replace("\n  task", "\n      task", 1)
    assert messy != formatted
    flow = tmp_path / "hello.bmad"
    flow.write_text(messy)
    check = bmad("fmt", "--check", str(flow))
    assert check.returncode == 1 and "would reformat" in check.stderr
    diff = bmad("fmt", "--diff", str(flow))
    assert diff.returncode == 0 and diff.stdout.startswith("---") and flow.read_text() == messy
    assert "-      task greet {" in diff.stdout and "+  task greet {" in diff.stdout
    write = bmad("fmt", str(flow))
    assert write.returncode == 0 and "reformatted" in write.stderr
    assert flow.read_text() == formatted
    assert bmad("fmt", "--check", str(flow)).returncode == 0
    piped = bmad("fmt", "-", stdin=messy)
    assert piped.returncode == 0 and piped.stdout == formatted


def test_fmt_stdin_that_is_not_utf8_is_reported_not_replaced():
    # Replacing the bad byte with U+FFFD and printing the result would lose it for an editor
    # that writes stdout back to the file.
    piped = subprocess.run([sys.executable, "-m", "bmad", "fmt", "-"], capture_output=True,
                           input=b'workflow w {\n  task a { prompt "caf\xe9" }\n  output a\n}\n',
                           timeout=120)
    assert piped.returncode == 2 and piped.stdout == b""
    assert b"<stdin>:2:23: error[BMAD-E053]" in piped.stderr and b"not UTF-8" in piped.stderr


def test_fmt_errors_and_missing_files(tmp_path: Path):
    broken = tmp_path / "broken.bmad"
    broken.write_text("workflow w {\n  task a {\n")
    result = bmad("fmt", str(broken))
    assert result.returncode == 1 and "error[BMAD-E" in result.stderr
    assert broken.read_text() == "workflow w {\n  task a {\n"  # never rewritten
    missing = bmad("fmt", str(tmp_path / "nope.bmad"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_a_command_group_that_fails_to_load_reports_when_used():
    code = """
        import bmad.cli.main as main
        main._register_broken("broken_cmd", ImportError("no module named x"))
        main.run(["broken", "sub", "--flag"])
    """
    result = python(code)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "the `broken` commands failed to load: ImportError: no module named x" in result.stderr
