"""The formatter: canonical layout, comments kept, idempotent, and the same IR before and after.

- every contract file and example formats, is a fixed point of a second run, compiles to the same
  IR (spans and the source hash excluded), and its formatted text is snapshot-tested;
- fixture pairs in tests/fixtures/format/ (`name.bmad` -> `name.expected.bmad`), named after what
  they show;
- hypothesis: generated programs (random clause subsets, whitespace and comments) format
  idempotently to the same IR; random and mutated inputs never raise;
- `format_range` for the language server; `bmad fmt --check` exit codes through a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmad.compiler.compile import compile_source
from bmad.compiler.format import format_range, format_source
from bmad.compiler.format_layout import WIDTH
from bmad.compiler.ir_codec import dumps
from bmad.compiler.parse import build_parser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "format"
FIXTURE_INPUTS = sorted(p for p in FIXTURES.glob("*.bmad") if not p.name.endswith(".expected.bmad"))


def ir_of(text: str, path: str) -> str:
    """The compiled IR without spans or the source files' hashes (both follow the layout)."""
    result = compile_source(text, path)
    if result.program is None:
        return json.dumps(sorted(d.code for d in result.diagnostics))
    data = json.loads(dumps(result.program, spans=False))

    def scrub(value):
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if not (k == "sha256" and value.get("node") == "SourceFile")}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return json.dumps(scrub(data), sort_keys=True)


def formatted(text: str, path: str = "<input>") -> str:
    out, diagnostics = format_source(text, path)
    assert out is not None, [d.message for d in diagnostics]
    assert not any(d.is_error for d in diagnostics)
    return out


# ----------------------------------------------------------------------------------------------
# Contract files and examples


def check_file(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    once = formatted(text, str(path))
    assert formatted(once, str(path)) == once, "fmt(fmt(x)) != fmt(x)"
    assert ir_of(once, str(path)) == ir_of(text, str(path)), "formatting changed the compiled IR"
    assert all(len(line) <= WIDTH or '"' in line or "#" in line for line in once.splitlines())
    return once


def test_contract_file_formats(spec_file: Path, snapshot):
    if spec_file.suffix != ".bmad":
        pytest.skip("the formatter is for .bmad files")
    assert check_file(spec_file) == snapshot


def test_example_formats(example_file: Path, snapshot):
    if example_file.suffix != ".bmad":
        pytest.skip("the formatter is for .bmad files")
    assert check_file(example_file) == snapshot


def test_contract_files_are_already_canonical(spec_dir: Path):
    # the hand-written contract files follow the style, so formatting leaves them alone
    for name in ("hello.bmad", "code_review.bmad", "models.bmad", "research.bmad", "pipeline.bmad"):
        text = (spec_dir / name).read_text(encoding="utf-8")
        assert formatted(text) == text, name


# ----------------------------------------------------------------------------------------------
# Fixture pairs


@pytest.mark.parametrize("source", FIXTURE_INPUTS, ids=[p.stem for p in FIXTURE_INPUTS])
def test_fixture_pair(source: Path):
    expected = source.with_name(source.stem + ".expected.bmad").read_text(encoding="utf-8")
    text = source.read_text(encoding="utf-8")
    assert formatted(text) == expected
    assert formatted(expected) == expected
    assert ir_of(expected, "<input>") == ir_of(text, "<input>")


def test_fixtures_exist():
    names = {p.stem for p in FIXTURE_INPUTS}
    assert {"comments_kept", "long_lists_wrap", "blank_lines", "long_strings_reindented",
            "json_schema_layout", "literals_kept", "expressions_parens", "empty_blocks"} <= names


# ----------------------------------------------------------------------------------------------
# Specific behaviour


def test_every_comment_is_kept_in_order():
    text = (FIXTURES / "comments_kept.bmad").read_text(encoding="utf-8")
    comments = [line[line.index("#"):].rstrip() for line in text.splitlines() if "#" in line]
    out = formatted(text)
    kept = [line[line.index("#"):].rstrip() for line in out.splitlines() if "#" in line]
    assert sorted(kept) == sorted(comments)


def test_literals_keep_their_spelling():
    out = formatted('model m { price input $0.50 output $2 per 1M context 200k latency 30s }\n')
    assert "$0.50" in out and "$2 " in out and "1M" in out and "200k" in out and "30s" in out


def test_long_string_value_is_unchanged_by_reindenting():
    text = 'workflow w {\n task t {\n prompt """\n          a\n            b\n\n          c\n    """\n }\n}\n'
    out = formatted(text)
    assert '    prompt """\n      a\n        b\n\n      c\n    """' in out
    assert ir_of(out, "<input>") == ir_of(text, "<input>")


def test_short_lists_stay_on_one_line_and_long_ones_wrap():
    short = formatted("provider p { limits { rpm 500, tpm 200k, concurrent 16 } }\n")
    assert "  limits { rpm 500, tpm 200k, concurrent 16 }\n" in short
    entries = ", ".join(f"skill_{i} 0.5" for i in range(12))
    long = formatted(f"model m {{ skills {{ {entries} }} }}\n")
    assert "  skills {\n    skill_0 0.5,\n" in long and "    skill_11 0.5,\n  }\n" in long


def test_broken_input_gives_none_and_diagnostics(spec_dir: Path):
    text = (spec_dir / "bad" / "unclosed.bmad").read_text(encoding="utf-8")
    out, diagnostics = format_source(text, "unclosed.bmad")
    assert out is None
    assert diagnostics and all(d.code.startswith("BMAD-E") for d in diagnostics)
    assert any(d.is_error for d in diagnostics)


def test_empty_and_comment_only_files():
    assert formatted("") == ""
    assert formatted("\n\n  \n") == ""
    assert formatted("# just a note   \n\n\n# another\n") == "# just a note\n\n# another\n"


def test_every_grammar_rule_has_a_layout():
    from bmad.compiler.format import _Formatter

    names = set()
    for rule in build_parser().rules:
        name = rule.alias or rule.origin.name
        name = str(getattr(name, "name", name))
        if not name.startswith("_") and not rule.options.expand1:
            names.add(name)
    from bmad.compiler.format import EXPRESSION_RULES as expression_rules

    structural = {"start", "for_each", "when_clause", "task_block", "argument", "limit_entry",
                  "skill_entry", "rubric", "enum_value", "quality_else", "learned_bar"}
    missing = {n for n in names - expression_rules - structural if not hasattr(_Formatter, "r_" + n)}
    assert not missing


# ----------------------------------------------------------------------------------------------
# format_range (the language server's range formatting)


RANGE_SOURCE = """\
workflow w {
  input a: text
  task one {   prompt "x"
      max_tokens   10 }
  task two { prompt   "y" }
  task three {
    prompt "z"
  }
}

model m {   context 8k }
"""


def test_format_range_formats_the_enclosing_task():
    edit, diagnostics = format_range(RANGE_SOURCE, "<input>", 4, 4)
    assert not diagnostics and edit is not None
    assert (edit.start_line, edit.end_line) == (3, 4)
    assert edit.new_text == '  task one {\n    prompt "x"\n    max_tokens 10\n  }\n'


def test_format_range_over_two_tasks_covers_both():
    edit, _ = format_range(RANGE_SOURCE, "<input>", 4, 5)
    assert (edit.start_line, edit.end_line) == (3, 5)
    assert edit.new_text.startswith("  task one {") and edit.new_text.endswith('prompt "y"\n  }\n')


def test_format_range_on_a_workflow_clause_formats_the_workflow():
    edit, _ = format_range(RANGE_SOURCE, "<input>", 2, 2)
    assert (edit.start_line, edit.end_line) == (1, 9)
    assert edit.new_text.startswith("workflow w {\n  input a: text\n\n  task one {")


def test_format_range_top_level_declaration():
    edit, _ = format_range(RANGE_SOURCE, "<input>", 11, 11)
    assert (edit.start_line, edit.end_line) == (11, 11)
    assert edit.new_text == "model m {\n  context 8k\n}\n"


def test_format_range_on_blank_lines_and_broken_input():
    assert format_range(RANGE_SOURCE, "<input>", 10, 10) == (None, [])
    edit, diagnostics = format_range("workflow w {", "<input>", 1, 1)
    assert edit is None and diagnostics


def test_format_range_applied_equals_whole_file_formatting_for_that_part():
    edit, _ = format_range(RANGE_SOURCE, "<input>", 1, 11)
    lines = RANGE_SOURCE.splitlines(keepends=True)
    patched = "".join(lines[:edit.start_line - 1]) + edit.new_text + "".join(lines[edit.end_line:])
    assert patched == formatted(RANGE_SOURCE)


# ----------------------------------------------------------------------------------------------
# Generated programs (hypothesis)

MODELS = ["m-small", "m-large", "m3"]

separators = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", "\n\n\n   ", "\t", " # note\n",
                              "\n# own line\n", "  #trailing,with{braces}\n\n"])


@st.composite
def clause_tokens(draw, task_names: list[str]) -> list[str]:
    """One task clause as a list of tokens (whitespace goes between them)."""
    models = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=3, unique=True))
    model_list = ["["] + [t for i, m in enumerate(models) for t in ([","] if i else []) + [m]] + ["]"]
    options = [
        ["prompt", draw(st.sampled_from(['"Say {{ topic }}"', '"a\\tb \\"q\\""',
                                         '"""\n      Line one\n        two {{ topic }}\n    """']))],
        ["system", '"Be brief."'],
        ["max_tokens", draw(st.sampled_from(["300", "1k", "1_000"]))],
        ["temperature", "0.4"],
        ["priority", draw(st.sampled_from(["low", "high", "critical"]))],
        ["timeout", draw(st.sampled_from(["30s", "600ms", "2m"]))],
        ["retry", "3", "backoff", "exponential", "1s", "to", "20s"],
        ["on_error", "skip"],
        ["model", draw(st.sampled_from(MODELS))],
        ["route", "cascade"] + model_list,
        ["fallback"] + model_list,
        ["returns", "json", "{", '"type"', ":", '"object"', ",", '"required"', ":", "[", '"a"', "]", "}"],
        ["returns", "enum", "(", "YES", ",", "NO", ")"],
        ["budget", "$0.50"],
        ["quality", ">=", "0.7", "judged", "by", "m-large", "else", "refine", "max", "2"],
        ["consensus", "vote", "among"] + model_list + (["quorum", "1"]),
        ["best_of", "3"],
        ["needs", "code", ",", "writing"],
    ]
    if task_names:
        options.append(["depends"] + [t for i, n in enumerate(task_names) for t in ([","] if i else []) + [n]])
    chosen = draw(st.lists(st.sampled_from(range(len(options))), min_size=1, max_size=6, unique=True))
    return [token for i in chosen for token in options[i]]


@st.composite
def programs(draw) -> str:
    tokens: list[str] = []
    for name in MODELS:
        tokens += ["model", name, "{", "provider", "sim", "id", f'"{name}"', "context", "128k",
                   "price", "input", "$0.10", "output", "$0.40", "per", "1M",
                   "skills", "{", "code", "0.8", ",", "writing", "0.7", "}", "}"]
    tokens = ["provider", "sim", "{", "kind", "sim", "}"] + tokens
    tokens += ["workflow", "generated", "{", "input", "topic", ":", "text", "=", '"x"']
    if draw(st.booleans()):
        tokens += ["input", "items", ":", "list", "<", "text", ">", "=", "[", '"a"', ",", '"b"', "]"]
    names: list[str] = []
    for i in range(draw(st.integers(1, 4))):
        name = f"t{i}"
        header = ["task", name]
        if draw(st.booleans()):
            header += ["when", "(", "topic", "!=", '"y"', ")", "and", "not", "topic", "==", '"z"']
        body = ["{"] + draw(clause_tokens(list(names))) + ["}"]
        task = header + body
        if draw(st.booleans()):
            task = ["parallel", "{"] + task + ["}"]
        tokens += task
        names.append(name)
    tokens += ["output", names[-1], "}"]
    out = []
    for token in tokens:
        out.append(token)
        out.append(draw(separators))
    return "".join(out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_programs_format_idempotently_to_the_same_ir(text: str):
    once = formatted(text)
    assert formatted(once) == once
    assert ir_of(once, "<input>") == ir_of(text, "<input>")


def never_raises(text: str) -> None:
    out, diagnostics = format_source(text, "<fuzz>")
    if out is None:
        assert diagnostics, "None without a diagnostic"
    else:
        assert isinstance(out, str)
        assert format_source(out, "<fuzz>")[0] == out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(list('{}[]()"#\n ,.:=<>$-ab1k') + ["task ", "workflow ", '"""', "prompt "]),
                max_size=40).map("".join))
def test_random_input_never_raises(text: str):
    never_raises(text)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_contract_files_never_raise(spec_dir: Path, data):
    files = sorted(spec_dir.glob("*.bmad"))
    text = files[data.draw(st.integers(0, len(files) - 1))].read_text(encoding="utf-8")
    for _ in range(data.draw(st.integers(1, 3))):
        a = data.draw(st.integers(0, len(text)))
        b = data.draw(st.integers(a, min(len(text), a + 12)))
        action = data.draw(st.sampled_from(["delete", "insert", "duplicate"]))
        if action == "delete":
            text = text[:a] + text[b:]
        elif action == "insert":
            text = text[:a] + data.draw(st.sampled_from(["{", "}", "#", '"', '"""', "\n", " task x ", "[", ","])) + text[a:]
        else:
            text = text[:b] + text[a:b] + text[b:]
    never_raises(text)


# ----------------------------------------------------------------------------------------------
# The command line


def bmad(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "", "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "bmad", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_fmt_check_exit_codes(tmp_path: Path):
    canonical = tmp_path / "canonical.bmad"
    canonical.write_text((FIXTURES / "comments_kept.expected.bmad").read_text(encoding="utf-8"))
    messy = tmp_path / "messy.bmad"
    messy.write_text((FIXTURES / "comments_kept.bmad").read_text(encoding="utf-8"))
    broken = tmp_path / "broken.bmad"
    broken.write_text("workflow w {\n  task t {\n")

    ok = bmad("fmt", "--check", str(canonical))
    assert ok.returncode == 0, ok.stderr
    would_change = bmad("fmt", "--check", str(messy))
    assert would_change.returncode == 1 and "would reformat" in would_change.stderr
    assert messy.read_text() == (FIXTURES / "comments_kept.bmad").read_text()  # --check writes nothing
    bad = bmad("fmt", "--check", str(broken))
    assert bad.returncode == 1 and "error[BMAD-E" in bad.stderr and "Traceback" not in bad.stderr

    rewrite = bmad("fmt", str(messy))
    assert rewrite.returncode == 0, rewrite.stderr
    assert messy.read_text() == canonical.read_text()
    assert bmad("fmt", "--check", str(messy)).returncode == 0


def test_language_reference_formatting_example_holds(repo_root: Path):
    import re

    doc = (repo_root / "docs" / "language.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Formatting"):]
    before = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    after = re.search(r"```bmad\n(.*?)```", section, re.S).group(1)
    assert formatted(before) == after
