"""Parsing: syntax errors in plain words at the right place, recovery, comments, and no exceptions."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmad.compiler import ir_codec
from bmad.compiler.compile import compile_source
from bmad.compiler.parse import MAX_NESTING, build_parser, parse_text
from pathlib import Path


def errors(text: str) -> list[tuple[str, int, int, str]]:
    return [(d.code, d.span.line, d.span.column, d.message) for d in parse_text(text, "t.bmad").diagnostics]


def test_parser_is_built_once():
    assert build_parser() is build_parser()


def test_clean_file_has_no_diagnostics_and_a_tree():
    result = parse_text('workflow w {\n  task a { prompt "x" }\n  output a\n}\n')
    assert result.diagnostics == [] and result.tree is not None and result.complete


def test_whole_file_on_one_line_parses():
    result = parse_text('workflow w { input n: number = 3 task a when n > 2 { prompt "x" model gpt-4o } output a }')
    assert result.diagnostics == []


@pytest.mark.parametrize("text, code, line, column, words", [
    ('workflow w {\n  task a {\n    promt "x"\n  }\n}\n', "BMAD-E030", 3, 5, "`promt` is not a task clause"),
    ("workflow w {\n  tsk a { }\n}\n", "BMAD-E031", 2, 3, "`tsk` is not a workflow clause"),
    ("model m {\n  prise\n}\n", "BMAD-E032", 2, 3, "`prise` is not a model clause"),
    ("provider p {\n  knd openai\n}\n", "BMAD-E033", 2, 3, "`knd` is not a provider clause"),
    ("wrkflow w { }\n", "BMAD-E034", 1, 1, "expected a declaration"),
    ("workflow { }\n", "BMAD-E035", 1, 10, "needs a name"),
    ("workflow w {\n  input x\n}\n", "BMAD-E037", 2, 9, "an input needs a type"),
    ("workflow w {\n  task a {\n    prompt x\n  }\n}\n", "BMAD-E038", 3, 12, "expected a string"),
    ("provider p {\n  api_key OPENAI_API_KEY\n}\n", "BMAD-E039", 2, 11, "environment variable"),
    ("workflow w {\n  task a {\n    quality 0.8\n  }\n}\n", "BMAD-E040", 3, 13, "quality >= X"),
    ("model m {\n  price $1\n}\n", "BMAD-E041", 2, 9, "price input $X output $Y per 1M"),
    ("workflow w {\n  task a when x = 1 { }\n}\n", "BMAD-E042", 2, 19, "calls a workflow"),
    ("use models\n", "BMAD-E043", 1, 5, "standard-library module"),
    ("workflow w {\n  task a {\n    peer_review among gpt-4o\n  }\n}\n", "BMAD-E044", 3, 23, "list of models"),
    ("workflow w {\n  task a {\n    consensus [a, b]\n  }\n}\n", "BMAD-E045", 3, 15, "consensus clause"),
    ("workflow w {\n  task a {\n    returns number\n  }\n}\n", "BMAD-E046", 3, 13, "`returns` takes"),
    ('workflow w {\n  task a {\n    returns json { type: 1 }\n  }\n}\n', "BMAD-E047", 3, 20, "quoted key"),
    ('workflow w {\n  task a {\n    returns json { "a": 1, }\n  }\n}\n', "BMAD-E047", 3, 28, "not valid JSON"),
    ('workflow w {\n  task a {\n    returns json { "a" 1 }\n  }\n}\n', "BMAD-E048", 3, 24, "not valid JSON"),
    ("workflow w {\n  task a when { }\n}\n", "BMAD-E049", 2, 15, "expected a value"),
    ("workflow w {\n  task a {\n    max_tokens\n  }\n}\n", "BMAD-E009", 3, 5, "expected a number"),
    ('workflow w {\n  task a {\n    prompt "x\n  }\n}\n', "BMAD-E002", 3, 12, "never closed"),
    ('workflow w {\n  task a {\n    prompt """x\n  }\n}\n', "BMAD-E003", 3, 12, "never closed"),
    ("workflow w {\n  @\n}\n", "BMAD-E001", 2, 3, "unexpected character `@`"),
    ("workflow w \x00 { }\n", "BMAD-E001", 1, 12, "U+0000"),
    ("workflow w {\n  task a {\n    timeout 30 parsecs\n  }\n}\n", "BMAD-E011", 3, 13, "`30 parsecs` is not a duration"),
    ("workflow w {\n  budget 10 minutes\n}\n", "BMAD-E011", 2, 10, "`10 minutes` is not a duration"),
    ("workflow w {\n  task a {\n    max_tokens 3 hundred\n  }\n}\n", "BMAD-E012", 3, 16, "not a number with a unit"),
])
def test_syntax_error_in_plain_words(text, code, line, column, words):
    found = errors(text)
    assert found, text
    first = found[0]
    assert first[:3] == (code, line, column), found
    assert words in first[3]


def test_stray_closing_brace():
    [diagnostic] = parse_text('workflow w { task a { prompt "x" } }\n}\n').diagnostics
    assert (diagnostic.span.line, diagnostic.message) == (2, "this `}` has no block to close")


def test_did_you_mean_a_clause():
    [diagnostic] = parse_text('workflow w { task a { promt "x" } }').diagnostics
    assert diagnostic.hint == "did you mean `prompt`?"


def test_unclosed_block_names_the_block():
    text = 'workflow review {\n  task summarize {\n    prompt "x"\n\n  task next { prompt "y" }\n}\n'
    [diagnostic] = parse_text(text).diagnostics
    assert diagnostic.code == "BMAD-E006"
    assert diagnostic.message == "expected `}` to close task `summarize` opened at 2:3"
    assert (diagnostic.span.line, diagnostic.span.column) == (5, 3)


def test_end_of_file_maps_to_the_end_of_the_file():
    text = 'workflow w {\n  task a {\n    prompt "x"\n'
    [diagnostic] = parse_text(text).diagnostics
    assert diagnostic.code == "BMAD-E006"
    assert "the file ends before `}` closes task `a` opened at 2:3" == diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (4, 1)
    assert diagnostic.span.start == len(text)


def test_end_of_file_in_the_middle_of_a_clause():
    [diagnostic] = parse_text("workflow w {\n  input x:").diagnostics
    assert diagnostic.span.line == 2 and diagnostic.span.start == len("workflow w {\n  input x:")


def test_recovery_reports_several_errors_and_keeps_a_tree():
    text = ('workflow w {\n  task a {\n    promt "x"\n  }\n  task b {\n    prompt "y"\n    quality 0.5\n  }\n'
            '  task c { prompt "z" }\n  output c\n}\n')
    result = parse_text(text)
    assert [(d.code, d.span.line) for d in result.diagnostics] == [("BMAD-E030", 3), ("BMAD-E040", 7)]
    assert result.tree is not None and not result.complete
    program = compile_source(text).program
    assert [t.name for t in program.workflow("w").tasks] == ["a", "b", "c"]


def test_recovery_keeps_later_declarations_after_a_missing_brace():
    text = 'workflow w {\n  task a {\n    prompt "x"\n  task b { prompt "y" }\n  output b\n}\n'
    program = compile_source(text).program
    assert [t.name for t in program.workflow("w").tasks] == ["a", "b"]


def test_comments_are_collected_with_spans():
    result = parse_text('# head\nworkflow w { # trailing\n  task a { prompt "# not a comment" }\n}\n')
    assert [(c.text, c.span.line, c.span.column) for c in result.comments] == [
        ("# head", 1, 1), ("# trailing", 2, 14)]


def test_nesting_limit_is_a_diagnostic():
    deep = "workflow w { input x: json = " + "[" * (MAX_NESTING + 5) + "]" * (MAX_NESTING + 5) + " }"
    [diagnostic] = parse_text(deep).diagnostics
    assert diagnostic.code == "BMAD-E007"


def test_long_boolean_chain_is_a_diagnostic_not_a_crash():
    chain = " and ".join(["x"] * 3000)
    result = compile_source(f'workflow w {{ input x: bool task a when {chain} {{ prompt "p" }} output a }}')
    assert any(d.code == "BMAD-E020" for d in result.diagnostics)


def test_a_chain_past_the_stack_is_reported_where_it_starts():
    # 5,000 terms overflow the recursive walk: the diagnostic must still point at the condition,
    # in `check` and in `fmt` (which must not call it a bug of its own).
    from bmad.compiler.format import format_source

    chain = " or ".join(f"x > {i}" for i in range(5000))
    text = f'workflow w {{\n  input x: number\n  task a when {chain} {{ prompt "p" }}\n  output a\n}}\n'
    [deep] = [d for d in compile_source(text).diagnostics if d.code == "BMAD-E020"]
    assert (deep.span.line, deep.span.column) == (3, 15)
    assert "nested more than 32 deep" in deep.message
    output, diagnostics = format_source(text, "deep.bmad")
    assert output is None
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics] == [("BMAD-E020", 3, 15)]


def test_invalid_utf8_bytes_do_not_raise():
    result = parse_text(b'workflow w { task a { prompt "caf\xe9" } output a }')
    assert result.tree is not None


def test_too_large_input_is_refused(monkeypatch):
    from bmad.compiler import parse

    monkeypatch.setattr(parse, "MAX_SOURCE_CHARS", 10)
    [diagnostic] = parse.parse_text("workflow w { }").diagnostics
    assert diagnostic.code == "BMAD-E008"


# ----------------------------------------------------------------------------------------------
# Robustness: random and mutated inputs produce diagnostics, never exceptions

SPEC_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "spec"
SPEC_TEXTS = [p.read_text() for p in sorted(SPEC_DIR.glob("*.bmad"))]
TOKEN = re.compile(r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|\S+')


def _mutate(text: str, seed: int, operations: int) -> str:
    rng = random.Random(seed)
    tokens = TOKEN.findall(text)
    for _ in range(operations):
        if not tokens:
            break
        i, j = rng.randrange(len(tokens)), rng.randrange(len(tokens))
        op = rng.choice(("delete", "duplicate", "swap", "bytes", "truncate"))
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(j, tokens[i])
        elif op == "swap":
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif op == "bytes":
            tokens.insert(i, "".join(chr(rng.randrange(0, 0x300)) for _ in range(rng.randrange(1, 6))))
        else:
            tokens = tokens[:i]
    return " ".join(tokens)


def _compiles_without_raising(text: str) -> None:
    result = compile_source(text, "fuzz.bmad")
    assert all(d.span.line >= 1 and d.span.column >= 1 for d in result.diagnostics)
    if result.program is not None:
        assert ir_codec.loads(ir_codec.dumps(result.program)) == result.program


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SPEC_TEXTS))), st.integers(0, 2**32), st.integers(1, 8))
def test_mutated_spec_files_never_raise(index, seed, operations):
    _compiles_without_raising(_mutate(SPEC_TEXTS[index], seed, operations))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(list('{}[]()"#$:=<>.,\n -_abtwkfolsqr0123456789')
                                + ["task", "workflow", "prompt", '"""', "when", "{{", "}}", "returns json"]),
                max_size=80))
def test_random_token_soup_never_raises(pieces):
    _compiles_without_raising("".join(pieces))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    result = compile_source(data, "bytes.bmad")
    assert isinstance(result.diagnostics, list)
