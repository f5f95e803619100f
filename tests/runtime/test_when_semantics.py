"""`when` and skipped tasks: a task whose `when` reads a skipped task handles it (the condition
sees null, and `{{ name }}` renders empty); a dependent that does not read it in `when` is skipped
as before. And a `for each` over a value that is not a list says what the value is, in the
language's words (it said "needs a list, got NoneType").

The sim provider (wrapped to record each prompt) and the real SQLite journal."""

from __future__ import annotations

import sqlite3

from runtime_support import plan_source, run_plan, sim_factory

MAYBE = """
    workflow w {
      input go: bool = false
      task maybe when go { prompt "MAYBE" model cheap }
      task handler when HANDLER_WHEN { prompt "HANDLER [{{ maybe }}]" model cheap }
      task uses { prompt "USES [{{ maybe }}]" model cheap }
      task after { depends maybe prompt "AFTER" model cheap }
      output handler
      output uses
      output after
    }
"""


def recording_factory(plan, prompts: dict[str, list[str]]):
    """Sim providers that note each call's user prompt under its task."""
    inner = sim_factory(plan)

    class Recording:
        def __init__(self, wrapped):
            self.wrapped = wrapped
            self.name = wrapped.name

        async def complete(self, request, on_progress=None):
            prompts.setdefault(request.task_id, []).append(request.messages[-1].content)
            return await self.wrapped.complete(request, on_progress)

        async def aclose(self):
            await self.wrapped.aclose()

    return lambda decl: Recording(inner(decl))


def tasks(tmp_path) -> dict[str, tuple[str, str | None]]:
    db = sqlite3.connect(tmp_path / "runs.db")
    try:
        return {t: (s, e) for t, s, e in db.execute("SELECT task_id, status, error FROM tasks")}
    finally:
        db.close()


def called(tmp_path) -> set[str]:
    db = sqlite3.connect(tmp_path / "runs.db")
    try:
        return {t for (t,) in db.execute("SELECT DISTINCT task_id FROM calls")}
    finally:
        db.close()


def run_maybe(tmp_path, handler_when: str, go: bool = False):
    plan = plan_source(tmp_path, MAYBE.replace("HANDLER_WHEN", handler_when))
    prompts: dict[str, list[str]] = {}
    outcome, _ = run_plan(plan, tmp_path, inputs={"go": go}, factory=recording_factory(plan, prompts))
    return outcome, prompts


def test_a_when_that_reads_a_skipped_task_sees_null_and_runs(tmp_path):
    outcome, prompts = run_maybe(tmp_path, "maybe == null")
    assert outcome.status == "completed", outcome.error
    rows = tasks(tmp_path)
    assert rows["maybe"] == ("skipped", "`when` condition is false")
    assert rows["handler"][0] == "completed"
    assert outcome.outputs["handler"]
    # the skipped task renders as an empty value, as a failed task under `on_error continue` does
    assert prompts == {"handler": ["HANDLER []"]}
    # dependents whose `when` does not read it are skipped as before, and make no call
    assert rows["uses"] == ("skipped", "dependency `maybe` was skipped")
    assert rows["after"] == ("skipped", "dependency `maybe` was skipped")
    assert called(tmp_path) == {"handler"}


def test_a_when_that_reads_a_skipped_task_and_is_false_skips_its_task(tmp_path):
    outcome, prompts = run_maybe(tmp_path, "maybe != null")
    assert outcome.status == "completed", outcome.error
    rows = tasks(tmp_path)
    assert rows["handler"] == ("skipped", "`when` condition is false")
    assert prompts == {} and called(tmp_path) == set()


def test_a_field_of_a_skipped_task_reads_null_in_when(tmp_path):
    plan = plan_source(tmp_path, """
        workflow w {
          input go: bool = false
          task assess when go {
            prompt "Rate it"
            model cheap
            returns json { "type": "object", "properties": { "score": { "type": "number" } } }
          }
          task low when assess.score < 7 { prompt "LOW" model cheap }
          task not_high when not (assess.score >= 7) { prompt "NOT HIGH" model cheap }
          output low
          output not_high
        }
    """)
    outcome, _ = run_plan(plan, tmp_path, inputs={"go": False})
    assert outcome.status == "completed", outcome.error
    rows = tasks(tmp_path)
    # null can't be ordered: `<` is false, so `not (>=)` is true (language.md, Expressions)
    assert rows["low"] == ("skipped", "`when` condition is false")
    assert rows["not_high"][0] == "completed"
    assert called(tmp_path) == {"not_high"}


def test_the_guard_reads_null_when_the_task_was_skipped_and_its_value_when_it_ran(tmp_path):
    (tmp_path / "off").mkdir()
    outcome, _ = run_maybe(tmp_path / "off", "maybe == null")
    assert tasks(tmp_path / "off")["handler"][0] == "completed"
    outcome, prompts = run_maybe(tmp_path, "maybe == null", go=True)
    assert outcome.status == "completed", outcome.error
    rows = tasks(tmp_path)
    assert rows["maybe"][0] == "completed"
    assert rows["handler"] == ("skipped", "`when` condition is false")
    assert rows["uses"][0] == "completed" and rows["after"][0] == "completed"
    assert prompts["uses"][0].startswith("USES [") and prompts["uses"][0] != "USES []"


def test_another_skipped_dependency_still_skips_a_handler(tmp_path):
    plan = plan_source(tmp_path, """
        workflow w {
          input go: bool = false
          task maybe when go { prompt "MAYBE" model cheap }
          task other when go { prompt "OTHER" model cheap }
          task handler when maybe == null { prompt "HANDLER" model cheap }
          task guarded when maybe == null { prompt "GUARDED {{ other }}" model cheap }
          output handler
          output guarded
        }
    """)
    outcome, _ = run_plan(plan, tmp_path, inputs={"go": False})
    assert outcome.status == "completed", outcome.error
    rows = tasks(tmp_path)
    assert rows["handler"][0] == "completed"
    # `guarded` handles `maybe`, not `other`, which its prompt reads
    assert rows["guarded"] == ("skipped", "dependency `other` was skipped")
    assert called(tmp_path) == {"handler"}


def for_each_error(tmp_path, source: str) -> str:
    tmp_path.mkdir(exist_ok=True)
    plan = plan_source(tmp_path, """
        workflow w {
          input cfg: json = { "n": 3, "t": "x", "b": true, "o": { "k": 1 } }
          task per for each it in SOURCE { prompt "PER {{ it }}" model cheap }
          output per
        }
    """.replace("SOURCE", source))
    outcome, _ = run_plan(plan, tmp_path)
    assert outcome.status == "failed"
    status, error = tasks(tmp_path)["per"]
    assert status == "failed" and called(tmp_path) == set()
    return error


def test_for_each_over_a_missing_field_says_it_is_null(tmp_path):
    assert for_each_error(tmp_path, "cfg.items") == \
        "`for each it in cfg.items`: `cfg.items` is null (missing), not a list"


def test_for_each_over_another_type_names_it_in_language_terms(tmp_path):
    assert for_each_error(tmp_path / "o", "cfg.o") == "`for each it in cfg.o`: `cfg.o` is a json object, not a list"
    assert for_each_error(tmp_path / "t", "cfg.t") == "`for each it in cfg.t`: `cfg.t` is text, not a list"
    assert for_each_error(tmp_path / "n", "cfg.n") == "`for each it in cfg.n`: `cfg.n` is a number, not a list"
    assert for_each_error(tmp_path / "b", "cfg.b") == "`for each it in cfg.b`: `cfg.b` is a bool, not a list"
