"""The second diagnostics stage in its helper process: the same findings as `bmad check`, newest first."""

from __future__ import annotations

import asyncio

from bmad.cli.check_cmd import check_files
from bmad.lsp.plan_checks import PlanChecker


def test_the_helper_finds_what_bmad_check_finds_and_drops_superseded_requests(tmp_path, budget_bmad):
    path = tmp_path / "budget.bmad"
    path.write_text(budget_bmad, encoding="utf-8")
    expected = [d for d in check_files([str(path)])[0] if d.code.startswith("BMAD-E2")]
    assert expected
    checker = PlanChecker()

    async def three_versions():
        fine = budget_bmad.replace("$0.000001", "$50")
        return await asyncio.gather(
            checker.check(str(path), budget_bmad, {}),  # runs at once
            checker.check(str(path), fine, {}),  # superseded while it waits
            checker.check(str(path), budget_bmad, {}))  # the newest: runs next

    try:
        first, second, third = asyncio.run(three_versions())
    finally:
        checker.shutdown()
    assert second is None
    for found in (first, third):
        assert [d for d in found if d.code.startswith("BMAD-E2")] == expected


def test_hover_plans_follow_new_versions_in_the_background(tmp_path, budget_bmad):
    """The first plan is made on request; a new version is answered with the last plan until its
    own is ready (made by the planner thread once typing pauses)."""
    from bmad.lsp import estimates
    from bmad.lsp.documents import DocumentStore

    path = tmp_path / "flow.bmad"
    text = budget_bmad.replace("$0.000001", "$50")
    path.write_text(text, encoding="utf-8")
    store = DocumentStore()
    doc = store.open(path.as_uri(), text, 1)
    store.record(doc, 1, store.compile(doc))
    first = estimates.plan_for(doc)
    assert first is not None and first.entry.task("a") is not None
    assert estimates.plan_for(doc) is first
    edited = text.replace("max_tokens 4000", "max_tokens 100")
    store.update(doc.uri, edited, 2)
    store.record(doc, 2, store.compile(doc))
    assert estimates.plan_for(doc) is first  # answered at once, from the last plan
    estimates._planner.submit(lambda: None).result(timeout=60)  # one planner thread: after its plan
    assert doc.plan_cache.get("program") is doc.program
    second = estimates.plan_for(doc)
    assert second is not first and second.entry.task("a").estimate.tokens_expected < \
        first.entry.task("a").estimate.tokens_expected
