"""What a task's cross-run cache key holds: exactly what can change its result (the values its own
clauses read, its upstream results, its prompt, models and settings), and nothing else. Real runs
on sim against a real journal file, as `bmad run --cache` makes them."""

from __future__ import annotations

import pytest

from bmad.runtime import cache as cache_mod
from bmad.runtime.cache import TaskCache
from bmad.runtime.events import EventBus
from bmad.runtime.interpreter import RunConfig
from bmad.runtime.journal import Journal
from bmad.runtime.providers import base

from runtime_support import exported, plan_source, run_plan, sim_factory

CACHE = RunConfig(cache=True)

# The QA engineer's port of a Nextflow pipeline: map, collect and reduce, then a report.
DIGEST = """
workflow digest {
  input docs: list<text>
  input audience: text = "engineering managers"
  task summarize for each doc in docs { prompt "Summarize:\\n{{ doc }}" model cheap max_tokens 30 }
  task merged {
    prompt "Merge these summaries:\\n{{ summarize }}"
    reduce summarize in chunks of 2
    model mid
    max_tokens 30
  }
  task report { prompt "A report for {{ audience }} from:\\n{{ merged }}" model strong max_tokens 30 }
  output merged
  output report
}
"""
DOCS = [f"Document {i}: notes about service {i}." for i in range(4)]

READS = """
workflow reads {
  input tone: text = "plain"
  input mode: text = "on"
  input items: list<text> = ["a", "b"]
  input unused: text = "nobody reads this"
  task styled { system "Write in a {{ tone }} tone." prompt "Say hello." model cheap max_tokens 30 }
  task gated when mode != "off" { prompt "Say hello again." model cheap max_tokens 30 }
  task each for each x in items { prompt "Item {{ x }}" model cheap max_tokens 30 }
  output styled
  output gated
  output each
}
"""

CALLS = """
workflow inner {
  input topic: text
  task say { prompt "Say something about {{ topic }}" model cheap max_tokens 30 }
  output say
}
workflow outer {
  input topic: text = "bees"
  task go = inner(topic: topic)
  output go
}
"""


def _reasons(outcome) -> dict[str, str]:
    return {d["task"]: d["reason"] for d in outcome.cache_decisions}


def _paid_tasks(tmp_path, run_id: str) -> list[str]:
    return [c["task"] for c in exported(tmp_path, run_id)["calls"]]


def test_an_input_only_one_task_reads_misses_only_that_task(tmp_path):
    plan = plan_source(tmp_path, DIGEST)
    first, _ = run_plan(plan, tmp_path, config=CACHE, inputs={"docs": DOCS})
    assert first.status == "completed", first.error
    second, _ = run_plan(plan, tmp_path, config=CACHE, explain_cache=True,
                         inputs={"docs": DOCS, "audience": "the CTO"})
    assert second.status == "completed", second.error
    reasons = _reasons(second)
    assert reasons["summarize"].startswith("hit:"), reasons
    assert reasons["merged"].startswith("hit:"), reasons
    assert reasons["report"] == "miss: changed the values it reads"
    assert second.outputs["merged"] == first.outputs["merged"]
    assert set(_paid_tasks(tmp_path, second.run_id)) == {"report"}  # the 4 items are not paid again


def test_every_value_a_task_reads_stays_in_its_key(tmp_path):
    """System text, `when` and the `for each` list read inputs too; an input no clause reads is in
    no key. Each change misses exactly the task that reads it, and says so."""
    plan = plan_source(tmp_path, READS)
    first, _ = run_plan(plan, tmp_path, config=CACHE)
    assert first.status == "completed", first.error
    unread, _ = run_plan(plan, tmp_path, config=CACHE, inputs={"unused": "changed"})
    assert all(d["hit"] for d in unread.cache_decisions), _reasons(unread)
    for name, value, task in (("tone", "formal", "styled"), ("mode", "also on", "gated"),
                              ("items", ["a", "b", "c"], "each")):
        outcome, _ = run_plan(plan, tmp_path, config=CACHE, inputs={name: value})
        assert outcome.status == "completed", outcome.error
        reasons = _reasons(outcome)
        assert reasons[task] == "miss: changed the values it reads", (name, reasons)
        missed = [t for t, r in reasons.items() if not r.startswith("hit:") and "[" not in t]
        assert missed == [task], (name, reasons)
    assert run_plan(plan, tmp_path, config=CACHE, inputs={"items": ["a", "b", "c"]})[0] \
        .outputs["each"][2] is not None


def test_an_edited_called_workflow_is_not_served_from_the_cache(tmp_path):
    plan = plan_source(tmp_path, CALLS)
    first, _ = run_plan(plan, tmp_path, config=CACHE)
    assert first.status == "completed", first.error
    edited = plan_source(tmp_path, CALLS.replace("Say something about", "Write a poem about"))
    second, _ = run_plan(edited, tmp_path, config=CACHE, explain_cache=True)
    assert second.status == "completed", second.error
    assert second.outputs != first.outputs  # not the old workflow's answer
    assert _paid_tasks(tmp_path, second.run_id) == ["go/say"]
    assert _reasons(second)["go/say"] == "miss: changed the prompt or system text"
    again, _ = run_plan(edited, tmp_path, config=CACHE, explain_cache=True)
    reasons = _reasons(again)
    assert reasons["go"] == "not cached itself: a call of `inner`, whose tasks are cached one by one"
    assert reasons["go/say"].startswith("hit:"), reasons  # its tasks are reused, one by one
    assert again.outputs == second.outputs and not _paid_tasks(tmp_path, again.run_id)


def _poisoned(plan):
    """Sim, except that a call whose prompt holds POISON fails (not retryable)."""
    inner = sim_factory(plan)

    class Poisoned:
        def __init__(self, wrapped):
            self.wrapped = wrapped
            self.name = wrapped.name

        async def complete(self, request, on_progress=None):
            if any("POISON" in m.content for m in request.messages):
                raise base.ERROR_CLASSES["bad_request"]("injected", provider=self.name)
            return await self.wrapped.complete(request, on_progress)

        async def aclose(self):
            await self.wrapped.aclose()

    return lambda decl: Poisoned(inner(decl))


def test_a_fan_out_with_failed_items_is_not_reused(tmp_path):
    body = """
    workflow fan {
      input xs: list<text>
      task each for each x in xs { prompt "Work on {{ x }}" model cheap max_tokens 30 on_error continue }
      output each
    }
    """
    plan = plan_source(tmp_path, body)
    xs = ["fine", "POISON", "fine too"]
    first, _ = run_plan(plan, tmp_path, config=CACHE, inputs={"xs": xs}, factory=_poisoned(plan))
    assert first.status == "completed" and first.outputs["each"][1] is None
    second, _ = run_plan(plan, tmp_path, config=CACHE, inputs={"xs": xs})  # the fault is gone
    assert second.status == "completed", second.error
    assert not second.cache_decisions[0]["hit"]
    assert None not in second.outputs["each"]


def test_item_keys_hold_the_item_not_the_list(tmp_path, monkeypatch):
    """The per-item API (`lookup_item` / `store_item`), on the frame and node of a real run: an
    item is found by its own value wherever it sits in the list, and a changed item says so."""
    seen = {}
    original = TaskCache.lookup

    def spy(self, frame, node, path):
        seen[path] = (frame, node)
        return original(self, frame, node, path)

    monkeypatch.setattr(TaskCache, "lookup", spy)
    plan = plan_source(tmp_path, DIGEST)
    run, _ = run_plan(plan, tmp_path, config=CACHE, inputs={"docs": DOCS})
    assert run.status == "completed", run.error
    frame, node = seen["summarize"]
    doc, other = "a doc no run has seen", "another doc no run has seen"
    journal = Journal(tmp_path / "runs.db")
    try:
        cache = TaskCache(journal, EventBus(), "r-items")
        key, hit = cache.lookup_item(frame, node, "summarize", 0, doc)
        assert hit is None and cache.decisions[-1]["reason"].startswith("miss:")
        cache.store_item(key, frame, node, "summarize", 0, doc, "summary 0", "cheap", None)
        journal.flush()
        later = TaskCache(journal, EventBus(), "r-later")
        frame.scope["docs"] = [other, doc, *DOCS]  # the list changed; the item did not
        frame.scope["audience"] = "the CTO"  # read by another task only
        moved, hit = later.lookup_item(frame, node, "summarize", 1, doc)
        assert moved == key and hit is not None and hit["output"] == "summary 0"
        _key, hit = later.lookup_item(frame, node, "summarize", 0, other)
        assert hit is None
        assert later.decisions[-1]["reason"] == "miss: changed its `for each` item"
        assert cache_mod.item_components(frame, node, doc)["item"] != \
            cache_mod.item_components(frame, node, other)["item"]
    finally:
        journal.close()


def test_changing_one_item_of_a_for_each_runs_only_that_item(tmp_path):
    plan = plan_source(tmp_path, DIGEST)
    first, _ = run_plan(plan, tmp_path, config=CACHE, inputs={"docs": DOCS})
    assert first.status == "completed", first.error
    changed = [*DOCS[:2], "Document 2: rewritten.", DOCS[3]]
    second, _ = run_plan(plan, tmp_path, config=CACHE, explain_cache=True, inputs={"docs": changed})
    assert second.status == "completed", second.error
    paid = _paid_tasks(tmp_path, second.run_id)
    assert paid.count("summarize") == 1, paid
    assert second.outputs["report"] is not None
