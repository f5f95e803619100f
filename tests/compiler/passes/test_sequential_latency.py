"""`strategy sequential`: the runtime runs one task at a time, so the plan's latency is the sum of
every task's, its critical path is the whole run in the order the run takes it, and the time
budget (BMAD-W213) is checked against that. BMAD-W213 and the totals print the same figure.
docs/planning.md, *Scheduling*.
"""

from __future__ import annotations

import pytest

from bmad.compiler.compile import compile_source
from bmad.compiler.ir import Budget
from bmad.compiler.passes import make_context, plan_program
from bmad.compiler.plan_render import render_dot, render_mermaid, render_text

CATALOG = """
provider s { kind sim }
model good { provider s  price input $1 output $2 per 1M  skills { writing 0.95 } latency 200ms + 1ms per token }
"""

# the QA repro (seq.bmad): three independent tasks
THREE = CATALOG + """
workflow seqw {
  strategy STRATEGY
  task a { prompt "one" model good max_tokens 300 }
  task b { prompt "two" model good max_tokens 300 }
  task c { prompt "three" model good max_tokens 300 }
  output a
  output b
  output c
}
"""


def plan_of(source: str, **options):
    result = compile_source(source, "seq.bmad")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    context = make_context(result.program, environment={}, provider_mode="sim", **options)
    plan, diagnostics = plan_program(result.program, context)
    assert plan is not None, [d.message for d in diagnostics]
    return plan, diagnostics


def test_the_latency_of_a_sequential_run_is_the_sum_of_its_tasks():
    plan, _ = plan_of(THREE.replace("STRATEGY", "sequential"))
    each = [t.estimate.latency_s for t in plan.tasks]
    assert plan.totals.latency_s == pytest.approx(sum(each))
    assert plan.entry.critical_path == tuple(stage[0] for stage in plan.entry.stages) == ("a", "b", "c")
    assert all(t.on_critical_path for t in plan.tasks)
    parallel, _ = plan_of(THREE.replace("STRATEGY", "parallel"))
    assert parallel.totals.latency_s == pytest.approx(max(each))  # side by side: the longest
    assert len(parallel.entry.critical_path) == 1


def test_a_time_budget_is_checked_against_the_whole_run():
    # each task ~0.35s: all three take ~1.05s, one alone ~0.35s
    budget = Budget(time_s=0.8)
    plan, diagnostics = plan_of(THREE.replace("STRATEGY", "sequential"), budget=budget)
    [w213] = [d for d in diagnostics if d.code == "BMAD-W213"]
    assert f"{plan.totals.latency_s:.1f}s" in w213.message and "the whole run" in w213.message
    _plan, diagnostics = plan_of(THREE.replace("STRATEGY", "parallel"), budget=budget)
    assert "BMAD-W213" not in {d.code for d in diagnostics}


def test_the_text_and_the_graphs_show_the_whole_run_as_the_critical_path():
    plan, _ = plan_of(THREE.replace("STRATEGY", "sequential"), budget=Budget(time_s=0.8))
    text = render_text(plan)
    assert "Critical path\n  a -> b -> c" in text
    assert f"latency   {plan.totals.latency_s:.1f}s on the critical path (every task, one at a time)" in text
    assert "class t_a,t_b,t_c critical" in render_mermaid(plan)
    assert render_dot(plan).count("color=red") == 3


def test_the_critical_path_follows_the_runs_order_not_the_source_order():
    plan, _ = plan_of(CATALOG + """
workflow w {
  strategy sequential
  task z { prompt "z" model good max_tokens 10 priority high }
  task x { prompt "x" model good max_tokens 10 priority low }
  task y { prompt "after {{ x }}" model good max_tokens 10 priority critical }
  output y
  output z
}
""")
    assert plan.entry.critical_path == ("x", "y", "z")  # the dependency graph's longest path first
    assert plan.totals.latency_s == pytest.approx(sum(t.estimate.latency_s for t in plan.tasks))


def test_a_called_workflow_of_a_sequential_run_adds_up_too():
    plan, _ = plan_of(CATALOG + """
workflow inner {
  task p { prompt "p" model good max_tokens 100 }
  task q { prompt "q" model good max_tokens 100 }
  output p
  output q
}
workflow outer {
  strategy sequential
  task go = inner()
  task after { prompt "{{ go }}" model good max_tokens 100 }
  output after
}
""")
    inner = plan.subplan("inner")
    assert inner.totals.latency_s == pytest.approx(sum(t.estimate.latency_s for t in inner.tasks))
    assert inner.critical_path == ("p", "q")
    go = plan.entry.task("go")
    assert go.estimate.latency_s == pytest.approx(inner.totals.latency_s)
    assert plan.totals.latency_s == pytest.approx(go.estimate.latency_s + plan.entry.task("after").estimate.latency_s)


@pytest.mark.parametrize("written, override, sequential", [
    ("parallel", "sequential", True), ("sequential", "parallel", False), ("sequential", None, True)])
def test_the_runs_strategy_override_plans_as_it_runs(written, override, sequential):
    plan, _ = plan_of(THREE.replace("STRATEGY", written), strategy=override)
    assert plan.strategy == (override or written)
    each = [t.estimate.latency_s for t in plan.tasks]
    assert plan.totals.latency_s == pytest.approx(sum(each) if sequential else max(each))
    assert all(len(stage) == 1 for stage in plan.entry.stages) == sequential


def test_the_warning_and_the_totals_print_the_same_figure():
    """QA finding 13: the totals said 0.7s and BMAD-W213 said 1s."""
    plan, diagnostics = plan_of(CATALOG + """
workflow hello {
  task greet { prompt "Write a one-line greeting." model good max_tokens 40 }
  output greet
}
""", budget=Budget(time_s=0.0))
    [w213] = [d for d in diagnostics if d.code == "BMAD-W213"]
    shown = f"{plan.totals.latency_s:.1f}s"
    assert f"latency   {shown} on the critical path  (budget 0s)" in render_text(plan)
    assert f"expected to take {shown}, over --budget 0s" in w213.message  # the run's budget
