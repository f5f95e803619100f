"""Every contract file and example plans; every plan validates against `bmad schema plan`."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from bmad.compiler.compile import compile_file
from bmad.compiler.passes import make_context, plan_program, verify_plan
from bmad.compiler.plan import Plan

SCHEMA = json.loads(resources.files("bmad.compiler.schema").joinpath("plan.v1.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def plan_file(path, **options):
    result = compile_file(str(path))
    assert result.ok, [d.message for d in result.errors]
    program = result.program
    if not program.workflows:
        return None, []
    return plan_program(program, make_context(program, **options))


@pytest.mark.parametrize("mode", ["sim", "no-keys"])
def test_every_contract_file_plans(spec_file, mode):
    options = {"environment": {}, "provider_mode": "sim" if mode == "sim" else None}
    plan, diagnostics = plan_file(spec_file, **options)
    assert not [d for d in diagnostics if d.is_error]
    if plan is None:
        return  # declarations only (models.bmad)
    data = json.loads(plan.dumps())
    VALIDATOR.validate(data)
    for key in ("plan_hash", "ir_version", "workflow", "budget", "tasks", "totals", "critical_path", "stages"):
        assert key in data
    for task in data["tasks"]:
        for key in ("id", "model", "route_reason", "fallbacks", "quality_floor", "expected_quality", "estimate",
                    "depends", "stage", "rank"):
            assert key in task
    again = Plan.from_json(data)
    assert verify_plan(again) == []
    assert again.plan_hash == plan.plan_hash


def test_every_example_plans(example_file):
    plan, diagnostics = plan_file(example_file, environment={}, provider_mode="sim")
    assert not [d for d in diagnostics if d.is_error]
    if plan is not None:
        VALIDATOR.validate(json.loads(plan.dumps()))


def test_collaborative_tasks_get_three_participants(spec_dir):
    plan, _ = plan_file(spec_dir / "architecture.bmad", environment={}, provider_mode="sim")
    proposal = plan.entry.task("proposal")
    assert len(proposal.participants) == 3
    assert len({plan.program.model(m).provider.name for m in proposal.participants}) == 3


def test_subworkflow_calls_carry_the_callee_totals(spec_dir):
    plan, _ = plan_file(spec_dir / "pipeline.bmad", environment={}, provider_mode="sim")
    reviews = plan.entry.task("reviews")
    callee = plan.subplan("code_review")
    assert reviews.kind == "call" and reviews.fan_out == 10
    assert reviews.estimate.cost_usd_expected == pytest.approx(callee.totals.cost_usd_expected * 10, rel=1e-6)
