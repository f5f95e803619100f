"""What the plan tells its reviewer about itself: a `for each` size it assumed (BMAD-W234, `x10?`),
the known input values that size it instead (`PassContext.inputs`), consensus participants that
share a provider (BMAD-W231 names only those) and a consensus whose participants fall short of
the floor (BMAD-W202). docs/planning.md, *Known inputs*; docs/diagnostics.md.
"""

from __future__ import annotations

from bmad.compiler.compile import compile_source
from bmad.compiler.passes import make_context, plan_program
from bmad.compiler.plan_render import render_text

CATALOG = """
provider s { kind sim }
provider t { kind sim }
model cheap  { provider s  price input $1 output $2 per 1M  skills { writing 0.70 } }
model other  { provider s  price input $2 output $4 per 1M  skills { writing 0.75 } }
model rival  { provider t  price input $3 output $6 per 1M  skills { writing 0.80 } }
"""

FAN = CATALOG + """
workflow sub {
  input items: list<text>
  task each for each it in items { prompt "Shorten: {{ it }}" model cheap max_tokens 50 }
  output each
}
workflow fan {
  input items: list<text>
  task each for each it in items { prompt "Summarize: {{ it }}" model cheap max_tokens 100 }
  task again for each it in each { prompt "Title for: {{ it }}" model cheap max_tokens 20 }
  task fixed for each it in ["a", "b"] { prompt "Say {{ it }}" model cheap max_tokens 20 }
  task nested = sub(items: items)
  output again
  output fixed
  output nested
}
"""


def plan_of(source: str, **options):
    result = compile_source(source, "notes.bmad")
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    context = make_context(result.program, environment={}, provider_mode="sim", **options)
    plan, diagnostics = plan_program(result.program, context)
    assert plan is not None, [d.message for d in diagnostics]
    return plan, diagnostics


def notes(plan, code: str) -> list[str]:
    return [n.message for n in plan.notes if n.code == code]


def test_an_assumed_fan_out_is_a_risk_and_shown_as_assumed():
    plan, _ = plan_of(FAN)
    assumed = notes(plan, "BMAD-W234")
    assert assumed == [
        "`sub.each` fans out over the input `items`, whose length the plan can't know: it assumes 10 items, "
        "and its cost, tokens and calls scale with the real count",
        "`each` fans out over the input `items`, whose length the plan can't know: it assumes 10 items, "
        "and its cost, tokens and calls scale with the real count",
        "`again` fans out over the result of `each`, whose length the plan can't know: it assumes 10 items, "
        "and its cost, tokens and calls scale with the real count",
    ]
    assert all(n.kind == "risk" for n in plan.notes if n.code == "BMAD-W234")
    text = render_text(plan, width=220)
    assert "│ each * x10? " in text and "│ again * x10? " in text
    assert "│ fixed x2 " in text  # a literal list: its length, known
    assert "Risks\n" in text and "BMAD-W234: `each` fans out over the input `items`" in text


def test_every_plan_view_marks_an_assumed_fan_out():
    from bmad.compiler.plan_html import render_plan_html
    from bmad.compiler.plan_render import render_dot, render_mermaid

    plan, _ = plan_of(FAN)
    assert 'each x10?<br/>' in render_mermaid(plan) and 'fixed x2<br/>' in render_mermaid(plan)
    assert '"each x10?\\n' in render_dot(plan) and '"fixed x2\\n' in render_dot(plan)
    page = render_plan_html(plan)
    assert ">each \u00d710?</text>" in page and ">fixed \u00d72</text>" in page  # the graph
    assert "<td>each * x10?</td>" in page and "<td>fixed x2</td>" in page  # the cost table
    known, _ = plan_of(FAN, inputs={"items": ["a", "b", "c"]})
    assert 'each x3<br/>' in render_mermaid(known)


def test_known_inputs_size_the_fan_out_and_the_prompts():
    items = ["word " * 300, "short", "word " * 100]
    plan, _ = plan_of(FAN, inputs={"items": items})
    each = plan.entry.task("each")
    assert each.fan_out == 3
    assert not any("`each` fans out over the input" in m for m in notes(plan, "BMAD-W234"))
    # another task's result is still unknown
    assert any(m.startswith("`again`") for m in notes(plan, "BMAD-W234"))
    # the callee's `items` is its call's argument, not the entry's input of the same name
    assert plan.subplan("sub").task("each").fan_out == 10
    # each prompt is sized by the item it gets (the worst case: the longest, ~300 tokens; an
    # unknown item counts as 500), and the expected case by their mean
    assumed, _ = plan_of(FAN)
    assumed_each = assumed.entry.task("each")
    per_try = each.estimate.tokens_worst / each.estimate.calls_worst
    assumed_per_try = assumed_each.estimate.tokens_worst / assumed_each.estimate.calls_worst
    assert assumed_per_try - 500 + 290 < per_try < assumed_per_try - 500 + 320
    assert each.estimate.tokens_expected < assumed_each.estimate.tokens_expected * 3 / 10


def test_a_known_text_input_sizes_the_prompt_that_quotes_it():
    source = CATALOG + """
workflow w {
  input doc: text
  task s { prompt "Summarize: {{ doc }}" model cheap max_tokens 50 }
  output s
}
"""
    unknown, _ = plan_of(source)
    short, _ = plan_of(source, inputs={"doc": "a short note"})
    assert short.tasks[0].estimate.tokens_expected < unknown.tasks[0].estimate.tokens_expected - 400


def test_w231_names_only_the_participants_that_share_a_provider():
    plan, _ = plan_of(CATALOG + """
workflow w {
  task verdict { prompt "Approve?" consensus vote among [cheap, rival, other] }
  task apart { prompt "Approve?" consensus vote among [cheap, rival] }
  output verdict
  output apart
}
""")
    assert notes(plan, "BMAD-W231") == [
        "consensus of `verdict` has participants sharing a provider (cheap, other on s): their errors may be "
        "correlated"]


def test_w202_for_a_consensus_whose_participants_fall_short_of_the_floor():
    plan, diagnostics = plan_of(CATALOG + """
workflow w {
  task low { prompt "y" consensus vote among [cheap, other, rival] quality >= 0.95 else fail }
  task fine { prompt "y" consensus vote among [cheap, other, rival] quality >= 0.7 else fail }
  output low
  output fine
}
""")
    w202 = [d for d in diagnostics if d.code == "BMAD-W202"]
    assert [d.message for d in w202] == [
        "consensus participants of task `low`: quality 0.75 < floor 0.95 (cheap 0.70, other 0.75, rival 0.80)"]
    assert w202[0].span.line == 9 and w202[0].span.column == 25  # the consensus clause
    assert plan.entry.task("low").expected_quality == 0.75
