"""A budget the run sets (`--budget`, `PassContext.budget`) is named as such by the budget
diagnostics, which point at the workflow's name: the file's `budget` clause shows another amount
(or there is none). The file's own budget is still reported at its clause."""

from __future__ import annotations

import pytest

from bmad.compiler.compile import compile_source
from bmad.compiler.ir import Budget
from bmad.compiler.passes import make_context, plan_program

SOURCE = """provider p { kind sim }
model m { provider p price input $2 output $8 per 1M skills { writing 0.8 } }
workflow w {
  budget $5 per run
  budget 90k tokens
  budget 1h
  task a { prompt "Write a paragraph about the sea." model m max_tokens 400 }
  output a
}
"""
WORKFLOW_LINE, BUDGET_LINES = 3, (4, 5, 6)


def diagnostics(budget: Budget | None) -> dict[str, object]:
    result = compile_source(SOURCE, "w.bmad")
    assert result.ok, [d.message for d in result.diagnostics]
    context = make_context(result.program, environment={}, provider_mode="sim", budget=budget)
    _plan, found = plan_program(result.program, context)
    return {d.code: d for d in found}


@pytest.mark.parametrize("budget, code, says", [
    (Budget(usd=0.000001), "BMAD-E210", "--budget $0.000001 can't be met"),
    (Budget(usd=0.005), "BMAD-W210", "exceeds --budget $0.005 "),
    (Budget(tokens=100), "BMAD-E211", "--budget 100 tokens can't be met"),
    (Budget(tokens=500), "BMAD-W214", "over --budget 500 tokens "),
    (Budget(time_s=1.0), "BMAD-W213", "over --budget 1s:"),
])
def test_a_budget_the_run_sets_is_named_and_not_pinned_on_the_files_clause(budget, code, says):
    found = diagnostics(budget)
    assert code in found, sorted(found)
    d = found[code]
    assert says in d.message, d.message
    assert "per run" not in d.message
    assert d.span.line == WORKFLOW_LINE and d.span.line not in BUDGET_LINES
    if code == "BMAD-E210":
        assert "raise --budget to at least" in d.hint


def test_the_files_budget_is_still_reported_at_its_clause():
    lowered = SOURCE.replace("budget $5 per run", "budget $0.000001 per run")
    result = compile_source(lowered, "w.bmad")
    context = make_context(result.program, environment={}, provider_mode="sim")
    _plan, found = plan_program(result.program, context)
    e210 = next(d for d in found if d.code == "BMAD-E210")
    assert e210.message.startswith("budget $0.000001 per run can't be met")
    assert e210.span.line == 4 and "raise the budget to at least" in e210.hint
    # a --budget of another kind leaves the dollar budget at the file's clause
    context = make_context(result.program, environment={}, provider_mode="sim", budget=Budget(tokens=10**6))
    _plan, found = plan_program(result.program, context)
    assert next(d for d in found if d.code == "BMAD-E210").span.line == 4


def test_moves_and_unpriced_models_name_the_run_budget_too():
    source = """provider p { kind sim }
model m { provider p price input $0.1 output $0.4 per 1M skills { writing 0.8 } }
model big { provider p price input $10 output $40 per 1M skills { writing 0.95 } }
model free { provider p skills { writing 0.5 } }
workflow w {
  optimize quality
  budget $5 per run
  task a { prompt "Write a paragraph about the sea." needs writing max_tokens 400 fallback none }
  task b { prompt "Say hi." model FREE fallback none }
  output a
  output b
}
"""
    for model, code, says in (("m", "BMAD-W211", "to fit --budget $0.01, moved"),
                              ("free", "BMAD-W215", "--budget $0.01 can't be checked")):
        result = compile_source(source.replace("FREE", model), "w.bmad")
        assert result.ok, [d.message for d in result.diagnostics]
        context = make_context(result.program, environment={}, provider_mode="sim", budget=Budget(usd=0.01))
        _plan, found = plan_program(result.program, context)
        d = next(d for d in found if d.code == code)
        assert says in d.message and d.span.line == 5, (d.message, d.span.line)
