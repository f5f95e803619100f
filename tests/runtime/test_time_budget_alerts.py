"""Time budgets raise `budget_alert` at 50/80/100% like dollars and tokens: once per scope, when
the elapsed time crosses the mark (a timer while calls are in flight; each call's start and end
check too), journaled with the other events."""

from __future__ import annotations

import anyio

from bmad.runtime.ledger import BudgetLedger
from runtime_support import exported, plan_source, run_plan, sim_factory

CATALOG = """
provider p1 { kind sim }
model slowish {
  provider p1
  price input $1 output $2 per 1M
  skills { writing 0.8, reasoning 0.8 }
  latency 400ms
}
model lazy {
  provider p1
  price input $1 output $2 per 1M
  skills { writing 0.8, reasoning 0.8 }
  latency 900ms
}
"""


def time_alerts(rec, task=None):
    return [(e.data["threshold"], e.data["spent"], e.data["budget"]) for e in rec.kinds("budget_alert")
            if e.data["kind"] == "time_s" and e.task == task]


def test_a_run_time_budget_raises_50_and_80_percent_alerts_once_each(tmp_path):
    # five 0.4 s calls in a row under 2.4 s: 2.0 s and a little used, 80% passed, the cap not reached
    plan = plan_source(tmp_path, """
    workflow w {
      strategy sequential
      budget 2.4s
      task a { prompt "a" model slowish max_tokens 5 }
      task b { prompt "b {{ a }}" model slowish max_tokens 5 }
      task c { prompt "c {{ b }}" model slowish max_tokens 5 }
      task d { prompt "d {{ c }}" model slowish max_tokens 5 }
      task e { prompt "e {{ d }}" model slowish max_tokens 5 }
      output e
    }
    """, catalog=CATALOG)
    outcome, rec = run_plan(plan, tmp_path, factory=sim_factory(plan, latency_scale=1.0))
    assert outcome.status == "completed"
    alerts = time_alerts(rec)
    assert [t for t, _, _ in alerts] == [0.5, 0.8]
    assert all(spent >= t * 2.4 and budget == 2.4 for t, spent, budget in alerts)
    journaled = [e for e in exported(tmp_path, outcome.run_id)["events"] if e["event"] == "budget_alert"]
    assert sorted((e["kind"], e["threshold"]) for e in journaled) == [("time_s", 0.5), ("time_s", 0.8)]


def test_a_long_call_does_not_hold_back_the_alerts_it_runs_through(tmp_path):
    # one call of about 0.9 s under 1.4 s: 50% (0.7 s) passes mid-call; the alert says so then,
    # not when the call ends
    plan = plan_source(tmp_path, """
    workflow w {
      budget 1.4s
      task a { prompt "a" model lazy max_tokens 5 }
      output a
    }
    """, catalog=CATALOG)
    outcome, rec = run_plan(plan, tmp_path, factory=sim_factory(plan, latency_scale=1.0))
    assert outcome.status == "completed"
    alerts = time_alerts(rec)
    assert [t for t, _, _ in alerts] == [0.5]
    finished = next(e for e in rec.events if e.kind == "call_finished")
    assert 0.7 <= alerts[0][1] < finished.data["latency_s"] - 0.1  # before the call ended


def test_a_task_time_budget_raises_its_own_alerts(tmp_path):
    plan = plan_source(tmp_path, """
    workflow w {
      budget 30s
      task a { prompt "a" model lazy max_tokens 5 budget 1.6s }
      output a
    }
    """, catalog=CATALOG)
    outcome, rec = run_plan(plan, tmp_path, factory=sim_factory(plan, latency_scale=1.0))
    assert outcome.status == "completed"
    assert [t for t, _, _ in time_alerts(rec, "a")] == [0.5]  # 0.8 s of 1.6 s, mid-call
    assert time_alerts(rec) == []  # the run's 30 s was far from its marks


def test_time_marks_are_checked_at_a_call_start_and_end_without_an_event_loop():
    now = [0.0]
    raised = []
    ledger = BudgetLedger(time_s=10.0, clock=lambda: now[0],
                          on_alert=lambda kind, t, spent, cap: raised.append((kind, t, spent)))
    r = ledger.try_reserve(0.0, 1)
    now[0] = 5.5
    ledger.settle(r, 0.0, 1)  # the call's end passes 50%
    assert raised == [("time_s", 0.5, 5.5)]
    now[0] = 8.0
    r = ledger.try_reserve(0.0, 1)  # the next call's start passes 80%
    assert raised[-1] == ("time_s", 0.8, 8.0)
    now[0] = 10.5
    ledger.settle(r, 0.0, 1)
    assert ledger.try_reserve(0.0, 1).kind == "time_s"
    assert [t for _, t, _ in raised] == [0.5, 0.8, 1.0]  # each mark once, the refusal included


def test_a_resumed_run_does_not_repeat_time_marks_passed_before():
    now = [100.0]
    raised = []
    ledger = BudgetLedger(time_s=10.0, elapsed_s=6.0, clock=lambda: now[0],
                          on_alert=lambda kind, t, spent, cap: raised.append(t))
    ledger.settle(ledger.try_reserve(0.0, 1), 0.0, 1)
    assert raised == []  # 50% was passed (and alerted) before the resume
    now[0] = 102.5
    ledger.settle(ledger.try_reserve(0.0, 1), 0.0, 1)
    assert raised == [0.8]


def test_no_time_alert_after_the_last_call_settled():
    raised = []

    async def main():
        ledger = BudgetLedger(time_s=0.2, on_alert=lambda kind, t, spent, cap: raised.append(t))
        ledger.settle(ledger.try_reserve(0.0, 1), 0.0, 1)  # arms the timer, then disarms it
        await anyio.sleep(0.3)  # the run is over: its marks pass unannounced
    anyio.run(main)
    assert raised == []
