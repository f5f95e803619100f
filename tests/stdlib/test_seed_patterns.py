"""The seed's YAML `task_type` naming a stdlib pattern: the task calls the pattern with its inputs and
its dependencies' results; the seed's contract file plans and runs on sim through the patterns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bmad.compiler import ir
from bmad.compiler.compile import compile_file

from stdlib_support import compile_text, plan_compiled, run_on_sim

SEED = Path(__file__).resolve().parents[2] / ".." / "shared" / "spec" / "seed_workflow.yaml"


def test_seed_tasks_call_their_patterns_with_inputs_and_upstream_results():
    result = compile_file(SEED)
    assert result.ok and not result.diagnostics
    program = result.program
    assert {"<std>/requirement_analysis.bmad", "<std>/architecture_design.bmad",
            "<std>/documentation_creation.bmad"} <= {f.path for f in program.files}
    analyze, design, document = program.workflow().tasks
    assert analyze.call.workflow.name == "requirement_analysis"
    (argument,) = analyze.call.arguments
    assert argument.name == "requirements"
    assert argument.value.value == "A web service that stores and searches documents"
    # a dependency that is itself a pattern call passes its main result (the first output)
    assert design.call.workflow.name == "architecture_design"
    assert [(a.name, str(a.value)) for a in design.call.arguments] == [("requirements", "analyze.brief")]
    assert [(a.name, str(a.value)) for a in document.call.arguments] == [("subject", "design.design")]
    assert analyze.prompt is not None  # kept: the plan and the docs can show what the task is


def test_seed_plans_and_runs_on_sim_through_the_patterns(tmp_path):
    result = compile_file(SEED)
    plan = plan_compiled(result)
    assert {t.id: t.subworkflow for t in plan.entry.tasks} == {
        "analyze": "requirement_analysis", "design": "architecture_design",
        "document": "documentation_creation"}
    assert {"requirement_analysis", "architecture_design", "documentation_creation"} <= {
        s.workflow for s in plan.subplans}
    outcome = run_on_sim(plan, tmp_path)
    assert outcome.status == "completed", outcome.error
    document = outcome.outputs["document"]
    assert set(document) == {"document", "outline", "review"} and document["document"]


def test_seed_runs_through_bmad_run(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, "-m", "bmad", "run", str(SEED), "--provider", "sim",
                           "--sim-latency-scale", "0", "--journal", str(tmp_path / "runs.db"),
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["document"]["document"]


YAML_HEAD = """
id: flow
tasks:
"""


def compile_yaml(tmp_path, tasks: str):
    return compile_text(tmp_path, YAML_HEAD + tasks, name="flow.yaml")


def test_inputs_map_by_name_and_leftovers_fill_the_remaining_inputs(tmp_path):
    result = compile_yaml(tmp_path, """
  - id: notes
    name: Notes
  - id: review
    name: Review the change
    task_type: code-review
    dependencies: [notes]
    inputs:
      focus: "security only"
      diff: "+ x = 1"
""")
    assert result.ok and not result.diagnostics, [d.message for d in result.diagnostics]
    review = result.program.workflow().task("review")
    arguments = {a.name: a.value for a in review.call.arguments}
    assert review.call.workflow.name == "code_review"
    assert arguments["diff"] == ir.Literal("+ x = 1", arguments["diff"].span)
    assert arguments["focus"].value == "security only"
    assert str(arguments["context"]) == "notes"  # a plain task's result is text


def test_a_pattern_that_cannot_be_fed_stays_a_prompt_with_a_warning(tmp_path):
    result = compile_yaml(tmp_path, """
  - id: review
    name: Review
    task_type: code_review
""")
    assert result.ok
    (warning,) = result.diagnostics
    assert warning.code == "BMAD-W083" and "needs `diff`" in warning.message
    assert warning.span.line == 7  # the task_type value
    assert result.program.workflow().task("review").call is None


def test_mixed_text_and_references_and_leftovers_are_warned(tmp_path):
    result = compile_yaml(tmp_path, """
  - id: a
    name: A
  - id: b
    name: B
  - id: mixed
    name: Mixed
    task_type: knowledge_extraction
    inputs: { source: "see {{ a }} here" }
  - id: surplus
    name: Surplus
    task_type: knowledge_extraction
    dependencies: [a, b]
    inputs: { source: "text", note: "more" }
""")
    messages = {d.message.split(":")[0]: d for d in result.diagnostics}
    assert {d.code for d in result.diagnostics} == {"BMAD-W083"}
    assert "mixes text" in messages["task `mixed` runs as a plain prompt, not as std.knowledge_extraction"].message
    surplus = messages["task `surplus` runs as a plain prompt, not as std.knowledge_extraction"]
    assert "would have no input" in surplus.message and "`b`" in surplus.message


def test_a_task_type_that_is_no_pattern_is_a_plain_prompt(tmp_path):
    result = compile_yaml(tmp_path, """
  - id: t
    name: Translate
    task_type: translation
""")
    assert result.ok and not result.diagnostics
    task = result.program.workflow().task("t")
    assert task.call is None and task.pattern == "translation"
    assert not any(f.role == "stdlib" and f.path != "<std>/models.bmad" for f in result.program.files)
