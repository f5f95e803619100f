"""QA round 2: huge counts are refused at their clause and never size the plan (BMAD-E507); the
run's dollar budget is checked against every model `bmad run` may call (BMAD-W215, as the
runtime's BMAD-E307); a YAML file with a second document says so."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from bmad.compiler.compile import compile_source
from bmad.compiler.ir import Budget
from bmad.compiler.limits import LimitsError, limits_from_table, use_limits
from bmad.compiler.passes import check_plan, make_context, plan_program
from bmad.compiler.plan_render import render_text

HUGE = "99999999999999999999"

# (clause in a task, what the message quotes)
HUGE_CLAUSES = {
    "among": (f"consensus vote among {HUGE} models", f"among {int(HUGE):,} models"),
    "judge": (f"consensus judge gpt-4o among {HUGE} models", f"among {int(HUGE):,} models"),
    "best_of": (f"best_of {HUGE}", f"best_of {int(HUGE):,}"),
    "peer_review": (f"peer_review among [gpt-4o, claude-sonnet] rounds {HUGE}", f"rounds {int(HUGE):,}"),
    "retry": (f"retry {HUGE}", f"retry {int(HUGE):,}"),
    "else_retry": (f"quality >= 0.8 else retry {HUGE}", f"else retry {int(HUGE):,}"),
    "refine": (f"quality >= 0.8 else refine max {HUGE}", f"else refine max {int(HUGE):,}"),
}


def task_file(clause: str) -> str:
    return f'workflow w {{\n  task a {{\n    prompt "x"\n    {clause}\n  }}\n  output a\n}}\n'


def errors(text: str, path: str = "huge.bmad") -> list:
    return [d for d in compile_source(text, path).diagnostics if d.is_error]


@pytest.mark.parametrize("name", sorted(HUGE_CLAUSES))
def test_a_huge_count_is_an_error_at_its_clause(name):
    clause, quoted = HUGE_CLAUSES[name]
    [problem] = errors(task_file(clause))
    assert problem.code == "BMAD-E507"
    assert (problem.span.line, problem.span.column) == (4, 5)  # the clause
    assert f"`{quoted}`" in problem.message and "task `a`" in problem.message
    assert "[limits]" in problem.hint


def test_chunks_longer_than_any_for_each_list_are_an_error():
    text = textwrap.dedent(f"""\
        workflow w {{
          input files: list<text>
          task per_file for each f in files {{ prompt "Summarize {{{{ f }}}}." }}
          task overview {{ prompt "Merge." reduce per_file in chunks of {HUGE} }}
          output overview
        }}
        """)
    [problem] = errors(text)
    assert problem.code == "BMAD-E507" and "10,000 items" in problem.message
    assert (problem.span.line, problem.span.column) == (4, 35)


def test_counts_up_to_the_limit_are_fine_and_the_limit_is_a_setting():
    assert not errors(task_file("consensus vote among 100 models"))
    with use_limits(models_per_task=2, rounds_per_task=1):
        assert [d.code for d in errors(task_file("consensus vote among 3 models"))] == ["BMAD-E507"]
        assert [d.code for d in errors(task_file("retry 2"))] == ["BMAD-E507"]
        assert not errors(task_file("retry 1"))
    with pytest.raises(LimitsError, match="at most 10,000"):
        limits_from_table({"models_per_task": 10**20})


def test_a_count_too_long_for_any_number_is_a_diagnostic_not_a_crash():
    [problem] = errors(task_file("best_of " + "9" * 400))
    assert problem.code == "BMAD-E507" and "(400 digits)" in problem.message
    [problem] = errors(task_file("best_of " + "9" * 5000))
    assert problem.code == "BMAD-E012" and (problem.span.line, problem.span.column) == (4, 13)
    [problem] = errors(task_file("max_tokens " + "9" * 400 + ".5k"))
    assert problem.code == "BMAD-E012" and "too large" in problem.message


def test_huge_yaml_counts_are_errors_at_their_values():
    text = textwrap.dedent(f"""\
        id: w
        tasks:
          - id: a
            name: A
            llm_requirements: {{ collaboration: {{ multi_llm: true, num_llms: {HUGE}, type: consensus }} }}
          - id: b
            name: B
            retry_config: {{ max_attempts: {HUGE} }}
        """)
    found = sorted(errors(text, "huge.yaml"), key=lambda d: d.span.line)
    assert [d.code for d in found] == ["BMAD-E507", "BMAD-E507"]
    assert (found[0].span.line, found[0].span.column) == (5, 69) and "num_llms" in found[0].message
    assert (found[1].span.line, found[1].span.column) == (8, 35) and "max_attempts" in found[1].message


# The planner itself never builds anything of the count's size: the language server plans a
# program that has errors, and IR may come from other tools. Run in a child with a memory cap and
# a timeout, so a regression fails instead of eating the machine.
_PLAN_HUGE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from bmad.compiler.compile import compile_source
from bmad.compiler.passes import check_plan, plan_program
sizes = {}
for name, text in json.loads(sys.stdin.read()).items():
    program = compile_source(text, name + ".bmad").program
    plan, _diagnostics = plan_program(program)
    check_plan(program)
    sizes[name] = max(len(t.participants) for t in plan.tasks) if plan else -1
print(json.dumps(sizes))
"""


def test_the_planner_stays_small_whatever_the_count():
    files = {name: task_file(clause) for name, (clause, _quoted) in HUGE_CLAUSES.items()}
    files["quorum"] = task_file(f"consensus vote among {HUGE} models quorum {HUGE}")
    done = subprocess.run([sys.executable, "-c", _PLAN_HUGE], input=json.dumps(files), text=True,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    sizes = json.loads(done.stdout)
    assert set(sizes) == set(files)
    assert all(0 <= n <= 100 for n in sizes.values()), sizes


# -- the run's dollar budget and models without a price (BMAD-W215 / the runtime's BMAD-E307) ----

CATALOG = """
provider s { kind sim }
provider t { kind sim }
provider u { kind sim }
model cheap  { provider s  price input $1 output $2 per 1M    skills { writing 0.7, reasoning 0.7 } }
model strong { provider u  price input $5 output $10 per 1M   skills { writing 0.95, reasoning 0.95 } }
model tiny   { provider t  skills { writing 0.99, reasoning 0.99 } }
"""


def plan_of(body: str, **options):
    result = compile_source(CATALOG + body, "budget.bmad")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    context = make_context(result.program, environment={}, provider_mode="sim", **options)
    plan, diagnostics = plan_program(result.program, context)
    return result.program, plan, diagnostics


def w215(diagnostics) -> list:
    return [d for d in diagnostics if d.code == "BMAD-W215"]


def test_an_unpriced_written_fallback_makes_the_run_budget_unverifiable():
    body = """
workflow w {
  task summary { prompt "Summarize x" model cheap fallback [tiny] }
  output summary
}
"""
    _program, plan, diagnostics = plan_of(body, budget=Budget(usd=1.0))
    [warning] = w215(diagnostics)
    assert "no price for `tiny` (used by summary)" in warning.message and "BMAD-E307" in warning.message
    assert "(budget $1.00: unknown)" in render_text(plan)
    _program, free, diagnostics = plan_of(body)
    assert not w215(diagnostics) and "tiny" in free.tasks[0].fallbacks  # no budget: nothing refused


@pytest.mark.parametrize("clause, role", [
    ("consensus vote among [cheap, tiny]", "participant"),
    ("consensus judge tiny among [cheap, strong]", "judge"),
    ("quality >= 0.5 judged by tiny", "quality judge"),
])
def test_every_model_the_run_may_call_counts(clause, role):
    body = f"""
workflow inner {{
  task t {{ prompt "x" {clause} }}
  output t
}}
workflow w {{
  budget $1 per run
  task call = inner()
  output call
}}
"""
    program, plan, diagnostics = plan_of(body)
    [warning] = w215(diagnostics)
    assert "`tiny` (used by call/t)" in warning.message, role
    assert "budget $1.00: fits" not in render_text(plan)
    assert any(d.code == "BMAD-W215" for d in check_plan(program))


def test_the_router_picks_no_unpriced_model_under_the_run_budget():
    body = """
workflow w {
  budget $1 per run
  optimize quality
  task a { prompt "x" needs writing }
  output a
}
"""
    _program, plan, diagnostics = plan_of(body)
    a = plan.tasks[0]
    assert "tiny" not in (a.model, *a.fallbacks, *a.cascade, *a.participants)
    assert not w215(diagnostics) and "(budget $1.00: fits)" in render_text(plan)
    _program, free, _diagnostics = plan_of(body.replace("  budget $1 per run\n", ""))
    assert free.tasks[0].model == "tiny"  # the best, when no dollar budget refuses it


# -- YAML with more than one document ------------------------------------------------------------

def test_a_second_yaml_document_is_named_as_such():
    text = "id: w\ntasks:\n  - id: a\n    name: A\n---\nid: v\n"
    [problem] = errors(text, "multi.yaml")
    assert problem.code == "BMAD-E080"
    assert problem.message == "a workflow file holds one YAML document, but a second one starts here"
    assert (problem.span.line, problem.span.column, problem.span.end_column) == (5, 1, 4)
    assert "a file of its own" in problem.hint
    assert [r.span.line for r in problem.related] == [1]
