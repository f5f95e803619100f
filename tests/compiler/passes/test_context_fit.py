"""Routing respects the context window: a model whose `context` can't take the task's measured
prompt is not qualified, so the planner never routes to it, never picks it as a participant, an
automatic fallback or an escalation step (the runtime would refuse each of its calls with
BMAD-E504); a model the author names (pin, participant, judge) is kept with BMAD-W204.

`tiny` is the cheapest and the most skilled model of the catalog, so only its context keeps the
router from it.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from bmad.compiler.compile import compile_source
from bmad.compiler.limits import use_limits
from bmad.compiler.passes import make_context, plan_program

CATALOG = """
provider s { kind sim }
provider t { kind sim }
model good { provider s  price input $1 output $2 per 1M      context 100k  skills { reasoning 0.95, writing 0.95 } latency 100ms }
model mid  { provider t  price input $0.5 output $1 per 1M    context 100k  skills { reasoning 0.6, writing 0.6 } latency 100ms }
model bad  { provider s  price input $0.1 output $0.2 per 1M  context 100k  skills { reasoning 0.3, writing 0.3 } latency 100ms }
model tiny { provider t  price input $0.01 output $0.02 per 1M context 2    skills { reasoning 0.99, writing 0.99 } latency 10ms }
"""


def plan_of(body: str, catalog: str = CATALOG):
    result = compile_source(catalog + body, "ctx.bmad")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    program = result.program
    return plan_program(program, make_context(program, environment={}, provider_mode="sim"))


def models_of(t) -> set[str]:
    return {t.model, *t.participants, *t.fallbacks, *t.cascade, t.judge} - {None}


@pytest.mark.parametrize("objective", ["cost", "quality", "latency", "balanced"])
def test_routing_by_objective_skips_a_model_that_cannot_take_the_prompt(objective):
    plan, _ = plan_of(f"""
workflow w {{
  optimize {objective}
  task a {{ prompt "Write a short note about the weather" needs writing }}
  output a
}}""")
    a = plan.entry.task("a")
    assert "tiny" not in models_of(a)
    [tiny] = [c for c in a.candidates if c.model == "tiny"]
    assert not tiny.qualified and tiny.available
    assert tiny.reason.startswith("context 2 < prompt ~") and tiny.reason.endswith(" tokens")


def test_counted_participants_fallbacks_and_escalations_skip_it():
    plan, _ = plan_of("""
workflow w {
  task n {
    prompt "Pick X or Y"
    returns enum(X, Y)
    consensus vote among 2 models quorum 2
  }
  task e {
    prompt "Write a haiku about rain"
    needs writing
    route cheapest
    quality >= 0.5 else escalate
  }
  task r { prompt "Pick one" needs reasoning route cheapest [tiny, bad, mid] }
  task c { prompt "Pick one" needs reasoning route cascade [tiny, bad, good] }
  output n
  output e
  output r
  output c
}""")
    for t in plan.tasks:
        assert "tiny" not in models_of(t), (t.id, models_of(t))
    assert plan.entry.task("r").model == "bad"  # the cheapest listed model that can take it
    assert plan.entry.task("c").cascade == ("bad", "good")


NAMED = """
workflow w {
  task pinned { prompt "Write a short note about the weather" model tiny }
  task voted {
    prompt "Pick X or Y"
    returns enum(X, Y)
    consensus vote among [tiny, good, mid]
  }
  task gated {
    prompt "Write a short note"
    model good
    fallback [tiny, mid]
    quality >= 0.5 judged by tiny else fail
  }
  output pinned
  output voted
  output gated
}"""


def test_a_named_model_that_cannot_take_the_prompt_is_kept_with_w204():
    plan, diagnostics = plan_of(NAMED)
    assert plan.entry.task("pinned").model == "tiny"
    assert plan.entry.task("voted").participants == ("tiny", "good", "mid")
    warned = [d for d in diagnostics if d.code == "BMAD-W204"]
    messages = sorted(d.message for d in warned)
    assert len(warned) == 4, messages
    assert any(m.startswith("fallback `tiny` for task `gated`") for m in messages)
    assert plan.entry.task("gated").fallbacks[:2] == ("tiny", "mid")  # as written
    assert any(m.startswith("pinned model `tiny` for task `pinned` can't take its prompt: about ") for m in messages)
    assert any(m.startswith("participant `tiny` for task `voted`") for m in messages)
    assert any(m.startswith("judge `tiny` for task `gated`") for m in messages)
    assert all(m.endswith("more than its context of 2") for m in messages)
    assert {n.code for n in plan.notes} >= {"BMAD-W204"}
    pin = next(d for d in warned if "pinned" in d.message)
    line = (CATALOG + NAMED).splitlines()[pin.span.line - 1]
    assert line[pin.span.column - 1:].startswith("tiny }") and "model tiny" in line  # at the pin


def test_a_model_without_a_declared_context_takes_any_prompt():
    catalog = CATALOG.replace("context 100k", "")
    plan, _ = plan_of("""
workflow w {
  input long: text
  task a { prompt "Summarize {{ long }}" needs writing route cheapest [bad, mid, good] }
  output a
}""", catalog=catalog)
    assert plan.entry.task("a").model == "bad"


def test_the_limit_is_the_runtimes_prompt_context_ratio():
    catalog = CATALOG.replace("context 2 ", "context 40 ")
    body = """
workflow w {
  task a { prompt "Write a short note about the weather in Paris today" needs writing route cheapest [tiny, bad, mid] }
  output a
}"""
    plan, _ = plan_of(body, catalog)
    assert plan.entry.task("a").model == "tiny"  # ~20 tokens fit a context of 40
    with use_limits(prompt_context_ratio=0.25):  # but not a quarter of it
        plan, _ = plan_of(body, catalog)
    a = plan.entry.task("a")
    assert a.model == "bad"
    assert next(c for c in a.candidates if c.model == "tiny").reason.startswith("context 40 x 0.25 < prompt ~")


def bmad(cwd, *args):
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


AMONG = CATALOG + """
workflow ctx_among {
  task n {
    prompt "Pick X or Y"
    returns enum(X, Y)
    consensus vote among 2 models quorum 2
  }
  output n
}
"""


def test_workflow_route_shows_why(tmp_path):
    (tmp_path / "wf.bmad").write_text(AMONG)
    out = bmad(tmp_path, "workflow", "route", "wf.bmad", "--provider", "sim")
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.strip().startswith("tiny"))
    assert "context 2 < prompt ~" in row and " no " in row


def test_the_run_never_asks_a_model_that_cannot_take_the_prompt(tmp_path):
    (tmp_path / "wf.bmad").write_text(AMONG)
    journal = tmp_path / "runs.db"
    out = bmad(tmp_path, "run", "wf.bmad", "--provider", "sim", "--sim-latency-scale", "0",
               "--journal", str(journal))
    assert out.returncode == 0, out.stderr  # the panel no longer falls short of its quorum
    db = sqlite3.connect(journal)
    try:
        rows = db.execute("SELECT model, status, error_kind FROM calls").fetchall()
    finally:
        db.close()
    assert len(rows) == 2 and all(status == "ok" for _, status, _ in rows), rows
    assert "tiny" not in {model for model, _, _ in rows}
