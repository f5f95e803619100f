"""Bad command-line input found by a QA sweep: each case is a plain usage error (or a plain message),
never an internal error, and checked before any work is done so no result is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bmad.cli.plan_cmd import MAX_BUDGET_TOKENS, parse_budget

HELLO = """provider p { kind sim }
model cheap { provider p price input $1 output $2 per 1M skills { writing 0.7 } }
workflow hello {
  task t0 { prompt "say hi" model cheap max_tokens 40 }
  output t0
}
"""
SIM = ("--provider", "sim", "--sim-latency-scale", "0")


def bmad(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("BMAD_HOME", None)
    result = subprocess.run([sys.executable, "-m", "bmad", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "hello.bmad").write_text(HELLO, encoding="utf-8")
    (tmp_path / "somedir").mkdir()
    (tmp_path / "rows.jsonl").write_text("{}\n{}\n", encoding="utf-8")
    return tmp_path


# -- 1. -o is checked before any work -------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ("run", "hello.bmad", *SIM),
    ("run", "hello.bmad", *SIM, "--inputs", "rows.jsonl"),
    ("plan", "hello.bmad", "--provider", "sim"),
])
@pytest.mark.parametrize("target", ["somedir", "missing/d/out.json"])
def test_an_unwritable_output_is_refused_before_running(project, command, target):
    result = bmad(*command, "-o", target, cwd=project)
    assert result.returncode == 2
    assert f"-o {target}" in result.stderr and "help:" in result.stderr
    assert "directory" in result.stderr or "does not exist" in result.stderr
    assert not (project / ".bmad" / "runs.db").exists()  # nothing ran


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a write always fails)")
def test_a_write_that_fails_after_the_run_keeps_the_outputs(project):
    result = bmad("run", "hello.bmad", *SIM, "-o", "/dev/full", cwd=project)
    assert result.returncode == 2
    assert "can't write /dev/full" in result.stderr and "bmad export" in result.stderr
    assert "t0" in json.loads(result.stdout)  # the outputs went to stdout instead


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a write always fails)")
@pytest.mark.parametrize("command", [("run", "hello.bmad", *SIM, "--inputs", "rows.jsonl"),
                                     ("plan", "hello.bmad", "--provider", "sim")])
def test_a_write_that_fails_later_is_a_plain_error(project, command):
    result = bmad(*command, "-o", "/dev/full", cwd=project)
    assert result.returncode == 2
    assert "can't write /dev/full" in result.stderr


# -- 2./3. --budget must be a finite, non-negative amount that fits -----------------------------

@pytest.mark.parametrize("budget,message", [
    ("99999999999999999999999999 tokens", "at most"),
    (f"{MAX_BUDGET_TOKENS + 10**6} tokens", "at most"),
    ("$" + "9" * 400, "finite"),
    ("1e400", "finite"),
    ("inf", "finite"),
    ("nan", "finite"),
    ("-1", "negative"),
    ("-0.5", "negative"),
    ("0s", "longer than zero"),
    ("0m", "longer than zero"),
])
def test_parse_budget_refuses_what_cannot_be_a_budget(budget, message):
    parsed = parse_budget(budget)
    assert isinstance(parsed, str) and message in parsed


def test_parse_budget_still_accepts_the_documented_forms():
    assert parse_budget("$2.50").usd == 2.5
    assert parse_budget("2.5").usd == 2.5  # a bare number is dollars
    assert parse_budget("0").usd == 0.0
    assert parse_budget("400k tokens").tokens == 400_000
    assert parse_budget(f"{MAX_BUDGET_TOKENS} tokens").tokens == MAX_BUDGET_TOKENS
    assert parse_budget("10m").time_s == 600.0


@pytest.mark.parametrize("command", ["run", "plan"])
@pytest.mark.parametrize("budget", ["99999999999999999999999999 tokens", "-1", "inf", "$" + "9" * 400])
def test_a_bad_budget_is_a_usage_error(project, command, budget):
    result = bmad(command, "hello.bmad", *(SIM if command == "run" else ("--provider", "sim")),
                  f"--budget={budget}", cwd=project)
    assert result.returncode == 2
    assert "error: --budget" in result.stderr and "BMAD-E210" not in result.stderr
    assert not (project / ".bmad" / "runs.db").exists()


# -- 4. run validates --optimize as plan does ---------------------------------------------------

def test_run_rejects_an_unknown_objective(project):
    result = bmad("run", "hello.bmad", *SIM, "--optimize", "bogus", cwd=project)
    assert result.returncode == 2
    assert "--optimize" in result.stderr and "bogus" in result.stderr
    assert not (project / ".bmad" / "runs.db").exists()


def test_run_accepts_a_known_objective(project):
    result = bmad("run", "hello.bmad", *SIM, "--optimize", "quality", cwd=project)
    assert result.returncode == 0, result.stderr
    batch = bmad("run", "hello.bmad", *SIM, "--optimize", "cost", "--inputs", "rows.jsonl", cwd=project)
    assert batch.returncode == 0, batch.stderr


# -- 5. consensus/ensemble only over runs that have an answer ------------------------------------

@pytest.fixture
def failed_and_completed(project):
    ids = []
    for extra in (("--sim-failure-rate", "1"), ("--sim-failure-rate", "1"), ()):
        bmad("run", "hello.bmad", *SIM, *extra, cwd=project)
        ids.append(json.loads(bmad("runs", "--json", "--limit", "1", cwd=project).stdout)[0]["id"])
    return project, ids


@pytest.mark.slow  # 5-9 s of subprocess runs: with the slow suite (CI runs both), keeping the default run near 10 min
def test_consensus_refuses_runs_without_outputs(failed_and_completed):
    root, (failed1, failed2, ok) = failed_and_completed
    for results in (f"{failed1},{failed2}", f"{failed1}:t0,{failed2}:t0", f"{failed1},{ok}"):
        result = bmad("workflow", "consensus", "--results", results, cwd=root)
        assert result.returncode != 0, result.stdout
        assert "winner" not in result.stdout
        assert f"skipped {failed1}" in result.stderr and "not `completed`" in result.stderr
    ensemble = bmad("workflow", "ensemble", "--results", f"{failed1},{failed2}", "--combine-outputs", cwd=root)
    assert ensemble.returncode != 0 and "ensemble needs" in ensemble.stderr
    kept = bmad("workflow", "ensemble", "--results", f"{failed1},{ok}", "--combine-outputs", "--json", cwd=root)
    assert kept.returncode == 0, kept.stderr
    assert [r["id"] for r in json.loads(kept.stdout)["selected"]] == [ok]


# -- 6. bmad new writes only a budget the project can be checked with ---------------------------

@pytest.mark.parametrize("budget", ["1e999", "inf", "nan", "0", "1e-20", "0.004", "-1"])
def test_new_refuses_a_budget_it_cannot_write(tmp_path, budget):
    result = bmad("new", "-t", "code-review", f"--budget={budget}", "x", cwd=tmp_path)
    assert result.returncode == 2
    assert f"--budget {budget}" in result.stderr and "0.01" in result.stderr
    assert not (tmp_path / "x").exists()


def test_new_accepts_a_cent_and_a_large_finite_amount(tmp_path):
    cent = bmad("new", "-t", "code-review", "--budget", "$0.01", "cent", cwd=tmp_path)
    assert cent.returncode == 0, cent.stderr
    assert "budget $0.01 per run" in (tmp_path / "cent" / "workflow.bmad").read_text(encoding="utf-8")
    big = bmad("new", "-t", "code-review", "--budget", "1e3", "big", cwd=tmp_path)
    assert big.returncode == 0, big.stderr
    assert "budget $1000.00 per run" in (tmp_path / "big" / "workflow.bmad").read_text(encoding="utf-8")
    check = bmad("check", "workflow.bmad", cwd=tmp_path / "big")
    assert check.returncode == 0, check.stderr


def test_a_sealed_plan_runs_from_another_folder_and_replans_there(tmp_path):
    here = tmp_path / "project"
    here.mkdir()
    (here / "hello.bmad").write_text(HELLO, encoding="utf-8")
    assert bmad("plan", "hello.bmad", "--provider", "sim", "-o", "plan.json", cwd=here).returncode == 0
    # the plan names its source relative to where it was made: found next to the plan file
    ran = bmad("run", "project/plan.json", *SIM, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (here / "hello.bmad").write_text(HELLO.replace("say hi", "say hello"), encoding="utf-8")
    stale = bmad("run", "project/plan.json", *SIM, cwd=tmp_path)
    assert stale.returncode == 2 and "BMAD-E221" in stale.stderr
    replanned = bmad("run", "project/plan.json", *SIM, "--replan", cwd=tmp_path)
    assert replanned.returncode == 0, replanned.stderr


def test_a_plan_whose_shown_model_was_edited_is_refused(project):
    assert bmad("plan", "hello.bmad", "--provider", "sim", "-o", "plan.json", cwd=project).returncode == 0
    plan = json.loads((project / "plan.json").read_text(encoding="utf-8"))
    plan["tasks"][0]["model"] = "something-else"
    (project / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    refused = bmad("run", "plan.json", *SIM, cwd=project)
    assert refused.returncode == 2
    assert "plan.json:1:1: error[BMAD-E220]" in refused.stderr and "something-else" in refused.stderr


def test_show_prints_answers_without_terminal_control_characters(capsys):
    from bmad.cli.run_cmd import _print_show

    hostile = "ok \x1b]0;pwned\x07 \x1b[2J done"
    _print_show({"run": {"id": "r1", "workflow": "w", "status": "completed", "spent_usd": 0.0,
                         "budget_usd": None, "tokens": 1, "started_at": "t0", "finished_at": "t1",
                         "error": hostile},
                 "tasks": [{"id": "t", "status": "completed", "model": "m", "attempts": 1,
                            "cost_usd": 0.0, "quality": None}],
                 "calls": [], "outputs": {"t": hostile}})
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b]0;pwned\\x07" in shown


def test_fmt_points_at_the_first_byte_that_is_not_utf8(tmp_path):
    (tmp_path / "latin.bmad").write_bytes(b'workflow w {\n  task t { prompt "caf\xe9" }\n  output t\n}\n')
    done = bmad("fmt", "latin.bmad", cwd=tmp_path)
    assert done.returncode != 0
    assert "latin.bmad:2:23: error[BMAD-E053]" in done.stderr and "0xe9" in done.stderr
    assert "save the file as UTF-8" in done.stderr and "check the path" not in done.stderr
