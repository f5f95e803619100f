"""Every stdlib pattern compiles cleanly on its own, is usable through `use std.NAME` and a
subworkflow call, plans on sim, and runs on sim to outputs of the promised shapes."""

from __future__ import annotations

import jsonschema
import pytest

from bmad.compiler.compile import compile_file

from stdlib_support import ALL_PATTERNS, compile_text, plan_compiled, run_on_sim, stdlib_path

DIFF = "--- a/calc.py\\n+++ b/calc.py\\n@@ def add(a, b):\\n-    return a - b\\n+    return a + b\\n"

# The arguments each pattern needs in a call (its inputs without defaults), as bmad expressions.
CALL_ARGUMENTS = {
    "code_generation": 'spec: "A function that parses ISO 8601 durations into seconds"',
    "code_review": f'diff: "{DIFF}", context: "Fixes the sign bug in add"',
    "documentation_creation": 'subject: "GET /users/{id} returns a user as JSON; 404 when absent"',
    "testing_strategy": 'subject: "A payment service that charges cards and sends receipts"',
    "requirement_analysis": 'requirements: "A web service that stores and searches documents"',
    "architecture_design": 'requirements: "Store and search 10M documents; p95 search < 200ms"',
    "pattern_identification": 'material: "retry storm at 02:00; retry storm at 03:10; cache miss spike"',
    "decision_support": 'question: "Which queue for the jobs?", options: "SQS\\nRabbitMQ\\nKafka"',
    "knowledge_extraction": 'source: "Acme Corp was founded in 1999 by Ada Lee in Oslo."',
    "knowledge_synthesis": 'sources: ["Study A: caching cut p99 by 30%.", "Study B: no effect on p99.", "Study C: helps reads only."]',
    "knowledge_validation": 'claims: "Water boils at 100 C at sea level. The Moon is made of cheese."',
    "knowledge_application": 'knowledge: "Restart the worker when the queue is stuck.", problem: "The queue has not moved for an hour."',
}


def test_every_pattern_has_call_arguments():
    assert set(CALL_ARGUMENTS) == set(ALL_PATTERNS)


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_pattern_compiles_on_its_own_without_problems(pattern):
    result = compile_file(stdlib_path(pattern))
    assert result.ok
    assert [f"{d.code} {d.message}" for d in result.diagnostics] == []
    workflow = result.program.workflow(pattern)
    assert workflow is not None and workflow.about and workflow.outputs
    prompts = [t for t in workflow.tasks if t.prompt is not None]
    assert prompts and all(t.needs for t in prompts), "every prompt task states the capabilities it needs"
    assert any(t.consensus is not None for t in workflow.tasks), "at least one multi-model step"
    assert any(t.quality is not None or (t.returns and t.returns.kind == "enum") for t in workflow.tasks)


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_pattern_runs_on_sim_through_use_and_a_call(pattern, tmp_path):
    result = compile_text(tmp_path, f"""
use std.{pattern}

workflow uses_{pattern} {{
  task result = {pattern}({CALL_ARGUMENTS[pattern]})
  output result
}}
""")
    assert result.ok, [f"{d.code} {d.message}" for d in result.diagnostics]
    assert not [d for d in result.diagnostics if d.severity == "warning"]
    assert f"<std>/{pattern}.bmad" in {f.path for f in result.program.files}
    plan = plan_compiled(result)
    outcome = run_on_sim(plan, tmp_path)
    assert outcome.status == "completed", outcome.error
    produced = outcome.outputs["result"]
    callee = result.program.workflow(pattern)
    assert set(produced) == {o.name for o in callee.outputs}
    for output in callee.outputs:
        task = callee.task(output.name)
        value = produced[output.name]
        if task.when is not None and value is None:
            continue  # a conditional step that did not apply
        assert value not in (None, ""), f"{pattern}: output {output.name} is empty"
        returns = task.returns
        if returns is not None and returns.kind == "enum":
            assert value in returns.values
        elif returns is not None and returns.kind == "json":
            for item in (value if task.for_each is not None else [value]):
                jsonschema.validate(item, returns.schema)
        else:
            assert isinstance(value, str)
