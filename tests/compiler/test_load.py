"""Loading: imports relative to the importer, cycles, missing files, the stdlib, the catalog."""

from __future__ import annotations

import hashlib

import pytest

from bmad.compiler.compile import compile_file, compile_source

MODELS = 'provider p { kind openai api_key env K }\nmodel m { provider p }\n'


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_import_is_relative_to_the_importing_file(tmp_path, monkeypatch):
    write(tmp_path, "lib/models.bmad", MODELS)
    write(tmp_path, "lib/shared.bmad", 'import "models.bmad"\nworkflow helper { task t { prompt "x" } output t }\n')
    write(tmp_path, "main.bmad", 'import "lib/shared.bmad"\nworkflow w { task t { prompt "x" model m } output t }\n')
    monkeypatch.chdir(tmp_path)
    result = compile_file("main.bmad")
    assert result.ok, result.diagnostics
    p = result.program
    assert [(f.path, f.role) for f in p.files] == [
        ("main.bmad", "main"), ("lib/models.bmad", "import"), ("lib/shared.bmad", "import"),
        ("<std>/models.bmad", "stdlib")]
    assert [w.name for w in p.workflows] == ["helper", "w"] and p.entry == "w"
    assert {i.path: i.resolved for i in p.imports} == {
        "models.bmad": str(tmp_path / "lib/models.bmad"), "lib/shared.bmad": str(tmp_path / "lib/shared.bmad")}
    assert p.model("m").span.file == "lib/models.bmad"
    assert p.files[0].sha256 == hashlib.sha256((tmp_path / "main.bmad").read_bytes()).hexdigest()
    assert set(result.sources) == {"main.bmad", "lib/models.bmad", "lib/shared.bmad", "<std>/models.bmad"}


def test_diamond_imports_load_each_file_once(tmp_path):
    write(tmp_path, "m.bmad", MODELS)
    write(tmp_path, "a.bmad", 'import "m.bmad"\n')
    write(tmp_path, "b.bmad", 'import "m.bmad"\n')
    main = write(tmp_path, "main.bmad", 'import "a.bmad"\nimport "b.bmad"\nworkflow w { }\n')
    result = compile_file(main)
    assert not result.errors
    assert [m.name for m in result.program.models] == ["m", "local"]


def test_import_cycle_points_at_the_import_line(tmp_path):
    write(tmp_path, "a.bmad", '# a\nimport "b.bmad"\n')
    write(tmp_path, "b.bmad", 'import "a.bmad"\n')
    result = compile_file(tmp_path / "a.bmad")
    [d] = result.errors
    assert d.code == "BMAD-E051" and d.span.file.endswith("b.bmad") and (d.span.line, d.span.column) == (1, 1)
    assert "a.bmad -> " in d.message and d.message.endswith("a.bmad")


def test_self_import_is_a_cycle(tmp_path):
    path = write(tmp_path, "a.bmad", 'import "a.bmad"\nworkflow w { }\n')
    assert [d.code for d in compile_file(path).errors] == ["BMAD-E051"]


def test_missing_import(tmp_path):
    path = write(tmp_path, "main.bmad", 'workflow w { }\n\nimport "nope.bmad"\n')
    result = compile_file(path)
    [d] = result.errors
    assert (d.code, d.span.line, d.span.column) == ("BMAD-E050", 3, 1)
    assert "nope.bmad" in d.message
    assert result.program is not None and result.program.workflow("w") is not None


def test_import_of_a_non_bmad_file(tmp_path):
    path = write(tmp_path, "main.bmad", 'import "flow.yaml"\n')
    assert [d.code for d in compile_file(path).errors] == ["BMAD-E054"]


def test_missing_main_file(tmp_path):
    result = compile_file(tmp_path / "absent.bmad")
    assert [d.code for d in result.errors] == ["BMAD-E053"] and result.program is None


def test_syntax_error_in_an_imported_file_is_reported_in_that_file(tmp_path):
    write(tmp_path, "m.bmad", "model m { provider p prise }\n")
    path = write(tmp_path, "main.bmad", 'import "m.bmad"\nworkflow w { }\n')
    [d] = compile_file(path).errors
    assert d.span.file.endswith("m.bmad") and d.code == "BMAD-E032"


def test_use_std_loads_the_stdlib_module():
    result = compile_source("use std.models\nworkflow w { task t { prompt \"x\" } output t }\n")
    assert result.ok, result.diagnostics
    assert result.program.uses[0].resolved == "<std>/models.bmad"
    assert ("<std>/models.bmad", "stdlib") in [(f.path, f.role) for f in result.program.files]
    assert result.program.model("gpt-4o") is not None


def test_use_of_an_unknown_stdlib_module():
    [d] = compile_source("use std.nothing_here\n").errors
    assert d.code == "BMAD-E052" and (d.span.line, d.span.column) == (1, 1)


def test_no_models_declared_gets_the_catalog_and_local():
    result = compile_source('workflow hello { task t { prompt "x" } output t }\n')
    assert result.ok
    p = result.program
    names = {m.name for m in p.models}
    assert {"gpt-4o", "gpt-4o-mini", "claude-sonnet", "claude-haiku", "gemini-flash", "gemini-pro", "local"} <= names
    assert p.model("gpt4").name == "gpt-4o" and p.model("claude").name == "claude-sonnet"
    assert p.model("gemini").name == "gemini-flash"
    assert p.provider("openai").api_key_env == "OPENAI_API_KEY"
    assert p.provider("local").kind == "llama_cpp"
    local = p.model("local")
    assert local.price.input_per_m == 0 and local.price.output_per_m == 0
    assert 8_000 <= local.context <= 32_768
    assert local.span.file == "<std>/models.bmad"


def test_declared_models_replace_the_catalog_but_local_stays():
    p = compile_source(MODELS + "workflow w { }\n").program
    assert [m.name for m in p.models] == ["m", "local"]
    assert [pr.name for pr in p.providers] == ["p", "local"]


def test_a_declared_local_model_is_kept():
    p = compile_source('provider mine { kind ollama }\nmodel local { provider mine }\n').program
    assert [m.name for m in p.models] == ["local"] and p.model("local").provider.name == "mine"
    assert not any(f.role == "stdlib" for f in p.files)


def test_entry_is_the_main_files_last_workflow(tmp_path):
    write(tmp_path, "lib.bmad", "workflow helper { }\n")
    path = write(tmp_path, "main.bmad", 'import "lib.bmad"\nworkflow first { }\nworkflow second { }\n')
    assert compile_file(path).program.entry == "second"
    assert compile_source(MODELS).program.entry is None


def test_extra_sources_override_the_disk(tmp_path):
    write(tmp_path, "m.bmad", "model broken {")
    path = write(tmp_path, "main.bmad", "this is not bmad")
    result = compile_file(path, extra_sources={str(path): 'import "m.bmad"\nworkflow w { }\n',
                                               str(tmp_path / "m.bmad"): MODELS})
    assert result.ok, result.diagnostics
    assert result.sources[str(path)].startswith("import")


def test_diagnostics_are_sorted(tmp_path):
    result = compile_source('workflow w {\n  task b { temperature 9 }\n  task a { priority urgent }\n}\n')
    lines = [d.span.line for d in result.diagnostics]
    assert lines == sorted(lines) and len(result.errors) == 2


def test_checks_are_skipped_after_a_syntax_error():
    # `summry` would be an unknown reference, but the file is only half read: say the syntax error only
    result = compile_source('workflow w {\n  task a { prompt "{{ summry }}" promt }\n  output a\n}\n')
    assert [d.code for d in result.errors] == ["BMAD-E030"]


def test_yaml_goes_to_the_yaml_front_end(spec_dir, monkeypatch):
    pytest.importorskip("bmad.compiler.yaml_frontend")
    monkeypatch.chdir(spec_dir)
    result = compile_file("seed_workflow.yaml")
    assert result.ok, result.diagnostics
    assert result.program.model("local") is not None and result.program.model("gpt-4o") is not None


def test_an_import_path_with_a_nul_character_is_a_diagnostic():
    # Found by the atheris fuzzer: os.path.realpath raised ValueError on it.
    from bmad.compiler.compile import compile_source

    result = compile_source(b'import "a\x00b.bmad"\nworkflow w { task a { prompt "x" } output a }',
                            "nul.bmad")
    assert [d.code for d in result.diagnostics] == ["BMAD-E050"]
    assert "NUL" in result.diagnostics[0].message
