"""Realistic typos and half-finished edits get one plain-words diagnostic at the right place.

Each row is (source, code, "line:col", a phrase the message or the hint contains). The source is
what someone mid-edit would have on screen; the row pins the first error's code and position, the
words that explain it, and that the parser's recovery adds no second, cascading error.
"""

from __future__ import annotations

import pytest

from bmad.compiler.compile import compile_source
from bmad.compiler.diagnostics import render_all_text


def _wf(body: str) -> str:
    """A workflow `w` around `body` (already indented), ending in `output a`."""
    return "workflow w {\n" + body + "  output a\n}\n"


CASES = [
    # misspelt keywords, in every position: the block's code and a did-you-mean
    (_wf('  task a { prompt "x" }\n  outptu a\n'), "BMAD-E031", "3:3", "did you mean `output`?"),
    (_wf('  input x: text\n  tsak a { prompt "{{ x }}" }\n'), "BMAD-E031", "3:3", "did you mean `task`?"),
    (_wf('  task a {\n    prompt "x"\n    retyr 3\n  }\n'), "BMAD-E030", "4:5", "did you mean `retry`?"),
    (_wf('  task b { prompt "y" }\n  task a {\n    depends b\n    promt "x"\n  }\n'), "BMAD-E030", "5:5",
     "did you mean `prompt`?"),
    (_wf('  stratgy parallel\n  task a { prompt "x" }\n'), "BMAD-E031", "2:3", "did you mean `strategy`?"),
    ('model m {\n  provider p\n  price input $1 output $2 per 1M\n  contxt 128k\n}\n', "BMAD-E032", "4:3",
     "did you mean `context`?"),
    ('provider p {\n  kind openai\n  bse_url "http://localhost:1"\n}\n', "BMAD-E033", "3:3",
     "did you mean `base_url`?"),
    ('workflow w {\n  task a { prompt "x" }\n  output a\n}\nwrkflow v {\n}\n', "BMAD-E034", "5:1",
     "did you mean `workflow`?"),
    ('use std.code_review\nmodle m {\n}\n', "BMAD-E034", "2:1", "did you mean `model`?"),
    (_wf('  task a {\n    prompt "x"\n    quality >= 0.8 else refin max 2\n  }\n'), "BMAD-E004", "4:25",
     "did you mean `refine`?"),
    # the examples
    ('workflow w {\n  task a { prompt "x" }\n  output a\n', "BMAD-E006", "4:1", "the file ends before `}`"),
    ('use code_review\nworkflow w {\n  task a { prompt "x" }\n  output a\n}\n', "BMAD-E043", "1:5",
     "write `use std.code_review`"),
    (_wf('  input tone: text =\n  task a { prompt "{{ tone }}" }\n'), "BMAD-E049", "2:20",
     "expected a default value after `=`"),
    ('workflow w { task a { prompt "x" } output a }\nimport', "BMAD-E038", "2:7",
     "found the end of the file"),
    # something missing at the end of a line: point there, not at the next line
    (_wf('  input topic\n  task a { prompt "{{ topic }}" }\n'), "BMAD-E037", "2:9", "needs a type"),
    (_wf('  task a {\n    prompt\n  }\n'), "BMAD-E038", "3:5", "expected a string after `prompt`"),
    (_wf('  task a {\n    prompt\n    model gpt-4o\n  }\n'), "BMAD-E038", "3:5", 'prompt "..."'),
    (_wf('  about\n  task a { prompt "x" }\n'), "BMAD-E038", "2:3", "expected a string after `about`"),
    (_wf('  task a {\n    prompt "x"\n    retry\n  }\n'), "BMAD-E009", "4:5", "`retry 3`"),
    (_wf('  task a {\n    prompt "x"\n    max_tokens\n    temperature 0.2\n  }\n'), "BMAD-E009", "4:5",
     "expected a number after `max_tokens`"),
    (_wf('  task a {\n    prompt "x"\n    quality >=\n  }\n'), "BMAD-E009", "4:13",
     "expected a number after `quality >=`"),
    (_wf('  task a {\n    prompt "x"\n    quality >= judged by gpt-4o\n  }\n'), "BMAD-E009", "4:16",
     "score from 0 to 1"),
    (_wf('  budget\n  task a { prompt "x" }\n'), "BMAD-E009", "2:3", "`budget` needs an amount"),
    (_wf('  task a {\n    prompt "x"\n    priority\n  }\n'), "BMAD-E004", "4:5", "low, medium, high or critical"),
    ('workflow w {\n  task a { prompt "x" }\n  output\n}\n', "BMAD-E004", "3:3",
     "expected the name of a task after `output`"),
    (_wf('  task a {\n    depends\n    prompt "x"\n  }\n'), "BMAD-E004", "3:5", "names of tasks after `depends`"),
    (_wf('  task b { prompt "y" }\n  task a {\n    depends b,\n    prompt "x"\n  }\n'), "BMAD-E004", "4:14",
     "this `,` is not followed by another item"),
    (_wf('  task a\n    prompt "x"\n  }\n'), "BMAD-E036", "2:8", "expected `{` after `a`"),
    ('model m {\n  provider p\n  price input $1 output $2\n}\n', "BMAD-E041", "3:25", "per 1M"),
    # a clause at the wrong level (indented inside the block) vs. a missing `}` (not indented)
    (_wf('  task a {\n    input x: text\n    prompt "x"\n  }\n'), "BMAD-E030", "3:5",
     "`input` goes directly in a workflow: move it out of task `a`"),
    ('workflow w {\n  task a {\n    prompt "x"\n    budget $1\n    output a\n  }\n}\n', "BMAD-E030", "5:5",
     "move it out of task `a`"),
    (_wf('  task a {\n    prompt "x"\n    strategy parallel\n  }\n'), "BMAD-E030", "4:5", "`strategy` goes"),
    ('workflow w {\n  model m { provider p }\n  task a { prompt "x" }\n  output a\n}\n', "BMAD-E031", "2:3",
     "at the top level of the file"),
    ('workflow w {\n  parallel {\n    task a { prompt "x" }\n    output a\n  }\n}\n', "BMAD-E031", "4:5",
     "can't go in a `parallel` block"),
    ('task a {\n  prompt "x"\n}\n', "BMAD-E034", "1:1", "`workflow` declarations"),
    (_wf('  task a {\n    prompt "x"\n  task b { prompt "y" }\n'), "BMAD-E006", "4:3",
     "expected `}` to close task `a` opened at 2:3"),
    (_wf('  task a { prompt "x" }\n  }\n'), "BMAD-E004", "4:3", "closed workflow `w`"),
    # separators and brackets
    (_wf('  task b { prompt "y" }\n  task c { prompt "y" }\n  task a {\n    depends b c\n    prompt "x"\n  }\n'),
     "BMAD-E004", "5:15", "expected `,` before `c`"),
    (_wf('  task a {\n    prompt "x"\n    fallback [gpt-4o claude-sonnet]\n  }\n'), "BMAD-E004", "4:22",
     "expected `,` before `claude-sonnet`"),
    (_wf('  task a {\n    prompt "x"\n    fallback [gpt-4o, claude-sonnet\n  }\n'), "BMAD-E004", "4:23",
     "expected `]` to close the list opened at 4:14"),
    (_wf('  task a = review(code: "x"\n'), "BMAD-E004", "2:25", "expected `)` to close the call"),
    (_wf('  task a = review(code "x")\n'), "BMAD-E004", "2:24", "`name: value`"),
    (_wf('  input xs: list<text\n  task a { prompt "{{ xs }}" }\n'), "BMAD-E004", "2:18", "expected `>`"),
    (_wf('  input xs: list<text>\n  task a for each x xs { prompt "{{ x }}" }\n'), "BMAD-E004", "3:21",
     "expected `in` after `for each x`"),
    (_wf('  task a {\n    prompt "x"\n    returns json { "type": "object" "required": [] }\n  }\n'), "BMAD-E048",
     "4:37", "expected `,` before"),
    ('provider p {\n  kind openai\n  limits rpm 60\n}\n', "BMAD-E036", "3:10", "limits { rpm 500 }"),
    # habits from other languages
    (_wf('  task a {\n    prompt: "x"\n  }\n'), "BMAD-E004", "3:11", "without `:`"),
    (_wf('  strategy = parallel\n  task a { prompt "x" }\n'), "BMAD-E004", "2:12", "`strategy parallel`"),
    (_wf('  task a { prompt "x"; }\n'), "BMAD-E001", "2:22", "needs no `;`"),
    (_wf("  task a { prompt 'x' }\n"), "BMAD-E001", "2:19", "double quotes"),
    ('import models.bmad\nworkflow w {\n  task a { prompt "x" }\n  output a\n}\n', "BMAD-E038", "1:8",
     'import "file.bmad"'),
    # clauses with their main part missing
    (_wf('  task a {\n    prompt "x"\n    consensus vote [gpt-4o, claude-sonnet]\n  }\n'), "BMAD-E045", "4:20",
     "consensus vote among"),
    (_wf('  task a {\n    prompt "x"\n    route cascade []\n  }\n'), "BMAD-E024", "4:19", "list of models is empty"),
    (_wf('  input n: number\n  task a when n >= { prompt "x" }\n'), "BMAD-E049", "3:20", "needs a condition"),
    (_wf('  input topic: text\n  task a { prompt "about {{ topic" }\n'), "BMAD-E015", "3:26", "never closed"),
    (_wf('  task a {\n    prompt "x\n  }\n'), "BMAD-E002", "3:12", "never closed"),
    # tabs, CRLF line ends and a byte-order mark change nothing about positions
    (_wf('\ttask a {\n\t\tpromt "x"\n\t}\n'), "BMAD-E030", "3:3", "did you mean `prompt`?"),
    (_wf('  task a {\n    promt "x"\n  }\n').replace("\n", "\r\n"), "BMAD-E030", "3:5", "did you mean `prompt`?"),
    ("\ufeff" + _wf('  task a {\n    promt "x"\n  }\n'), "BMAD-E030", "3:5", "did you mean `prompt`?"),
]


@pytest.mark.parametrize("source, code, position, phrase", CASES,
                         ids=[f"{i:02d}-{c[1]}-{c[2]}" for i, c in enumerate(CASES)])
def test_mistake_gets_one_plain_words_error_at_the_right_place(source, code, position, phrase):
    result = compile_source(source, "t.bmad")
    errors = [d for d in result.diagnostics if d.is_error]
    shown = render_all_text(result.diagnostics, result.sources)
    assert errors, "no error reported"
    first = errors[0]
    assert (first.code, f"{first.span.line}:{first.span.column}") == (code, position), shown
    assert phrase in first.message or phrase in (first.hint or ""), shown
    assert first.hint, "every syntax error says what to do"
    assert len(errors) == 1, "recovery must not add cascading errors:\n" + shown


def test_the_table_is_big_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("source", [
    'workflow w {\n  output a\n  task a { prompt "x" }\n}\n',  # output before its task
    _wf('  task a {\n    prompt "x"\n    route cascade\n  }\n'),  # cascade over the catalog
    _wf('  task output { prompt "x" }\n  task a {\n    depends b,\n      output\n    prompt "y"\n  }\n'
        '  task b { prompt "z" }\n'),  # a task named like a keyword, on a continuation line
], ids=["output-first", "cascade-without-list", "keyword-named-task"])
def test_unusual_but_valid_layouts_still_compile(source):
    result = compile_source(source, "t.bmad")
    assert not [d for d in result.diagnostics if d.is_error], render_all_text(result.diagnostics, result.sources)


def test_a_keyword_read_as_a_name_keeps_the_rest_of_the_file():
    # the unfinished input is dropped, the task after it is kept, and nothing else is reported
    source = _wf('  input tone: text =\n  task a { prompt "x" }\n  task b { prompt "y" }\n')
    result = compile_source(source, "t.bmad")
    assert [d.code for d in result.diagnostics] == ["BMAD-E049"]
    assert [t.name for t in result.program.workflow("w").tasks] == ["a", "b"]


def test_a_non_ascii_letter_in_a_name_says_names_are_ascii():
    # Not "expected `:`": the name itself is the problem, and the hint offers the plain spelling.
    result = compile_source('workflow w {\n  input café: text\n  task a { prompt "x" }\n  output a\n}\n',
                            "id.bmad")
    [d] = result.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("BMAD-E001", 2, 12)
    assert d.message == "unexpected character `é` in a name"
    assert "ASCII" in d.hint and "`cafe` for `café`" in d.hint


def test_a_number_after_a_dot_is_one_error_and_the_rest_of_the_file_parses():
    # `a.items.0` in an expression: one E004 at the `0`, not a second one at the workflow's `}`
    # (the recovery used to drop the task's block and lose its way); the task after it is kept
    source = _wf('  task a { prompt "x" }\n  task b when a.items.0 == "z" { prompt "y" }\n'
                 '  task c { prompt "{{ b }}" }\n')
    result = compile_source(source, "t.bmad")
    [d] = [d for d in result.diagnostics if d.is_error]
    assert (d.code, d.span.line, d.span.column) == ("BMAD-E004", 3, 23)
    assert d.message == "unexpected `0`"
    assert [t.name for t in result.program.workflow("w").tasks] == ["a", "b", "c"]
