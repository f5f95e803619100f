"""std.quality and std.consensus: every workflow compiles cleanly and runs on sim through `use`
and a call, and its verdicts drive `when` downstream."""

from __future__ import annotations

import pytest

from bmad.compiler.compile import compile_file

from stdlib_support import compile_text, plan_compiled, run_on_sim, stdlib_path

CALLS = {
    "quality_review": ("quality", 'request: "Summarise", answer: "It broke.", rubric: "grounded"'),
    "compare_answers": ("quality", 'request: "Add 2+2", first: "4", second: "5", rubric: "factual"'),
    "panel_answer": ("consensus", 'question: "What does HTTP 429 mean?"'),
    "yes_no_vote": ("consensus", 'question: "Is 7 prime?", evidence: "7 has no divisors but 1 and 7."'),
    "debate": ("consensus", 'question: "Monorepo or polyrepo for 5 services?"'),
}


@pytest.mark.parametrize("module", ["quality", "consensus"])
def test_module_compiles_without_problems(module):
    result = compile_file(stdlib_path(module))
    assert result.ok and [d.message for d in result.diagnostics] == []


@pytest.mark.parametrize("workflow", sorted(CALLS))
def test_workflow_runs_on_sim(workflow, tmp_path):
    module, arguments = CALLS[workflow]
    result = compile_text(tmp_path, f"""
use std.{module}

workflow uses_{workflow} {{
  task result = {workflow}({arguments})
  output result
}}
""")
    assert result.ok and not result.diagnostics, [d.message for d in result.diagnostics]
    outcome = run_on_sim(plan_compiled(result), tmp_path)
    assert outcome.status == "completed", outcome.error
    callee = result.program.workflow(workflow)
    assert set(outcome.outputs["result"]) == {o.name for o in callee.outputs}
    assert all(v not in (None, "") for v in outcome.outputs["result"].values())


def test_a_verdict_drives_a_condition(tmp_path):
    result = compile_text(tmp_path, """
use std.quality

workflow gated {
  input draft: text = "The service restarts nightly."

  task check = quality_review(request: "Describe the restart policy", answer: draft, rubric: "complete")

  task revise when check.verdict != "PASS" {
    prompt "Revise the draft using this critique:\\n{{ check.critique }}\\n\\nDraft:\\n{{ draft }}"
    needs writing
  }

  output check
  output revise
}
""")
    assert result.ok and not result.diagnostics, [d.message for d in result.diagnostics]
    outcome = run_on_sim(plan_compiled(result), tmp_path)
    assert outcome.status == "completed", outcome.error
    verdict = outcome.outputs["check"]["verdict"]
    assert verdict in ("PASS", "REVISE", "FAIL")
    assert (outcome.outputs["revise"] is None) == (verdict == "PASS")
