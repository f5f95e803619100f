"""The history a plan is made with comes from the journal the run uses: `bmad run --journal J`
(and `bmad plan --journal J`) route by J's measured quality, not the default journal's.

Real `bmad` subprocesses with the sim provider; a journal filled by earlier runs whose verdicts
make one of two equal models clearly better."""

from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys


def bmad(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(NO_COLOR="1", BMAD_HOME=str(cwd / "home"))  # the default journal: empty
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=180)


CATALOG = """
provider lab { kind sim }
model alpha { provider lab price input $1 output $2 per 1M skills { writing 0.7 } }
model beta { provider lab price input $1 output $2 per 1M skills { writing 0.7 } }
model judge { provider lab price input $1 output $2 per 1M skills { writing 0.9 } }
"""


@pytest.mark.slow  # 5-9 s of subprocess runs: with the slow suite (CI runs both), keeping the default run near 10 min
def test_run_and_plan_use_the_history_of_the_journal_they_name(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "w.bmad").write_text(CATALOG + """
workflow w {
  task t {
    prompt "Write a line."
    needs writing
    route best
    quality >= 0.5 judged by judge
  }
  output t
}
""")
    with_history = bmad("plan", "w.bmad", "--provider", "sim", "--format", "json", "--journal", "missing.db",
                        cwd=tmp_path)
    assert with_history.returncode == 0, with_history.stderr
    # the same plan as with no history at all: a missing journal has none
    without = bmad("plan", "w.bmad", "--provider", "sim", "--format", "json", "--no-history", cwd=tmp_path)
    assert json.loads(with_history.stdout)["plan_hash"] == json.loads(without.stdout)["plan_hash"]
    # fill a journal: its runs measure the models
    for seed in range(3):
        out = bmad("run", "w.bmad", "--provider", "sim", "--sim-latency-scale", "0", "--sim-seed", str(seed),
                   "--journal", "j.db", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    named = bmad("plan", "w.bmad", "--provider", "sim", "--format", "json", "--journal", "j.db", cwd=tmp_path)
    default = bmad("plan", "w.bmad", "--provider", "sim", "--format", "json", cwd=tmp_path)
    assert named.returncode == 0 and default.returncode == 0
    assert json.loads(named.stdout)["plan_hash"] != json.loads(default.stdout)["plan_hash"]
    assert json.loads(default.stdout)["plan_hash"] == json.loads(without.stdout)["plan_hash"]
    # and the run made with `--journal j.db` is planned with j.db's history
    run = bmad("run", "w.bmad", "--provider", "sim", "--sim-latency-scale", "0", "--journal", "j.db", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    import sqlite3
    db = sqlite3.connect(tmp_path / "j.db")
    try:
        hashes = [h for (h,) in db.execute("SELECT plan_hash FROM runs ORDER BY started_at")]
    finally:
        db.close()
    assert hashes[-1] == json.loads(named.stdout)["plan_hash"]


RESUMABLE = CATALOG + """
workflow w {
  task a { prompt "Write a line." needs writing route best quality >= 0.5 judged by judge }
  task b { prompt "Another: {{ a }}" model alpha fallback none }
  output b
}
"""


@pytest.mark.slow  # a minute of subprocess runs in all: with the slow suite (CI runs both)
def test_resume_with_the_unchanged_file_uses_the_runs_plan_though_history_grew(tmp_path):
    """The journal learns from every run, this one's failed calls included, so planning the same
    file again can differ; resuming must not be refused for that. An edited file still is."""
    (tmp_path / "home").mkdir()
    (tmp_path / "w.bmad").write_text(RESUMABLE)
    for seed in ("1", "2"):
        assert bmad("run", "w.bmad", "--provider", "sim", "--sim-latency-scale", "0", "--sim-seed", seed,
                    "--journal", "j.db", cwd=tmp_path).returncode == 0

    def failed_run() -> str:
        out = bmad("run", "w.bmad", "--provider", "sim", "--sim-latency-scale", "0", "--sim-failure-rate", "1",
                   "--journal", "j.db", cwd=tmp_path)
        assert out.returncode == 1, out.stderr
        import sqlite3
        db = sqlite3.connect(tmp_path / "j.db")
        try:
            return db.execute("SELECT id FROM runs WHERE status = 'failed' ORDER BY started_at DESC").fetchone()[0]
        finally:
            db.close()

    run_id = failed_run()
    replanned = bmad("plan", "w.bmad", "--provider", "sim", "--format", "json", "--journal", "j.db", cwd=tmp_path)
    resumed = bmad("run", "w.bmad", "--resume", run_id, "--provider", "sim", "--sim-latency-scale", "0",
                   "--journal", "j.db", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stderr
    assert json.loads(replanned.stdout)["plan_hash"]  # (it may differ from the run's: that is the point)

    run_id = failed_run()
    (tmp_path / "w.bmad").write_text(RESUMABLE.replace("Another:", "Yet another:"))
    edited = bmad("run", "w.bmad", "--resume", run_id, "--provider", "sim", "--sim-latency-scale", "0",
                  "--journal", "j.db", cwd=tmp_path)
    assert edited.returncode == 2 and "BMAD-E303" in edited.stderr


def test_a_run_with_scaled_sim_latency_teaches_no_latency(tmp_path):
    """`--sim-latency-scale 0` calls take about no time: their latency measures the scale, not the
    model, so a later sim plan keeps the model's own latency profile; their cost and failures
    still count. A journal that didn't record the scale (older runs) reads as scale 1."""
    import sqlite3

    from bmad.compiler.history import ANY_CAPABILITY
    from bmad.runtime.history import load_model_history

    (tmp_path / "home").mkdir()
    (tmp_path / "w.bmad").write_text(CATALOG + """
workflow w {
  input items: list<text> = ["a", "b", "c", "d"]
  task t for each it in items { prompt "Write a line about {{ it }}." model alpha fallback none max_tokens 100 }
  output t
}
""")
    run = bmad("run", "w.bmad", "--provider", "sim", "--sim-latency-scale", "0", "--journal", "j.db", cwd=tmp_path)
    assert run.returncode == 0, run.stderr

    def latency(*history: str) -> float:
        out = bmad("plan", "w.bmad", "--provider", "sim", "--format", "json", *history, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)["tasks"][0]["estimate"]["latency_s"]

    profile = latency("--no-history")
    assert profile > 1.0
    assert latency("--journal", "j.db") == profile
    observed = load_model_history(tmp_path / "j.db", simulated=True).observations[("alpha", ANY_CAPABILITY)]
    assert observed.samples >= 4 and observed.cost_usd is not None and observed.latency_s is None

    db = sqlite3.connect(tmp_path / "j.db")
    try:  # as a journal written before runs recorded their latency scale
        for run_id, options in db.execute("SELECT id, options_json FROM runs").fetchall():
            older = {k: v for k, v in json.loads(options).items() if k != "sim_latency_scale"}
            db.execute("UPDATE runs SET options_json = ? WHERE id = ?", (json.dumps(older), run_id))
        db.commit()
    finally:
        db.close()
    observed = load_model_history(tmp_path / "j.db", simulated=True).observations[("alpha", ANY_CAPABILITY)]
    assert observed.latency_s is not None and observed.latency_s < 0.5
