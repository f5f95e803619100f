"""`fallback none`: lowered to `Task.no_fallback`, kept by `fmt`, round-tripped through the IR's
JSON, planned with an empty chain; `fallback MODEL` without brackets is BMAD-E044 with a hint, and
`else escalate` with nothing to escalate to is BMAD-E025."""

from __future__ import annotations

from bmad.compiler import ir_codec
from bmad.compiler.compile import compile_source
from bmad.compiler.format import format_source
from bmad.compiler.passes import make_context, run_passes

from tests.compiler.test_lower import lower, task

CATALOG = """\
provider lab { kind sim }
model cheap { provider lab price input $0.10 output $0.20 per 1M }
model strong { provider lab price input $5 output $15 per 1M }
"""


def source(clauses: str) -> str:
    return CATALOG + f'workflow w {{\n  task t {{\n    prompt "x"\n    {clauses}\n  }}\n  output t\n}}\n'


def test_fallback_none_lowers_to_no_fallback():
    t = task("model gpt-4o\n fallback none")
    assert t.no_fallback is True and t.fallback == ()
    written = task("fallback [claude-sonnet]")
    assert written.no_fallback is False and [n.name for n in written.fallback] == ["claude-sonnet"]


def test_a_model_without_brackets_is_e044_with_both_fixes_in_the_hint():
    unit, diagnostics = lower("workflow w {\n  task t {\n    fallback gpt-4o-mini\n  }\n}\n", allow_errors=True)
    [d] = diagnostics
    assert (d.code, d.span.line, d.span.column) == ("BMAD-E044", 3, 14)
    assert d.message == "expected a list of models, found `gpt-4o-mini`"
    assert "`fallback [gpt-4o-mini]`" in d.hint and "`fallback none`" in d.hint


def test_escalating_with_fallback_none_is_e025_unless_it_cascades():
    result = compile_source(source("model cheap\n    fallback none\n    quality >= 0.8 judged by strong else escalate"),
                            "t.bmad")
    [d] = [d for d in result.diagnostics if d.is_error]
    assert d.code == "BMAD-E025" and d.span.line == 9
    cascades = compile_source(source("route cascade [cheap, strong]\n    fallback none\n"
                                     "    quality >= 0.8 judged by strong else escalate"), "t.bmad")
    assert cascades.ok, cascades.diagnostics
    for other in ("else retry 2", "else fail", "else refine max 2", ""):
        ok = compile_source(source(f"model cheap\n    fallback none\n    quality >= 0.8 judged by strong {other}"),
                            "t.bmad")
        assert ok.ok, (other, ok.diagnostics)


def test_the_plan_has_an_empty_chain_and_no_w230():
    def plan_of(clauses: str):
        program = compile_source(source(clauses), "t.bmad").program
        draft = run_passes(program, make_context(program, environment={}, provider_mode="sim"))
        [td] = draft.workflows["w"].tasks.values()
        return td.plan, [d.code for d in draft.diagnostics]

    strict, notes = plan_of("model strong\n    fallback none")
    assert strict.model == "strong" and strict.fallbacks == () and "BMAD-W230" not in notes
    automatic, _ = plan_of("model strong")
    assert "cheap" in automatic.fallbacks


def test_fmt_and_the_ir_json_keep_it():
    text = source("model cheap\n    fallback none")
    formatted, diagnostics = format_source(text, "t.bmad")
    assert diagnostics == [] and "fallback none" in formatted
    program = compile_source(formatted, "t.bmad").program
    back = ir_codec.loads(ir_codec.dumps(program))
    assert back.workflows[0].tasks[0].no_fallback is True
