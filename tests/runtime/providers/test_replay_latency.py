"""A replayed call is journaled with the latency it recorded (none recorded: none taken), not the
wall time this machine spent queueing it: history learnt from replays, and the routing it drives,
must not vary from run to run (it did, by a few prompts, in bench/routing/run.py)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path


def test_replayed_calls_journal_their_recorded_latency(tmp_path: Path):
    records = [{"prompt": "Name a colour", "model": "slow", "response": "red", "latency_s": 1.5},
               {"prompt": "Name a colour", "model": "quick", "response": "blue"}]
    data = tmp_path / "rec.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "w.bmad").write_text(f"""
provider rec {{ kind replay  data "{data}" }}
model slow {{ provider rec  id "slow" price input $1 output $1 per 1M skills {{ writing 0.9 }} }}
model quick {{ provider rec  id "quick" price input $1 output $1 per 1M skills {{ writing 0.9 }} }}
workflow w {{
  task a {{ prompt "Name a colour" model slow }}
  task b {{ prompt "Name a colour" model quick }}
  output a
  output b
}}
""", encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BMAD_HOME", None)
    journal = tmp_path / "j.db"
    for _ in range(2):
        out = subprocess.run([sys.executable, "-m", "bmad", "run", "w.bmad", "--journal", str(journal)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    db = sqlite3.connect(journal)
    try:
        latencies = db.execute("SELECT model, latency_s FROM calls ORDER BY id").fetchall()
    finally:
        db.close()
    assert sorted(latencies) == [("quick", 0.0), ("quick", 0.0), ("slow", 1.5), ("slow", 1.5)]
