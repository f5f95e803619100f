"""QA round 2, plan semantics: what the author wrote reaches the model and the plan.

- `reduce T [in chunks of N]` whose prompt (and system) never uses `{{ T }}`: every call would send
  the same text, so it is BMAD-E194 at the `reduce` clause.
- `fallback none` with a pinned model that is unavailable here: the pin stays (no other model may
  answer), with BMAD-W205 instead of BMAD-W201's re-route.
- a per-attempt `timeout` below a model's expected latency: routing leaves the model out when
  another qualified one fits (`latency Xs > timeout Ys`), and the model a task is sent to anyway
  gets BMAD-W206.
"""

from __future__ import annotations

from bmad.compiler.compile import compile_source
from bmad.compiler.passes import check_plan, make_context, plan_program

SIM = """\
provider lab { kind sim }
model good { provider lab price input $1 output $2 per 1M context 100k skills { writing 0.95 } latency 100ms }
model mid { provider lab price input $0.5 output $1 per 1M context 100k skills { writing 0.6 } latency 100ms }
model slow { provider lab price input $0.1 output $0.2 per 1M context 100k skills { writing 0.9 } latency 20s }
"""

LOCKED = """\
provider vault {
  kind openai
  base_url "http://127.0.0.1:9/v1"
  api_key env BMAD_TEST_KEY_NEVER_SET
}
model m1 { provider vault id "m1" price input $1 output $1 per 1M context 100k skills { writing 0.9 } }
provider lab { kind sim }
model other { provider lab price input $0.1 output $0.1 per 1M context 100k skills { writing 0.9 } }
"""


def compiled(text: str):
    result = compile_source(text, "t.bmad")
    assert result.program is not None, result.diagnostics
    return result


def errors(text: str) -> list:
    return [d for d in compiled(text).diagnostics if d.is_error]


def planned(text: str, provider_mode: str | None = "sim"):
    result = compiled(text)
    assert result.ok, [d.message for d in result.diagnostics if d.is_error]
    context = make_context(result.program, environment={}, provider_mode=provider_mode)
    plan, diagnostics = plan_program(result.program, context)
    assert plan is not None, diagnostics
    return {t.id: t for t in plan.tasks}, diagnostics


def reduce_source(reducer: str) -> str:
    return SIM + f"""workflow w {{
  input files: list<text> = ["a", "b", "c", "d", "e"]
  task per for each f in files {{ prompt "P {{{{ f }}}}" model good }}
  {reducer}
  output r
}}
"""


# ---------------------------------------------------------------------------------------------
# BMAD-E194: a reduce whose prompt never shows the list


def test_a_chunked_reduce_whose_prompt_never_uses_the_list_is_e194_at_the_clause():
    line = '  task r { prompt "No reference to the list at all" reduce per in chunks of 2 model good }'
    [d] = errors(reduce_source(line.strip()))
    assert d.code == "BMAD-E194"
    assert d.message == ("task `r` reduces `per` but its prompt never uses `{{ per }}`, "
                         "so no chunk reaches the model")
    assert "`{{ per }}`" in d.hint and "prompt" in d.hint
    assert (d.span.line, d.span.column) == (8, line.index("reduce") + 1)
    assert d.span.end_column - d.span.column == len("reduce per in chunks of 2")
    # a reduce that shows the list in its prompt or its system is fine
    assert errors(reduce_source('task r { prompt "Merge {{ per }}" reduce per in chunks of 2 model good }')) == []
    assert errors(reduce_source('task r { system "Notes:\\n{{ per }}" prompt "Merge the notes." '
                                'reduce per in chunks of 2 model good }')) == []


def test_a_reduce_without_chunks_is_e194_too_and_other_reduce_errors_get_no_e194():
    [d] = errors(reduce_source('task r { prompt "Merge" reduce per model good }'))
    assert d.code == "BMAD-E194" and d.message.endswith("so the list never reaches the model")
    # chunks of 1 is E191, an unknown source E100, a source without `for each` E109: one error each
    codes = [d.code for d in errors(reduce_source('task r { prompt "Merge" reduce per in chunks of 1 model good }'))]
    assert codes == ["BMAD-E191"]
    codes = [d.code for d in errors(reduce_source('task r { prompt "Merge" reduce nope model good }'))]
    assert codes == ["BMAD-E100"]
    plain = SIM + """workflow w {
  task one { prompt "x" model good }
  task r { prompt "Merge" reduce one model good }
  output r
}
"""
    assert [d.code for d in errors(plain)] == ["BMAD-E109"]


# ---------------------------------------------------------------------------------------------
# BMAD-W205: `fallback none` keeps an unavailable pin


def pinned_source(clauses: str) -> str:
    return LOCKED + f"""workflow w {{
  task secret {{
    prompt "Confidential: summarise our merger terms."
    model m1
    {clauses}
  }}
  output secret
}}
"""


def test_fallback_none_keeps_an_unavailable_pin_and_warns_w205():
    tasks, diagnostics = planned(pinned_source("fallback none"), provider_mode=None)
    secret = tasks["secret"]
    assert secret.model == "m1" and secret.fallbacks == () and secret.route_rule == "pinned"
    codes = [d.code for d in diagnostics]
    assert "BMAD-W201" not in codes and "BMAD-W200" not in codes
    [d] = [d for d in diagnostics if d.code == "BMAD-W205"]
    assert d.severity == "warning" and d.span.line == 12
    assert d.message == ("pinned model `m1` of task `secret` is unavailable here (BMAD_TEST_KEY_NEVER_SET is "
                         "not set) and `fallback none` forbids another: the task will fail")
    assert "key variable" in d.hint
    # without `fallback none` an unavailable pin is still re-routed, with W201
    tasks, diagnostics = planned(pinned_source(""), provider_mode=None)
    assert tasks["secret"].model != "m1"
    codes = [d.code for d in diagnostics]
    assert "BMAD-W201" in codes and "BMAD-W205" not in codes
    # with every model simulated (and in `bmad check`), nothing changes
    tasks, diagnostics = planned(pinned_source("fallback none"), provider_mode="sim")
    assert tasks["secret"].model == "m1"
    assert not [d for d in diagnostics if d.code in ("BMAD-W201", "BMAD-W205")]
    assert not [d for d in check_plan(compiled(pinned_source("fallback none")).program)
                if d.code in ("BMAD-W201", "BMAD-W205")]


# ---------------------------------------------------------------------------------------------
# BMAD-W206 and routing under a timeout


def timeout_source(task: str) -> str:
    return SIM + f"workflow w {{\n  {task}\n  output t\n}}\n"


def test_a_pinned_model_slower_than_the_timeout_is_kept_with_w206():
    line = 'task t { prompt "timeout" model slow timeout 1s retry 1 fallback [mid] }'
    tasks, diagnostics = planned(timeout_source(line))
    assert tasks["t"].model == "slow" and tasks["t"].fallbacks[0] == "mid"
    [d] = [d for d in diagnostics if d.code == "BMAD-W206"]
    assert d.message == ("`slow` is expected to take 20.0s, over task `t`'s timeout of 1s: "
                         "every attempt will time out")
    assert d.hint == "raise the timeout, or choose a faster model"
    assert (d.span.line, d.span.column) == (6, 2 + line.index("timeout 1s") + 1)
    assert d.span.end_column - d.span.column == len("timeout 1s")
    # `bmad check` reports it too (every model simulated)
    assert "BMAD-W206" in [d.code for d in check_plan(compiled(timeout_source(line)).program)]


def test_routing_leaves_out_a_model_slower_than_the_timeout_when_another_fits():
    tasks, diagnostics = planned(timeout_source('task t { prompt "best" route best [slow, mid] timeout 1s }'))
    assert tasks["t"].model == "mid"
    assert "slow" not in tasks["t"].fallbacks
    slow = next(c for c in tasks["t"].candidates if c.model == "slow")
    assert not slow.qualified and slow.reason == "latency 20.0s > timeout 1s"
    assert "BMAD-W206" not in [d.code for d in diagnostics]
    # without a timeout, or with room for it, the slow model is routed as before
    tasks, diagnostics = planned(timeout_source('task t { prompt "best" route best [slow, mid] }'))
    assert tasks["t"].model == "slow" and "BMAD-W206" not in [d.code for d in diagnostics]
    tasks, diagnostics = planned(timeout_source('task t { prompt "best" route best [slow, mid] timeout 30s }'))
    assert tasks["t"].model == "slow" and "BMAD-W206" not in [d.code for d in diagnostics]


def test_when_no_qualified_model_fits_the_timeout_the_best_is_kept_with_w206():
    source = """\
provider lab { kind sim }
model slow { provider lab price input $0.1 output $0.2 per 1M context 100k skills { writing 0.9 } latency 20s }
model slower { provider lab price input $0.1 output $0.2 per 1M context 100k skills { writing 0.8 } latency 30s }
workflow w {
  task t { prompt "best" route best timeout 1s }
  output t
}
"""
    tasks, diagnostics = planned(source)
    assert tasks["t"].model == "slow"
    assert [d.code for d in diagnostics if d.code == "BMAD-W206"] == ["BMAD-W206"]
