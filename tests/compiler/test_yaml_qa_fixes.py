"""YAML front-end fixes from the docs/YAML QA pass: merge keys with overrides, non-UTF-8 files
(BMAD-W050) and syntax errors at the end of the file."""

from __future__ import annotations

from bmad.compiler.compile import compile_source
from bmad.compiler.diagnostics import render_all_text
from bmad.compiler.yaml_frontend import lower_yaml

MERGE_OVERRIDE = """\
id: merge
tasks:
  - id: a
    name: A
    llm_requirements: &req { capabilities: [reasoning], max_tokens: 300 }
  - id: b
    name: B
    llm_requirements:
      <<: *req
      max_tokens: 100
"""


def task(program, name):
    [workflow] = program.workflows
    return next(t for t in workflow.tasks if t.name == name)


def test_an_explicit_key_overrides_a_merged_one_without_a_duplicate_key_error():
    program, diagnostics = lower_yaml(MERGE_OVERRIDE, "merge.yaml")
    assert diagnostics == []
    assert task(program, "a").max_tokens == 300
    assert task(program, "b").max_tokens == 100  # the key written in the mapping wins
    assert task(program, "b").needs == task(program, "a").needs  # the rest is merged in


def test_an_explicit_key_wins_even_when_written_before_the_merge():
    text = MERGE_OVERRIDE.replace("      <<: *req\n      max_tokens: 100\n",
                                  "      max_tokens: 100\n      <<: *req\n")
    program, diagnostics = lower_yaml(text, "merge.yaml")
    assert diagnostics == []
    assert task(program, "b").max_tokens == 100


def test_a_task_template_merged_with_its_own_id():
    text = """\
id: anch
tasks:
  - &t
    id: a
    name: A
    llm_requirements: { capabilities: [reasoning] }
  - <<: *t
    id: b
    dependencies: [a]
"""
    program, diagnostics = lower_yaml(text, "anchors.yaml")
    assert diagnostics == []
    assert [t.name for t in program.workflows[0].tasks] == ["a", "b"]
    assert task(program, "b").about == "A"


def test_the_earlier_mapping_of_a_merge_list_wins():
    text = """\
id: m
defaults: &x { max_tokens: 10 }
tasks:
  - id: a
    name: A
    llm_requirements:
      <<: [{ max_tokens: 20 }, { max_tokens: 30, temperature: 0.5 }]
"""
    program, diagnostics = lower_yaml(text.replace("defaults: &x { max_tokens: 10 }\n", ""), "m.yaml")
    assert diagnostics == []
    assert task(program, "a").max_tokens == 20
    assert task(program, "a").temperature == 0.5


def test_a_key_written_twice_in_the_mapping_itself_is_still_a_duplicate():
    text = MERGE_OVERRIDE + "      max_tokens: 50\n"
    program, diagnostics = lower_yaml(text, "merge.yaml")
    assert program is None
    [d] = diagnostics
    assert d.code == "BMAD-E094"
    assert (d.span.line, d.span.column) == (11, 7)
    assert [(r.span.line, r.span.column) for r in d.related] == [(10, 7)]  # not the anchor's key


def test_merge_keys_in_outputs_are_overridden_not_duplicated():
    text = """\
id: o
tasks:
  - id: a
    name: A
    outputs: &out { summary: text, score: number }
  - id: b
    name: B
    outputs:
      <<: *out
      score: integer
"""
    program, diagnostics = lower_yaml(text, "o.yaml")
    assert diagnostics == []
    schema = task(program, "b").returns.schema
    assert schema["properties"]["score"] == {"type": "integer"}
    assert list(schema["properties"]) == ["summary", "score"]


def test_a_merge_of_a_scalar_is_a_type_error_not_a_crash():
    text = "id: s\ntasks:\n  - id: a\n    name: A\n    llm_requirements:\n      <<: 3\n"
    program, diagnostics = lower_yaml(text, "s.yaml")
    assert program is None
    assert [d.code for d in diagnostics] == ["BMAD-E083"]
    assert (diagnostics[0].span.line, diagnostics[0].span.column) == (6, 11)


def test_non_utf8_yaml_gets_the_same_warning_as_a_bmad_file():
    data = 'id: lat\ntasks:\n  - id: t\n    name: "caf\xe9"\n'.encode("latin-1")
    result = compile_source(data, "latin1.yaml")
    [d] = result.diagnostics
    assert (d.code, d.severity, d.message) == ("BMAD-W050", "warning", "this file is not valid UTF-8")
    assert (d.span.file, d.span.line, d.span.column) == ("latin1.yaml", 4, 15)
    assert d.hint == "invalid bytes were read as U+FFFD; save the file as UTF-8"
    assert result.program is not None  # a warning, as for .bmad files

    bmad = compile_source('workflow w {\n  task t { prompt "caf\xe9" }\n  output t\n}\n'.encode("latin-1"),
                          "lat.bmad")
    [b] = bmad.diagnostics
    assert (b.code, b.message, b.hint) == (d.code, d.message, d.hint)


def test_the_utf8_warning_counts_characters_not_bytes_and_skips_a_bom():
    data = "\ufeffid: lat\r\ntasks:\r\n  - id: t\r\n    name: \"é ".encode("utf-8") + b"\xe9\"\r\n"
    result = compile_source(data, "bom.yaml")
    [d] = [d for d in result.diagnostics if d.code == "BMAD-W050"]
    assert (d.span.line, d.span.column) == (4, 14)  # `é` is one character though two bytes
    assert result.sources["bom.yaml"][d.span.start] == "\ufffd"


def test_the_utf8_warning_counts_characters_in_a_bmad_file_too():
    data = 'workflow w {\n  task a { prompt "café '.encode("utf-8") + b'\xe9" }\n  output a\n}\n'
    result = compile_source(data, "w.bmad")
    [d] = [d for d in result.diagnostics if d.code == "BMAD-W050"]
    assert (d.span.line, d.span.column) == (2, 25)  # not 26: `é` is one character
    assert result.sources["w.bmad"][d.span.start] == "\ufffd"


def test_valid_utf8_yaml_has_no_encoding_warning():
    result = compile_source('id: x\ntasks:\n  - id: t\n    name: "café"\n'.encode("utf-8"), "ok.yaml")
    assert result.diagnostics == []


def test_a_syntax_error_at_the_end_of_the_file_is_shown_on_the_last_line():
    text = "id: a\ntasks:\n  - id: t\n    name: [unclosed\n"
    result = compile_source(text, "badyaml.yaml")
    [d] = result.diagnostics
    assert d.code == "BMAD-E080"
    assert (d.span.line, d.span.column) == (4, 20)  # just after `[unclosed`, not line 5
    rendered = render_all_text(result.diagnostics, result.sources)
    assert "4 |     name: [unclosed\n  |                    ^" in rendered


def test_a_syntax_error_at_the_end_of_a_file_without_a_final_newline():
    text = "id: a\ntasks:\n  - id: t\n    name: [unclosed\n\n\n"
    [d] = compile_source(text, "badyaml.yaml").diagnostics
    assert (d.span.line, d.span.column) == (4, 20)
    [d] = compile_source(text.rstrip("\n"), "badyaml.yaml").diagnostics
    assert (d.span.line, d.span.column) == (4, 20)
