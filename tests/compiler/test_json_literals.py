"""JSON object literals in expressions: input defaults, `when`, call arguments and list items.

They lower to one `ir.Literal` holding the plain dict, are type-checked where they are used,
survive the IR's JSON form, and plan; an input default must be a value (BMAD-E023).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bmad.compiler import ir, ir_codec
from bmad.compiler.compile import compile_source
from bmad.compiler.passes import check_plan

CONFIG = '{ "depth": 2, "ratio": -0.5, "big": 1e3, "tags": ["a", { "x": null }], "deep": { "on": true } }'
CONFIG_VALUE = {"depth": 2, "ratio": -0.5, "big": 1000.0, "tags": ["a", {"x": None}], "deep": {"on": True}}

PROGRAM = f"""workflow child {{
  input settings: json
  task work {{
    prompt "Work with {{{{ settings }}}}."
  }}
  output work
}}

workflow main {{
  input config: json = {CONFIG}
  input pages: list<json> = [{{ "path": "/" }}, {{}}]
  input mode: text = "fast"

  task gate when config != {{}} and mode in ["fast"] {{
    prompt "Use {{{{ config }}}} on {{{{ pages }}}}."
  }}

  task call = child(settings: {{ "depth": 3, "tags": [] }})

  output gate
  output call
}}
"""


def compiled(text: str):
    return compile_source(text, "t.bmad")


def codes(text: str) -> list[str]:
    return [d.code for d in compiled(text).diagnostics]


def workflow_named(program: ir.Program, name: str) -> ir.Workflow:
    return next(w for w in program.workflows if w.name == name)


def one_input(type_and_default: str) -> str:
    return f"workflow w {{\n  input x: {type_and_default}\n  task t {{\n    prompt \"{{{{ x }}}}\"\n  }}\n  output t\n}}\n"


# -- lowering --------------------------------------------------------------------------------


def test_object_default_lowers_to_one_literal_with_its_span():
    result = compiled(PROGRAM)
    assert result.ok, result.diagnostics
    main = workflow_named(result.program, "main")
    config = main.inputs[0].default
    assert isinstance(config, ir.Literal)
    assert config.value == CONFIG_VALUE
    assert (config.span.line, config.span.column) == (10, 24)
    assert config.span.end - config.span.start == len(CONFIG)


def test_objects_inside_lists_conditions_and_arguments():
    main = workflow_named(compiled(PROGRAM).program, "main")
    pages = main.inputs[1].default
    assert isinstance(pages, ir.ListExpr)
    assert [item.value for item in pages.items] == [{"path": "/"}, {}]
    gate, call = main.tasks
    comparison = gate.when.left
    assert comparison.op == "!=" and comparison.right == ir.Literal({}, comparison.right.span)
    [argument] = call.call.arguments
    assert argument.value.value == {"depth": 3, "tags": []}


def test_the_ir_json_form_keeps_objects_and_reads_back():
    program = compiled(PROGRAM).program
    text = ir_codec.dumps(program)
    assert json.loads(text)  # plain JSON
    assert ir_codec.dumps(ir_codec.loads(text)) == text


def test_a_program_with_objects_plans():
    program = compiled(PROGRAM).program
    assert [d for d in check_plan(program) if d.is_error] == []


# -- type checks of defaults -----------------------------------------------------------------


@pytest.mark.parametrize("declaration", [
    f"json = {CONFIG}",
    "json = {}",
    'json = ["a", 1, { "k": [true] }]',
    'json = "plain text is JSON too"',
    'list<json> = [{ "a": 1 }, { "b": [2] }]',
    "list<number> = [1, 2]",
])
def test_defaults_that_fit_their_type(declaration):
    result = compiled(one_input(declaration))
    assert result.ok, result.diagnostics


@pytest.mark.parametrize("declaration", [
    'number = { "a": 1 }',
    'text = { "a": 1 }',
    "bool = {}",
    'list<text> = [{ "a": 1 }]',
    'list<number> = ["one", 2]',
])
def test_defaults_of_the_wrong_type(declaration):
    assert "BMAD-E149" in codes(one_input(declaration))


@pytest.mark.parametrize("declaration, item", [
    ('list<text> = ["a", 1]', "1"),
    ('list<text> = ["a", { "b": 2 }]', '{ "b": 2 }'),
    ('list<list<number>> = [[1], [2, "x"]]', '"x"'),
])
def test_every_item_of_a_list_default_is_checked(declaration, item):
    text = one_input(declaration)
    [diagnostic] = [d for d in compiled(text).diagnostics if d.code == "BMAD-E149"]
    assert text[diagnostic.span.start:diagnostic.span.end] == item


def test_messages_show_objects_as_json():
    [diagnostic] = [d for d in compiled(one_input('number = { "a": [true, null] }')).diagnostics
                    if d.code == "BMAD-E149"]
    assert '`{"a": [true, null]}`' in diagnostic.message


@pytest.mark.parametrize("declaration, shown", [
    ("text = mode", "mode"),
    ("bool = not true", "not true"),
    ('list<text> = ["a", mode]', "mode"),
    ("number = 1 == 1", "1 == 1"),
])
def test_a_default_must_be_a_value(declaration, shown):
    text = "workflow w {\n  input mode: text = \"a\"\n" + one_input(declaration).split("\n", 1)[1]
    result = compiled(text)
    [diagnostic] = [d for d in result.diagnostics if d.code == "BMAD-E023"]
    assert "input `x` must be a value" in diagnostic.message
    assert text[diagnostic.span.start:diagnostic.span.end] == shown


# -- JSON rules inside objects ---------------------------------------------------------------


def test_duplicate_key_in_an_object():
    [diagnostic] = [d for d in compiled(one_input('json = { "a": 1, "a": 2 }')).diagnostics
                    if d.code == "BMAD-E018"]
    assert "`a` is written twice" in diagnostic.message


@pytest.mark.parametrize("declaration, code", [
    ("json = { a: 1 }", "BMAD-E047"),  # keys are quoted
    ('json = { "a": 1, }', "BMAD-E047"),  # no trailing comma
    ('json = { "a": x }', "BMAD-E048"),  # values are JSON, not names
    ('json = { "a": 200k }', "BMAD-E048"),  # nor bmad counts
])
def test_objects_are_written_as_json(declaration, code):
    assert codes(one_input(declaration))[:1] == [code]


def test_an_object_is_never_a_boolean_condition():
    text = "workflow w {\n  task t when { \"a\": 1 } {\n    prompt \"x\"\n  }\n  output t\n}\n"
    assert "BMAD-E145" in codes(text)


@pytest.mark.parametrize("header, hint", [
    ("task t when {", "`when` needs a condition"),
    ("task t for each x in {", "`for each X in` needs a list"),
])
def test_a_missing_condition_points_at_the_task_brace(header, hint):
    text = f"workflow w {{\n  {header}\n    prompt \"x\"\n  }}\n}}\n"
    [first, *_] = compiled(text).diagnostics
    assert first.code == "BMAD-E049"
    assert (first.span.line, first.span.column) == (2, len(header) + 2)
    assert hint in first.hint


# -- the command line and the formatter ------------------------------------------------------


def test_bmad_check_accepts_objects(tmp_path):
    path = tmp_path / "objects.bmad"
    path.write_text(PROGRAM)
    run = subprocess.run([sys.executable, "-m", "bmad", "check", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "no problems" in run.stderr


def ir_without_layout(text: str) -> dict:
    """The IR without spans or the source files' hashes (both follow the layout)."""
    data = json.loads(ir_codec.dumps(compiled(text).program, spans=False))
    for source in data["files"]:
        source.pop("sha256", None)
    return data


def test_the_formatter_lays_out_objects():
    from bmad.compiler.format import format_source

    formatted, diagnostics = format_source(PROGRAM, "t.bmad")
    assert diagnostics == [] and formatted is not None
    assert '"tags": ["a", { "x": null }],' in formatted
    again, _ = format_source(formatted, "t.bmad")
    assert again == formatted
    assert ir_without_layout(formatted) == ir_without_layout(PROGRAM)
