"""Diagnostics end to end: exact ranges and codes, cleared when fixed, imports re-checked."""

from __future__ import annotations

import pytest
from lsprotocol import types


pytestmark = pytest.mark.asyncio(loop_scope="module")

UNKNOWN_REF = """\
workflow w {
  task summary {
    prompt "hi"
  }
  task next {
    prompt "{{ summry }}"
  }
  output next
}
"""

MAIN = """\
import "models.bmad"

workflow main {
  input text: text
  task digest {
    prompt "Summarize {{ text }}"
    model fast
  }
  output digest
}
"""


async def test_broken_file_reports_exact_range_and_code_then_clears_when_fixed(client, editor, at):
    _, uri = editor.write("unknown.bmad", UNKNOWN_REF)
    editor.open(uri, UNKNOWN_REF, 1)
    diagnostics = await editor.diagnostics(uri, 1)
    assert [(d.code, d.range) for d in diagnostics] == [("BMAD-E101", at.range((5, 15), (5, 21)))]
    d = diagnostics[0]
    assert d.severity == types.DiagnosticSeverity.Error
    assert d.source == "bmad"
    assert d.message.startswith("`summry` is not defined in the prompt of task `next`")
    assert "help: did you mean `summary`?" in d.message

    # fix the typo with an incremental edit: `summry` -> `summary`
    editor.edit(uri, 2, (5, 15), (5, 21), "summary")
    assert await editor.diagnostics(uri, 2) == []


async def test_syntax_error_is_positioned_and_says_what_is_missing(client, editor, at):
    text = 'workflow w {\n  task a {\n    prompt "x"\n\n  output a\n}\n'
    _, uri = editor.write("unclosed.bmad", text)
    editor.open(uri, text, 1)
    diagnostics = await editor.diagnostics(uri, 1)
    assert [d.code for d in diagnostics] == ["BMAD-E006"]
    assert diagnostics[0].range == at.range((4, 2), (4, 8))
    assert "expected `}` to close task `a`" in diagnostics[0].message


async def test_semantic_diagnostics_match_bmad_check(client, editor, at):
    text = 'workflow w {\n  task a {\n    prompt "{{ b }}"\n  }\n  task b {\n    prompt "{{ a }}"\n  }\n  output a\n}\n'
    _, uri = editor.write("cycle.bmad", text)
    editor.open(uri, text, 1)
    diagnostics = await editor.diagnostics(uri, 1)
    assert [d.code for d in diagnostics] == ["BMAD-E130"]
    assert "dependency cycle: a -> b -> a" in diagnostics[0].message


async def test_only_the_newest_version_is_published_after_a_burst(client, editor, at):
    _, uri = editor.write("burst.bmad", UNKNOWN_REF)
    editor.open(uri, UNKNOWN_REF, 1)
    await editor.diagnostics(uri, 1)
    # five quick edits: retype the name one character at a time, ending fixed
    text = UNKNOWN_REF
    for version, name in enumerate(["s", "su", "summ", "summar", "summary"], start=2):
        text = UNKNOWN_REF.replace("summry }}", f"{name} }}}}")
        editor.replace_all(uri, text, version)
    assert await editor.diagnostics(uri, 6) == []
    versions = [p.version for p in client.published if p.uri == uri]
    assert versions == sorted(versions)  # never an older version after a newer one


async def test_error_in_an_imported_file_shows_on_the_import(client, editor, at, models_bmad):
    editor.write("models.bmad", models_bmad.replace("api_key env OPENAI_API_KEY", 'api_key "sk-live-123"'))
    _, uri = editor.write("main.bmad", MAIN)
    editor.open(uri, MAIN, 1)
    diagnostics = await editor.diagnostics(uri, 1)
    assert [d.code for d in diagnostics] == ["BMAD-E013"]
    assert diagnostics[0].range == at.range((0, 7), (0, 20))  # the "models.bmad" string
    assert diagnostics[0].message.startswith("in models.bmad:3:")
    assert diagnostics[0].related_information[0].location.uri.endswith("/models.bmad")


async def test_dependents_are_rechecked_when_an_imported_file_changes(client, editor, at, models_bmad):
    _, models_uri = editor.write("models.bmad", models_bmad)
    _, main_uri = editor.write("main.bmad", MAIN)
    editor.open(models_uri, models_bmad, 1)
    editor.open(main_uri, MAIN, 1)
    assert await editor.diagnostics(main_uri, 1) == []
    assert await editor.diagnostics(models_uri, 1) == []

    # rename the model in the (unsaved) imported buffer: main.bmad now pins an unknown model
    mark = editor.mark()
    editor.replace_all(models_uri, models_bmad.replace("model fast", "model quick"), 2)
    await editor.diagnostics(models_uri, 2)
    diagnostics = await editor.next_diagnostics(main_uri, mark)
    assert [d.code for d in diagnostics] == ["BMAD-E103"]
    assert diagnostics[0].range == at.range((6, 10), (6, 14))

    # and back: main is clean again
    mark = editor.mark()
    editor.replace_all(models_uri, models_bmad, 3)
    await editor.diagnostics(models_uri, 3)
    assert await editor.next_diagnostics(main_uri, mark) == []



async def test_an_infeasible_budget_is_reported_like_bmad_check(client, editor, at, budget_bmad):
    from bmad.cli.check_cmd import check_files

    path, uri = editor.write("budget.bmad", budget_bmad)
    expected, _sources, _usage = check_files([str(path)])
    assert any(d.code.startswith("BMAD-E2") for d in expected)
    editor.open(uri, budget_bmad, 1)
    code = next(d.code for d in expected if d.code.startswith("BMAD-E2"))
    diagnostics = await editor.diagnostics_with(uri, 1, code)
    assert sorted((d.code, d.range.start.line + 1, d.range.start.character + 1) for d in diagnostics) == sorted(
        (d.code, d.span.line, d.span.column) for d in expected)
