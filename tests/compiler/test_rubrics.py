"""Named rubrics: `rubric NAME "text"` declarations (in your files, their imports and `use`d stdlib
modules) and `quality >= X rubric NAME`, resolved when the program is loaded into `Quality.rubric`
(the runtime reads only that) with the name kept in `Quality.rubric_name`; E110 and E126."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import bmad
from bmad.compiler.compile import compile_file, compile_source
from bmad.compiler.format import format_source
from bmad.compiler.load import stdlib_unit

STD_RUBRICS = ("general", "factual", "grounded", "complete", "code", "clarity", "concise", "safety")


def quality_of(result, task: str, workflow: str = "w"):
    return result.program.workflow(workflow).task(task).quality


def errors(result) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in result.diagnostics if d.is_error]


def test_a_rubric_declared_in_the_file_is_resolved_to_its_text():
    result = compile_source('rubric terse "At most three sentences."\n'
                            'workflow w {\n'
                            '  task a { prompt "Summarise." quality >= 0.8 rubric terse else refine max 1 }\n'
                            '  task b { prompt "Summarise." quality >= 0.7 rubric "Spelled out." }\n'
                            '  output a\n  output b\n}\n', "x.bmad")
    assert errors(result) == []
    a, b = quality_of(result, "a"), quality_of(result, "b")
    assert (a.rubric, a.rubric_name, a.threshold, a.otherwise, a.rounds) == \
        ("At most three sentences.", "terse", 0.8, "refine", 1)
    assert (b.rubric, b.rubric_name) == ("Spelled out.", None)


def test_use_std_quality_brings_its_eight_rubrics():
    unit = stdlib_unit("quality")
    assert tuple(r.name for r in unit.rubrics) == STD_RUBRICS
    tasks = "\n".join(f'  task t_{n} {{ prompt "p" quality >= 0.8 rubric {n} }}' for n in STD_RUBRICS)
    outputs = "\n".join(f"  output t_{n}" for n in STD_RUBRICS)
    result = compile_source(f"use std.quality\nworkflow w {{\n{tasks}\n{outputs}\n}}\n", "x.bmad")
    assert errors(result) == []
    texts = {r.name: r.text for r in unit.rubrics}
    for name in STD_RUBRICS:
        quality = quality_of(result, f"t_{name}")
        assert quality.rubric == texts[name] and quality.rubric_name == name
    assert texts["grounded"].startswith("Every claim is supported by the given sources")


def test_the_std_rubrics_are_the_ones_its_judges_are_told_about():
    text = (Path(bmad.__file__).parent / "stdlib" / "quality.bmad").read_text(encoding="utf-8")
    for rubric in stdlib_unit("quality").rubrics:
        described = re.search(rf"^\s*{rubric.name}: (.+)$", text, re.M)
        assert described is not None, rubric.name
        assert described.group(1).rstrip(".").lower() == rubric.text.rstrip(".").lower()


def test_your_rubric_replaces_the_stdlib_one_of_the_same_name():
    result = compile_source('use std.quality\nrubric grounded "Only what the ticket says."\n'
                            'workflow w { task a { prompt "p" quality >= 0.8 rubric grounded } output a }\n', "x.bmad")
    assert errors(result) == []
    assert quality_of(result, "a").rubric == "Only what the ticket says."


def test_rubrics_from_an_imported_file(tmp_path):
    (tmp_path / "rubrics.bmad").write_text('rubric cited """\n  Every claim names its source.\n"""\n')
    main = tmp_path / "main.bmad"
    main.write_text('import "rubrics.bmad"\n'
                    'workflow w { task a { prompt "p" quality >= 0.8 rubric cited } output a }\n')
    result = compile_file(main)
    assert errors(result) == []
    assert quality_of(result, "a").rubric == "Every claim names its source."


def test_an_unknown_name_is_e110_with_did_you_mean():
    text = 'use std.quality\nworkflow w { task a { prompt "p" quality >= 0.8 rubric groundd } output a }\n'
    result = compile_source(text, "x.bmad")
    [problem] = [d for d in result.diagnostics if d.is_error]
    assert problem.code == "BMAD-E110" and problem.message == "no rubric named `groundd`"
    assert problem.hint == "did you mean `grounded`?"
    assert text[problem.span.start:problem.span.end] == "groundd"
    assert (problem.span.line, problem.span.column) == (2, 56)


def test_a_std_name_without_the_use_says_which_use_brings_it():
    result = compile_source('workflow w { task a { prompt "p" quality >= 0.8 rubric safety } output a }\n', "x.bmad")
    [problem] = [d for d in result.diagnostics if d.is_error]
    assert problem.code == "BMAD-E110" and "`use std.quality`" in problem.hint
    other = compile_source('workflow w { task a { prompt "p" quality >= 0.8 rubric house } output a }\n', "x.bmad")
    [problem] = [d for d in other.diagnostics if d.is_error]
    assert problem.code == "BMAD-E110" and 'rubric house "' in problem.hint


def test_a_rubric_declared_twice_is_e126():
    text = ('rubric terse "At most three sentences."\nrubric terse "Two sentences."\n'
            'workflow w { task a { prompt "p" quality >= 0.8 rubric terse } output a }\n')
    result = compile_source(text, "x.bmad")
    [problem] = [d for d in result.diagnostics if d.is_error]
    assert problem.code == "BMAD-E126" and problem.message == "rubric `terse` is defined twice"
    assert (problem.span.line, problem.span.column) == (2, 8)
    assert problem.related[0].span.line == 1


def test_a_rubric_with_a_bad_string_or_no_text_is_a_syntax_error():
    assert any(d.code.startswith("BMAD-E0") for d in compile_source('rubric terse\nworkflow w { }\n', "x.bmad").diagnostics)
    assert not compile_source('rubric terse "x"\n', "x.bmad").errors  # a file of rubrics alone is fine


def test_the_formatter_lays_rubrics_out_and_keeps_the_ir():
    text = ('use std.quality\nrubric   terse   "Short."\nrubric  cited """\n      Cite.\n   """\n'
            'workflow w { task a { prompt "p" quality >= 0.8 rubric   terse } output a }\n')
    formatted, problems = format_source(text, "x.bmad")
    assert problems == []
    assert 'use std.quality\n\nrubric terse "Short."\nrubric cited """\n  Cite.\n"""\n\nworkflow w {' in formatted
    assert "    quality >= 0.8 rubric terse\n" in formatted
    assert format_source(formatted, "x.bmad")[0] == formatted
    before, after = compile_source(text, "x.bmad"), compile_source(formatted, "x.bmad")
    assert quality_of(before, "a").rubric == quality_of(after, "a").rubric == "Short."


def test_a_named_rubric_reaches_a_run_on_sim(tmp_path):
    (tmp_path / "w.bmad").write_text('use std.quality\n\nworkflow w {\n  task a {\n    prompt "Summarise bees."\n'
                                     '    quality >= 0.8 rubric concise else refine max 1\n  }\n\n  output a\n}\n')
    run = subprocess.run([sys.executable, "-m", "bmad", "run", "w.bmad", "--provider", "sim", "--sim-latency-scale",
                          "0", "--journal", "runs.db"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
