"""`fallback only [m1, m2]`: a closed model group. The chosen model, then exactly the written models
that are available here, in order, and never an automatic fallback (nor `local`).

Lowered to `Task.no_fallback` with the written `Task.fallback` (`Task.fallback_only`), kept by
`fmt` and the IR's JSON; `only` is a keyword only right after `fallback`. The planner's chain,
`else escalate` cascade, BMAD-W230 risk note, unavailable pin (BMAD-W201 / BMAD-W205),
`strategy collaborative` panel and `strategy adaptive` worst case all stay inside the group.
"""

from __future__ import annotations

from bmad.compiler import ir_codec
from bmad.compiler.compile import compile_source
from bmad.compiler.format import format_source
from bmad.compiler.ir import Budget
from bmad.compiler.lower import lower_tree
from bmad.compiler.parse import parse_text
from bmad.compiler.passes import make_context, plan_program
from bmad.compiler.stream_lower import lower_while_parsing

from tests.compiler.test_lower import lower, task

CATALOG = """\
provider s { kind sim }
provider t { kind sim }
provider u { kind sim }
model cheap  { provider s  price input $1 output $2 per 1M    skills { writing 0.7, reasoning 0.7 } }
model mid    { provider t  price input $2 output $4 per 1M    skills { writing 0.8, reasoning 0.8 } }
model strong { provider u  price input $5 output $10 per 1M   skills { writing 0.95, reasoning 0.95 } }
model extra  { provider u  price input $0.5 output $1 per 1M  skills { writing 0.9, reasoning 0.9 } }
"""

# `m1` and `m2` run on a provider whose key variable is never set: unavailable outside sim mode
LOCKED = """\
provider vault {
  kind openai
  base_url "http://127.0.0.1:9/v1"
  api_key env BMAD_TEST_FBO_KEY_NEVER_SET
}
model m1 { provider vault id "m1" price input $1 output $1 per 1M context 100k skills { writing 0.9 } }
model m2 { provider vault id "m2" price input $1 output $1 per 1M context 100k skills { writing 0.9 } }
provider lab { kind sim }
model other { provider lab price input $0.1 output $0.1 per 1M context 100k skills { writing 0.9 } }
model spare { provider lab price input $0.2 output $0.2 per 1M context 100k skills { writing 0.9 } }
"""


def source(clauses: str, *, catalog: str = CATALOG, workflow: str = "") -> str:
    return catalog + (f'workflow w {{\n{workflow}  task a {{\n    prompt "x"\n    {clauses}\n'
                      f'    max_tokens 100\n  }}\n  output a\n}}\n')


def planned(text: str, provider_mode: str | None = "sim", **options):
    result = compile_source(text, "t.bmad")
    assert result.ok, [(d.code, d.message) for d in result.diagnostics if d.is_error]
    context = make_context(result.program, environment={}, provider_mode=provider_mode, **options)
    plan, diagnostics = plan_program(result.program, context)
    assert plan is not None, diagnostics
    return plan, diagnostics


def task_plan(clauses: str, **kwargs):
    plan, diagnostics = planned(source(clauses, **{k: kwargs.pop(k) for k in ("catalog", "workflow")
                                                   if k in kwargs}), **kwargs)
    return plan.tasks[0], plan, diagnostics


# --- the language: grammar, lowering, diagnostics ---------------------------------------------


def test_fallback_only_lowers_to_no_automatic_fallback_with_the_written_models():
    t = task("model gpt-4o\n fallback only [claude-sonnet, gemini-pro]")
    assert t.no_fallback is True and t.fallback_only is True
    assert [n.name for n in t.fallback] == ["claude-sonnet", "gemini-pro"]
    assert (t.fallback[0].span.line, t.fallback[0].span.column) == (4, 17)
    written = task("fallback [claude-sonnet]")
    assert written.no_fallback is False and written.fallback_only is False
    none = task("fallback none")
    assert none.no_fallback is True and none.fallback == () and none.fallback_only is False


def test_only_is_a_keyword_only_right_after_fallback():
    unit = lower('model only { provider p }\n'
                 'workflow w {\n  input only: text\n'
                 '  task t { prompt "{{ only }}" model only fallback [only] }\n'
                 '  task u { prompt "x" depends t fallback only [only] }\n}\n')
    t, u = unit.workflows[0].tasks
    assert unit.models[0].name == "only" and unit.workflows[0].inputs[0].name == "only"
    assert t.model.name == "only" and [n.name for n in t.fallback] == ["only"] and not t.no_fallback
    assert u.fallback_only and [n.name for n in u.fallback] == ["only"]


def test_lowered_while_parsing_as_from_the_tree():
    for text in ('workflow w {\n  task t {\n    fallback only [a, b]\n  }\n}\n',
                 'workflow w {\n  task t {\n    fallback only []\n  }\n}\n'):
        streamed = lower_while_parsing(text, "t.bmad", None)
        assert streamed is not None
        parsed = parse_text(text, "t.bmad")
        unit, diagnostics = lower_tree(parsed.tree, parsed.source_map, None)
        assert streamed[1] == unit and streamed[2] == diagnostics


def test_an_empty_list_is_e024_pointing_to_fallback_none():
    unit, diagnostics = lower("workflow w {\n  task t {\n    fallback only []\n  }\n}\n", allow_errors=True)
    [d] = diagnostics
    assert (d.code, d.span.line, d.span.column) == ("BMAD-E024", 3, 19)
    assert d.message == "`fallback only []` names no model to fall back on"
    assert "`fallback none`" in d.hint and "`fallback only [" in d.hint
    t = unit.workflows[0].tasks[0]
    assert t.fallback == () and t.no_fallback is False
    result = compile_source(source("fallback only []"), "t.bmad")
    assert [d.code for d in result.diagnostics if d.is_error] == ["BMAD-E024"]


def test_only_needs_a_list_and_is_one_fallback_clause():
    parsed = parse_text("workflow w {\n  task t {\n    fallback only gpt-4o\n  }\n}\n", "t.bmad")
    assert [d.code for d in parsed.diagnostics] == ["BMAD-E004"]
    result = compile_source(source("fallback only [mid]\n    fallback none"), "t.bmad")
    [d] = [d for d in result.diagnostics if d.is_error]
    assert d.code == "BMAD-E017" and d.message == "task `a` has `fallback` twice"


def test_escalating_with_fallback_only_is_not_e025():
    gate = "quality >= 0.9 judged by strong else escalate"
    assert compile_source(source(f"model cheap\n    fallback only [mid]\n    {gate}"), "t.bmad").ok
    none = compile_source(source(f"model cheap\n    fallback none\n    {gate}"), "t.bmad")
    assert [d.code for d in none.diagnostics if d.is_error] == ["BMAD-E025"]


def test_fmt_prints_it_back_and_the_ir_json_keeps_it():
    text = source("model strong\n    fallback   only [ mid,cheap, ]")
    formatted, diagnostics = format_source(text, "t.bmad")
    assert diagnostics == [] and "    fallback only [mid, cheap]\n" in formatted
    assert format_source(formatted, "t.bmad")[0] == formatted
    long = source("fallback only [claude-sonnet-4-5-20250929, gemini-2.5-pro-preview-06-05, "
                  "gpt-4.1-2025-04-14, mistral-large-latest]")
    wrapped, _ = format_source(long, "t.bmad")
    assert "    fallback only [\n      claude-sonnet-4-5-20250929,\n" in wrapped
    assert format_source(wrapped, "t.bmad")[0] == wrapped
    program = compile_source(formatted, "t.bmad").program
    back = ir_codec.loads(ir_codec.dumps(program)).workflows[0].tasks[0]
    assert back.fallback_only and [n.name for n in back.fallback] == ["mid", "cheap"]


# --- the plan ------------------------------------------------------------------------------------


def test_the_chain_is_exactly_the_written_models():
    closed, _plan, _d = task_plan("model strong\n    fallback only [mid, cheap]")
    assert closed.model == "strong" and closed.fallbacks == ("mid", "cheap")
    opened, _plan, _d = task_plan("model strong\n    fallback [mid, cheap]")
    assert opened.fallbacks[:2] == ("mid", "cheap") and len(opened.fallbacks) > 2  # automatic ones follow
    # a written model that is also the chosen one is not asked twice
    routed, _plan, _d = task_plan("route cheapest [cheap, mid]\n    fallback only [cheap, mid]")
    assert routed.model == "cheap" and routed.fallbacks == ("mid",)


def test_no_local_and_no_automatic_fallback_even_with_one_written_model():
    t, _plan, _d = task_plan("model strong\n    fallback only [mid]")
    assert t.fallbacks == ("mid",)
    opened, _plan, _d = task_plan("model strong\n    fallback [mid]")
    assert "local" in opened.fallbacks  # the embedded model is an automatic fallback otherwise


def test_else_escalate_climbs_through_the_written_models_only():
    gate = "quality >= 0.9 judged by strong else escalate"
    t, _plan, _d = task_plan(f"model cheap\n    fallback only [strong, mid]\n    {gate}")
    assert t.fallbacks == ("strong", "mid")
    assert t.cascade == ("cheap", "mid", "strong")  # in order of cost
    opened, _plan, _d = task_plan(f"model cheap\n    fallback [strong, mid]\n    {gate}")
    assert set(opened.cascade) - {"cheap", "mid", "strong"}  # the automatic ones climb too


def test_a_route_cascade_keeps_its_steps_and_the_written_fallbacks():
    t, _plan, _d = task_plan("route cascade [cheap, mid]\n    fallback only [strong]")
    assert t.cascade == ("cheap", "mid") and t.fallbacks == ("strong",)


def test_unavailable_written_models_are_left_out_and_none_available_is_w230():
    t, plan, _d = task_plan("model other\n    fallback only [m1, spare, m2]", catalog=LOCKED,
                            provider_mode=None)
    assert t.model == "other" and t.fallbacks == ("spare",)
    assert not [n for n in plan.notes if n.code == "BMAD-W230"]  # the author chose the providers
    t, plan, _d = task_plan("model other\n    fallback only [m1, m2]", catalog=LOCKED, provider_mode=None)
    assert t.model == "other" and t.fallbacks == ()
    [note] = [n for n in plan.notes if n.code == "BMAD-W230"]
    assert note.message == ("`a` has no fallback: no model of its `fallback only [...]` is available here, "
                            "so if other fails, the task fails")
    t, plan, _d = task_plan("model other\n    fallback only [other]", catalog=LOCKED, provider_mode=None)
    [note] = [n for n in plan.notes if n.code == "BMAD-W230"]
    assert "no other model of its `fallback only [...]`" in note.message
    # `fallback none` stays the author's choice: no risk note
    _t, plan, _d = task_plan("model other\n    fallback none", catalog=LOCKED, provider_mode=None)
    assert not [n for n in plan.notes if n.code == "BMAD-W230"]


def test_one_provider_chain_written_by_the_author_is_no_risk_note():
    _t, plan, _d = task_plan("model strong\n    fallback only [extra]")  # both on provider u
    assert not [n for n in plan.notes if n.code == "BMAD-W230"]


def test_an_unavailable_pin_gives_way_to_the_first_available_written_model_w201():
    t, _plan, diagnostics = task_plan("model m1\n    fallback only [m2, other, spare]", catalog=LOCKED,
                                      provider_mode=None)
    assert (t.model, t.fallbacks, t.route_rule) == ("other", ("spare",), "fallback:only")
    assert "the first available of `fallback only`" in t.route_reason
    [d] = [d for d in diagnostics if d.code in ("BMAD-W201", "BMAD-W205")]
    assert d.code == "BMAD-W201" and (d.span.line, d.span.column) == (14, 11)  # the pin
    assert d.message == ("pinned model `m1` for task `a` is unavailable (BMAD_TEST_FBO_KEY_NEVER_SET is "
                         "not set); `other`, the first available of its `fallback only` models, answers "
                         "instead")
    # with every model simulated the pin answers, the written ones follow
    t, _plan, diagnostics = task_plan("model m1\n    fallback only [m2, other]", catalog=LOCKED)
    assert (t.model, t.fallbacks, t.route_rule) == ("m1", ("m2", "other"), "pinned")
    assert not [d for d in diagnostics if d.code in ("BMAD-W201", "BMAD-W205")]


def test_an_unavailable_pin_with_no_written_model_available_stays_w205():
    t, _plan, diagnostics = task_plan("model m1\n    fallback only [m2]", catalog=LOCKED, provider_mode=None)
    assert (t.model, t.fallbacks, t.route_rule) == ("m1", (), "pinned")
    [d] = [d for d in diagnostics if d.code in ("BMAD-W201", "BMAD-W205")]
    assert d.code == "BMAD-W205"
    assert d.message == ("pinned model `m1` of task `a` is unavailable here (BMAD_TEST_FBO_KEY_NEVER_SET is "
                         "not set) and so is every model of its `fallback only [...]`, which forbids "
                         "another: the task will fail")


def test_strategy_collaborative_makes_no_panel_of_a_closed_group():
    t, plan, _d = task_plan("fallback only [mid]", workflow="  strategy collaborative\n")
    assert t.participants == () and t.fallbacks == ("mid",)
    assert plan.program.workflow("w").tasks[0].consensus is None
    opened, _plan, _d = task_plan("fallback [mid]", workflow="  strategy collaborative\n")
    assert len(opened.participants) == 3


def test_strategy_adaptive_counts_no_model_from_outside_the_group():
    def worst_calls(clauses: str, strategy: str) -> int:
        t, _plan, _d = task_plan(clauses, workflow=f"  strategy {strategy}\n")
        return t.estimate.calls_worst

    closed = "model strong\n    fallback only [mid]"
    assert worst_calls(closed, "adaptive") == worst_calls(closed, "parallel") == 3 + 3
    # `fallback none` closes the chain too: nothing from outside goes in front of it
    alone = "model strong\n    fallback none"
    assert worst_calls(alone, "adaptive") == worst_calls(alone, "parallel") == 3


def test_a_budget_move_keeps_the_chain_closed():
    """Moving work to fit the budget re-chooses the task's model (as routing chose it: a pinned task
    or a `route [...]` list keeps it in the group); its fallbacks stay the written ones."""
    t, _plan, diagnostics = task_plan("fallback only [mid]\n    priority low", workflow="  optimize quality\n",
                                      budget=Budget(usd=0.0012))
    assert "BMAD-W211" in [d.code for d in diagnostics] and t.downgraded_from == "strong"
    assert t.model != "strong" and t.fallbacks == ("mid",)
    pinned, _plan, _d = task_plan("model strong\n    fallback only [mid]\n    priority low",
                                  workflow="  optimize quality\n", budget=Budget(usd=0.0012))
    assert (pinned.model, pinned.fallbacks) == ("strong", ("mid",))
