"""SoloEstimate gives the router exactly what `estimate_task(..., solo=True)` gives, for every
(task, model) pair of every contract file, example and fixture, with and without a history."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmad.compiler.compile import compile_file
from bmad.compiler.history import ANY_CAPABILITY, ModelHistory, Observation
from bmad.compiler.passes import make_context, run_passes
from bmad.compiler.passes.draft import CallShape, revise
from bmad.compiler.passes.estimate_cost import SoloAssignment, estimate_task
from bmad.compiler.passes.solo_estimate import SoloEstimate, pool_profile

from .conftest import REPO_ROOT, WORKFLOW_FILES


def a_history(catalog) -> ModelHistory:
    """Observed failure rates and latencies for some models, so both branches are exercised."""
    observations = {}
    for i, entry in enumerate(catalog):
        if i % 2 == 0:
            observations[(entry.name, ANY_CAPABILITY)] = Observation(
                quality=0.8, latency_s=0.3 + i / 7, failure_rate=0.05 * (i % 5), samples=10)
        for skill in list(entry.skills)[:2]:
            observations[(entry.name, skill)] = Observation(latency_s=1.1 + i / 3, failure_rate=0.13, samples=10)
    return ModelHistory(observations)


def assert_same_as_estimate_task(td, catalog, history):
    solo = SoloEstimate(td, catalog, history)
    for entry in catalog:
        est = estimate_task(td, SoloAssignment(entry.name, td.plan.fan_out), catalog, history, solo=True)
        assert solo.cost_and_latency(entry) == (est.cost_usd_expected, est.latency_s), (td.id, entry.name)
    # the whole pool in one call: the same floats, in catalog order
    entries = list(catalog)
    one_by_one = [solo.cost_and_latency(entry) for entry in entries]
    assert solo.pool_costs(entries) == one_by_one, td.id
    assert solo.pool_costs(entries, pool_profile(entries)) == one_by_one, td.id


def routed_drafts(path: Path, with_history: bool):
    result = compile_file(str(path))
    if result.program is None or not result.ok or not result.program.workflows:
        pytest.skip("does not compile clean")
    context = make_context(result.program, environment={}, provider_mode="sim")
    if with_history:
        context = make_context(result.program, environment={}, provider_mode="sim",
                               history=a_history(context.catalog))
        assert context.history is not None
    draft = run_passes(result.program, context, until="measure_prompts")
    return draft, context


@pytest.mark.parametrize("with_history", [False, True], ids=["catalog", "history"])
@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_solo_estimate_equals_estimate_task_on_every_task_and_model(path: Path, with_history: bool):
    draft, context = routed_drafts(path, with_history)
    checked = 0
    for wd in draft.workflows.values():
        for td in wd.tasks.values():
            if td.plan.kind == "call":
                continue
            assert_same_as_estimate_task(td, context.catalog, context.history)
            checked += 1
    if not draft.failed:
        assert checked or not any(wd.tasks for wd in draft.workflows.values())


SAMPLE = REPO_ROOT / "tests" / "compiler" / "passes" / "fixtures" / "estimate_cost.bmad"


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.tuples(*(st.floats(min_value=0, max_value=1e6, allow_nan=False) for _ in range(4))),
    fan_out=st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
    reduce_items=st.integers(min_value=0, max_value=5000),
    with_history=st.booleans(),
)
def test_solo_estimate_equals_estimate_task_on_random_sizes(sizes, fan_out, reduce_items, with_history):
    """Random token counts and fan-outs on the fixture's tasks (every gate, retry, reduce form)."""
    draft, context = routed_drafts(SAMPLE, with_history)
    in_e, in_w, out_e, out_w = sizes
    for wd in draft.workflows.values():
        for td in wd.tasks.values():
            if td.plan.kind == "call":
                continue
            td.shape = CallShape(input_expected=in_e, input_worst=in_w, output_expected=out_e, output_worst=out_w)
            td.reduce_items = reduce_items
            td.plan = revise(td.plan, fan_out=fan_out)
            assert_same_as_estimate_task(td, context.catalog, context.history)
