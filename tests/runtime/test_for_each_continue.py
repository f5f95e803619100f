"""`for each ... on_error continue`: an item that fails (a model error, a template that doesn't
fit the item, or the task's own `budget` refusing it) is null in the output and the other items
are kept, the ones already paid for included; the task's journal row says which items failed and
why. Before, an item refused by the task's budget failed the whole task and lost the answers
already paid for, and the other failures were only in a `task_skipped` event.

The sim provider (orchestration semantics) and the real SQLite journal."""

from __future__ import annotations

import sqlite3

from runtime_support import plan_source, run_plan


def task_row(tmp_path, task: str) -> tuple[str, str | None, float]:
    db = sqlite3.connect(tmp_path / "runs.db")
    try:
        return db.execute("SELECT status, error, cost_usd FROM tasks WHERE task_id = ?", (task,)).fetchone()
    finally:
        db.close()


def ok_calls(tmp_path, task: str) -> int:
    db = sqlite3.connect(tmp_path / "runs.db")
    try:
        return db.execute("SELECT COUNT(*) FROM calls WHERE task_id = ? AND status = 'ok'", (task,)).fetchone()[0]
    finally:
        db.close()


def test_items_the_task_budget_refuses_are_null_and_the_paid_ones_are_kept(tmp_path):
    plan = plan_source(tmp_path, """
        workflow w {
          input nums: list<number> = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          task per for each n in nums {
            prompt "Describe number {{ n }}"
            model strong
            max_tokens 300
            budget $0.01
            on_error continue
          }
          output per
        }
    """)
    outcome, _ = run_plan(plan, tmp_path, config=None)
    assert outcome.status == "completed", outcome.error
    values = outcome.outputs["per"]
    kept = [v for v in values if v is not None]
    assert 0 < len(kept) < len(values)  # some items paid for and kept, some refused
    assert len(kept) == ok_calls(tmp_path, "per")
    status, error, cost = task_row(tmp_path, "per")
    assert status == "completed" and cost > 0
    assert f"{len(values) - len(kept)} item(s) failed" in error and "budget" in error


def test_an_item_whose_template_does_not_fit_is_recorded_on_the_task_row(tmp_path):
    plan = plan_source(tmp_path, """
        workflow w {
          input people: list<json> = [{ "name": "ann" }, { "name": "bob" }, { "nom": "cy" }]
          task greet for each p in people {
            prompt "Greet {{ p.name }}"
            model cheap
            on_error continue
          }
          output greet
        }
    """)
    outcome, recorder = run_plan(plan, tmp_path)
    assert outcome.status == "completed", outcome.error
    greetings = outcome.outputs["greet"]
    assert greetings[2] is None and greetings[0] is not None and greetings[1] is not None
    status, error, _ = task_row(tmp_path, "greet")
    assert status == "completed" and error.startswith("1 item(s) failed") and "[2]" in error
    assert [e.task for e in recorder.kinds("task_skipped")] == ["greet[2]"]


def test_without_continue_a_refused_item_still_fails_the_task(tmp_path):
    plan = plan_source(tmp_path, """
        workflow w {
          input nums: list<number> = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          task per for each n in nums {
            prompt "Describe number {{ n }}"
            model strong
            max_tokens 300
            budget $0.01
            on_error skip
          }
          output per
        }
    """)
    run_plan(plan, tmp_path)
    status, error, _ = task_row(tmp_path, "per")
    assert status == "skipped" and "budget" in error


def test_the_run_summary_says_items_were_lost(tmp_path):
    import subprocess
    import sys

    from runtime_support import CATALOG

    (tmp_path / "wf.bmad").write_text(CATALOG + """
workflow w {
  input people: list<json> = [{ "name": "ann" }, { "nom": "cy" }]
  task greet for each p in people {
    prompt "Greet {{ p.name }}"
    model cheap
    on_error continue
  }
  output greet
}
""")
    out = subprocess.run([sys.executable, "-m", "bmad", "run", "wf.bmad", "--provider", "sim",
                          "--sim-latency-scale", "0", "--journal", "runs.db"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert ("note: task greet completed, but 1 item(s) failed and are null in the output "
            "(on_error continue)") in out.stderr
