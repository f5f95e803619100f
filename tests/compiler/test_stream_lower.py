"""Lowering while parsing (compiler/stream_lower.py) gives exactly what parsing to a tree and
lowering it gives, or hands the file back to the tree path."""

from __future__ import annotations

import importlib.util
import os
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmad.compiler import stream_lower
from bmad.compiler.compile import compile_file, compile_source
from bmad.compiler.load import lower_parsed
from bmad.compiler.lower import lower_tree
from bmad.compiler.parse import MAX_NESTING, parse_text
from bmad.compiler.stream_lower import MAX_STREAM_DEPTH, lower_while_parsing

REPO_ROOT = Path(__file__).resolve().parents[2]
BMAD_FILES = sorted(
    path.resolve()
    for folder in (REPO_ROOT / ".." / "shared" / "spec", REPO_ROOT / "examples", REPO_ROOT / "tests",
                   REPO_ROOT / "stdlib", REPO_ROOT / "bench") if folder.is_dir()
    for path in folder.rglob("*.bmad") if "__snapshots__" not in path.parts
)


def _tree_path(data: str | bytes, path: str, base_dir: str | None):
    parsed = parse_text(data, path)
    if parsed.tree is None:
        return parsed, None, None
    unit, diagnostics = lower_tree(parsed.tree, parsed.source_map, base_dir)
    return parsed, unit, diagnostics


def _assert_same_as_tree_path(data: str | bytes, path: str = "t.bmad", base_dir: str | None = None) -> bool:
    """True when the file was lowered while parsing (and gave the tree path's result)."""
    streamed = lower_while_parsing(data, path, base_dir)
    parsed, unit, diagnostics = _tree_path(data, path, base_dir)
    if streamed is None:
        return False
    assert not parsed.diagnostics, "lowered while parsing a file with syntax errors"
    text, streamed_unit, streamed_diagnostics = streamed
    assert text == parsed.text
    assert streamed_unit == unit  # every IR node, span included
    assert streamed_diagnostics == diagnostics  # same diagnostics, same order
    return True


def _tree_front_end(display, data, base_dir, role):
    return lower_parsed(parse_text(data, display), base_dir)


def _token_trees(text: str):
    """The raw parse (every token, nested by rule) from Lark's own lexer and LALR driver and from
    ours, with the same reduce actions."""
    from lark.parsers.lalr_parser import _Parser

    from bmad.compiler.parse import build_parser

    lark = build_parser()
    parser = lark.parser.parser.parser
    grammar = stream_lower._grammar()
    reducers = [list] * len(grammar.shapes)
    ours = stream_lower._parse(text, grammar, reducers, 10_000)
    theirs = _Parser(parser.parse_table, {rule: list for rule in parser.callbacks}).parse(
        lark.parser._make_lexer_thread(text), "start")
    return ours, theirs


def _flatten(tree) -> list:
    out = []
    for item in tree:
        if isinstance(item, list):
            out.append(_flatten(item))
        else:
            out.append((item.type, str(item), item.start_pos, item.end_pos, item.line, item.column,
                        item.end_line, item.end_column))
    return out


@pytest.mark.parametrize("path", BMAD_FILES[::5], ids=lambda p: p.name)
def test_tokens_are_lexed_as_lark_lexes_them(path):
    text = path.read_text()
    if parse_text(text).diagnostics:
        return
    ours, theirs = _token_trees(text)
    assert _flatten(ours) == _flatten(theirs)


def test_there_are_files_to_compare():
    assert len(BMAD_FILES) > 100


@pytest.mark.parametrize("path", BMAD_FILES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_workflow_file_lowers_as_the_tree_path_does(path):
    data = path.read_bytes()
    streamed = _assert_same_as_tree_path(data, str(path), os.path.dirname(path))
    # only a syntax error sends a file back to the tree path
    assert streamed == (not parse_text(data, str(path)).diagnostics)


@pytest.mark.parametrize("path", [p for p in BMAD_FILES if "stdlib" not in p.parts][::7],
                         ids=lambda p: p.name)
def test_compiling_gives_the_same_program_and_diagnostics(path):
    default = compile_file(str(path))
    tree = compile_source(path.read_bytes(), str(path), front_end=_tree_front_end)
    assert default.program == tree.program
    assert default.diagnostics == tree.diagnostics


def test_generated_bench_workflow_lowers_as_the_tree_path_does():
    spec = importlib.util.spec_from_file_location("check_bench", REPO_ROOT / "bench" / "check_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert _assert_same_as_tree_path(bench.workflow_source(300), "/tmp/pipeline.bmad", "/tmp")


LOWERING_ERRORS = [
    'provider p { kind openaii api_key "sk-123456" }',
    'model m { provider p price input $x output $0.5 per 0 skills { code 1.5, code 0.5 } }',
    'workflow w { input x: list task a { prompt "{{ x" temperature 3 retry 2 backoff sideways 9s to 1s } output a }',
    'workflow w { input d: json = { "a": 1, "a": 2 } task a when (x == 1) and not (y in [1, -2, "z"]) { prompt "p" } }',
    'workflow w { task a { returns enum(A, A) consensus vote among [] quorum 4 best_of 2 } output a }',
    'workflow w { budget 5parsecs budget $1 per run budget $2 per run task a = other(x: 1, x: 2) }',
    'use notstd.models\nrubric r "text"\nworkflow w { task a { prompt "p" quality >= auto 0.8 rubric missing } }',
]


@pytest.mark.parametrize("text", LOWERING_ERRORS)
def test_lowering_errors_are_the_same(text):
    assert _assert_same_as_tree_path(text)


def test_empty_file_and_comments_only():
    assert _assert_same_as_tree_path("")
    assert _assert_same_as_tree_path("# nothing here\n")


def test_syntax_errors_take_the_tree_path():
    assert lower_while_parsing("workflow w { task a { prompt } }", "t.bmad", None) is None
    assert lower_while_parsing("workflow w { task a { prompt \"p\" }", "t.bmad", None) is None


def test_nesting_and_size_limits_take_the_tree_path(monkeypatch):
    deep = "workflow w { input x: json = " + "[" * (MAX_NESTING + 5) + "]" * (MAX_NESTING + 5) + " }"
    assert lower_while_parsing(deep, "t.bmad", None) is None
    from bmad.compiler import parse

    monkeypatch.setattr(parse, "MAX_SOURCE_CHARS", 10)
    assert lower_while_parsing("workflow w { }", "t.bmad", None) is None


def test_a_tree_deeper_than_the_limit_takes_the_tree_path():
    chain = " and ".join(["x"] * (MAX_STREAM_DEPTH + 10))
    text = f'workflow w {{ input x: bool task a when {chain} {{ prompt "p" }} output a }}'
    assert lower_while_parsing(text, "t.bmad", None) is None
    nested_type = "list<" * (MAX_STREAM_DEPTH + 10) + "text" + ">" * (MAX_STREAM_DEPTH + 10)
    assert lower_while_parsing(f"workflow w {{ input x: {nested_type} }}", "t.bmad", None) is None
    # just under it, still lowered while parsing, and the same
    chain = " and ".join(["x"] * 20)
    assert _assert_same_as_tree_path(f'workflow w {{ input x: bool task a when {chain} {{ prompt "p" }} output a }}')


def test_an_unexpected_lark_layout_takes_the_tree_path(monkeypatch):
    monkeypatch.setattr(stream_lower, "_grammar", lambda: None)
    assert lower_while_parsing("workflow w { }", "t.bmad", None) is None


SPEC_DIR = REPO_ROOT / ".." / "shared" / "spec"
SPEC_TEXTS = [p.read_text() for p in sorted(SPEC_DIR.glob("*.bmad"))]
TOKEN = re.compile(r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"|\S+')


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(SPEC_TEXTS))), st.integers(0, 2**32), st.integers(1, 6))
def test_mutated_spec_files_lower_as_the_tree_path_does(index, seed, operations):
    _assert_same_as_tree_path(_mutate(SPEC_TEXTS[index], seed, operations))


def _mutate(text: str, seed: int, operations: int) -> str:
    """Delete, duplicate or swap words: many mutants still parse, with odd clauses in odd places."""
    rng = random.Random(seed)
    words = TOKEN.findall(text)
    for _ in range(operations):
        if not words:
            break
        i, j = rng.randrange(len(words)), rng.randrange(len(words))
        op = rng.choice(("delete", "duplicate", "swap"))
        if op == "delete":
            del words[i]
        elif op == "duplicate":
            words.insert(j, words[i])
        else:
            words[i], words[j] = words[j], words[i]
    return " ".join(words)
