"""The sim provider: deterministic, schema-conforming, catalog-priced, with injected failures."""

from __future__ import annotations

import json
import random

import anyio
import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

from bmad.compiler import ir
from bmad.runtime.providers import base
from bmad.runtime.providers.registry import ProviderOptions, build_provider, model_profile
from bmad.runtime.providers.schema_sample import sample_json
from bmad.runtime.providers.sim import ModelProfile, SimProvider, SimSettings

GOOD = ModelProfile(name="good", model_id="good-1", input_per_m=2.0, output_per_m=10.0,
                    skills={"code": 0.95, "reasoning": 0.9}, latency_base_s=0.5,
                    latency_per_token_s=0.01, context=100_000)
POOR = ModelProfile(name="poor", skills={"code": 0.2}, context=50)


def request(prompt: str = "Say hi", **kw) -> base.CompletionRequest:
    kw.setdefault("model_id", "good-1")
    kw.setdefault("model_name", "good")
    kw.setdefault("task_id", "t1")
    return base.CompletionRequest(messages=(base.Message("user", prompt),), **kw)


def run(provider: SimProvider, req: base.CompletionRequest) -> base.CompletionResponse:
    return anyio.run(provider.complete, req)


def sim(**settings) -> SimProvider:
    settings.setdefault("latency_scale", 0.0)
    return SimProvider(profiles={"good": GOOD, "poor": POOR}, settings=SimSettings(**settings))


def test_same_seed_same_answers_different_seed_different():
    a = [run(sim(seed=7), request(f"prompt {i}")) for i in range(20)]
    b = [run(sim(seed=7), request(f"prompt {i}")) for i in range(20)]
    c = [run(sim(seed=8), request(f"prompt {i}")) for i in range(20)]
    assert [r.text for r in a] == [r.text for r in b]
    assert [r.output_tokens for r in a] == [r.output_tokens for r in b]
    assert [r.text for r in a] != [r.text for r in c]


def test_text_is_marked_simulated_and_priced_from_the_catalog():
    r = run(sim(), request("x" * 400, max_tokens=100))
    assert r.simulated and r.raw["simulated"]
    assert r.text.startswith("[simulated]")
    assert r.input_tokens == 100
    assert 8 <= r.output_tokens <= 100
    assert r.cost_usd == pytest.approx((100 * 2.0 + r.output_tokens * 10.0) / 1e6)
    assert r.latency_s == 0.0  # latency scale 0: no waiting
    assert r.raw["model_latency_s"] > 0.5 * 0.8


def test_unknown_price_is_none_never_zero():
    r = run(sim(), request(model_id="mystery", model_name="mystery"))
    assert r.cost_usd is None


def test_enum_answers_are_valid_values():
    values = ("approve", "reject", "needs_work")
    seen = set()
    for i in range(50):
        r = run(sim(seed=i), request(f"review {i}", enum_values=values))
        assert r.text in values
        seen.add(r.text)
    assert len(seen) > 1


def test_better_models_agree_more_on_the_canonical_answer():
    values = tuple("abcdefgh")

    def agreement(model: str) -> float:
        agree = 0
        for i in range(200):
            p = sim(seed=3)
            first = run(p, request(f"q{i}", model_name=model, model_id=model, enum_values=values,
                                   metadata={"capability": "code"}))
            other = run(sim(seed=3), request(f"q{i}", model_name="good", enum_values=values,
                                             metadata={"capability": "code"}))
            agree += first.text == other.text
        return agree / 200

    assert agreement("good") > agreement("poor") + 0.3


SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["pass", "fail"]},
        "issues": {"type": "array", "items": {"type": "object", "properties": {
            "line": {"type": "integer", "minimum": 1}, "text": {"type": "string", "minLength": 3}},
            "required": ["line", "text"]}, "minItems": 1},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "id": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
    },
    "required": ["verdict", "issues", "score", "id"],
    "additionalProperties": False,
}


def test_json_answers_validate_against_the_schema():
    for i in range(30):
        r = run(sim(seed=i), request(f"p{i}", json_schema=SCHEMA))
        jsonschema.validate(json.loads(r.text), SCHEMA)


json_leaf = st.sampled_from([
    {"type": "string"}, {"type": "integer", "minimum": -5, "maximum": 5}, {"type": "boolean"},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 2}, {"type": "null"},
    {"enum": ["a", "b", 3]}, {"type": "string", "format": "date"},
    {"type": "string", "pattern": r"^\d{2}[a-f]+$"}, {"const": 42},
])
json_schemas = st.recursive(json_leaf, lambda inner: st.one_of(
    st.builds(lambda props, n: {"type": "object", "properties": props,
                                "required": sorted(props)[:n]},
              st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), inner, max_size=4),
              st.integers(0, 4)),
    st.builds(lambda item, lo: {"type": "array", "items": item, "minItems": lo}, inner,
              st.integers(0, 2)),
    st.builds(lambda a, b: {"anyOf": [a, b]}, inner, inner),
), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(json_schemas, st.integers(0, 2**32))
def test_generated_values_satisfy_random_schemas(schema, seed):
    value = sample_json(schema, random.Random(seed))
    jsonschema.validate(value, schema)


def test_judge_scores_track_the_judged_quality():
    p = sim(seed=1)
    high = [json.loads(run(p, request(f"judge {i}", metadata={"purpose": "judge",
                                                               "judged_quality": 0.9})).text)
            for i in range(30)]
    low = [json.loads(run(p, request(f"judge {i}", metadata={"purpose": "judge",
                                                              "judged_quality": 0.3})).text)
           for i in range(30)]
    assert all(0 <= j["score"] <= 1 and j["critique"] for j in high + low)
    assert sum(j["score"] for j in high) / 30 > sum(j["score"] for j in low) / 30 + 0.4
    by_model = json.loads(run(p, request("j", metadata={"purpose": "judge",
                                                        "judged_model": "poor",
                                                        "capability": "code"})).text)
    assert by_model["score"] < 0.5


def test_failure_injection_by_class_and_retries_draw_again():
    p = sim(seed=5, failure_rate=0.5, failure_kinds=("transient", "rate_limited"),
            retry_after_s=2.0, latency_scale=0.0)
    outcomes = []
    for i in range(60):
        try:
            run(p, request(f"f{i}"))
            outcomes.append("ok")
        except base.RateLimited as exc:
            assert exc.retryable and exc.status == 429 and exc.retry_after_s == 0.0
            outcomes.append("rate_limited")
        except base.Transient as exc:
            assert exc.retryable
            outcomes.append("transient")
    assert {"ok", "rate_limited", "transient"} <= set(outcomes)
    # A call that failed succeeds on some later attempt: each repeat draws again.
    p2 = sim(seed=5, failure_rate=0.5)
    results = []
    for _ in range(20):
        try:
            run(p2, request("same"))
            results.append(True)
        except base.Transient:
            results.append(False)
    assert True in results and False in results


def test_retry_after_scales_with_latency():
    p = sim(seed=1, failure_rate=1.0, failure_kinds=("rate_limited",), retry_after_s=3.0,
            latency_scale=0.001)
    with pytest.raises(base.RateLimited) as info:
        run(p, request())
    assert info.value.retry_after_s == pytest.approx(0.003)


def test_slow_model_past_the_timeout_raises_timeout():
    slow = ModelProfile(name="slow", latency_base_s=30.0)
    p = SimProvider(profiles={"slow": slow}, settings=SimSettings(latency_scale=0.0))
    with pytest.raises(base.Timeout):
        run(p, request(model_name="slow", timeout_s=5.0))


def test_prompt_beyond_the_context_is_context_too_long():
    with pytest.raises(base.ContextTooLong):
        run(sim(), request("y" * 1000, model_name="poor", model_id="poor"))


def test_progress_callback_reports_output_tokens():
    seen: list[int] = []
    r = anyio.run(lambda: sim(latency_scale=0.0001).complete(request(stream=True), seen.append))
    assert seen and seen[-1] == r.output_tokens


def test_registry_turns_any_provider_into_sim_with_catalog_prices():
    decl = ir.Provider(name="openai", kind="openai", api_key_env="NOPE_NOT_SET")
    model = ir.Model(name="gpt-x", provider=ir.Name("openai"), id="gpt-x-2024",
                     price=ir.Price(1.0, 4.0), skills=(ir.Skill("code", 0.8),),
                     latency=ir.Latency(0.2, 0.001))
    p = build_provider(decl, mode="sim",
                       options=ProviderOptions(models=(model,), sim=SimSettings(latency_scale=0)))
    assert isinstance(p, SimProvider) and p.name == "openai"
    r = anyio.run(p.complete, base.CompletionRequest(
        model_id="gpt-x-2024", model_name="gpt-x", messages=(base.Message("user", "a" * 40),)))
    assert r.cost_usd == pytest.approx((10 * 1.0 + r.output_tokens * 4.0) / 1e6)
    assert model_profile(model).quality_for("code") == 0.8


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError):
        SimSettings(failure_kinds=("meteor",))
    with pytest.raises(ValueError):
        SimSettings(failure_rate=2)
