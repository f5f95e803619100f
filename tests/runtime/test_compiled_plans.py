"""Compiled nodes are shared by the runs of one plan object in a process, never across plans."""

from __future__ import annotations

from bmad.runtime.interpreter import _COMPILED_PLANS, CompiledPlans

from runtime_support import exported, plan_source, run_plan

WORKFLOW = """
workflow twice {
  input topic: text = "bees"
  task a { prompt "About {{ topic }}" model cheap max_tokens 30 }
  task b { prompt "More on {{ a }}" model mid max_tokens 30 }
  output b
}
"""


def test_a_second_run_of_the_same_plan_reuses_its_nodes_with_the_same_results(tmp_path):
    plan = plan_source(tmp_path, WORKFLOW)
    first, _ = run_plan(plan, tmp_path)
    compiled = _COMPILED_PLANS.get(plan, "parallel", "twice")
    assert compiled is not None and [n.id for n in compiled.nodes] == ["a", "b"]
    second, _ = run_plan(plan, tmp_path)
    assert _COMPILED_PLANS.get(plan, "parallel", "twice") is compiled
    assert first.status == second.status == "completed"
    one, two = exported(tmp_path, first.run_id), exported(tmp_path, second.run_id)
    assert one["outputs"] == two["outputs"]
    assert [(t["id"], t["output"], t["attempts"]) for t in one["tasks"]] == \
        [(t["id"], t["output"], t["attempts"]) for t in two["tasks"]]


def test_the_cache_answers_only_for_the_same_plan_object_and_keeps_the_newest(tmp_path):
    plan = plan_source(tmp_path, WORKFLOW)
    again = plan_source(tmp_path, WORKFLOW, name="again.bmad")  # another object, maybe the same hash
    cache = CompiledPlans(keep=1)
    cache.put(plan, "parallel", "twice", "nodes")  # type: ignore[arg-type]
    assert cache.get(plan, "parallel", "twice") == "nodes"
    assert cache.get(plan, "adaptive", "twice") is None  # the strategy shapes the nodes
    assert cache.get(again, "parallel", "twice") is None
    cache.put(again, "parallel", "twice", "other")  # type: ignore[arg-type]
    assert cache.get(plan, "parallel", "twice") is None and cache.get(again, "parallel", "twice") == "other"
