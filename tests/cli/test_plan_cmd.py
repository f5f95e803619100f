"""`bmad plan` and `bmad workflow optimize|route|analyze`, run as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources

import jsonschema
import pytest

SCHEMA = json.loads(resources.files("bmad.compiler.schema").joinpath("plan.v1.json").read_text())


def bmad(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["NO_COLOR"] = "1"
    return subprocess.run([sys.executable, "-c", "from bmad.cli.main import run; run()", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_plan_text_shows_stages_totals_and_the_critical_path(spec_dir):
    r = bmad("plan", "--provider", "sim", str(spec_dir / "code_review.bmad"))
    assert r.returncode == 0, r.stderr
    for expected in ("stage 1", "Totals", "Critical path", "verdict", "budget $0.50", "plan hash"):
        assert expected in r.stdout


def test_plan_json_validates_and_writes_a_sealed_plan(spec_dir, tmp_path):
    out = tmp_path / "plan.json"
    r = bmad("plan", "--provider", "sim", "-o", str(out), str(spec_dir / "research.bmad"))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["workflow"] == "research" and data["budget"]["usd"] == 2.0
    r = bmad("plan", "--provider", "sim", "--format", "json", str(spec_dir / "research.bmad"))
    assert json.loads(r.stdout)["plan_hash"] == data["plan_hash"]


def test_plan_rejects_an_impossible_budget(spec_dir):
    r = bmad("plan", str(spec_dir / "bad" / "budget.bmad"))
    assert r.returncode == 1
    assert "BMAD-E210" in r.stderr and "budget.bmad:4:3" in r.stderr


def test_check_rejects_an_impossible_budget(spec_dir):
    r = bmad("check", str(spec_dir / "bad" / "budget.bmad"))
    assert r.returncode == 1 and "BMAD-E210" in r.stderr


def test_plan_without_keys_routes_to_available_models(spec_dir):
    r = bmad("plan", str(spec_dir / "hello.bmad"))
    assert r.returncode == 0, r.stderr
    assert "local" in r.stdout


@pytest.mark.parametrize("fmt,marker", [("mermaid", "flowchart TD"), ("dot", "digraph"), ("yaml", "plan_hash:")])
def test_plan_graph_formats(spec_dir, fmt, marker):
    r = bmad("plan", "--provider", "sim", "--format", fmt, str(spec_dir / "code_review.bmad"))
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout and "summarize" in r.stdout


def test_plan_diff_shows_routing_and_cost_changes(spec_dir, tmp_path):
    old = tmp_path / "old.json"
    assert bmad("plan", "--provider", "sim", "-o", str(old), str(spec_dir / "code_review.bmad")).returncode == 0
    r = bmad("plan", "--provider", "sim", "--optimize", "quality", "--diff", str(old),
             str(spec_dir / "code_review.bmad"))
    assert r.returncode == 0, r.stderr
    assert "Plan diff" in r.stdout and "->" in r.stdout and "changed" in r.stdout
    assert "the old plan is of workflow" not in r.stdout


def test_plan_diff_says_when_the_old_plan_is_of_another_workflow(spec_dir, tmp_path):
    old = tmp_path / "old.json"
    assert bmad("plan", "--provider", "sim", "-o", str(old), str(spec_dir / "code_review.bmad")).returncode == 0
    renamed = tmp_path / "renamed.bmad"
    (tmp_path / "models.bmad").write_text((spec_dir / "models.bmad").read_text())  # its import
    source = (spec_dir / "code_review.bmad").read_text()
    workflow = json.loads(old.read_text())["workflow"]
    renamed.write_text(source.replace(f"workflow {workflow} ", f"workflow {workflow}_v2 "))
    r = bmad("plan", "--provider", "sim", "--diff", str(old), str(renamed))
    assert r.returncode == 0, r.stderr
    assert f"the old plan is of workflow {workflow}, not {workflow}_v2" in r.stdout


def test_plan_overrides(spec_dir):
    r = bmad("plan", "--provider", "sim", "--format", "json", "--budget", "$5", "--optimize", "latency",
             "--min-quality", "0.8", "--scheduling", "latency_optimized", str(spec_dir / "code_review.bmad"))
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["budget"]["usd"] == 5.0 and data["objective"] == "latency"
    assert data["scheduling"] == "latency_optimized"
    assert all(t["quality_floor"] >= 0.8 for t in data["tasks"])


def test_plan_usage_errors(spec_dir, tmp_path):
    assert bmad("plan", "--budget", "lots", str(spec_dir / "hello.bmad")).returncode == 2
    assert bmad("plan", str(tmp_path / "missing.bmad")).returncode == 2
    assert bmad("plan", "--diff", str(tmp_path / "nope.json"), str(spec_dir / "hello.bmad")).returncode == 2


def test_plan_lists_passes():
    r = bmad("plan", "--passes")
    assert r.returncode == 0
    names = [line.split(":")[0] for line in r.stdout.splitlines()]
    assert names == ["1. expand", "2. resolve_dependencies", "3. measure_prompts", "4. route_models", "5. learn_bars",
                     "6. chain_fallbacks", "7. estimate_cost", "8. enforce_budget", "9. schedule_tasks",
                     "10. seal_plan"]


def test_plan_of_a_declarations_file_lists_the_catalog(spec_dir):
    r = bmad("plan", str(spec_dir / "models.bmad"))
    assert r.returncode == 0 and "OPENAI_API_KEY is not set" in r.stdout


def test_workflow_views(spec_dir):
    path = str(spec_dir / "code_review.bmad")
    r = bmad("workflow", "optimize", "--objective", "cost", "--maintain-quality", "0.8", "--provider", "sim", path)
    assert r.returncode == 0, r.stderr
    assert "cost objective vs the file's" in r.stdout
    r = bmad("workflow", "route", "--tasks", "auto", "--capabilities-aware", "--provider", "sim", path)
    assert r.returncode == 0, r.stderr
    assert "candidate" in r.stdout and "security: needs code, security" in r.stdout
    r = bmad("workflow", "analyze", "--performance", "--bottlenecks", "--provider", "sim", path)
    assert r.returncode == 0, r.stderr
    assert "critical path" in r.stdout and "cost hot spots" in r.stdout


@pytest.mark.slow  # 5-9 s of subprocess runs: with the slow suite (CI runs both), keeping the default run near 10 min
def test_a_sim_run_steers_only_sim_plans(spec_dir, tmp_path):
    """After `bmad run --provider sim` here, a real plan uses no history; a sim plan does."""
    workflow = tmp_path / "hello.bmad"
    workflow.write_text((spec_dir / "hello.bmad").read_text())
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "BMAD_HOME"}
    env["NO_COLOR"] = "1"

    def run_bmad(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from bmad.cli.main import run; run()", *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)

    r = run_bmad("run", "--provider", "sim", "hello.bmad")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / ".bmad" / "runs.db").exists()
    real = run_bmad("plan", "--format", "json", "hello.bmad")
    assert real.returncode == 0, real.stderr
    assert json.loads(real.stdout)["history_used"] is False
    assert "with run history" not in run_bmad("plan", "hello.bmad").stdout
    sim = run_bmad("plan", "--provider", "sim", "--format", "json", "hello.bmad")
    assert sim.returncode == 0, sim.stderr
    assert json.loads(sim.stdout)["history_used"] is True


def test_plan_names_the_rubric_a_quality_gate_applies(tmp_path):
    flow = tmp_path / "rubrics.bmad"
    flow.write_text('use std.quality\n'
                    'workflow w {\n'
                    '  task a { prompt "Write about cats" quality >= 0.7 rubric grounded }\n'
                    '  task b { prompt "Polish {{ a }}" quality >= 0.6 rubric "Is it short?" }\n'
                    '  output b\n'
                    '}\n')
    text = bmad("plan", "--provider", "sim", str(flow))
    assert text.returncode == 0, text.stderr
    row_a = next(line for line in text.stdout.splitlines() if line.startswith("│ a"))
    row_b = next(line for line in text.stdout.splitlines() if line.startswith("│ b"))
    assert "(grounded)" in row_a and "(" not in row_b.split("│")[7]  # a spelled-out rubric has no name
    html = bmad("plan", "--provider", "sim", "--format", "html", str(flow))
    assert html.returncode == 0, html.stderr
    assert "(grounded)" in html.stdout
