"""BMAD-E132: the `when` of a `for each` task is evaluated once, before the items, so it can't
read the loop variable. It used to pass `bmad check` and fail the run ("`x` is not an input, loop
variable or task output here", no code, no location)."""

from __future__ import annotations

from pathlib import Path

from bmad.compiler.compile import compile_file
from bmad.compiler.diagnostics import render_text

CATALOG = """provider p { kind sim }
model m { provider p  price input $1 output $1 per 1M  skills { writing 0.9 } }
"""


def diagnose(tmp_path: Path, body: str):
    path = tmp_path / "w.bmad"
    path.write_text(CATALOG + body, encoding="utf-8")
    result = compile_file(path)
    return [d for d in result.diagnostics if d.is_error]


def test_a_loop_variable_in_when_is_an_error_at_its_use(tmp_path):
    errors = diagnose(tmp_path, """workflow w {
  input xs: list<text> = ["a", "b", "c"]
  task t for each x in xs when x != "b" { prompt "item {{ x }}" }
  task u for each x in xs when xs != [] { prompt "item {{ x }}" }
  output t
  output u
}
""")
    # only `t`: a `when` on the list itself (or anything but the item) is fine
    assert [d.code for d in errors] == ["BMAD-E132"]
    [e] = errors
    assert (e.span.line, e.span.column, e.span.end_column) == (5, 32, 33)
    assert "loop variable `x`" in e.message and "once for the whole task, before the items" in e.message
    assert "filter the list before" in e.hint
    shown = render_text(e, {e.span.file: (tmp_path / "w.bmad").read_text(encoding="utf-8")})
    assert "error[BMAD-E132]" in shown and "w.bmad:5:32" in shown and "^" in shown


def test_the_first_use_is_pointed_at_even_inside_a_larger_condition(tmp_path):
    errors = diagnose(tmp_path, """workflow w {
  input go: bool = true
  input xs: list<json> = [{ "n": 1 }]
  task t for each x in xs when go and (x.n > 0 or x.n < -5) { prompt "item {{ x }}" }
  output t
}
""")
    assert [(d.code, d.span.line, d.span.column) for d in errors] == [("BMAD-E132", 6, 40)]


def test_a_loop_variable_that_hides_an_input_is_still_the_item_in_when(tmp_path):
    errors = diagnose(tmp_path, """workflow w {
  input x: text = "b"
  input xs: list<text> = ["a", "b"]
  task t for each x in xs when x == "b" { prompt "item {{ x }}" }
  output t
}
""")
    assert [d.code for d in errors] == ["BMAD-E132"]
