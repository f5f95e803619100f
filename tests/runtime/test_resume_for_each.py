"""SIGKILL in the middle of a `for each`, then `--resume`: the items that had finished were
journaled as they finished, so the resume replays them and pays only for the rest.

A real HTTP server on 127.0.0.1 (`UsageServer` of test_budget_overrun.py), `bmad run` in a
subprocess killed with SIGKILL, the real SQLite journal read back.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from test_budget_overrun import KEY_VAR, UsageServer, bmad, journal_rows


@pytest.fixture(scope="module")
def server():
    with UsageServer() as s:
        yield s


def ok_calls(journal) -> int:
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT COUNT(*) FROM calls WHERE status='ok'").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_resume_after_sigkill_does_not_pay_again_for_finished_items(server, tmp_path):
    f = tmp_path / "wf.bmad"
    f.write_text(server.catalog("delay:0.4", "ok") + """
workflow res {
  input items: list<text> = ["a","b","c","d","e","f"]
  task t for each x in items {
    prompt "Say hi {{ x }}"
    model m_delay_0_4
    max_tokens 50
  }
  task u {
    prompt "after {{ t }}"
    model m_ok
  }
  output u
}
""")
    journal = tmp_path / "runs.db"
    env = {**os.environ, KEY_VAR: "sk-test-usage-0123456789"}
    proc = subprocess.Popen([sys.executable, "-m", "bmad", "run", str(f), "--journal", str(journal),
                             "--concurrency", "2", "-o", str(tmp_path / "first.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while ok_calls(journal) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        finished = ok_calls(journal)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Items that finished before the kill are in the journal (before, none were until the whole
    # `for each` task had finished).
    assert finished >= 2
    journaled = ok_calls(journal)
    sent_before = server.count("delay:0.4")
    assert journaled <= sent_before < 6
    [(run_id,)] = journal_rows(journal, "SELECT id FROM runs")

    out = bmad(tmp_path, "run", "--resume", run_id, "--journal", str(journal),
               "--concurrency", "2", "-o", str(tmp_path / "out.json"))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    # Only the items not journaled were sent again.
    assert server.count("delay:0.4") == sent_before + (6 - journaled)
    [(status,)] = journal_rows(journal, "SELECT status FROM runs")
    assert status == "completed"
    [(paid,)] = journal_rows(journal, "SELECT COUNT(*) FROM calls WHERE model='m_delay_0_4' "
                                      "AND status='ok' AND cached=0")
    assert paid == 6
