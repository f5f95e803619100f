"""Every task clause, run on the sim provider against a real journal."""

from __future__ import annotations

from bmad.runtime.interpreter import RunConfig

from runtime_support import exported, failing_factory, plan_source, run_plan, sim_factory


def tasks_by_id(data):
    return {t["id"]: t for t in data["tasks"]}


def test_dependencies_feed_outputs_and_commit_before_dependents(tmp_path):
    plan = plan_source(tmp_path, """
    workflow chain {
      input topic: text = "bees"
      task a { prompt "Write about {{ topic }}" model cheap }
      task b { prompt "Improve: {{ a }}" model cheap }
      task c { prompt "Summarise: {{ b }}" model mid }
      output c
    }
    """)
    outcome, rec = run_plan(plan, tmp_path)
    assert outcome.status == "completed" and outcome.exit_code == 0
    data = exported(tmp_path, outcome.run_id)
    tasks = tasks_by_id(data)
    assert [tasks[t]["status"] for t in "abc"] == ["completed"] * 3
    # b's prompt contained a's output: the sim's request hash differs from a fresh prompt, and the
    # journal shows a finished before b started.
    starts = {e.task: e.ts for e in rec.kinds("task_started")}
    ends = {e.task: e.ts for e in rec.kinds("task_finished")}
    assert ends["a"] <= starts["b"] and ends["b"] <= starts["c"]
    assert data["outputs"]["c"] == tasks["c"]["output"]
    assert data["run"]["spent_usd"] > 0


def test_when_skips_and_skip_propagates(tmp_path):
    plan = plan_source(tmp_path, """
    workflow gate {
      input mode: text = "fast"
      task first { prompt "go" model cheap }
      task slow when mode == "slow" { prompt "slow path {{ first }}" model cheap }
      task after { prompt "after {{ slow }}" model cheap }
      task other when mode == "fast" and not (mode == "slow") { prompt "fast path" model cheap }
      output after
      output other
    }
    """)
    outcome, rec = run_plan(plan, tmp_path)
    assert outcome.status == "completed"
    tasks = tasks_by_id(exported(tmp_path, outcome.run_id))
    assert tasks["slow"]["status"] == "skipped"
    assert tasks["after"]["status"] == "skipped"
    assert tasks["other"]["status"] == "completed"
    reasons = {e.task: e.data["reason"] for e in rec.kinds("task_skipped")}
    assert "condition is false" in reasons["slow"] and "slow" in reasons["after"]
    assert outcome.outputs["after"] is None


def test_for_each_fans_out_and_fans_in_as_a_list(tmp_path):
    plan = plan_source(tmp_path, """
    workflow fan {
      input items: list<text>
      task each for each it in items { prompt "Describe {{ it }}" model cheap }
      task merge { prompt "Merge {{ each }}" model cheap }
      output each
      output merge
    }
    """)
    outcome, _ = run_plan(plan, tmp_path, inputs={"items": ["a", "b", "c", "d", "e"]},
                          config=RunConfig(for_each_concurrency=2))
    assert outcome.status == "completed"
    assert isinstance(outcome.outputs["each"], list) and len(outcome.outputs["each"]) == 5
    calls = [c for c in exported(tmp_path, outcome.run_id)["calls"] if c["task"] == "each"]
    assert len(calls) == 5 and len({c["slot"] for c in calls}) == 5


def test_reduce_in_chunks_is_a_tree(tmp_path):
    plan = plan_source(tmp_path, """
    workflow tree {
      input items: list<text>
      task each for each it in items { prompt "Note on {{ it }}" model cheap max_tokens 20 }
      task merged { prompt "Merge these notes: {{ each }}" reduce each in chunks of 4 model cheap }
      output merged
    }
    """)
    outcome, _ = run_plan(plan, tmp_path, inputs={"items": [f"x{i}" for i in range(10)]})
    assert outcome.status == "completed"
    calls = [c for c in exported(tmp_path, outcome.run_id)["calls"] if c["task"] == "merged"]
    # 10 items in chunks of 4 -> 3 partials -> 1 final: 4 calls over two levels.
    slots = sorted(c["slot"] for c in calls)
    assert len(calls) == 4
    assert sum(s.startswith("L0c") for s in slots) == 3 and sum(s.startswith("L1") for s in slots) == 1
    assert isinstance(outcome.outputs["merged"], str)


def test_subworkflow_call_per_item(tmp_path):
    plan = plan_source(tmp_path, """
    workflow review {
      input diff: text
      task verdict { prompt "Review {{ diff }}" returns enum(OK, BAD) model cheap }
      output verdict
    }
    workflow nightly {
      input diffs: list<text>
      task reviews for each d in diffs = review(diff: d)
      task digest { prompt "Digest: {{ reviews }}" model cheap }
      output reviews
      output digest
    }
    """)
    outcome, _ = run_plan(plan, tmp_path, inputs={"diffs": ["d1", "d2", "d3"]})
    assert outcome.status == "completed", outcome.error
    reviews = outcome.outputs["reviews"]
    assert len(reviews) == 3 and all(r["verdict"] in ("OK", "BAD") for r in reviews)
    ids = set(tasks_by_id(exported(tmp_path, outcome.run_id)))
    assert {"reviews[0]/verdict", "reviews[2]/verdict", "reviews", "digest"} <= ids


def test_returns_json_and_enum_are_parsed(tmp_path):
    plan = plan_source(tmp_path, """
    workflow shaped {
      task js {
        prompt "Rate it"
        returns json { "type": "object", "properties": { "score": { "type": "number" } }, "required": ["score"] }
        model cheap
      }
      task en { prompt "Pick" returns enum(YES, NO) model cheap }
      task follow when js.score >= 0 { prompt "score was {{ js.score }}" model cheap }
      output js
      output en
      output follow
    }
    """)
    outcome, _ = run_plan(plan, tmp_path)
    assert outcome.status == "completed", outcome.error
    assert isinstance(outcome.outputs["js"]["score"], (int, float))
    assert outcome.outputs["en"] in ("YES", "NO")
    assert outcome.outputs["follow"] is not None


def test_on_error_fail_skip_continue(tmp_path):
    body = """
    workflow errs {
      task bad { prompt "x" model cheap retry 0 on_error %s }
      task next { prompt "after {{ bad }}" model mid }
      output next
    }
    """
    results = {}
    for mode in ("fail", "skip", "continue"):
        sub = tmp_path / mode
        sub.mkdir()
        plan = plan_source(sub, body % mode)
        outcome, _ = run_plan(plan, sub, factory=failing_factory(plan, {"bad"}))
        results[mode] = (outcome, tasks_by_id(exported(sub, outcome.run_id)))
    outcome, tasks = results["fail"]
    assert outcome.status == "failed" and outcome.exit_code == 1 and "bad" in outcome.error
    assert tasks["next"]["status"] == "not_started"  # recorded, never run
    outcome, tasks = results["skip"]
    assert outcome.status == "completed"
    assert tasks["bad"]["status"] == "skipped" and tasks["next"]["status"] == "skipped"
    outcome, tasks = results["continue"]
    assert outcome.status == "completed"
    assert tasks["bad"]["status"] == "failed" and tasks["next"]["status"] == "completed"


def test_fallback_after_a_non_retryable_error(tmp_path):
    plan = plan_source(tmp_path, """
    workflow fb {
      task t { prompt "x" model cheap fallback [mid] }
      output t
    }
    """)
    outcome, rec = run_plan(plan, tmp_path, factory=sim_factory(
        plan, model_failure_rates={"cheap": 1.0}, failure_kinds=("context_too_long",)))
    assert outcome.status == "completed"
    data = exported(tmp_path, outcome.run_id)
    assert tasks_by_id(data)["t"]["model"] == "mid"
    statuses = [(c["model"], c["status"]) for c in data["calls"]]
    assert ("cheap", "error") in statuses and ("mid", "ok") in statuses
    # not retried: context_too_long can't be fixed by asking the same model again
    assert sum(1 for m, s in statuses if m == "cheap") == 1
    assert rec.kinds("task_escalated")


def test_retries_honour_retry_after_and_record_each_failure(tmp_path):
    plan = plan_source(tmp_path, """
    workflow rl {
      task t { prompt "x" model cheap retry 6 backoff fixed 10ms to 20ms }
      output t
    }
    """)
    # rate limits with Retry-After 0.05s (1.0 x latency scale 0.05)
    outcome, rec = run_plan(plan, tmp_path, factory=sim_factory(
        plan, latency_scale=0.05, failure_rate=0.6, failure_kinds=("rate_limited",), seed=3))
    assert outcome.status == "completed"
    calls = exported(tmp_path, outcome.run_id)["calls"]
    errors = [c for c in calls if c["status"] == "error"]
    assert errors and all(c["error_kind"] == "rate_limited" for c in errors)
    retried = rec.kinds("task_retried")
    assert len(retried) == len(errors)
    assert all(e.data["delay_s"] >= 0.05 for e in retried)  # Retry-After beats the 10-20ms backoff


def test_sequential_runs_one_at_a_time_parallel_overlaps(tmp_path):
    import anyio

    from bmad.runtime.providers import base

    class Probe:
        name = "probe"
        active = 0
        peak = 0

        async def complete(self, request, on_progress=None):
            Probe.active += 1
            Probe.peak = max(Probe.peak, Probe.active)
            await anyio.sleep(0.01)
            Probe.active -= 1
            return base.CompletionResponse("ok", 1, 1, 0.01, 0.0)

        async def aclose(self):
            pass

    body = """
    workflow wide {
      strategy %s
      task a { prompt "a" model cheap }
      task b { prompt "b" model cheap }
      task c { prompt "c" model cheap }
      task d { prompt "d" model cheap }
      output d
    }
    """
    peaks = {}
    for strategy in ("sequential", "parallel"):
        sub = tmp_path / strategy
        sub.mkdir()
        Probe.peak = 0
        plan = plan_source(sub, body % strategy)
        outcome, _ = run_plan(plan, sub, factory=lambda decl: Probe())
        assert outcome.status == "completed"
        peaks[strategy] = Probe.peak
    assert peaks["sequential"] == 1 and peaks["parallel"] > 1


def test_missing_json_field_fails_the_task_not_the_run(tmp_path):
    plan = plan_source(tmp_path, """
    workflow safe {
      task t {
        prompt "x"
        returns json { "type": "object", "properties": { "a": { "type": "string" }, "note": { "type": "string" } }, "required": ["a"] }
        model cheap
      }
      task u { prompt "note: {{ t.note }}" model cheap on_error continue }
      output u
    }
    """)
    outcome, _ = run_plan(plan, tmp_path)
    tasks = tasks_by_id(exported(tmp_path, outcome.run_id))
    assert outcome.status == "completed"
    if "note" not in tasks["t"]["output"]:
        assert tasks["u"]["status"] == "failed" and "has no field `note`" in tasks["u"]["error"]
    else:
        assert tasks["u"]["status"] == "completed"
