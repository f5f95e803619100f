"""BMAD-E147 also catches the call arguments whose misfit a literal makes certain: `null` for an
input that isn't `json` (the call would fail at run time with BMAD-E330, as `--input` and batch
rows refuse null), and a list literal whose later item doesn't fit `list<T>` (a list literal was
typed by its first item only, so `["a", 1]` passed for `list<text>`). Before, `check` was clean
and the run passed the value on."""

from __future__ import annotations

from bmad.compiler.compile import compile_source

CALLEE = """workflow callee {
  input g: text
  input n: number = 3
  input tags: list<text> = []
  input extra: json = {}
  input rows: list<json> = []
  task t {
    prompt "{{ g }} {{ n }} {{ tags }} {{ extra }} {{ rows }}"
  }
  output t
}
"""


def errors(call: str) -> list:
    source = CALLEE + f"""
workflow caller {{
  task c = {call}
  output c
}}
"""
    result = compile_source(source, "calls.bmad")
    return [d for d in result.diagnostics if d.is_error]


def test_null_for_a_text_input_is_an_error():
    [d] = errors('callee(g: null)')
    assert d.code == "BMAD-E147"
    assert d.message == "argument `g` of `callee` is text, but `null` is null"
    assert "pass text" in d.hint
    assert (d.span.line, d.span.column) == (14, 22)


def test_null_for_an_input_with_a_default_says_to_leave_it_out():
    [d] = errors('callee(g: "x", n: null)')
    assert d.code == "BMAD-E147"
    assert d.message == "argument `n` of `callee` is a number, but `null` is null"
    assert "leave the argument out to use the default" in d.hint


def test_a_list_literal_with_a_misfit_later_item_is_an_error():
    [d] = errors('callee(g: "x", tags: ["a", 1])')
    assert d.code == "BMAD-E147"
    assert d.message == ("argument `tags` of `callee` is a list of text, but `[\"a\", 1]` holds "
                         "`1`, which is a number")


def test_null_fits_json_and_a_mixed_list_fits_list_of_json():
    assert errors('callee(g: "x", extra: null, rows: [1, "a", null, {"k": 2}])') == []


def test_references_are_left_to_the_run():
    # A reference's value is known only at run time (BMAD-E330 then); no error here.
    source = CALLEE + """
workflow caller {
  input r: json
  task c = callee(g: r.missing, n: r.n)
  output c
}
"""
    assert [d for d in compile_source(source, "calls.bmad").diagnostics if d.is_error] == []
