"""Incremental compilation gives exactly what a whole-file compile gives: IR and diagnostics, spans included.

Differential tests (as the small interpreters do): every version of a document is compiled twice,
by one `IncrementalCompiler` that saw the previous versions and by `compile_source` from scratch,
and the two results must be identical. Edit sequences are random (hypothesis) over the examples and
the contract files, good and bad; a few named cases pin the paths the random ones may not reach.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmad.compiler import ir_codec
from bmad.compiler.compile import compile_source
from bmad.compiler.incremental import IncrementalCompiler

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from lsp_workload import generate  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / ".." / "shared" / "spec").resolve()
FILES = sorted([*ROOT.glob("examples/*.bmad"), *SPEC.glob("*.bmad"), *SPEC.glob("bad/*.bmad")])

SNIPPETS = [
    "a", " ", "\n", "}", "{", '"', "#", "0", ",", "]", "(", "=", "task", "\n\n",
    '  task extra { prompt "about {{ topic }}" }\n',
    '  task extra2 = hello(topic: "x")\n',
    "  output extra\n", '  about "twice"\n', "  budget 10s\n", '  input extra_in: text = "a"\n',
    '  parallel { task p1 { prompt "p" } task p2 { prompt "q" } }\n',
    "model extra_model { provider nowhere }\n", '}\nworkflow split {\n', '"""\n',
    "  task bad { timeout 5parsecs }\n",
]


def assert_same(incremental, full) -> None:
    assert incremental.diagnostics == full.diagnostics
    assert incremental.sources == full.sources
    assert incremental.ok == full.ok
    assert (ir_codec.dumps(incremental.program) if incremental.program else None) == \
        (ir_codec.dumps(full.program) if full.program else None)


def apply(text: str, original: str, edit: tuple[str, float, float, str]) -> str:
    kind, where, length, snippet = edit
    pos = int(where * len(text))
    lines = text.split("\n")
    line = int(where * len(lines)) % max(1, len(lines))
    if kind == "insert":
        return text[:pos] + snippet + text[pos:]
    if kind == "delete":
        return text[:pos] + text[pos + 1 + int(length * 12):]
    if kind == "replace":
        return text[:pos] + snippet + text[pos + 1 + int(length * 4):]
    if kind == "type_in_string":  # the common case: typing inside a prompt
        quote = text.find('"', pos)
        return text if quote < 0 else text[:quote + 1] + snippet[:1] + text[quote + 1:]
    if kind == "duplicate_line":
        lines.insert(int(length * len(lines)), lines[line])
        return "\n".join(lines)
    if kind == "delete_line":
        del lines[line]
        return "\n".join(lines)
    if kind == "insert_line":
        lines.insert(line, snippet.rstrip("\n"))
        return "\n".join(lines)
    return original  # "revert": back to a clean version after broken ones


EDITS = st.tuples(
    st.sampled_from(["insert", "delete", "replace", "type_in_string", "type_in_string", "duplicate_line",
                     "delete_line", "insert_line", "insert_line", "revert"]),
    st.floats(0, 1), st.floats(0, 1), st.sampled_from(SNIPPETS))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file=st.sampled_from(FILES), edits=st.lists(EDITS, min_size=1, max_size=10))
def test_random_edit_sequences_compile_as_the_whole_file_does(file, edits):
    original = file.read_text(encoding="utf-8")
    path = str(file)
    compiler = IncrementalCompiler(path)
    text = original
    assert_same(compiler.compile(text), compile_source(text, path))
    for edit in edits:
        text = apply(text, original, edit)
        assert_same(compiler.compile(text), compile_source(text, path))


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_every_line_retyped_compiles_as_the_whole_file_does(file):
    """Each line of each file deleted and typed back, one version per step."""
    original = file.read_text(encoding="utf-8")
    path = str(file)
    compiler = IncrementalCompiler(path)
    compiler.compile(original)
    lines = original.split("\n")
    for i in range(0, len(lines), 3):
        for text in ("\n".join(lines[:i] + lines[i + 1:]), original):
            assert_same(compiler.compile(text), compile_source(text, path))


def test_typing_in_a_big_workflow_rereads_one_member(tmp_path):
    text = generate(1000)
    path = str(tmp_path / "big.bmad")
    compiler = IncrementalCompiler(path)
    compiler.compile(text)
    assert compiler.last_mode == "whole"
    at = text.index('prompt "Step 40') + len('prompt "')
    for letter in "abc":
        text = text[:at] + letter + text[at:]
        at += 1
        result = compiler.compile(text)
        assert compiler.last_mode == "members"
        assert_same(result, compile_source(text, path))
    # a new line above moves every later span a line down
    text = text.replace("  task t3 {", "\n  task t3 {", 1)
    assert_same(compiler.compile(text), compile_source(text, path))
    assert compiler.last_mode == "members"
    assert compiler.compile(text) is not None and compiler.last_mode == "same"


def test_a_broken_version_falls_back_and_the_fix_is_read_incrementally(tmp_path):
    text = generate(300)
    path = str(tmp_path / "w.bmad")
    compiler = IncrementalCompiler(path)
    compiler.compile(text)
    at = text.index("  task t5 {")
    broken = text[:at] + "  task oops {\n" + text[at:]
    result = compiler.compile(broken)
    assert compiler.last_mode == "whole" and not result.ok
    assert_same(result, compile_source(broken, path))
    fixed = text[:at] + '  task oops { prompt "x" }\n' + text[at:]
    assert_same(compiler.compile(fixed), compile_source(fixed, path))
    assert compiler.last_mode == "members"


def test_a_clause_written_twice_across_members_is_reported_after_an_edit_elsewhere(tmp_path):
    text = ('workflow w {\n  about "one"\n  task a { prompt "x" }\n  about "two"\n'
            '  task b { prompt "y {{ a }}" }\n  output b\n}\n')
    path = str(tmp_path / "twice.bmad")
    compiler = IncrementalCompiler(path)
    first = compiler.compile(text)
    assert "BMAD-E017" in {d.code for d in first.diagnostics}
    edited = text.replace('prompt "y', 'prompt "yy')
    assert_same(compiler.compile(edited), compile_source(edited, path))
    assert compiler.last_mode == "members"


def test_an_unknown_rubric_is_reported_on_the_first_compile_and_after_edits(tmp_path):
    # The `rubric NAME` references each member's own lowerer collects must reach the load step.
    text = ('workflow w {\n  task a { prompt "x" quality >= 0.8 rubric nosuch }\n'
            '  task b { prompt "y {{ a }}" }\n  output b\n}\n')
    path = str(tmp_path / "rubric.bmad")
    compiler = IncrementalCompiler(path)
    first = compiler.compile(text)
    assert_same(first, compile_source(text, path))
    assert "BMAD-E110" in {d.code for d in first.diagnostics}
    edited = text.replace('prompt "y', 'prompt "yy').replace("workflow w {", "\nworkflow w {")
    again = compiler.compile(edited)
    assert_same(again, compile_source(edited, path))
    [e110] = [d for d in again.diagnostics if d.code == "BMAD-E110"]
    assert e110.span.line == 3


def test_declarations_are_reread_on_their_own(tmp_path):
    text = ('provider p { kind openai api_key env K }\nmodel m { provider p price input $1 output $2 per 1M }\n'
            'workflow w { task a { prompt "x" model m } output a }\n')
    path = str(tmp_path / "decl.bmad")
    compiler = IncrementalCompiler(path)
    compiler.compile(text)
    edited = text.replace("output $2", "output $3")
    assert_same(compiler.compile(edited), compile_source(edited, path))
    assert compiler.last_mode == "declarations"
    split = text.replace("output a }", "output a }\nworkflow v { task b { prompt \"y\" } output b }")
    assert_same(compiler.compile(split), compile_source(split, path))


def test_imported_files_are_cached_by_text_and_stay_correct(tmp_path):
    lib = tmp_path / "lib.bmad"
    lib.write_text('workflow helper { task t { prompt "x" } output t }\n')
    main = tmp_path / "main.bmad"
    text = 'import "lib.bmad"\nworkflow w { task a = helper() output a }\n'
    main.write_text(text)
    compiler = IncrementalCompiler(str(main))
    for _ in range(2):  # the second compile reads lib.bmad from the cache
        assert_same(compiler.compile(text), compile_source(text, str(main)))
    changed = {str(lib): 'workflow helper { task t { prompt "x" timeout 5parsecs } output t }\n'}
    assert_same(compiler.compile(text, changed), compile_source(text, str(main), extra_sources=changed))
    assert_same(compiler.compile(text), compile_source(text, str(main)))
