"""Consensus methods, quorum and tolerated failures; quality gates: refine, escalate, retry, fail."""

from __future__ import annotations

from runtime_support import exported, plan_source, run_plan, sim_factory


def tasks_by_id(data):
    return {t["id"]: t for t in data["tasks"]}


def one_task(tmp_path, clause: str, *, factory_settings: dict | None = None, returns: str = ""):
    plan = plan_source(tmp_path, f"""
    workflow w {{
      task t {{
        prompt "Answer the question"
        {returns}
        {clause}
      }}
      output t
    }}
    """)
    factory = sim_factory(plan, **(factory_settings or {}))
    outcome, rec = run_plan(plan, tmp_path, factory=factory)
    data = exported(tmp_path, outcome.run_id)
    return outcome, rec, data


def test_vote_records_agreement_as_quality(tmp_path):
    outcome, _, data = one_task(tmp_path, "consensus vote among [cheap, mid, strong]",
                                returns="returns enum(YES, NO)")
    assert outcome.status == "completed"
    task = tasks_by_id(data)["t"]
    assert task["output"] in ("YES", "NO")
    assert task["quality"] in (1 / 3, 2 / 3, 1.0)
    assert {c["model"] for c in data["calls"]} == {"cheap", "mid", "strong"}


def test_failed_participant_tolerated_while_quorum_holds(tmp_path):
    broken = {"model_failure_rates": {"strong": 1.0}, "failure_kinds": ("auth",)}
    outcome, _, data = one_task(tmp_path, "consensus vote among [cheap, mid, strong] quorum 1",
                                factory_settings=broken, returns="returns enum(YES, NO)")
    assert outcome.status == "completed"
    assert any(c["model"] == "strong" and c["status"] == "error" for c in data["calls"])


def test_quorum_that_cannot_be_met_fails_the_task(tmp_path):
    broken = {"model_failure_rates": {"strong": 1.0}, "failure_kinds": ("auth",)}
    outcome, _, data = one_task(tmp_path, "consensus vote among [cheap, mid, strong] quorum 3",
                                factory_settings=broken, returns="returns enum(YES, NO)")
    assert outcome.status == "failed"
    assert "consensus needs 3" in tasks_by_id(data)["t"]["error"]


def test_weighted_and_similarity(tmp_path):
    for method in ("weighted", "similarity"):
        sub = tmp_path / method
        sub.mkdir()
        outcome, _, data = one_task(sub, f"consensus {method} among [cheap, mid, strong]")
        assert outcome.status == "completed", outcome.error
        assert 0.0 <= tasks_by_id(data)["t"]["quality"] <= 1.0


def test_judge_and_best_of_ask_a_judge(tmp_path):
    for clause in ("consensus judge strong among [cheap, mid]", "best_of 3 judged by strong"):
        sub = tmp_path / clause.split()[0]
        sub.mkdir()
        outcome, _, data = one_task(sub, clause)
        assert outcome.status == "completed", outcome.error
        judge_calls = [c for c in data["calls"] if c["purpose"] == "judge"]
        assert len(judge_calls) == 1 and judge_calls[0]["model"] == "strong"


def test_ensemble_synthesises(tmp_path):
    outcome, _, data = one_task(tmp_path, "consensus ensemble by strong among [cheap, mid]")
    assert outcome.status == "completed"
    assert any(c["slot"].startswith("ensemble") and c["model"] == "strong" for c in data["calls"])
    assert tasks_by_id(data)["t"]["model"] == "strong"


def test_peer_review_rounds(tmp_path):
    outcome, _, data = one_task(tmp_path, "peer_review among [cheap, mid] rounds 2")
    assert outcome.status == "completed"
    calls = data["calls"]
    # 2 first answers + 2 rounds x (2 reviews + 2 revisions)
    assert len(calls) == 10
    assert sum(c["purpose"] == "review" for c in calls) == 4


def test_refine_feeds_critique_back_up_to_n_rounds(tmp_path):
    outcome, _, data = one_task(tmp_path, "model cheap\n quality >= 0.999 judged by strong else refine max 2")
    assert outcome.status == "completed"
    slots = [c["slot"] for c in data["calls"] if c["purpose"] == "answer"]
    assert any("refine1" in s for s in slots) and any("refine2" in s for s in slots)
    assert not any("refine3" in s for s in slots)
    refine_call = next(c for c in data["calls"] if "refine1" in c["slot"] and c["purpose"] == "answer")
    assert refine_call["input_tokens"] > data["calls"][0]["input_tokens"]  # critique and answer fed back


def test_escalate_walks_the_cascade(tmp_path):
    outcome, rec, data = one_task(tmp_path, "route cascade [cheap, mid, strong]\n quality >= 0.999 judged by strong else escalate")
    assert outcome.status == "completed"
    escalations = [(e.data["from_model"], e.data["to_model"]) for e in rec.kinds("task_escalated")]
    assert escalations == [("cheap", "mid"), ("mid", "strong")]
    assert tasks_by_id(data)["t"]["model"] == "strong"


def test_retry_and_fail(tmp_path):
    (tmp_path / "r").mkdir()
    outcome, _, data = one_task(tmp_path / "r", "model cheap\n quality >= 0.999 judged by strong else retry 2")
    assert outcome.status == "completed"
    assert sum("retry" in c["slot"] and c["purpose"] == "answer" for c in data["calls"]) == 2
    (tmp_path / "f").mkdir()
    outcome, _, data = one_task(tmp_path / "f", "model cheap\n quality >= 0.999 judged by strong else fail")
    assert outcome.status == "failed"
    assert "quality" in tasks_by_id(data)["t"]["error"]
