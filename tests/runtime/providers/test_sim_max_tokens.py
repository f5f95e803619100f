"""The sim stops at `max_tokens` as a real provider does, for every kind of answer: a structured
answer (`returns json`, `returns enum`, a judge's score) that doesn't fit is cut off there (finish
reason "length"), so it doesn't parse, and it is never reported longer than `max_tokens`.
(QA w5_tight: `max_tokens 8` reported 1004 output tokens, 5x the budget the plan said fits.)"""

from __future__ import annotations

import json

import anyio
from hypothesis import given, settings, strategies as st

from bmad.compiler import ir
from bmad.runtime import returns as returns_mod
from bmad.runtime.providers import base
from bmad.runtime.providers.sim import ModelProfile, SimProvider, SimSettings

GOOD = ModelProfile(name="good", model_id="good-1", input_per_m=2.5, output_per_m=10.0,
                    skills={"writing": 0.85}, context=100_000)
BIG = {  # QA w5_tight's schema: 40 names and a 3000-character summary at least
    "type": "object",
    "properties": {
        "people": {"type": "array", "items": {"type": "string"}, "minItems": 40},
        "summary": {"type": "string", "minLength": 3000},
    },
    "required": ["people", "summary"],
}
SMALL = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
LONG_ENUM = ("AN_EXTREMELY_LONG_CATEGORY_NAME_FOR_INFRASTRUCTURE_OUTAGES",
             "OTHER_KIND_OF_VERY_LONG_CATEGORY_NAME_HERE")


def complete(prompt: str = "List the people named in: Report", seed: int = 0, **kw) -> base.CompletionResponse:
    kw.setdefault("model_id", "good-1")
    kw.setdefault("model_name", "good")
    kw.setdefault("task_id", "js")
    provider = SimProvider(profiles={"good": GOOD}, settings=SimSettings(seed=seed, latency_scale=0.0))
    return anyio.run(provider.complete, base.CompletionRequest(messages=(base.Message("user", prompt),), **kw))


def test_a_json_answer_longer_than_max_tokens_is_cut_off_there():
    r = complete(json_schema=BIG, max_tokens=8)
    assert r.output_tokens == 8 and r.finish_reason == "length"
    assert len(r.text) <= 8 * 4
    assert r.cost_usd == (r.input_tokens * 2.5 + 8 * 10.0) / 1e6
    parsed = returns_mod.parse(r.text, ir.Returns(kind="json", schema=BIG))
    assert not parsed.ok  # the runtime repairs it, then fails the model


def test_an_enum_value_longer_than_max_tokens_is_cut_off_there():
    r = complete("Classify: Report", enum_values=LONG_ENUM, max_tokens=2, task_id="en")
    assert r.output_tokens == 2 and r.finish_reason == "length"
    assert returns_mod.normalise_enum(r.text, LONG_ENUM) is None


def test_a_judge_score_longer_than_max_tokens_is_cut_off_there():
    r = complete("Score this", metadata={"purpose": "judge", "judged_quality": 0.7}, max_tokens=5)
    assert r.output_tokens == 5 and r.finish_reason == "length"
    full = complete("Score this", metadata={"purpose": "judge", "judged_quality": 0.7}, max_tokens=256)
    assert full.finish_reason == "stop" and json.loads(full.text)["score"] >= 0


def test_answers_that_fit_are_unchanged():
    r = complete(json_schema=SMALL, max_tokens=64)
    assert r.finish_reason == "stop" and r.output_tokens == max(1, len(r.text) // 4)
    assert returns_mod.parse(r.text, ir.Returns(kind="json", schema=SMALL)).ok
    r = complete("Classify", enum_values=("YES", "NO"), max_tokens=10)
    assert r.finish_reason == "stop" and r.text in ("YES", "NO")
    # a whole answer is what was asked for without `max_tokens` too (the sim's default)
    assert complete(json_schema=SMALL).finish_reason == "stop"


@settings(max_examples=80, deadline=None)
@given(max_tokens=st.integers(min_value=1, max_value=400), seed=st.integers(0, 50),
       kind=st.sampled_from(["json", "enum", "judge", "text"]))
def test_never_more_output_tokens_than_max_tokens(max_tokens, seed, kind):
    kw = {"json": {"json_schema": BIG}, "enum": {"enum_values": LONG_ENUM},
          "judge": {"metadata": {"purpose": "judge"}}, "text": {}}[kind]
    r = complete(f"prompt {seed}", seed=seed, max_tokens=max_tokens, **kw)
    assert 1 <= r.output_tokens <= max_tokens
    if r.finish_reason == "length":
        assert r.output_tokens == max_tokens and len(r.text) <= 4 * max_tokens


def test_text_answers_average_what_the_planner_expects():
    """The sim's text answers are a seeded share of `max_tokens` whose mean is the planner's
    expected output (`EXPECTED_OUTPUT_FRACTION`, 0.5), so a sim run spends what its plan expects
    (it was 0.2-0.6, mean 0.4: sim runs came out ~20% under their plans)."""
    from bmad.compiler.call_shapes import EXPECTED_OUTPUT_FRACTION

    provider = SimProvider(profiles={"good": GOOD}, settings=SimSettings(latency_scale=0.0))
    shares = []
    for i in range(2000):
        r = anyio.run(provider.complete, base.CompletionRequest(
            messages=(base.Message("user", f"Write note {i}"),), model_id="good-1", model_name="good",
            task_id="t", max_tokens=400))
        assert r.finish_reason == "stop"
        shares.append(r.output_tokens / 400)
    assert min(shares) >= 0.3 - 1e-9 and max(shares) < 0.7
    assert abs(sum(shares) / len(shares) - EXPECTED_OUTPUT_FRACTION) < 0.01
