"""Resume, the cross-run cache, and fault injection, against a real journal file."""

from __future__ import annotations

from bmad.runtime.interpreter import RunConfig

from runtime_support import exported, plan_source, run_plan, sim_factory

CHAIN = """
workflow chain {
  input topic: text = "bees"
  task a { prompt "About {{ topic }}" model cheap max_tokens 30 }
  task b { prompt "More on {{ a }}" model cheap max_tokens 30 }
  task c { prompt "Final: {{ b }}" model strong max_tokens 3000 }
  output c
}
"""


def test_resume_never_reruns_completed_tasks(tmp_path):
    plan = plan_source(tmp_path, CHAIN)
    first, _ = run_plan(plan, tmp_path, budget_usd=0.0002)
    assert first.status == "budget_exhausted"
    before = exported(tmp_path, first.run_id)
    done = {t["id"] for t in before["tasks"] if t["status"] == "completed"}
    assert done == {"a", "b"}
    second, _ = run_plan(plan, tmp_path, resume=first.run_id, budget_usd=1.0)
    assert second.status == "completed" and second.run_id == first.run_id
    after = exported(tmp_path, first.run_id)
    new_calls = after["calls"][len(before["calls"]):]
    assert new_calls and {c["task"] for c in new_calls} == {"c"}
    assert after["run"]["status"] == "completed"
    assert after["run"]["spent_usd"] <= 1.0
    assert after["outputs"]["c"] == second.outputs["c"]


def test_cache_hits_across_runs_and_explains_misses(tmp_path):
    plan = plan_source(tmp_path, CHAIN)
    config = RunConfig(cache=True)
    first, _ = run_plan(plan, tmp_path, config=config)
    assert first.status == "completed"
    second, _ = run_plan(plan, tmp_path, config=config, explain_cache=True)
    assert all(d["hit"] for d in second.cache_decisions)
    assert second.spent_usd == 0.0 and second.outputs == first.outputs
    assert not [c for c in exported(tmp_path, second.run_id)["calls"]]
    third, _ = run_plan(plan, tmp_path, config=config, inputs={"topic": "wasps"})
    reasons = {d["task"]: d["reason"] for d in third.cache_decisions}
    assert reasons["a"].startswith("miss: changed") and "values it reads" in reasons["a"]
    assert "upstream results" in reasons["b"]


def test_fault_injection_completes_and_records_every_failure(tmp_path):
    body = "workflow faults {\n  input n: list<text>\n"
    body += ('  task each for each x in n { prompt "work on {{ x }}" model cheap '
             'retry 8 backoff exponential 5ms to 40ms timeout 60s }\n')
    body += '  task merge { prompt "merge {{ each }}" model mid retry 8 backoff fixed 5ms to 5ms }\n'
    body += "  output merge\n}\n"
    plan = plan_source(tmp_path, body)
    factory = sim_factory(plan, latency_scale=0.01, failure_rate=0.3, seed=12,
                          failure_kinds=("transient", "rate_limited", "timeout"))
    outcome, rec = run_plan(plan, tmp_path, factory=factory,
                            inputs={"n": [f"item{i}" for i in range(30)]})
    assert outcome.status == "completed", outcome.error
    calls = exported(tmp_path, outcome.run_id)["calls"]
    errors = [c for c in calls if c["status"] == "error"]
    kinds = {c["error_kind"] for c in errors}
    assert {"transient", "rate_limited", "timeout"} <= kinds
    assert len(rec.kinds("task_retried")) == len(errors)
    assert sum(c["status"] == "ok" for c in calls) == 31


def test_a_run_resumes_from_its_project_moved_elsewhere(tmp_path):
    (tmp_path / "here").mkdir()
    (tmp_path / "moved").mkdir()
    first, _ = run_plan(plan_source(tmp_path / "here", CHAIN), tmp_path, budget_usd=0.0002)
    assert first.status == "budget_exhausted"
    moved = plan_source(tmp_path / "moved", CHAIN)  # the same file, in another folder
    second, _ = run_plan(moved, tmp_path, resume=first.run_id, budget_usd=1.0)
    assert second.status == "completed" and second.run_id == first.run_id
