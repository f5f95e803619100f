"""Command-line findings of a QA sweep (/tmp/qa_cli/findings.md, "bmad CLI QA findings"): each is
checked through `bmad` in a subprocess on real files, for its exit status and its message.

1   `runs --keep/--older-than` without `--prune` deletes nothing (a usage error)
7   input that is merely bad (a non-UTF-8 @FILE, JSON nested too deeply, a huge --limit, a
    read-only file, a port in use) gets a plain message, never "internal error"
10  `run` exits 1 for errors in the file, as `check` and `plan` do; `models --prices missing` is 2
12  `plan -o FILE`: the extension chooses the format; a --format that contradicts it is refused
14  `-o` in a folder that exists but can't be written isn't told to "create the folder first"
15  `runs` tells a run whose process is gone from one that is running
17  `run` on a file that didn't parse shows check's diagnostics, and no second error; `fmt` and
    `check` place a byte that isn't UTF-8 at the same line and column
19  `--budget`: `$X` and `X` are one number (`$1e3`, `$-1`)
E   `runs --status` refuses a status no run can have
I   a reader that closes the pipe early (`bmad models | head -1`) is no error: exit 0, no message
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bmad.cli.plan_cmd import parse_budget

HELLO = """provider p { kind sim }
model cheap { provider p price input $1 output $2 per 1M skills { writing 0.7 } }
workflow hello {
  task t0 { prompt "say hi" model cheap max_tokens 40 }
  output t0
}
"""
INPUTS = """provider p { kind sim }
model cheap { provider p price input $1 output $2 per 1M skills { writing 0.7 } }
workflow inp {
  input t: text
  input data: json = 1
  task a { prompt "{{ t }} {{ data }}" model cheap max_tokens 20 }
  output a
}
"""
SIM = ("--provider", "sim", "--sim-latency-scale", "0")
DEEP = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON reader goes (RecursionError)
NOT_UTF8 = b"\r12 3\xbd/\xaa\x0c\xd5 workflow"  # a lone CR first, then a byte that isn't UTF-8


def bmad(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    full.pop("BMAD_HOME", None)
    full.update(env or {})
    result = subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=full,
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    return result


def run_ids(journal: Path) -> list[str]:
    with sqlite3.connect(journal) as db:
        return [r[0] for r in db.execute("SELECT id FROM runs ORDER BY started_at")]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "hello.bmad").write_text(HELLO, encoding="utf-8")
    (tmp_path / "inp.bmad").write_text(INPUTS, encoding="utf-8")
    return tmp_path


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory) -> Path:
    """A journal with three completed runs of hello.bmad, made once for the module."""
    folder = tmp_path_factory.mktemp("three_runs")
    (folder / "hello.bmad").write_text(HELLO, encoding="utf-8")
    path = folder / "runs.db"
    for _ in range(3):
        assert bmad("run", "hello.bmad", *SIM, "--journal", str(path), cwd=folder).returncode == 0
    assert len(run_ids(path)) == 3
    return path


@pytest.fixture
def journal(project: Path, three_runs: Path) -> Path:
    """The three runs' journal, this test's own copy (tests prune and rewrite it)."""
    path = project / "runs.db"
    source, copy = sqlite3.connect(three_runs), sqlite3.connect(path)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return path


def in_readonly(folder: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`bmad ARGS` while `folder` can't be written: a read-only bind mount in a private mount
    namespace as root (root writes anywhere chmod forbids), else chmod a-w."""
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("needs unshare(1) to make a read-only folder as root")
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip("no private mount namespaces here (unshare -m failed)")
        script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 97; shift; '
                  'exec "$@"')
        result = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(folder),
                                 sys.executable, "-m", "bmad", *args], cwd=cwd,
                                env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
                                capture_output=True, text=True, timeout=120)
        if result.returncode == 97:
            pytest.skip("can't remount a folder read-only here")
    else:
        for path in (folder, *folder.iterdir()):
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            result = subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd,
                                    env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
                                    capture_output=True, text=True, timeout=120)
        finally:
            for path in (folder, *folder.iterdir()):
                path.chmod(0o755 if path.is_dir() else 0o644)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


# -- 1. --keep / --older-than without --prune delete nothing ------------------------------------

@pytest.mark.parametrize("flags", [("--keep", "1"), ("--older-than", "0"),
                                   ("--older-than", "0", "--keep", "0")])
def test_keep_or_older_than_without_prune_is_refused_and_deletes_nothing(project, journal, flags):
    result = bmad("runs", *flags, "--journal", str(journal), cwd=project)
    assert result.returncode == 2
    assert "only work" in result.stderr and "--prune" in result.stderr
    assert "help: to delete runs: bmad runs --prune " + " ".join(flags) + ";" in result.stderr
    assert "removed" not in result.stdout
    assert len(run_ids(journal)) == 3


def test_prune_with_keep_still_deletes(project, journal):
    newest = run_ids(journal)[-1]
    result = bmad("runs", "--prune", "--keep", "1", "--journal", str(journal), cwd=project)
    assert result.returncode == 0, result.stderr
    assert "removed 2 run(s)" in result.stdout
    assert run_ids(journal) == [newest]


def test_status_with_prune_is_refused_rather_than_ignored(project, journal):
    result = bmad("runs", "--prune", "--keep", "0", "--status", "failed", "--journal", str(journal),
                  cwd=project)
    assert result.returncode == 2 and "--status" in result.stderr
    assert len(run_ids(journal)) == 3  # all completed: `--status failed` must not delete them


# -- E. --status must be a status a run can have -----------------------------------------------

def test_an_unknown_status_is_refused_with_the_valid_ones(project, journal):
    bogus = bmad("runs", "--status", "bogus", "--journal", str(journal), cwd=project)
    assert bogus.returncode == 2 and "no runs" not in bogus.stdout
    assert "--status bogus" in bogus.stderr
    for status in ("running", "completed", "failed", "budget_exhausted", "cancelled", "interrupted"):
        assert status in bogus.stderr
    typo = bmad("runs", "--status", "complted", "--journal", str(journal), cwd=project)
    assert typo.returncode == 2 and "did you mean `completed`?" in typo.stderr
    good = bmad("runs", "--status", "completed", "--json", "--journal", str(journal), cwd=project)
    assert good.returncode == 0 and len(json.loads(good.stdout)) == 3


# -- 7. bad input is a plain message, never an internal error ------------------------------------

def test_a_non_utf8_input_file_is_a_plain_usage_error(project):
    (project / "bin.dat").write_bytes(NOT_UTF8)
    result = bmad("run", "inp.bmad", *SIM, "-i", "t=@bin.dat", "--journal", "j.db", cwd=project)
    assert result.returncode == 2
    assert "--input t: can't read bin.dat: not UTF-8 text (byte 5 is 0xbd)" in result.stderr


@pytest.mark.parametrize("how", ["input-file", "input", "inputs"])
def test_json_nested_too_deeply_is_a_plain_usage_error(project, how):
    if how == "input-file":
        (project / "deep.json").write_text('{"t": "x", "data": ' + DEEP + "}", encoding="utf-8")
        args = ("--input-file", "deep.json")
    elif how == "input":
        (project / "deep.txt").write_text(DEEP, encoding="utf-8")
        args = ("-i", "t=x", "-i", "data=@deep.txt")
    else:
        (project / "rows.jsonl").write_text('{"t": "x", "data": ' + DEEP + "}\n", encoding="utf-8")
        args = ("--inputs", "rows.jsonl")
    result = bmad("run", "inp.bmad", *SIM, *args, "--journal", "j.db", cwd=project)
    assert result.returncode == 2
    assert "nested too deeply" in result.stderr


def test_models_prices_json_nested_too_deeply_is_an_error_in_the_file(project):
    (project / "deep.json").write_text('{"t": ' + DEEP + "}", encoding="utf-8")
    result = bmad("models", "--prices", "deep.json", cwd=project, env={"BMAD_HOME": str(project / "home")})
    assert result.returncode == 1
    assert "deep.json" in result.stderr and "nested too deeply" in result.stderr
    assert not (project / "home" / "prices.json").exists()


def test_plan_diff_with_json_nested_too_deeply_is_a_usage_error(project):
    (project / "deep.json").write_text(DEEP, encoding="utf-8")
    result = bmad("plan", "hello.bmad", "--provider", "sim", "--diff", "deep.json", cwd=project)
    assert result.returncode == 2
    assert "--diff deep.json" in result.stderr and "nested too deeply" in result.stderr


def test_new_with_a_list_nested_too_deeply_is_a_usage_error(project):
    deep = "[" * 60_000 + "]" * 60_000  # fits in one command-line argument
    result = bmad("new", "-t", "knowledge-synthesis", "--set", f"sources={deep}", "out", cwd=project)
    assert result.returncode == 2
    assert "`sources`" in result.stderr and "nested too deeply" in result.stderr
    assert not (project / "out").exists()


def test_a_limit_beyond_sqlite_lists_every_run(project, journal):
    result = bmad("runs", "--limit", "99999999999999999999", "--json", "--journal", str(journal),
                  cwd=project)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 3


def test_fmt_that_cannot_write_a_file_says_so_and_formats_the_others(project):
    folder = project / "ro"
    folder.mkdir()
    (folder / "messy.bmad").write_text("workflow  w {\n task t { prompt \"x\"\n}\n output t\n}\n",
                                       encoding="utf-8")
    other = project / "other.bmad"
    other.write_text("workflow  w {\n task t { prompt \"x\"\n}\n output t\n}\n", encoding="utf-8")
    before = (folder / "messy.bmad").read_text(encoding="utf-8")
    result = in_readonly(folder, "fmt", "ro/messy.bmad", "other.bmad", cwd=project)
    assert result.returncode == 2
    assert "error: can't write ro/messy.bmad:" in result.stderr
    assert "read-only" in result.stderr or "permission denied" in result.stderr
    assert "bmad fmt --diff ro/messy.bmad" in result.stderr
    assert "reformatted other.bmad" in result.stderr
    assert (folder / "messy.bmad").read_text(encoding="utf-8") == before


def test_lsp_on_a_port_in_use_is_a_usage_error(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = bmad("lsp", "--tcp", f"127.0.0.1:{port}", cwd=project)
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr


def test_lsp_on_a_host_that_does_not_resolve_is_a_usage_error(project):
    result = bmad("lsp", "--tcp", "no-such-host.invalid:2087", cwd=project)
    assert result.returncode == 2
    assert "can't resolve the host `no-such-host.invalid`" in result.stderr


# -- 10. errors in the file: 1 for run as for check and plan; --prices missing: 2 ----------------

@pytest.mark.parametrize("source", [
    "workflow w {\n  task a {\n    prompt \"x\"\n  output a\n}\n",  # unclosed
    "workflow w {\n  task a { prompt \"{{ nope }}\" }\n  output a\n}\n",  # unknown name
    "workflow w {\n  task a { prompt \"x\" model no_such_model }\n  output a\n}\n",  # unknown model
])
def test_run_exits_1_for_errors_in_the_file_like_check_and_plan(project, source):
    (project / "bad.bmad").write_text(source, encoding="utf-8")
    check = bmad("check", "bad.bmad", cwd=project)
    plan = bmad("plan", "bad.bmad", "--provider", "sim", cwd=project)
    run = bmad("run", "bad.bmad", *SIM, "--journal", "j.db", cwd=project)
    assert check.returncode == plan.returncode == run.returncode == 1, run.stderr
    assert "error[BMAD-E" in run.stderr


def test_run_help_states_exit_1_for_errors_in_the_file(project):
    text = bmad("run", "--help", cwd=project).stdout
    assert "1 failed or errors in the file" in " ".join(text.split())


def test_models_prices_with_a_missing_file_is_a_usage_error(project):
    result = bmad("models", "--prices", "nope.json", cwd=project, env={"BMAD_HOME": str(project / "home")})
    assert result.returncode == 2
    assert "nope.json" in result.stderr and "no such file" in result.stderr


# -- 12. plan -o: the extension and --format agree -----------------------------------------------

@pytest.mark.parametrize("fmt,out", [("mermaid", "p.json"), ("json", "p.yaml"), ("text", "p.html"),
                                     ("dot", "p.mmd")])
def test_a_format_that_contradicts_the_extension_is_refused(project, fmt, out):
    result = bmad("plan", "hello.bmad", "--provider", "sim", "--format", fmt, "-o", out, cwd=project)
    assert result.returncode == 2
    assert f"--format {fmt} doesn't match -o {out}" in result.stderr and "help:" in result.stderr
    assert not (project / out).exists()


@pytest.mark.slow  # 5-9 s of subprocess runs: with the slow suite (CI runs both), keeping the default run near 10 min
def test_without_format_the_extension_chooses(project):
    for out in ("p.json", "p.yaml", "p.mmd", "p.dot", "p.html", "p.txt"):
        result = bmad("plan", "hello.bmad", "--provider", "sim", "-o", out, cwd=project)
        assert result.returncode == 0, result.stderr
        assert "Plan for workflow hello" in result.stdout  # the table is shown, as before
    sealed = json.loads((project / "p.json").read_text(encoding="utf-8"))
    assert sealed["plan_hash"] and bmad("run", "p.json", *SIM, "--journal", "j.db",
                                        cwd=project).returncode == 0
    import yaml

    assert yaml.safe_load((project / "p.yaml").read_text(encoding="utf-8"))["plan_hash"] == sealed["plan_hash"]
    assert (project / "p.mmd").read_text(encoding="utf-8").lstrip().startswith(("graph", "flowchart"))
    assert (project / "p.dot").read_text(encoding="utf-8").lstrip().startswith("digraph")
    assert "<html" in (project / "p.html").read_text(encoding="utf-8").lower()
    assert "Plan for workflow hello" in (project / "p.txt").read_text(encoding="utf-8")


def test_a_format_with_a_neutral_extension_is_written_as_asked(project):
    result = bmad("plan", "hello.bmad", "--provider", "sim", "--format", "mermaid", "-o", "graph.txt",
                  cwd=project)
    assert result.returncode == 0, result.stderr
    assert (project / "graph.txt").read_text(encoding="utf-8").lstrip().startswith(("graph", "flowchart"))


# -- 14. -o hints tell a missing folder from one that can't be written ---------------------------

def test_output_in_a_missing_folder_says_create_it(project):
    result = bmad("plan", "hello.bmad", "--provider", "sim", "-o", "missing/p.json", cwd=project)
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "create the folder first" in result.stderr


@pytest.mark.parametrize("command", [("plan", "hello.bmad", "--provider", "sim"),
                                     ("run", "hello.bmad", *SIM, "--journal", "j.db")])
def test_output_in_a_folder_that_cannot_be_written_does_not_say_create_it(project, command):
    folder = project / "ro"
    folder.mkdir()
    result = in_readonly(folder, *command, "-o", "ro/out.json", cwd=project)
    assert result.returncode == 2
    assert "-o ro/out.json: can't write there:" in result.stderr
    assert "read-only file system" in result.stderr or "isn't writable" in result.stderr
    assert "create the folder" not in result.stderr and "does not exist" not in result.stderr


# -- 15. a run whose process is gone ---------------------------------------------------------------

def test_runs_tells_a_killed_run_from_a_running_one(project):
    lines = ["provider p { kind sim }",
             "model cheap { provider p price input $1 output $2 per 1M skills { writing 0.7 } }",
             "workflow long {", '  task t0 { prompt "start" model cheap max_tokens 40 }']
    lines += [f'  task t{i} {{ prompt "step {{{{ t{i - 1} }}}}" model cheap max_tokens 40 }}'
              for i in range(1, 40)]
    lines += ["  output t39", "}"]
    (project / "long.bmad").write_text("\n".join(lines) + "\n", encoding="utf-8")
    journal = project / "runs.db"
    proc = subprocess.Popen([sys.executable, "-m", "bmad", "run", "long.bmad", "--provider", "sim",
                             "--sim-latency-scale", "1", "--json-events", "--journal", str(journal)],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    try:
        run_id = json.loads(proc.stdout.readline())["run_id"]
        live = bmad("runs", "--journal", str(journal), cwd=project)
        assert run_id in live.stdout and "process gone" not in live.stdout
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the kernel reaps it at once; be patient on a busy box
        shown = bmad("runs", "--journal", str(journal), cwd=project)
        if "process gone" in shown.stdout:
            break
        time.sleep(0.1)
    assert shown.returncode == 0
    assert re.search(rf"{run_id}\s+long\s+running \(process gone\)", shown.stdout), shown.stdout
    assert f"bmad run --resume {run_id}" in shown.stderr
    rows = json.loads(bmad("runs", "--json", "--journal", str(journal), cwd=project).stdout)
    assert rows[0]["status"] == "running" and rows[0]["process_gone"] is True
    active = bmad("workflow", "status", "--active", "--journal", str(journal), cwd=project)
    assert "no active runs" in active.stdout  # the same knowledge, in both commands
    every = bmad("workflow", "status", "--journal", str(journal), cwd=project)
    assert re.search(rf"{run_id}\s+long\s+running \(process gone\)", every.stdout), every.stdout
    listed = json.loads(bmad("workflow", "status", "--json", "--journal", str(journal), cwd=project).stdout)
    assert listed[0]["process_gone"] is True


# -- 17. run on a file that didn't parse; fmt and check agree on where a bad byte is -------------

def test_run_on_a_file_that_did_not_parse_shows_what_check_shows(project):
    (project / "bin.bmad").write_bytes(NOT_UTF8)
    check = bmad("check", "bin.bmad", cwd=project)
    run = bmad("run", "bin.bmad", *SIM, "--journal", "j.db", cwd=project)
    assert "BMAD-W050" in check.stderr and "1 error, 1 warning" in check.stderr
    assert run.stderr == check.stderr  # the warning too, and no second error
    assert "declares no workflow" not in run.stderr
    assert run.returncode == check.returncode == 1


@pytest.mark.parametrize("data", [
    NOT_UTF8,  # a lone CR: a line break for check
    b"workflow w {\r\n  task a { prompt \"\xff\" }\r\n}\r\n",  # CRLF
    b"\xef\xbb\xbfworkflow w {\r  task a { prompt \"\xe9t\xe9\" }\r}\r",  # a BOM, lone CRs
    "workflow w {\n  task a { prompt \"déjà \"".encode() + b"\xff }\n}\n",  # columns in characters
])
def test_fmt_and_check_place_a_byte_that_is_not_utf8_alike(project, data):
    (project / "bad.bmad").write_bytes(data)
    check = bmad("check", "bad.bmad", cwd=project)
    fmt = bmad("fmt", "bad.bmad", cwd=project)
    warning = re.search(r"bad\.bmad:(\d+:\d+): warning\[BMAD-W050\]", check.stderr)
    error = re.search(r"bad\.bmad:(\d+:\d+): error\[BMAD-E053\]", fmt.stderr)
    assert warning and error, (check.stderr, fmt.stderr)
    assert error.group(1) == warning.group(1)
    assert fmt.returncode == 2 and (project / "bad.bmad").read_bytes() == data


# -- 19. --budget: `$X` and `X` are the same number ---------------------------------------------

@pytest.mark.parametrize("bare", ["1e3", "2.5", "0", "1_000", "-1", "-0.5", "inf", "nan", "1e400", "x"])
def test_a_dollar_sign_changes_nothing(bare):
    with_sign, without = parse_budget("$" + bare), parse_budget(bare)
    if isinstance(without, str):
        assert isinstance(with_sign, str)
        if bare != "x":  # `x` is no amount: said as money with `$`, as a duration without
            assert with_sign == without
    else:
        assert with_sign.usd == without.usd


@pytest.mark.parametrize("text", ["-10m", "-5k tokens", "$-1", "-1"])
def test_every_negative_budget_gets_the_same_message(text):
    assert parse_budget(text) == "a budget can't be negative"


@pytest.mark.parametrize("budget,code", [("$1e3", 0), ("1e3", 0), ("$-1", 2), ("-1", 2)])
def test_budget_forms_on_the_command_line(project, budget, code):
    result = bmad("plan", "hello.bmad", "--provider", "sim", f"--budget={budget}", cwd=project)
    assert result.returncode == code, result.stderr
    if code:
        assert f"--budget {budget}: a budget can't be negative" in result.stderr


# -- I. a reader that goes away early -------------------------------------------------------------

@pytest.mark.parametrize("command", [("models",), ("plan", "hello.bmad", "--provider", "sim"),
                                     ("runs", "--journal", "runs.db"),
                                     ("plan", "hello.bmad", "--provider", "sim", "--format", "json")])
def test_a_closed_pipe_is_no_error(project, journal, command):
    proc = subprocess.Popen([sys.executable, "-m", "bmad", *command], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "NO_COLOR": "1"})
    proc.stdout.close()  # before bmad has written a byte (it takes far longer to start)
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, stderr
    assert stderr == ""


def test_run_json_events_into_a_reader_that_stops_early_still_completes(project):
    # simulated latency: the task's events come after the reader has gone
    proc = subprocess.Popen([sys.executable, "-m", "bmad", "run", "hello.bmad", "--provider", "sim",
                             "--sim-latency-scale", "1", "--json-events", "--journal", "runs.db"],
                            cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, stderr
    assert "internal error" not in stderr and "Traceback" not in stderr
    with sqlite3.connect(project / "runs.db") as db:
        status = db.execute("SELECT status FROM runs WHERE id=?", (first["run_id"],)).fetchone()[0]
    assert status == "completed"


def test_run_keeps_its_own_exit_status_when_the_reader_stops_early(project):
    # a 1 s time budget against slow simulated calls: the run ends budget_exhausted (exit 3)
    proc = subprocess.Popen([sys.executable, "-m", "bmad", "run", "hello.bmad", "--provider", "sim",
                             "--sim-latency-scale", "20", "--budget", "1s", "--json-events",
                             "--journal", "runs.db"], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert json.loads(proc.stdout.readline())["event"] == "run_started"
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 3, stderr
    assert "budget_exhausted" in stderr and "internal error" not in stderr


# -- an input given twice --------------------------------------------------------------------------

def test_an_input_given_twice_is_a_usage_error_not_the_last_one_silently(project):
    for command in ("run", "plan"):
        extra = (*SIM, "--journal", "j.db") if command == "run" else ()
        result = bmad(command, "inp.bmad", "-i", "t=bees", "-i", "t=wasps", *extra, cwd=project)
        assert result.returncode == 2, (command, result.stderr)
        assert "--input t is given twice" in result.stderr
    assert not (project / "j.db").exists()  # refused before a run began


# -- a sealed plan runs with the strategy it was planned for --------------------------------------

def test_a_sealed_plan_is_not_run_with_another_strategy(project):
    sealed = bmad("plan", "hello.bmad", "--provider", "sim", "--strategy", "sequential", "-o", "seq.json",
                  cwd=project)
    assert sealed.returncode == 0, sealed.stderr
    assert json.loads((project / "seq.json").read_text())["strategy"] == "sequential"
    same = bmad("run", "seq.json", *SIM, "--strategy", "sequential", "--journal", "j.db", cwd=project)
    assert same.returncode == 0, same.stderr
    other = bmad("run", "seq.json", *SIM, "--strategy", "collaborative", "--journal", "k.db", cwd=project)
    assert other.returncode == 2
    assert "seq.json was planned for strategy sequential, not collaborative" in other.stderr
    assert "--strategy collaborative -o plan.json" in other.stderr and not (project / "k.db").exists()
    assert bmad("plan", "hello.bmad", "--strategy", "bogus", cwd=project).returncode == 2
    objective = json.loads((project / "seq.json").read_text())["objective"]
    other = "cost" if objective != "cost" else "quality"
    refused = bmad("run", "seq.json", *SIM, "--optimize", other, "--journal", "k.db", cwd=project)
    assert refused.returncode == 2 and f"planned for objective {objective}, not {other}" in refused.stderr
    assert f"bmad plan SOURCE --optimize {other} -o plan.json" in refused.stderr


# -- resuming an id the journal doesn't have -------------------------------------------------------

@pytest.mark.parametrize("file", [(), ("hello.bmad",)])
def test_resuming_an_unknown_id_names_its_code_with_or_without_file(project, journal, file):
    run = bmad("run", *file, "--resume", "r-nope", "--journal", str(journal), cwd=project)
    assert run.returncode == 2 and "[BMAD-E301] no run `r-nope`" in run.stderr, run.stderr
    batch = bmad("run", *file, "--resume", "batch-nope", "--journal", str(journal), cwd=project)
    assert batch.returncode == 2 and "[BMAD-E323] no batch `batch-nope`" in batch.stderr, batch.stderr
    row = bmad("run", *file, "--resume", "batch-nope.2", "--journal", str(journal), cwd=project)
    assert row.returncode == 2 and "[BMAD-E301] no run `batch-nope.2`" in row.stderr, row.stderr


# -- resuming with a budget below what the run has spent ------------------------------------------

def test_resuming_below_what_was_spent_is_refused_before_anything_is_recorded(project):
    two = HELLO.replace("  output t0", '  task t1 { prompt "again {{ t0 }}" model cheap max_tokens 40 }\n'
                                       "  output t1")
    (project / "two.bmad").write_text(two, encoding="utf-8")
    first = bmad("run", "two.bmad", *SIM, "--budget", "$0.00012", "--journal", "j.db", cwd=project)
    assert first.returncode == 3, first.stderr  # stopped by its budget after paying for t0
    with sqlite3.connect(project / "j.db") as db:
        run_id, spent, budget = db.execute("SELECT id, spent_usd, budget_usd FROM runs").fetchone()
    assert spent > 0
    low = bmad("run", "--resume", run_id, *SIM, "--budget", f"${spent / 2:.8f}", "--journal", "j.db",
               cwd=project)
    assert low.returncode == 2 and f"is below what run {run_id} has already spent" in low.stderr
    with sqlite3.connect(project / "j.db") as db:
        assert db.execute("SELECT budget_usd, status FROM runs").fetchone() == (budget, "budget_exhausted")
    ok = bmad("run", "--resume", run_id, *SIM, "--budget", "$1", "--journal", "j.db", cwd=project)
    assert ok.returncode == 0, ok.stderr


def test_a_dead_batch_row_is_shown_whole_and_resumed_with_its_batch(project, journal):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid no process has now
    with sqlite3.connect(journal) as db:
        first = db.execute("SELECT id FROM runs ORDER BY started_at LIMIT 1").fetchone()[0]
        db.execute("UPDATE runs SET id='batch-20261125-000000-abcdef.12', status='running', pid=? "
                   "WHERE id=?", (dead.pid, first))
    shown = bmad("runs", "--journal", str(journal), cwd=project, env={"COLUMNS": "80"})
    assert "running (process gone)" in shown.stdout, shown.stdout
    assert "bmad run --resume batch-20261125-000000-abcdef`" in shown.stderr, shown.stderr
