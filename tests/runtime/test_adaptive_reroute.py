"""`strategy adaptive` moves work to cheaper models when money runs short: never from a free model
onto a paid one (an expected cost of $0 read as unknown made every model "cheaper")."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_a_free_task_is_not_moved_onto_a_paid_model_when_money_runs_short(tmp_path: Path):
    for name in ("budget_pipeline.bmad", "models.bmad"):  # adaptive; `classify` runs on free `local`
        shutil.copy(EXAMPLES / name, tmp_path / name)
    rows = "".join(json.dumps({"tickets": [f"t{i}a", f"t{i}b"]}) + "\n" for i in range(20))
    (tmp_path / "rows.jsonl").write_text(rows, encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BMAD_HOME", None)
    out = subprocess.run([sys.executable, "-m", "bmad", "run", "budget_pipeline.bmad", "--provider", "sim",
                          "--sim-latency-scale", "0", "--concurrency", "1", "--inputs", "rows.jsonl",
                          "-o", "results.jsonl", "--journal", "j.db", "--budget", "$0.0008"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in out.stderr
    assert out.returncode == 3, out.stderr  # the shared budget runs out: the pressure is real
    db = sqlite3.connect(tmp_path / "j.db")
    try:
        classify = {m for (m,) in db.execute("SELECT DISTINCT model FROM calls WHERE task_id='classify'")}
        moves = [json.loads(d) for (d,) in db.execute("SELECT data_json FROM events WHERE kind='task_rerouted'")]
    finally:
        db.close()
    assert classify == {"local"}
    assert not any(m.get("from_model") == "local" for m in moves), moves
