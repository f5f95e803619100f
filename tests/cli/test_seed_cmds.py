"""The seed's twelve `bmad workflow` commands, exactly as the seed writes them, as real subprocesses
against real journals (and, for the monitor, a real run and a real webhook server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SEED_COMMANDS = ("execute", "create", "status", "collaborate", "consensus", "ensemble", "optimize", "analyze",
                 "route", "monitor", "metrics", "export")

SLOW_WORKFLOW = """
workflow slow {
  input topic: text = "bees"
  task first {
    prompt "Write two lines about {{ topic }}."
    model gpt-4o-mini
    max_tokens 60
    retry 4 backoff fixed 0.1s to 0.1s
  }
  task second {
    prompt "Summarise: {{ first }}"
    model gpt-4o-mini
    max_tokens 60
    retry 4 backoff fixed 0.1s to 0.1s
  }
  output second
}
"""


def bmad(*args: str, cwd: Path, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("BMAD_HOME", None)
    proc = subprocess.run(["bmad", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory, spec_dir):
    """Three seed-format runs on sim (journal in ./.bmad/runs.db, the default)."""
    root = tmp_path_factory.mktemp("seed")
    for seed in (1, 2, 3):
        bmad("workflow", "execute", "--definition", str(spec_dir / "seed_workflow.yaml"), "--strategy", "adaptive",
             "--provider", "sim", "--sim-latency-scale", "0", "--sim-seed", str(seed), cwd=root, check=True)
    runs = json.loads(bmad("runs", "--json", cwd=root, check=True).stdout)
    return root, [r["id"] for r in reversed(runs)]


def test_workflow_help_lists_all_twelve(tmp_path):
    out = bmad("workflow", "--help", cwd=tmp_path, check=True).stdout
    for name in SEED_COMMANDS:
        assert f" {name} " in out, name


@pytest.mark.parametrize("name", SEED_COMMANDS)
def test_every_command_has_help_with_examples(tmp_path, name):
    proc = bmad("workflow", name, "--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
    if name != "status":  # status predates this module and has no examples section
        assert "Examples" in proc.stdout


def test_execute_is_bmad_run(project):
    root, ids = project
    assert len(ids) == 3
    journal_options = json.loads(bmad("export", ids[0], cwd=root, check=True).stdout)
    assert journal_options["run"]["status"] == "completed"
    assert journal_options["run"]["workflow"] == "requirements_to_design"
    proc = bmad("workflow", "execute", "--definition", "missing.yaml", cwd=root)
    assert proc.returncode == 2 and "cannot read `missing.yaml`" in proc.stderr
    no_traceback(proc)
    proc = bmad("workflow", "execute", cwd=root)
    assert proc.returncode == 2 and "--definition" in proc.stderr


def test_status_as_written(project):
    root, _ = project
    proc = bmad("workflow", "status", "--active", "--show-progress", cwd=root, check=True)
    assert "no active runs" in proc.stdout


def test_export_as_written_matches_bmad_export(project):
    root, ids = project
    seed = bmad("workflow", "export", "--results", ids[0], "--format", "detailed", cwd=root, check=True).stdout
    short = bmad("export", ids[0], "--format", "detailed", cwd=root, check=True).stdout
    assert seed == short
    assert "Consensus votes" in seed and "Cost by model" in seed
    out = root / "run.html"
    bmad("workflow", "export", "--results", ids[0], "--format", "html", "-o", str(out), cwd=root, check=True)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    yaml_text = bmad("export", ids[0], "-f", "yaml", cwd=root, check=True).stdout
    assert "plan_hash:" in yaml_text
    proc = bmad("workflow", "export", "--results", "no-such-run", "--format", "detailed", cwd=root)
    assert proc.returncode == 1 and "no run `no-such-run`" in proc.stderr
    proc = bmad("export", ids[0], "--format", "pdf", cwd=root)
    assert proc.returncode == 2 and "json, yaml, detailed, html" in proc.stderr
    no_traceback(proc)


def test_consensus_as_written(project):
    root, ids = project
    proc = bmad("workflow", "consensus", "--results", ",".join(ids), "--method", "weighted", "--json", cwd=root,
                check=True)
    data = json.loads(proc.stdout)
    assert data["winner"] in ids and data["method"] == "weighted"
    assert [v["id"] for v in data["votes"]] == ids
    task_ids = ",".join(f"{i}:analyze" for i in ids)
    text = bmad("workflow", "consensus", "--results", task_ids, "--method", "similarity", cwd=root, check=True).stdout
    assert "consensus (similarity) over 3 results" in text
    bad = bmad("workflow", "consensus", "--results", f"{ids[0]},nope", "--method", "weighted", cwd=root)
    assert bad.returncode == 2 and "no run `nope`" in bad.stderr
    no_traceback(bad)
    bad = bmad("workflow", "consensus", "--results", ",".join(ids), "--method", "judge", cwd=root)
    assert bad.returncode == 2 and "use vote, weighted, similarity" in bad.stderr


def test_ensemble_as_written(project):
    root, ids = project
    proc = bmad("workflow", "ensemble", "--combine-outputs", "--quality-threshold", "0.0", "--json", cwd=root,
                check=True)
    data = json.loads(proc.stdout)
    assert {s["id"] for s in data["selected"]} == set(ids)
    assert set(data["outputs"]) == {"document"}  # the seed workflow's one output
    as_written = bmad("workflow", "ensemble", "--combine-outputs", "--quality-threshold", "0.8", cwd=root)
    assert as_written.returncode in (0, 1)  # 1: no run met 0.8 (said so, no traceback)
    no_traceback(as_written)
    assert "ensemble of" in as_written.stdout
    strict = bmad("workflow", "ensemble", "--combine-outputs", "--quality-threshold", "1.0", "--results",
                  ",".join(ids), cwd=root)
    if strict.returncode == 1:
        assert "no run meets the quality threshold" in strict.stderr
    out = root / "combined.json"
    bmad("workflow", "ensemble", "--combine-outputs", "--results", ",".join(ids), "-o", str(out), cwd=root,
         check=True)
    assert set(json.loads(out.read_text())) == {"document"}


def test_metrics_as_written(project):
    root, ids = project
    text = bmad("workflow", "metrics", "--execution-time", "--cost-efficiency", cwd=root, check=True).stdout
    assert "per model" in text and "per task" in text and "quality per $" in text and "p95" in text
    data = json.loads(bmad("workflow", "metrics", "--json", cwd=root, check=True).stdout)
    assert set(data["runs"]) == set(ids)
    assert all(m["count"] > 0 and m["latency_p50_s"] is not None for m in data["models"])
    assert {t["name"] for t in data["tasks"]} >= {"analyze", "design", "document"}
    nothing = bmad("workflow", "metrics", "--workflow", "nosuch", cwd=root)
    assert nothing.returncode == 1 and "no runs match" in nothing.stdout  # docs/cli.md: nothing matched


def test_collaborate_as_written(tmp_path):
    shown = bmad("workflow", "collaborate", "--task", "architecture-design", "--llms", "claude,gpt4,gemini", "--show",
                 cwd=tmp_path, check=True).stdout
    assert "use std.architecture_design" in shown and "strategy collaborative" in shown
    for model in ("claude-sonnet", "gpt-4o", "gemini-flash"):
        assert f"model {model} {{" in shown
    assert "task result = architecture_design(" in shown
    run = bmad("workflow", "collaborate", "--task", "architecture-design", "--llms", "claude,gpt4,gemini",
               "--provider", "sim", "--sim-latency-scale", "0", "--input", "requirements=A document store",
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "result" in json.loads(run.stdout)
    bad = bmad("workflow", "collaborate", "--task", "architecture-desing", "--llms", "claude", cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean `architecture_design`" in bad.stderr


def _answered_by(root: Path) -> set[str]:
    run_id = json.loads(bmad("runs", "--json", cwd=root, check=True).stdout)[0]["id"]
    export = json.loads(bmad("export", run_id, cwd=root, check=True).stdout)
    return {c["model"] for c in export["calls"]}


def test_collaborate_code_review_with_the_seed_models(tmp_path):
    (tmp_path / "change.patch").write_text("- return a - b\n+ return a + b\n", encoding="utf-8")
    run = bmad("workflow", "collaborate", "--task", "code-review", "--llms", "claude,gpt4,gemini",
               "--provider", "sim", "--sim-latency-scale", "0", "--input", "diff=@change.patch",
               "-i", "strictness=strict", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "std.code_review with claude-sonnet, gpt-4o, gemini-flash" in run.stderr
    assert "result" in json.loads(run.stdout)
    answered = _answered_by(tmp_path)
    assert answered <= {"claude-sonnet", "gpt-4o", "gemini-flash"} and len(answered) >= 2
    generated = (tmp_path / ".bmad" / "generated" / "collaborate_code_review.bmad").read_text(encoding="utf-8")
    assert "task result = code_review(diff: diff" in generated


@pytest.mark.parametrize("args, message, hint", [
    (("--llms", "claude,gpt5"), "no model `gpt5`", "known names and aliases: claude"),
    (("--llms", "claude,gpt4"), "std.code_review needs `diff`", "--input diff=VALUE"),
    (("--llms", "claude", "--input", "dif=x"), "has no input `dif`; did you mean `diff`?", "its inputs: diff, context"),
    (("--llms", ""), "--llms names no model", "claude,gpt4,gemini"),
])
def test_collaborate_refusals_are_clear(tmp_path, args, message, hint):
    bad = bmad("workflow", "collaborate", "--task", "code-review", *args, "--provider", "sim", cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert message in bad.stderr and hint in bad.stderr
    no_traceback(bad)
    assert not (tmp_path / ".bmad" / "runs.db").exists()  # refused before anything ran


def test_create_as_written_needs_a_template(tmp_path):
    proc = bmad("workflow", "create", "--customize", cwd=tmp_path)
    assert proc.returncode == 2 and "missing --template" in proc.stderr
    no_traceback(proc)


def _create(*args: str, cwd: Path, answers: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BMAD_HOME", None)
    return subprocess.run(["bmad", "workflow", "create", *args], cwd=cwd, input=answers,
                          capture_output=True, text=True, env=env, timeout=120)


def test_create_customize_as_written_asks_and_the_scaffold_checks(tmp_path):
    answers = "\n".join([
        "",  # diff: left required
        "A payments service",  # context
        "",  # focus: the pattern's default
        "pedantic",  # strictness
        "code_review",  # the pattern's own name: refused, asked again
        "pr_review",  # workflow name
        "lots",  # not an amount: asked again
        "$2.5",  # budget
        "",  # folder: ./code-review
    ]) + "\n"
    proc = _create("--template", "code-review", "--customize", cwd=tmp_path, answers=answers)
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert "diff (text, required)" in proc.stdout and "Workflow name [my_code_review]" in proc.stdout
    assert "can't name the workflow" in proc.stderr and "expected an amount" in proc.stderr
    project = tmp_path / "code-review"
    workflow = (project / "workflow.bmad").read_text(encoding="utf-8")
    assert "workflow pr_review {" in workflow and "budget $2.50 per run" in workflow
    assert "  input diff: text\n" in workflow
    assert 'input context: text = "A payments service"' in workflow
    assert 'input focus: text = "correctness, security, error handling, performance, readability"' in workflow
    assert 'input strictness: text = "pedantic"' in workflow
    checked = bmad("check", "workflow.bmad", cwd=project)
    assert checked.returncode == 0 and "no problems" in checked.stderr, checked.stdout + checked.stderr


def test_create_flags_answer_the_same_questions_without_asking(tmp_path):
    proc = _create("--template", "std.code_review", "--set", "context=A payments service", "--set",
                   "strictness=pedantic", "--name", "pr_review", "--budget", "2.5", "review", cwd=tmp_path,
                   answers="")
    assert proc.returncode == 0, proc.stderr
    assert "?" not in proc.stdout and "Workflow name" not in proc.stdout
    workflow = (tmp_path / "review" / "workflow.bmad").read_text(encoding="utf-8")
    assert "workflow pr_review {" in workflow and "budget $2.50 per run" in workflow
    assert 'input strictness: text = "pedantic"' in workflow
    checked = bmad("check", "workflow.bmad", cwd=tmp_path / "review")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # --customize with every flag given asks only for what is left: the focus and the context
    partly = _create("-t", "code_review", "--customize", "--set", "diff=x", "--set", "strictness=strict",
                     "--name", "pr", "--budget", "1", "partly", cwd=tmp_path, answers="\n\n")
    assert partly.returncode == 0, partly.stderr
    assert "context (text" in partly.stdout and "focus (text" in partly.stdout
    assert "diff (text" not in partly.stdout and "Workflow name" not in partly.stdout
    assert "Folder" not in partly.stdout


def test_create_refusals_are_plain_errors(tmp_path):
    closed = _create("--template", "code-review", "--customize", cwd=tmp_path, answers="")
    assert closed.returncode == 2 and "ran out of answers" in closed.stderr and "--set INPUT=VALUE" in closed.stderr
    no_traceback(closed)
    typo = _create("--template", "code-reveiw", cwd=tmp_path)
    assert typo.returncode == 2 and "did you mean `code-review`" in typo.stderr
    listed = _create("--list", cwd=tmp_path)
    assert listed.returncode == 0 and "code-review" in listed.stdout and "knowledge-synthesis" in listed.stdout
    assert "not available in this installation" not in closed.stderr + typo.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.slow  # a minute of subprocess runs in all: with the slow suite (CI runs both)
def test_monitor_alerts_reach_a_webhook_while_a_real_run_runs(tmp_path):
    (tmp_path / "slow.bmad").write_text(SLOW_WORKFLOW, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BMAD_HOME", None)
    run = subprocess.Popen(["bmad", "run", "slow.bmad", "--provider", "sim", "--sim-latency-scale", "3",
                            "--sim-failure-rate", "0.5", "--sim-seed", "3"], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        monitor = bmad("workflow", "monitor", "--real-time", "--alerts-enabled", "--webhook",
                       f"http://127.0.0.1:{server.server_port}/hook", "--interval", "0.2", "--until-idle",
                       "--stall-after", "1", "--failure-rate", "0.2", "--min-failures", "1",
                       "--max-seconds", "90", cwd=tmp_path)
        run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
        server.shutdown()
    assert monitor.returncode == 0, monitor.stderr
    no_traceback(monitor)
    kinds = {a["kind"] for a in _Hook.received}
    assert "stalled_task" in kinds and "failure_rate" in kinds, _Hook.received
    assert all(a["source"] == "bmad" and a["workflow"] == "slow" for a in _Hook.received)
    assert "ALERT stalled_task" in monitor.stderr
    once = bmad("workflow", "monitor", "--once", cwd=tmp_path, check=True)
    assert "no active runs" in once.stdout
    bad = bmad("workflow", "monitor", "--webhook", "ftp://x", cwd=tmp_path)
    assert bad.returncode == 2 and "not an http(s) URL" in bad.stderr


def test_plan_html(tmp_path, spec_dir):
    out = tmp_path / "plan.html"
    bmad("plan", "--provider", "sim", "--format", "html", "-o", str(out), str(spec_dir / "code_review.bmad"),
         cwd=tmp_path, check=True)
    page = out.read_text(encoding="utf-8")
    assert 'id="plan-graph"' in page and 'id="cost-table"' in page
