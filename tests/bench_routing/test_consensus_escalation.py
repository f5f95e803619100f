"""Consensus that escalates on disagreement, verdicts in the journal, history read from them, and
the router choosing consensus participants by that history: with a real replay provider."""

from __future__ import annotations

import json
from pathlib import Path

from bmad.compiler.compile import compile_source
from bmad.compiler.passes import make_context, plan_program
from bmad.runtime.executors.local import RunRequest, execute_plan
from bmad.runtime.history import read_history
from bmad.runtime.journal import Journal
from bmad.runtime.quality import similarity

MODELS = """
provider rec {{
  kind replay
  data "{data}"
}}
model cheap-a {{ provider rec
  price input $1 output $1 per 1M
  skills {{ trivia 0.5 }} }}
model cheap-b {{ provider rec
  price input $1 output $1 per 1M
  skills {{ trivia 0.5 }} }}
model cheap-c {{ provider rec
  price input $2 output $2 per 1M
  skills {{ trivia 0.5 }} }}
model strong {{ provider rec
  price input $10 output $30 per 1M
  skills {{ trivia 0.5 }} }}
"""

# Per question, what each model answers (a: both cheap agree; b: they disagree).
ANSWERS = {
    "q1": {"cheap-a": "A", "cheap-b": "A", "cheap-c": "B", "strong": "A"},
    "q2": {"cheap-a": "A", "cheap-b": "B", "cheap-c": "B", "strong": "B"},
    "q3": {"cheap-a": "C", "cheap-b": "D", "cheap-c": "D", "strong": "D"},
    "q4": {"cheap-a": "B", "cheap-b": "C", "cheap-c": "C", "strong": "C"},
}


def write_recordings(tmp_path: Path) -> Path:
    path = tmp_path / "recorded.jsonl"
    with path.open("w") as fh:
        for qid, answers in ANSWERS.items():
            for model, answer in answers.items():
                fh.write(json.dumps({"prompt_id": qid, "prompt": f"Question {qid}: pick a letter.",
                                     "model": model, "response": answer,
                                     "cost_usd": 0.01 if model == "strong" else 0.001}) + "\n")
    return path


def plan_text(tmp_path: Path, body: str, history=None):
    data = write_recordings(tmp_path)
    text = MODELS.format(data=data.as_posix()) + body
    result = compile_source(text, str(tmp_path / "w.bmad"))
    assert result.ok, [d.message for d in result.diagnostics]
    plan, diags = plan_program(result.program, make_context(result.program, history=history))
    assert plan is not None, [d.message for d in diags]
    return plan


VOTE_ESCALATE = """
workflow w {
  input questions: list<text> = []
  task answer for each q in questions {
    prompt "{{ q }}"
    needs trivia
    returns enum(A, B, C, D)
    consensus vote among [cheap-a, cheap-b] quorum 2
    fallback [strong]
  }
  output answer
}
"""


def run(plan, tmp_path: Path, questions: list[str], name: str = "runs.db"):
    journal = tmp_path / name
    outcome = execute_plan(plan, RunRequest(inputs={"questions": questions}, journal_path=journal))
    assert outcome.status == "completed", outcome.error
    return outcome, journal


def questions(*ids: str) -> list[str]:
    return [f"Question {q}: pick a letter." for q in ids]


def test_agreement_is_accepted_and_disagreement_escalates_to_the_fallback(tmp_path):
    plan = plan_text(tmp_path, VOTE_ESCALATE)
    outcome, journal = run(plan, tmp_path, questions("q1", "q2", "q3"))
    assert outcome.outputs["answer"] == ["A", "B", "D"]
    j = Journal(journal, readonly=True)
    calls = j.db.execute("SELECT slot, model FROM calls ORDER BY slot").fetchall()
    strong = [slot for slot, model in calls if model == "strong"]
    assert sorted(s.split("/")[0] for s in strong) == ["i1", "i2"]  # q1 agreed: never escalated
    assert all("/esc0/" in s for s in strong)
    events = [json.loads(d) for (d,) in j.db.execute(
        "SELECT data_json FROM events WHERE kind='task_escalated'")]
    assert events and all(e.get("to_model") == "strong" for e in events)


def test_without_a_fallback_a_short_quorum_still_fails(tmp_path):
    plan = plan_text(tmp_path, VOTE_ESCALATE.replace("    fallback [strong]\n", ""))
    journal = tmp_path / "runs.db"
    outcome = execute_plan(plan, RunRequest(inputs={"questions": questions("q2")},
                                            journal_path=journal))
    assert outcome.status == "failed"
    assert "consensus needs 2" in (outcome.error or "")


def test_agreement_bar_escalates_even_when_the_quorum_is_met(tmp_path):
    body = VOTE_ESCALATE.replace("consensus vote among [cheap-a, cheap-b] quorum 2\n    fallback [strong]",
                                 "consensus vote among [cheap-a, cheap-b, cheap-c]\n"
                                 "    quality >= 1.0 else escalate\n    fallback [strong]")
    plan = plan_text(tmp_path, body)
    outcome, journal = run(plan, tmp_path, questions("q1"))
    assert outcome.outputs["answer"] == ["A"]  # 2 of 3 agreed (< 1.0): strong asked, sides with A
    j = Journal(journal, readonly=True)
    assert j.db.execute("SELECT COUNT(*) FROM calls WHERE model='strong'").fetchone()[0] == 1


def test_verdicts_become_history_and_the_router_picks_by_it(tmp_path):
    explore = """
workflow w {
  input questions: list<text> = []
  task answer for each q in questions {
    prompt "{{ q }}"
    needs trivia
    returns enum(A, B, C, D)
    consensus vote among [cheap-a, cheap-b, cheap-c, strong]
  }
  output answer
}
"""
    _, journal = run(plan_text(tmp_path, explore), tmp_path, questions("q1", "q2", "q3", "q4"))
    j = Journal(journal, readonly=True)
    rows = j.db.execute("SELECT model, capability, agreement FROM verdicts").fetchall()
    assert len(rows) == 16 and {c for _, c, _ in rows} == {"trivia"}
    history = read_history(j)
    # Agreement with the plurality: cheap-a once in four, cheap-b always, cheap-c three times.
    assert history.quality("cheap-a", "trivia") == 0.25
    assert history.quality("cheap-b", "trivia") == 1.0
    assert history.quality("cheap-c", "trivia") == 0.75
    chosen = """
workflow w {
  input questions: list<text> = []
  task answer for each q in questions {
    prompt "{{ q }}"
    needs trivia
    returns enum(A, B, C, D)
    route best [cheap-a, cheap-b, cheap-c]
    consensus vote among 2 models quorum 2
    fallback [strong]
  }
  output answer
}
"""
    without = plan_text(tmp_path, chosen)
    with_history = plan_text(tmp_path, chosen, history=history)
    assert set(without.tasks[0].participants) == {"cheap-a", "cheap-b"}  # neutral prior: cheapest
    assert set(with_history.tasks[0].participants) == {"cheap-b", "cheap-c"}


def test_code_answers_are_compared_by_their_code():
    a = "Here is a neat solution:\r\n```python\r\ndef f(x):\r\n    return x * 2\r\n```\r\nEnjoy."
    b = "Sure! This doubles the number you pass in.\n```\ndef f(x):\n    return x * 2\n```"
    assert similarity(a, b) > 0.9
    assert similarity("no code here at all", "```\ndef f(x):\n    return x\n```") < 0.5
