"""The safe template renderer, the `when` evaluator, `returns` parsing and judge-score parsing."""

from __future__ import annotations

import pytest

from bmad.compiler import ir
from bmad.runtime.expressions import evaluate
from bmad.runtime.quality import parse_score, similarity
from bmad.runtime.returns import normalise_enum, parse
from bmad.runtime.templates import CompiledTemplate, TemplateError


def template(*parts):
    built = tuple(ir.TextPart(p) if isinstance(p, str) else ir.Interpolation(ir.Ref(tuple(p)))
                  for p in parts)
    return ir.Template("".join(p if isinstance(p, str) else "{{x}}" for p in parts), built)


def test_renders_text_json_fields_and_list_items():
    t = CompiledTemplate(template("A ", ["a"], " B ", ["j", "k"], " C ", ["l", "1"]))
    assert t.render({"a": "x", "j": {"k": 3}, "l": ["p", "q"]}) == "A x B 3 C q"
    assert CompiledTemplate(template("v: ", ["j"])).render({"j": {"z": [1]}}).startswith("v: {")


class Secret:
    password = "hunter2"


@pytest.mark.parametrize("scope", [{"o": Secret()}, {"o": "text"}, {"o": {"other": 1}}])
def test_never_reads_attributes_only_json_keys(scope):
    with pytest.raises(TemplateError):
        CompiledTemplate(template(["o", "password"])).render(scope)


def test_unknown_root_is_an_error():
    with pytest.raises(TemplateError, match="not an input"):
        CompiledTemplate(template(["nope"])).render({})


def test_when_expressions():
    ref = lambda *p: ir.Ref(tuple(p))  # noqa: E731
    lit = ir.Literal
    scope = {"v": "REQUEST_CHANGES", "r": {"score": "8"}, "n": None, "xs": ["a", "b"]}
    assert evaluate(ir.Binary("==", ref("v"), lit("request_changes")), scope)
    assert evaluate(ir.Binary(">=", ref("r", "score"), lit(7)), scope)
    assert not evaluate(ir.Binary(">=", ref("n"), lit(7)), scope)  # null compares false
    assert not evaluate(ir.Binary(">", ref("r", "missing"), lit(0)), scope)
    assert evaluate(ir.Binary("in", lit("a"), ref("xs")), scope)
    assert evaluate(ir.Binary("and", ir.Unary("not", lit(False)),
                              ir.Binary("!=", ref("v"), lit("APPROVE"))), scope)


def test_returns_parsing():
    enum = ir.Returns("enum", values=("APPROVE", "REQUEST_CHANGES"))
    assert parse("approve", enum).value == "APPROVE"
    assert parse("Verdict: **REQUEST_CHANGES**.", enum).value == "REQUEST_CHANGES"
    assert not parse("maybe", enum).ok
    assert normalise_enum("[simulated] APPROVE", enum.values) == "APPROVE"
    js = ir.Returns("json", schema={"type": "object", "required": ["a"],
                                    "properties": {"a": {"type": "number"}}})
    assert parse('Here:\n```json\n{"a": 1}\n```', js).value == {"a": 1}
    bad = parse('{"a": "x"}', js)
    assert not bad.ok and "a" in bad.error
    assert not parse("no json here", js).ok


@pytest.mark.parametrize("text,expected", [
    ('{"score": 0.8, "critique": "ok"}', 0.8),
    ("Score: 7/10", 0.7),
    ("85%", 0.85),
    ("I'd rate it 9", 0.9),
    ('{"rating": 4.5}', 0.45),
    ("quality: 0.35 because...", 0.35),
])
def test_judge_scores_are_parsed_robustly(text, expected):
    score, _ = parse_score(text)
    assert score == pytest.approx(expected)


def test_unreadable_judge_reply_has_no_score():
    assert parse_score("no idea")[0] is None


def test_character_ngram_similarity():
    assert similarity("the cat sat", "the cat sat") == pytest.approx(1.0)
    assert similarity("the cat sat", "the cat sits") > similarity("the cat sat", "quantum flux")
