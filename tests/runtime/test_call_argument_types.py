"""A subworkflow call's arguments are checked against the called workflow's input types when the
call is made (BMAD-E330), as `--input` and batch rows are when a run starts (BMAD-E304, BMAD-E322).
A value that doesn't fit (null from a missing field into a `text` input, `"seven"` into a `number`
input, a number inside a `list<text>`) fails that call: the calling task, or under `for each` that
item, with a message naming the workflow, the input, the type and what was given, in the journal
and under the task's `on_error`. Before, the call ran with the wrong value (QA: `g` null, `n` =
"seven"), and `check` and the run were both clean.

The sim provider, the real SQLite journal; one `bmad run` in a subprocess for the QA repro."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from runtime_support import plan_source, run_plan

CALLEE = """
workflow callee {
  input g: text
  input n: number = 3
  input tags: list<text> = []
  input extra: json = {}
  task t {
    prompt "Reference: [{{ g }}] n={{ n }} tags={{ tags }} extra={{ extra }}"
    model cheap
  }
  output t
}
"""


def rows(tmp_path, sql: str, *args) -> list[tuple]:
    db = sqlite3.connect(tmp_path / "runs.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def task_row(tmp_path, task: str) -> tuple[str, str | None]:
    [row] = rows(tmp_path, "SELECT status, error FROM tasks WHERE task_id = ?", task)
    return row


def calls_under(tmp_path, prefix: str) -> int:
    return rows(tmp_path, "SELECT COUNT(*) FROM calls WHERE task_id LIKE ?", prefix + "%")[0][0]


def plan_with_on_error(tmp_path, body: str, task: str, on_error: str):
    """`body` planned with `on_error` set on the call task `task`. A `.bmad` call task takes no
    clauses (its `on_error` is the default, `fail`); IR from other tools may set one, and the
    interpreter applies it as for any task."""
    from dataclasses import replace

    from bmad.compiler.passes import plan_program
    from bmad.compiler.passes.context import make_context

    plan = plan_source(tmp_path, body)
    program = plan.program
    workflows = tuple(replace(w, tasks=tuple(replace(t, on_error=on_error) if t.name == task else t
                                             for t in w.tasks))
                      for w in program.workflows)
    program = replace(program, workflows=workflows)
    planned, diagnostics = plan_program(program, make_context(program, provider_mode="sim"))
    assert planned is not None, [d.message for d in diagnostics if d.is_error]
    return planned


FOR_EACH = CALLEE + """
    workflow caller {
      input items: list<json>
      task each for each r in items = callee(g: r.g, n: r.n)
      output each
    }
"""
ITEMS = [{"g": "a", "n": 1}, {"n": 2}, {"g": "c", "n": "seven"}]


def test_for_each_items_whose_arguments_do_not_fit_fail_the_task(tmp_path):
    outcome, _ = run_plan(plan_source(tmp_path, FOR_EACH), tmp_path, inputs={"items": ITEMS})
    assert outcome.status == "failed"
    status, error = task_row(tmp_path, "each")
    assert status == "failed"
    assert error.startswith("[BMAD-E330] input `")
    # Either misfit item may be reached first; each message names the input, type and value.
    assert ("input `g` of `callee` must be text, got null" in error
            or 'input `n` of `callee` must be number, got text "seven"' in error), error
    assert "task `each` failed" in (outcome.error or "")


def test_under_continue_only_the_misfit_items_are_null(tmp_path):
    plan = plan_with_on_error(tmp_path, FOR_EACH, "each", "continue")
    outcome, _ = run_plan(plan, tmp_path, inputs={"items": ITEMS})
    assert outcome.status == "completed", outcome.error
    values = outcome.outputs["each"]
    assert values[0] and values[1] is None and values[2] is None
    status, error = task_row(tmp_path, "each")
    assert status == "completed"
    assert error.startswith("2 item(s) failed"), error
    assert "[1] [BMAD-E330] input `g` of `callee` must be text, got null (from `r.g`" in error
    assert '[2] [BMAD-E330] input `n` of `callee` must be number, got text "seven"' in error
    assert calls_under(tmp_path, "each[1]") == 0 and calls_under(tmp_path, "each[2]") == 0
    assert calls_under(tmp_path, "each[0]") == 1


def test_under_skip_the_task_and_its_dependents_are_skipped(tmp_path):
    plan = plan_with_on_error(tmp_path, CALLEE + """
        workflow caller {
          input r: json
          task one = callee(g: "x", n: r.n)
          task after {
            prompt "Use {{ one }}"
            model cheap
          }
          task other {
            prompt "Independent"
            model cheap
          }
          output after
          output other
        }
    """, "one", "skip")
    outcome, _ = run_plan(plan, tmp_path, inputs={"r": {"n": "seven"}})
    assert outcome.status == "completed", outcome.error
    status, error = task_row(tmp_path, "one")
    assert status == "skipped" and "[BMAD-E330]" in error
    assert task_row(tmp_path, "after")[0] == "skipped"
    assert task_row(tmp_path, "other")[0] == "completed"


def test_a_null_from_a_missing_field_is_refused_not_passed_on(tmp_path):
    plan = plan_source(tmp_path, CALLEE + """
        workflow caller {
          input r: json
          task one = callee(g: r.missing)
          output one
        }
    """)
    outcome, recorder = run_plan(plan, tmp_path, inputs={"r": {"a": 1}})
    assert outcome.status == "failed"
    status, error = task_row(tmp_path, "one")
    assert status == "failed"
    assert error == ("[BMAD-E330] input `g` of `callee` must be text, got null "
                     "(from `r.missing`; a missing field reads as null)")
    assert calls_under(tmp_path, "one") == 0  # the callee never ran
    finished = [e for e in recorder.kinds("task_finished") if e.task == "one"]
    assert finished and finished[0].data["status"] == "failed"


def test_a_wrong_type_fails_the_task(tmp_path):
    plan = plan_source(tmp_path, CALLEE + """
        workflow caller {
          input r: json
          task one = callee(g: "x", n: r.n)
          task after {
            prompt "Use {{ one }}"
            model cheap
          }
          task other {
            prompt "Independent"
            model cheap
          }
          output after
          output other
        }
    """)
    outcome, _ = run_plan(plan, tmp_path, inputs={"r": {"n": "seven"}})
    assert outcome.status == "failed"
    status, error = task_row(tmp_path, "one")
    assert status == "failed"
    assert error == ('[BMAD-E330] input `n` of `callee` must be number, got text "seven" '
                     "(from `r.n`)")


def test_a_list_item_of_the_wrong_type_is_named(tmp_path):
    plan = plan_source(tmp_path, CALLEE + """
        workflow caller {
          input r: json
          task one = callee(g: "x", tags: r.tags)
          output one
        }
    """)
    outcome, _ = run_plan(plan, tmp_path, inputs={"r": {"tags": ["a", 2]}})
    assert outcome.status == "failed"
    _, error = task_row(tmp_path, "one")
    assert "input `tags[1]` of `callee` must be text, got the number 2" in error, error


def test_null_for_an_input_with_a_default_is_refused_as_in_batch_rows(tmp_path):
    # `--inputs` rows refuse `{"n": null}` for `input n: number = 3` (BMAD-E322): a call does too,
    # rather than silently taking the default. Leaving the argument out takes the default.
    plan = plan_source(tmp_path, CALLEE + """
        workflow caller {
          input r: json
          task one = callee(g: "x", n: r.n)
          output one
        }
    """)
    outcome, _ = run_plan(plan, tmp_path, inputs={"r": {}})
    assert outcome.status == "failed"
    _, error = task_row(tmp_path, "one")
    assert "input `n` of `callee` must be number, got null" in error, error
    assert "leave the argument out" in error


def test_arguments_that_fit_run_and_a_json_input_takes_anything(tmp_path):
    plan = plan_source(tmp_path, CALLEE + """
        workflow caller {
          input items: list<json>
          task each for each r in items = callee(g: r.g, n: r.n, tags: r.tags, extra: r.extra)
          output each
        }
    """)
    items = [{"g": "a", "n": 1, "tags": [], "extra": None},
             {"g": "b", "n": 2.5, "tags": ["x", "y"], "extra": [1, {"k": "v"}]}]
    outcome, _ = run_plan(plan, tmp_path, inputs={"items": items})
    assert outcome.status == "completed", outcome.error
    assert all(item["t"] for item in outcome.outputs["each"])


def test_the_qa_repro_fails_with_a_recorded_error_and_no_traceback(tmp_path):
    source = """
workflow callee {
  input g: text
  input n: number = 3
  task t {
    prompt "Reference: [{{ g }}] n={{ n }}"
    model gpt-4o-mini
  }
  output t
}

workflow caller {
  input rows: list<json>
  task each for each r in rows = callee(g: r.missing, n: r.n)
  output each
}
"""
    (tmp_path / "n.bmad").write_text(source, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "bmad", "run", "n.bmad", "--provider", "sim",
         "--sim-latency-scale", "0", "--journal", str(tmp_path / "runs.db"),
         "--input", 'rows=[{"a":1},{"n":"seven"}]'],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert "[BMAD-E330]" in out.stderr and "`callee`" in out.stderr
    [(status, error)] = rows(tmp_path, "SELECT status, error FROM tasks WHERE task_id = 'each'")
    assert status == "failed" and "[BMAD-E330]" in error
    assert calls_under(tmp_path, "each") == 0  # neither item reached the callee
