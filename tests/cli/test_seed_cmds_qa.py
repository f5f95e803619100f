"""QA findings on the seed's `bmad workflow` commands, as real `bmad` subprocesses on the sim
provider against real journals:

- analyze, route and optimize take `--journal J` and plan with J's history, exactly as
  `bmad plan --journal J` does (critical path, expected and worst cost);
- `bmad workflow monitor --no-real-time` prints a last line when a run ends (its final status,
  tasks and spend), in JSON lines and in text, before `--until-idle` exits;
- `bmad workflow metrics` counts, averages and ranks only the tasks that ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from bmad.compiler.plan_render import money

ENV = {**{k: v for k, v in os.environ.items() if k != "BMAD_HOME"}, "NO_COLOR": "1", "COLUMNS": "200"}


def bmad(*args: str, cwd: Path, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bmad", *args], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def start_bmad(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(["bmad", *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture
def pipeline(tmp_path, examples_dir):
    """examples/budget_pipeline.bmad (and the models it imports) in an empty folder: no default journal."""
    for name in ("budget_pipeline.bmad", "models.bmad"):
        shutil.copy(examples_dir / name, tmp_path / name)
    return tmp_path


# --- 1. --journal on the commands that plan -----------------------------------------------------------


def test_planning_commands_take_journal_and_agree_with_bmad_plan(pipeline):
    bmad("run", "budget_pipeline.bmad", "--provider", "sim", "--sim-latency-scale", "0", "--journal", "j.db",
         cwd=pipeline, check=True)
    plan = json.loads(bmad("plan", "budget_pipeline.bmad", "--provider", "sim", "--journal", "j.db",
                           "--format", "json", cwd=pipeline, check=True).stdout)
    assert plan["history_used"]
    totals, path = plan["totals"], plan["critical_path"]
    latency = {t["id"]: t["estimate"]["latency_s"] for t in plan["tasks"]}
    costs = f"expected {money(totals['cost_usd_expected'])}, worst {money(totals['cost_usd_worst'])}"

    analyzed = bmad("workflow", "analyze", "--performance", "--bottlenecks", "budget_pipeline.bmad",
                    "--provider", "sim", "--journal", "j.db", cwd=pipeline, check=True).stdout
    assert "latencies measured (run history)" in analyzed
    assert f"critical path: {totals['latency_s']:.1f}s;" in analyzed
    assert "critical path: " + " -> ".join(f"{n} ({latency[n]:.1f}s)" for n in path) in analyzed
    assert f"cost: {costs}" in analyzed

    optimized = bmad("workflow", "optimize", "budget_pipeline.bmad", "--provider", "sim", "--journal", "j.db",
                     cwd=pipeline, check=True).stdout
    assert (f"expected {money(totals['cost_usd_expected'])} -> " in optimized
            and f"worst {money(totals['cost_usd_worst'])} -> " in optimized
            and f"critical path {totals['latency_s']:.1f}s -> " in optimized), optimized

    routed = bmad("workflow", "route", "budget_pipeline.bmad", "--provider", "sim", "--journal", "j.db",
                  cwd=pipeline, check=True).stdout
    for t in plan["tasks"]:
        chosen = ", ".join(t["participants"]) or t["model"]
        assert f"{t['id']}: needs " in routed and f"-> {chosen} ({t['route_rule']}:" in routed

    # Without --journal the default journal (none here) has no history. (The figures may agree: a
    # run at --sim-latency-scale 0 teaches no latency, and one sim run changes no other estimate.)
    default = json.loads(bmad("plan", "budget_pipeline.bmad", "--provider", "sim", "--format", "json",
                              cwd=pipeline, check=True).stdout)
    assert not default["history_used"]
    estimated = bmad("workflow", "analyze", "budget_pipeline.bmad", "--provider", "sim", cwd=pipeline,
                     check=True).stdout
    assert "estimated (model profiles; no run history)" in estimated
    assert f"critical path: {default['totals']['latency_s']:.1f}s;" in estimated


# --- 2. the monitor reports a run's end ----------------------------------------------------------------


def _final_run(cwd: Path) -> dict:
    runs = json.loads(bmad("runs", "--json", "--journal", "j.db", cwd=cwd, check=True).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "completed"
    return runs[0]


def _monitor_a_run(cwd: Path, *monitor_args: str, latency_scale: str) -> tuple[str, dict]:
    monitor = start_bmad("workflow", "monitor", "--no-real-time", "--until-idle", "--interval", "0.3",
                         "--max-seconds", "40", "--journal", "j.db", *monitor_args, cwd=cwd)
    try:
        time.sleep(2.0)  # the monitor is up and polling before the run starts
        bmad("run", "budget_pipeline.bmad", "--provider", "sim", "--sim-latency-scale", latency_scale,
             "--journal", "j.db", cwd=cwd, check=True)
        out, err = monitor.communicate(timeout=60)
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.communicate()
    assert monitor.returncode == 0, err
    assert "Traceback" not in err
    return out, _final_run(cwd)


@pytest.mark.slow  # a minute of subprocess runs in all: with the slow suite (CI runs both)
def test_monitor_json_prints_the_runs_end_before_until_idle_exits(pipeline):
    out, run = _monitor_a_run(pipeline, "--json", latency_scale="1")
    lines = [json.loads(line) for line in out.splitlines()]
    mine = [line for line in lines if line.get("run") == run["id"]]
    assert len(mine) >= 2, out  # progress while it ran, then its end
    assert mine[0]["status"] == "running"
    last = mine[-1]
    assert last["status"] == "completed", out
    assert last["done"] == last["total"] == 3 and last["running"] == []
    assert last["spent_usd"] == round(run["spent_usd"], 6) and last["spent_usd"] > 0
    assert "process_gone" not in last


@pytest.mark.slow  # a minute of subprocess runs in all: with the slow suite (CI runs both)
def test_monitor_text_prints_the_runs_end_before_until_idle_exits(pipeline):
    out, run = _monitor_a_run(pipeline, latency_scale="1")
    lines = [line for line in out.splitlines() if line.startswith(run["id"])]
    assert len(lines) >= 2, out
    assert " tasks, spent $" in lines[0] and ", running " in lines[0]
    assert lines[-1] == f"{run['id']} support_digest: completed, 3/3 tasks, spent ${run['spent_usd']:.4f}", out


def test_monitor_reports_a_run_that_ended_between_two_polls(pipeline):
    """A run faster than the poll interval is never seen active; its end is still a change."""
    started = time.monotonic()
    out, run = _monitor_a_run(pipeline, "--json", "--interval", "1.5", latency_scale="0")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["run"], line["status"], line["done"]) for line in lines] == [(run["id"], "completed", 3)], out
    assert time.monotonic() - started < 35  # --until-idle exited on it, not at --max-seconds


# --- 3. metrics count only the tasks that ran -----------------------------------------------------------

STOPS_EARLY = """
workflow w {
  input go: bool = false
  task a { prompt "Write a line." model gpt-4o-mini max_tokens 20 fallback none }
  task b { prompt "Summarise: {{ a }}" model gpt-4o-mini max_tokens 20 fallback none }
  task c when go { prompt "Only when asked: {{ a }}" model gpt-4o-mini max_tokens 20 }
  output b
}
"""


@pytest.mark.slow  # 5-9 s of subprocess runs: with the slow suite (CI runs both), keeping the default run near 10 min
def test_metrics_leave_out_tasks_that_never_ran(tmp_path):
    (tmp_path / "w.bmad").write_text(STOPS_EARLY, encoding="utf-8")
    bmad("run", "w.bmad", "--provider", "sim", "--sim-latency-scale", "0", "--journal", "j.db", cwd=tmp_path,
         check=True)
    # Every call fails: `a` fails, so `b` and `c` are `not_started`.
    failed = bmad("run", "w.bmad", "--provider", "sim", "--sim-latency-scale", "0", "--sim-failure-rate", "1",
                  "--journal", "j.db", cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    runs = json.loads(bmad("runs", "--json", "--journal", "j.db", cwd=tmp_path, check=True).stdout)
    ok = next(r["id"] for r in runs if r["status"] == "completed")
    tasks = {t["id"]: t for t in json.loads(bmad("export", ok, "--journal", "j.db", cwd=tmp_path,
                                                 check=True).stdout)["tasks"]}
    assert tasks["c"]["status"] == "skipped"  # `when go` is false: it never ran either

    data = json.loads(bmad("workflow", "metrics", "--json", "--journal", "j.db", cwd=tmp_path, check=True).stdout)
    figures = {t["name"]: t for t in data["tasks"]}
    a, b = figures["a"], figures["b"]
    assert a["count"] == 2 and a["failures"] == 1 and a["failure_rate"] == 0.5  # ran twice, failed once
    assert b["count"] == 1, b  # completed once; the not_started one is no run
    assert b["cost_usd"] == pytest.approx(tasks["b"]["cost_usd"])
    assert b["mean_cost_usd"] == pytest.approx(tasks["b"]["cost_usd"])  # not halved by the one that never ran
    assert b["unpriced"] == 0 and b["failures"] == 0
    assert "c" not in figures  # skipped once, not started once: never ran
    text = bmad("workflow", "metrics", "--by", "task", "--journal", "j.db", cwd=tmp_path, check=True).stdout
    row = next(line for line in text.splitlines() if line.startswith("│ b "))
    assert row.split("│")[3].strip() == "1", text  # the `runs` column
