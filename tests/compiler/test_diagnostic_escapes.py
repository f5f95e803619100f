"""The diagnostics renderer never sends control characters from a user's file to the terminal:
they are shown as `\\x1b`-style escapes (the shared definition in compiler/terminal_text.py), with
the caret still under the right characters."""

from __future__ import annotations

from bmad.compiler.compile import compile_source
from bmad.compiler.diagnostics import Related, error, render_all_text, render_text
from bmad.compiler.ir import Span
from bmad.compiler.terminal_text import UNSAFE, terminal_safe

ESC_FILE = 'workflow w {\n  task t { prompt "x" } \x1b[31mRED @\n  output t\n}\n'


def assert_inert(rendered: str) -> None:
    assert not UNSAFE.search(rendered), repr(rendered)


def test_an_escape_sequence_in_the_quoted_line_is_shown_escaped():
    result = compile_source(ESC_FILE, "esc.bmad")
    rendered = render_all_text(result.diagnostics, result.sources)
    assert_inert(rendered)
    assert '2 |   task t { prompt "x" } \\x1b[31mRED @' in rendered
    assert "\n  |                         ^^^^\n" in rendered  # under the whole `\x1b`


def test_the_caret_stays_under_the_span_after_escaped_characters():
    text = 'a\x07b\x1bc bad\n'
    span = Span("f.bmad", 1, 7, 1, 10, 6, 9)  # `bad`
    rendered = render_text(error("BMAD-E001", span, "m", "h"), {"f.bmad": text})
    lines = rendered.splitlines()
    assert lines[2] == "1 | a\\x07b\\x1bc bad"
    caret = lines[3].index("^")
    assert lines[2][caret:caret + 3] == "bad" and lines[3].count("^") == 3


def test_tabs_are_still_expanded_not_escaped():
    text = '\tx\x1b y\n'
    span = Span("f.bmad", 1, 5, 1, 6, 4, 5)  # `y`
    lines = render_text(error("BMAD-E001", span, "m"), {"f.bmad": text}).splitlines()
    assert lines[2] == "1 |     x\\x1b y"
    assert lines[2][lines[3].index("^")] == "y"


def test_messages_hints_notes_and_paths_are_escaped():
    span = Span("a\x1b]0;t\x07.bmad", 1, 1, 1, 2, 0, 1)
    d = error("BMAD-E001", span, "unexpected `\x1b[2J`", "remove `\x9b`",
              [Related(Span("b\x07.bmad", 1, 1, 1, 1, 0, 0), "see \x1b")])
    for color in (False, True):
        rendered = render_text(d, {}, color=color)
        if color:  # the renderer's own colors are the only escapes left
            rendered = rendered.replace("\x1b[1m", "").replace("\x1b[0m", "").replace("\x1b[1;31m", "")
        assert_inert(rendered)
        assert "\\x1b[2J" in rendered and "\\x9b" in rendered and "b\\x07.bmad" in rendered


def test_a_yaml_control_character_is_shown_escaped():
    result = compile_source('id: n\ntasks:\n  - id: t\n    name: "a\x07b"\n', "ctrl.yaml")
    rendered = render_all_text(result.diagnostics, result.sources)
    assert_inert(rendered)
    assert '4 |     name: "a\\x07b"' in rendered


def test_form_feed_does_not_split_the_quoted_line():
    text = 'workflow w {\n  task t { prompt "a\x0cb" } @\n  output t\n}\n'
    result = compile_source(text, "ff.bmad")
    rendered = render_all_text(result.diagnostics, result.sources)
    assert '2 |   task t { prompt "a\\x0cb" } @' in rendered


def test_an_end_of_file_error_after_the_final_newline_still_shows_a_line_and_caret():
    result = compile_source('workflow w {\n  task a { prompt "x"\n', "eof.bmad")
    rendered = render_all_text(result.diagnostics, result.sources)
    assert "eof.bmad:3:1:" in rendered and "\n3 | \n  | ^\n" in rendered


def test_terminal_safe_keeps_tabs_and_newlines():
    assert terminal_safe("a\tb\nc\rd\x1b") == "a\tb\nc\\x0dd\\x1b"
