"""Lowering: every clause becomes the right IR node, with spans, and bad literals become diagnostics."""

from __future__ import annotations

import pytest

from bmad.compiler import ir
from bmad.compiler.lower import lower_tree
from bmad.compiler.parse import parse_text


def lower(text: str, *, allow_errors: bool = False):
    parsed = parse_text(text, "t.bmad")
    assert parsed.diagnostics == [], parsed.diagnostics
    unit, diagnostics = lower_tree(parsed.tree, parsed.source_map, "/project")
    if not allow_errors:
        assert diagnostics == [], diagnostics
    return (unit, diagnostics) if allow_errors else unit


def task(clauses: str) -> ir.Task:
    return lower(f"workflow w {{\n  task t {{\n    {clauses}\n  }}\n}}\n").workflows[0].tasks[0]


def codes(text: str) -> list[str]:
    return [d.code for d in lower(text, allow_errors=True)[1]]


def test_declarations_and_use():
    unit = lower('import "models.bmad"\nuse std.code_review\nworkflow w { }\n')
    assert unit.imports[0].path == "models.bmad"
    assert unit.uses[0].module == "code_review"
    assert unit.workflows[0].name == "w"


def test_provider_clauses():
    unit = lower('provider p {\n  kind replay\n  base_url "http://x"\n  api_key env KEY\n'
                 '  limits { rpm 500, tpm 200k concurrent 16 }\n  data "rec.csv"\n  timeout 30s\n}\n')
    p = unit.providers[0]
    assert (p.name, p.kind, p.base_url, p.api_key_env) == ("p", "replay", "http://x", "KEY")
    assert (p.limits.rpm, p.limits.tpm, p.limits.concurrent) == (500, 200_000, 16)
    assert p.data == "/project/rec.csv" and p.timeout_s == 30.0
    assert (p.name_span.line, p.name_span.column) == (1, 10)


def test_model_clauses():
    unit = lower('model gemini-2.5-flash {\n  provider g\n  id "x"\n  price input $0.30 output $2.50 per 1M\n'
                 '  context 1000k\n  skills { code 0.8, writing 0.75 }\n  latency 600ms + 12ms per token\n'
                 '  path "m.gguf"\n  aliases [flash, gf]\n}\n')
    m = unit.models[0]
    assert m.name == "gemini-2.5-flash" and m.provider.name == "g" and m.id == "x"
    assert (m.price.input_per_m, m.price.output_per_m) == (0.30, 2.50)
    assert m.context == 1_000_000
    assert [(s.name, s.score) for s in m.skills] == [("code", 0.8), ("writing", 0.75)]
    assert (m.latency.base_s, m.latency.per_token_s) == (0.6, 0.012)
    assert m.path == "/project/m.gguf" and m.aliases == ("flash", "gf")


def test_price_per_thousand_is_scaled_to_per_million():
    m = lower("model m { provider p price input $0.001 output $0.002 per 1k }").models[0]
    assert (m.price.input_per_m, m.price.output_per_m) == pytest.approx((1.0, 2.0))


def test_latency_without_per_token_part():
    assert lower("model m { provider p latency 2s }").models[0].latency == ir.Latency(
        2.0, 0.0, ir.Span("t.bmad", 1, 22, 1, 32, 21, 31))


def test_workflow_clauses_and_budget_merge():
    w = lower('workflow w {\n  about "A"\n  strategy collaborative\n  optimize latency\n'
              '  budget $2.00 per run\n  budget 400k tokens\n  budget 10m\n  quality >= 0.8\n'
              '  input a: text\n  input b: list<number> = [1, 2]\n  input c: bool = true\n  output a\n}\n').workflows[0]
    assert (w.about, w.strategy, w.optimize, w.quality) == ("A", "collaborative", "latency", 0.8)
    assert (w.budget.usd, w.budget.tokens, w.budget.time_s) == (2.0, 400_000, 600.0)
    assert (w.budget.span.line, w.budget.span.end_line) == (5, 7)
    assert [str(i.type) for i in w.inputs] == ["text", "list<number>", "bool"]
    assert w.inputs[1].default == ir.ListExpr(
        (ir.Literal(1, w.inputs[1].default.items[0].span), ir.Literal(2, w.inputs[1].default.items[1].span)),
        w.inputs[1].default.span)
    assert w.inputs[2].default.value is True
    assert [o.name for o in w.outputs] == ["a"]


def test_nothing_written_means_none():
    t = task('prompt "x"')
    assert (t.model, t.route, t.max_tokens, t.temperature, t.priority, t.timeout_s, t.retry,
            t.on_error, t.returns, t.budget, t.quality, t.consensus, t.reduce, t.when) == (None,) * 14
    w = lower("workflow w { }").workflows[0]
    assert (w.strategy, w.optimize, w.budget, w.quality) == (None, None, None, None)


def test_parallel_groups_are_indexed_per_block():
    w = lower('workflow w {\n  task a { prompt "x" }\n  parallel { task b { prompt "x" } task c { prompt "x" } }\n'
              '  parallel { task d { prompt "x" } }\n}\n').workflows[0]
    assert [(t.name, t.parallel_group) for t in w.tasks] == [("a", None), ("b", 0), ("c", 0), ("d", 1)]


def test_task_text_and_routing_clauses():
    t = task('about "A"\n system "S"\n prompt "P"\n depends a, b\n needs code, security\n model gpt-4o-mini\n'
             ' route cascade [gpt-4o-mini, gpt-4o]\n fallback [claude-sonnet]\n max_tokens 2k\n temperature 0.2\n'
             ' priority critical\n timeout 1m\n on_error skip')
    assert (t.about, t.system.text, t.prompt.text) == ("A", "S", "P")
    assert [n.name for n in t.depends] == ["a", "b"] and [n.name for n in t.needs] == ["code", "security"]
    assert t.model.name == "gpt-4o-mini"
    assert t.route.strategy == "cascade" and [n.name for n in t.route.models] == ["gpt-4o-mini", "gpt-4o"]
    assert [n.name for n in t.fallback] == ["claude-sonnet"]
    assert (t.max_tokens, t.temperature, t.priority, t.timeout_s, t.on_error) == (2000, 0.2, "critical", 60.0, "skip")


def test_route_without_list():
    assert task("route cheapest").route.models == ()


@pytest.mark.parametrize("clause, expected", [  # the IR counts attempts: `retry N` is N + 1
    ("retry 3", (4, "exponential", None, None)),
    ("retry 2 backoff linear", (3, "linear", None, None)),
    ("retry 5 backoff fixed 500ms to 2s", (6, "fixed", 0.5, 2.0)),
    ("retry 0", (1, "exponential", None, None)),
])
def test_retry(clause, expected):
    r = task(clause).retry
    assert (r.attempts, r.backoff, r.min_s, r.max_s) == expected


def test_returns_forms():
    assert task("returns text").returns.kind == "text"
    assert task("returns json").returns.schema is None
    schema = task('returns json { "type": "object", "properties": { "a": { "type": ["string", "null"] } },'
                  ' "required": ["a"], "minProperties": 1, "x": -2.5e1, "y": true, "z": null, "e": {}, "l": [] }').returns.schema
    assert schema == {"type": "object", "properties": {"a": {"type": ["string", "null"]}}, "required": ["a"],
                      "minProperties": 1, "x": -25.0, "y": True, "z": None, "e": {}, "l": []}
    assert task('returns enum(APPROVE, "REQUEST CHANGES")').returns.values == ("APPROVE", "REQUEST CHANGES")


def test_task_budget_and_quality():
    t = task('budget $0.10\n budget 5k tokens\n quality >= 0.9 judged by claude-sonnet rubric "R" else refine max 3')
    assert (t.budget.usd, t.budget.tokens) == (0.10, 5000)
    q = t.quality
    assert (q.threshold, q.judge.name, q.rubric, q.otherwise, q.rounds) == (0.9, "claude-sonnet", "R", "refine", 3)


@pytest.mark.parametrize("clause, otherwise, rounds", [
    ("quality >= 0.5", None, None), ("quality >= 0.5 else escalate", "escalate", None),
    ("quality >= 0.5 else retry 2", "retry", 2), ("quality >= 0.5 else fail", "fail", None),
    ("quality >= 0.5 else accept", "accept", None)])
def test_quality_else(clause, otherwise, rounds):
    q = task(clause).quality
    assert (q.otherwise, q.rounds) == (otherwise, rounds)


@pytest.mark.parametrize("clause, method, names, count, quorum, judge, rounds", [
    ("consensus vote among [a, b, c] quorum 2", "vote", ["a", "b", "c"], None, 2, None, None),
    ("consensus weighted among [a, b]", "weighted", ["a", "b"], None, None, None, None),
    ("consensus similarity among 3 models", "similarity", [], 3, None, None, None),
    ("consensus judge gpt-4o among [a, b]", "judge", ["a", "b"], None, None, "gpt-4o", None),
    ("consensus judge gpt-4o among 3 models", "judge", [], 3, None, "gpt-4o", None),
    ("consensus ensemble by claude-sonnet among [a, b]", "ensemble", ["a", "b"], None, None, "claude-sonnet", None),
    ("best_of 3 judged by m", "best_of", [], 3, None, "m", None),
    ("best_of 2", "best_of", [], 2, None, None, None),
    ("peer_review among [a, b] rounds 2", "peer_review", ["a", "b"], None, None, None, 2),
])
def test_consensus_forms(clause, method, names, count, quorum, judge, rounds):
    c = task(clause).consensus
    assert (c.method, [n.name for n in c.participants], c.count, c.quorum,
            c.judge.name if c.judge else None, c.rounds) == (method, names, count, quorum, judge, rounds)


def test_reduce():
    r = task("reduce per_file in chunks of 10").reduce
    assert (r.source.name, r.chunk_size) == ("per_file", 10)
    assert task("reduce per_file").reduce.chunk_size is None


def test_for_each_when_and_call():
    w = lower('workflow w {\n  input xs: list<text>\n'
              '  task r for each d in xs when not (d == "") = review(diff: d, strict: true)\n}\n').workflows[0]
    t = w.tasks[0]
    assert t.for_each.var == "d" and t.for_each.source == ir.Ref(("xs",), t.for_each.source.span)
    assert isinstance(t.when, ir.Unary) and t.when.operand.op == "=="
    assert t.call.workflow.name == "review"
    assert [(a.name, type(a.value).__name__) for a in t.call.arguments] == [("diff", "Ref"), ("strict", "Literal")]


@pytest.mark.parametrize("source, op", [
    ("a == 1", "=="), ("a != 1", "!="), ("a < 1", "<"), ("a <= 1", "<="), ("a > 1", ">"), ("a >= 1", ">="),
    ("a in [1, 2]", "in"), ("a and b", "and"), ("a or b", "or")])
def test_when_operators(source, op):
    assert task("prompt \"x\"").when is None
    w = lower(f'workflow w {{ task t when {source} {{ prompt "x" }} }}').workflows[0]
    assert w.tasks[0].when.op == op


def test_when_precedence_and_literals():
    w = lower('workflow w { task t when a.b.c >= -2 and x not in ["a", 1.5, null, false] or y { prompt "x" } }').workflows[0]
    when = w.tasks[0].when
    assert when.op == "or" and when.left.op == "and"
    assert when.left.left.left == ir.Ref(("a", "b", "c"), when.left.left.left.span)
    assert when.left.left.right.value == -2
    negated = when.left.right
    assert negated.op == "not" and negated.operand.op == "in"
    assert [i.value for i in negated.operand.right.items] == ["a", 1.5, None, False]


def test_template_interpolations_point_at_the_source():
    text = 'workflow w {\n  task t {\n    prompt "Q: {{ topic }} and \\"{{a.b}}\\""\n  }\n}\n'
    t = lower(text).workflows[0].tasks[0]
    parts = t.prompt.parts
    assert [type(p).__name__ for p in parts] == ["TextPart", "Interpolation", "TextPart", "Interpolation", "TextPart"]
    first, second = parts[1], parts[3]
    assert text[first.span.start:first.span.end] == "{{ topic }}"
    assert text[first.ref.span.start:first.ref.span.end] == "topic"
    assert text[second.span.start:second.span.end] == "{{a.b}}" and second.ref.path == ("a", "b")
    assert (second.span.line, second.span.column) == (3, 34)
    assert t.prompt.text == 'Q: {{ topic }} and "{{a.b}}"'


def test_triple_quoted_block_is_dedented_and_spans_survive():
    text = 'workflow w {\n  task t {\n    prompt """\n      Line one\n        {{ x }}\n      end\n    """\n  }\n}\n'
    t = lower(text).workflows[0].tasks[0]
    assert t.prompt.text == "Line one\n  {{ x }}\nend"
    interpolation = t.prompt.parts[1]
    assert text[interpolation.span.start:interpolation.span.end] == "{{ x }}"
    assert (interpolation.span.line, interpolation.span.column) == (5, 9)


def test_escaped_braces_are_not_interpolations():
    t = task('prompt "JSON: \\{\\{ not }} {{ yes }}"')
    assert [p.ref.path for p in t.prompt.parts if isinstance(p, ir.Interpolation)] == [("yes",)]


@pytest.mark.parametrize("clause, code", [
    ('prompt "{{ a b }}"', "BMAD-E015"), ('prompt "{{ }}"', "BMAD-E015"), ('prompt "{{ a "', "BMAD-E015"),
    ('prompt "\\q"', "BMAD-E014"), ("timeout 30", "BMAD-E011"), ("timeout 30parsecs", "BMAD-E011"),
    ("max_tokens 1.5", "BMAD-E012"), ("max_tokens 3x", "BMAD-E012"), ("temperature 3", "BMAD-E019"),
    ("quality >= 2", "BMAD-E019"), ("priority urgent", "BMAD-E016"), ("on_error explode", "BMAD-E016"),
    ("route cheapst", "BMAD-E016"), ("retry 3 backoff random", "BMAD-E016"),
    ("retry 3 backoff fixed 5s to 1s", "BMAD-E019"), ("consensus poll among [a, b]", "BMAD-E016"),
    ('prompt "a"\n prompt "b"', "BMAD-E017"), ("best_of 3\n consensus vote among [a]", "BMAD-E017"),
    ("budget $1\n budget $2", "BMAD-E017"), ("returns enum(A, A)", "BMAD-E017"),
    ('returns json { "a": 1, "a": 2 }', "BMAD-E018"), ('returns json { "\\q": 1 }', "BMAD-E018"),
])
def test_bad_task_clause(clause, code):
    assert code in codes(f"workflow w {{\n  task t {{\n    {clause}\n  }}\n}}\n")


@pytest.mark.parametrize("text, code", [
    ("workflow w { budget $abc per run }", "BMAD-E010"),
    ("workflow w { budget 10parsecs }", "BMAD-E011"),
    ("workflow w { budget 0s }", "BMAD-E011"),  # stops the run before it starts (YAML refuses it too)
    ("workflow w { strategy fast }", "BMAD-E016"),
    ("workflow w { optimize speed }", "BMAD-E016"),
    ("workflow w { input x: string }", "BMAD-E016"),
    ("workflow w { input x: list }", "BMAD-E021"),
    ("workflow w { input x: text<text> }", "BMAD-E021"),
    ("provider p { kind openia }", "BMAD-E016"),
    ("provider p { base_url \"x\" }", "BMAD-E022"),
    ("provider p { kind openai limits { rps 3 } }", "BMAD-E016"),
    ("model m { id \"x\" }", "BMAD-E022"),
    ("model m { provider p skills { code 1.5 } }", "BMAD-E019"),
    ("model m { provider p price input $1 output $x per 1M }", "BMAD-E010"),
    ("use lib.models", "BMAD-E016"),
    ("workflow w { task t = wf(a: 1, a: 2) }", "BMAD-E017"),
])
def test_bad_declaration(text, code):
    assert code in codes(text)


def test_literal_key_is_rejected_without_echoing_it():
    unit, diagnostics = lower('provider p {\n  kind openai\n  api_key "sk-secret-value"\n}\n', allow_errors=True)
    [d] = diagnostics
    assert d.code == "BMAD-E013" and "secret" not in d.message + (d.hint or "")
    assert '"sk-…"' in d.message and "api_key env OPENAI_API_KEY" in d.hint
    assert unit.providers[0].api_key_env is None


def test_short_literal_key_shows_nothing():
    [d] = lower('provider p { kind openai api_key "abc" }', allow_errors=True)[1]
    assert "abc" not in d.message


def test_names_carry_spans():
    t = task("depends first")
    assert (t.depends[0].span.line, t.depends[0].span.column, t.depends[0].span.end_column) == (3, 13, 18)
    assert (t.span.line, t.name_span.column) == (2, 8)
