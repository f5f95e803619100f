"""`strategy sequential` with priorities: an explicit `priority` decides between tasks whose paths
are equally long (the critical path the plan shows is then one pick among them), and the plan's
stages list the tasks in the order the run takes them. Each plan is compared with a real run (the
sim provider, the SQLite journal's call order). docs/planning.md, *Scheduling*.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from bmad.compiler.compile import compile_source
from bmad.compiler.passes import make_context, plan_program

CATALOG = """
provider s { kind sim }
model good { provider s  price input $1 output $2 per 1M  context 100k  skills { writing 0.95 } latency 100ms + 1ms per token }
"""

PRIO = CATALOG + """
workflow prio {
  strategy sequential
  task a { prompt "a" model good max_tokens 10 priority low }
  task b { prompt "b" model good max_tokens 10 }
  task c { prompt "c" model good max_tokens 10 priority critical }
  task d { prompt "d" model good max_tokens 10 priority high }
  output a
  output b
  output c
  output d
}
"""

# z is written first, but x -> y is the longest path: x, then y (now ready, of lower rank), then z
CHAIN = CATALOG + """
workflow chain {
  strategy sequential
  task z { prompt "z" model good max_tokens 10 priority high }
  task x { prompt "x" model good max_tokens 10 priority low }
  task y { prompt "after {{ x }}" model good max_tokens 10 priority critical }
  output y
  output z
}
"""

CALLED = CATALOG + """
workflow inner {
  task p { prompt "p" model good max_tokens 10 priority low }
  task q { prompt "q" model good max_tokens 10 priority critical }
  task r { prompt "r" model good max_tokens 10 }
  output p
  output q
  output r
}
workflow outer {
  strategy sequential
  task go = inner()
  output go
}
"""


def plan_of(source: str, **options):
    result = compile_source(source, "prio.bmad")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    program = result.program
    plan, diagnostics = plan_program(program, make_context(program, environment={}, provider_mode="sim",
                                                           **options))
    assert plan is not None, [d.message for d in diagnostics]
    return plan


def order(wp) -> list[str]:
    assert all(len(stage) == 1 for stage in wp.stages)
    return [stage[0] for stage in wp.stages]


def test_explicit_priority_decides_between_equally_long_paths():
    plan = plan_of(PRIO)
    ranks = {t.id: t.rank for t in plan.tasks}
    assert sorted(ranks, key=ranks.get) == ["c", "d", "b", "a"]
    assert order(plan.entry) == ["c", "d", "b", "a"]  # the order the run takes, not source order


@pytest.mark.parametrize("scheduling", ["priority_first", "balanced"])
def test_every_objective_that_puts_the_critical_path_first_lets_priority_break_its_ties(scheduling):
    plan = plan_of(PRIO, scheduling=scheduling)
    assert order(plan.entry)[0] == "c" and order(plan.entry)[-1] == "a"


def test_a_strictly_longer_path_still_comes_first():
    plan = plan_of(CATALOG + """
workflow w {
  strategy sequential
  task quick { prompt "q" model good max_tokens 10 priority critical }
  task slow { prompt "s" model good max_tokens 2000 priority low }
  output quick
  output slow
}
""")
    # the rank weighs the dependency graph's longest path; the run takes every task one at a
    # time, so the plan's critical path is the whole run, in its order
    assert plan.entry.critical_path == ("slow", "quick")
    assert order(plan.entry) == ["slow", "quick"]


def test_the_sequential_listing_follows_dependencies_and_ranks():
    plan = plan_of(CHAIN)
    assert order(plan.entry) == ["x", "y", "z"]


def test_a_called_workflow_of_a_sequential_run_is_listed_one_task_at_a_time():
    plan = plan_of(CALLED)
    assert order(plan.subplan("inner")) == ["q", "r", "p"]


def bmad(cwd, *args):
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


@pytest.mark.parametrize("source", [PRIO, CHAIN, CALLED], ids=["prio", "chain", "called"])
def test_the_run_takes_the_order_the_plan_lists(tmp_path, source):
    (tmp_path / "wf.bmad").write_text(source)
    planned = bmad(tmp_path, "plan", "wf.bmad", "--provider", "sim", "-o", "plan.json")
    assert planned.returncode == 0, planned.stderr
    data = json.loads((tmp_path / "plan.json").read_text())
    listed = [stage[0] for stage in data["stages"]]
    for sub in data["subplans"]:  # a call runs its workflow's tasks where the call is listed
        call = next(t["id"] for t in data["tasks"] if t["subworkflow"] == sub["workflow"])
        at = listed.index(call)
        listed[at:at + 1] = [f"{call}/{stage[0]}" for stage in sub["stages"]]
    journal = tmp_path / "runs.db"
    out = bmad(tmp_path, "run", "plan.json", "--provider", "sim", "--sim-latency-scale", "0",
               "--journal", str(journal))
    assert out.returncode == 0, out.stderr
    db = sqlite3.connect(journal)
    try:
        ran = [task for (task,) in db.execute("SELECT task_id FROM calls ORDER BY id")]
    finally:
        db.close()
    assert ran == listed
