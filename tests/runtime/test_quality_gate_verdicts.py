"""A quality gate's verdict: a judge reply with no readable score is asked for once more and then
counts as below the bar (it used to pass every gate, even `else fail`); a consensus judge that
names no candidate lets the answers' agreement decide (it used to take the first answer shown); a
judge that fails is named as the gate's judge, and hands over to the plan's other judge.

Judge replies are fixed with a `replay` provider; `bmad run` runs in a subprocess (exit codes, no
traceback) and the real SQLite journal is read back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from runtime_support import exported, plan_source, run_plan, sim_factory

REASK = "Your previous reply gave no score that could be read"  # what the second ask says
PROSE = "Rain falls on the roof, soft whispers of the evening, puddles hold the sky"


def replay_file(tmp_path: Path, records: list[dict], task: str) -> Path:
    data = tmp_path / "rec.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    source = tmp_path / "w.bmad"
    source.write_text(f"""
provider rec {{ kind replay  data "{data}" }}
model writer {{ provider rec  id "writer" price input $1 output $1 per 1M context 100k skills {{ writing 0.9 }} }}
model writer2 {{ provider rec  id "writer2" price input $1 output $1 per 1M context 100k skills {{ writing 0.9 }} }}
model writer3 {{ provider rec  id "writer3" price input $1 output $1 per 1M context 100k skills {{ writing 0.9 }} }}
model critic {{ provider rec  id "critic" price input $1 output $1 per 1M context 100k skills {{ writing 0.9 }} }}
workflow w {{
{task}
  output t
}}
""", encoding="utf-8")
    return source


def bmad_run(source: Path, journal: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("BMAD_HOME", None)
    out = subprocess.run([sys.executable, "-m", "bmad", "run", str(source), "--journal", str(journal),
                          *extra], cwd=source.parent, env=env, capture_output=True, text=True,
                         timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def rows(journal: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(journal)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def events(journal: Path, kind: str) -> list[dict]:
    return [json.loads(d) for (d,) in rows(journal, f"SELECT data_json FROM events WHERE kind='{kind}'")]


HAIKU = [{"prompt": "Write a haiku about rain", "model": "writer", "response": PROSE},
         {"prompt": "Write a haiku about rain", "model": "critic", "response": PROSE}]


def test_an_unreadable_score_fails_a_gate_with_else_fail(tmp_path):
    source = replay_file(tmp_path, HAIKU, """
  task t {
    prompt "Write a haiku about rain"
    model writer
    quality >= 0.99 judged by critic else fail
  }""")
    journal = tmp_path / "j.db"
    out = bmad_run(source, journal)
    assert out.returncode == 1, out.stderr
    assert "no readable score" in out.stderr
    [(status, quality, error)] = rows(journal, "SELECT status, quality, error FROM tasks")
    assert status == "failed" and quality is None and "no readable score" in error
    # asked twice, the second time with its reply shown, before counting it below the bar
    judge_slots = [s for (s,) in rows(journal, "SELECT slot FROM calls WHERE purpose='judge' ORDER BY id")]
    assert judge_slots == ["m0/judge/", "m0/judge/again/"]
    [event] = events(journal, "judge_unreadable")
    assert event["judge"] == "critic" and event["model"] == "writer"
    assert event["action"] == "counted below the bar" and event["reply"].startswith("Rain falls")


def test_an_unreadable_score_without_else_completes_below_the_bar_and_says_so(tmp_path):
    source = replay_file(tmp_path, HAIKU, """
  task t {
    prompt "Write a haiku about rain"
    model writer
    quality >= 0.5 judged by critic
  }""")
    journal = tmp_path / "j.db"
    out = bmad_run(source, journal)
    assert out.returncode == 0, out.stderr
    [(status, quality)] = rows(journal, "SELECT status, quality FROM tasks")
    assert status == "completed" and quality is None  # never scored: no quality made up
    [below] = events(journal, "quality_below_bar")
    assert below["quality"] is None and below["bar"] == 0.5 and below["reason"] == "no `else` action"
    assert "note: task t completed below its quality bar: no readable score < 0.50" in out.stderr
    # the detailed text report and the HTML page show both gate events, not only the JSON export
    run_id = rows(journal, "SELECT id FROM runs")[0][0]
    for fmt in ("detailed", "html"):
        shown = subprocess.run([sys.executable, "-m", "bmad", "export", run_id, "--format", fmt,
                                "--journal", str(journal)], capture_output=True, text=True,
                               env={**os.environ, "NO_COLOR": "1"}, timeout=120)
        assert shown.returncode == 0, shown.stderr
        assert "Quality gate events" in shown.stdout
        assert "judge critic gave no score" in shown.stdout
        assert "below the bar (no score &lt; 0.50)" in shown.stdout if fmt == "html" \
            else "below the bar (no score < 0.50)" in shown.stdout
        assert "no `else` action" in shown.stdout


def test_a_score_given_when_asked_again_is_used(tmp_path):
    source = replay_file(tmp_path, HAIKU + [
        {"prompt": REASK, "model": "critic", "response": '{"score": 0.995, "critique": "fine"}'}], """
  task t {
    prompt "Write a haiku about rain"
    model writer
    quality >= 0.99 judged by critic else fail
  }""")
    journal = tmp_path / "j.db"
    out = bmad_run(source, journal)
    assert out.returncode == 0, out.stderr
    [(status, quality)] = rows(journal, "SELECT status, quality FROM tasks")
    assert status == "completed" and quality == 0.995
    assert events(journal, "judge_unreadable") == [] and events(journal, "quality_below_bar") == []


def test_a_consensus_judge_that_names_no_candidate_lets_agreement_decide(tmp_path):
    question = "Name the capital of France in one sentence"
    records = [{"prompt": question, "model": "writer", "response": "Lyon, I believe."},
               {"prompt": question, "model": "writer2", "response": "Paris is the capital of France."},
               {"prompt": question, "model": "writer3", "response": "Paris is the capital of France."},
               {"prompt": question, "model": "critic", "response": "They all look fine to me."}]
    source = replay_file(tmp_path, records, f"""
  task t {{
    prompt "{question}"
    consensus judge critic among [writer, writer2, writer3]
  }}""")
    journal = tmp_path / "j.db"
    out = bmad_run(source, journal, "-o", str(tmp_path / "out.json"))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "out.json").read_text())["t"] == "Paris is the capital of France."
    judge_slots = [s for (s,) in rows(journal, "SELECT slot FROM calls WHERE purpose='judge' ORDER BY id")]
    assert judge_slots == ["judge/", "judge/again/"]
    [event] = events(journal, "judge_unreadable")
    assert event["judge"] == "critic" and event["action"] == "decided by agreement instead"


def test_a_failing_judge_is_named_as_the_gates_judge(tmp_path):
    catalog = """
provider p1 { kind sim }
model good { provider p1 price input $1 output $2 per 1M skills { writing 0.9 } }
model tiny { provider p1 price input $1 output $2 per 1M context 2 skills { writing 0.9 } }
"""
    plan = plan_source(tmp_path, """
    workflow w {
      task t {
        prompt "Write a line"
        model good
        fallback none
        quality >= 0.5 judged by tiny else fail
      }
      output t
    }
    """, catalog=catalog)
    outcome, _ = run_plan(plan, tmp_path)
    assert outcome.status == "failed"
    [task] = exported(tmp_path, outcome.run_id)["tasks"]
    assert task["error"].startswith("the quality gate's judge failed: tiny: ")


def test_a_failing_gate_judge_hands_over_to_the_plans_other_judge(tmp_path):
    # On `consensus judge M`, M is the plan's judge too: it judges when the gate's own judge fails.
    catalog = """
provider p1 { kind sim }
model good { provider p1 price input $1 output $2 per 1M skills { writing 0.9 } }
model mid { provider p1 price input $1 output $2 per 1M skills { writing 0.8 } }
model broken { provider p1 price input $1 output $2 per 1M skills { writing 0.9 } }
"""
    plan = plan_source(tmp_path, """
    workflow w {
      task t {
        prompt "Write a line"
        consensus judge good among [good, mid]
        quality >= 0.1 judged by broken else fail
      }
      output t
    }
    """, catalog=catalog)
    factory = sim_factory(plan, model_failure_rates={"broken": 1.0}, failure_kinds=("auth",))
    outcome, rec = run_plan(plan, tmp_path, factory=factory)
    assert outcome.status == "completed", outcome.error
    [handover] = [e.data for e in rec.kinds("task_escalated")]
    assert (handover["from_model"], handover["to_model"]) == ("broken", "good")
    assert handover["reason"].startswith("the quality gate's judge failed")
    gate_calls = [(c["model"], c["status"]) for c in exported(tmp_path, outcome.run_id)["calls"]
                  if c["slot"] == "gate/judge/"]
    assert gate_calls == [("broken", "error"), ("good", "ok")]
