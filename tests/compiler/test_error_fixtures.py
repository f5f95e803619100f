"""Every file in tests/fixtures/errors/ is rejected with exactly one error, named after it; the
rendered diagnostics (text and JSON) are snapshot-tested. The contract examples compile without
errors, and the semantic cases of shared/spec/bad/ give the checks' code at the right place."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bmad.compiler.compile import compile_file
from bmad.compiler.diagnostics import render_all_text, render_json

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "errors"
FIXTURE_FILES = sorted(FIXTURES.glob("*.bmad"))


def compile_fixture(path: Path, monkeypatch):
    # Relative paths keep the snapshots independent of where the repository is checked out.
    monkeypatch.chdir(REPO_ROOT)
    return compile_file(str(path.relative_to(REPO_ROOT)))


def test_there_are_at_least_forty_fixtures():
    assert len(FIXTURE_FILES) >= 40


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_fixture_gives_one_error_with_snapshots(path, monkeypatch, snapshot, snapshot_json):
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# "), "the first line says what is wrong"
    result = compile_fixture(path, monkeypatch)
    errors = [d for d in result.diagnostics if d.is_error]
    assert len(errors) == 1, render_all_text(result.diagnostics, result.sources)
    assert len(result.diagnostics) == 1, "one problem per fixture, without side warnings"
    assert re.fullmatch(r"BMAD-E[01]\d\d", errors[0].code)  # syntax (E0xx) or semantic checks (E1xx)
    assert errors[0].span.file.endswith(path.name) and errors[0].hint
    assert render_all_text(result.diagnostics, result.sources) == snapshot
    assert json.loads(render_json(result.diagnostics)) == snapshot_json


SEMANTIC_BAD_SPEC = {
    "capability.bmad": ("BMAD-E160", 6, 11),
    "cycle.bmad": ("BMAD-E130", 4, 16),
    "duplicate.bmad": ("BMAD-E120", 6, 8),
    "quorum.bmad": ("BMAD-E150", 6, 5),
    "unknown_ref.bmad": ("BMAD-E101", 7, 16),
    "when_type.bmad": ("BMAD-E140", 4, 15),
}


@pytest.mark.parametrize("file_name", sorted(SEMANTIC_BAD_SPEC))
def test_semantic_contract_cases_are_rejected_at_the_right_place(spec_dir, file_name):
    result = compile_file(str(spec_dir / "bad" / file_name))
    errors = [(d.code, d.span.line, d.span.column) for d in result.diagnostics if d.is_error]
    assert errors == [SEMANTIC_BAD_SPEC[file_name]]


def test_contract_examples_pass_the_checks_with_few_warnings(spec_file):
    result = compile_file(str(spec_file))
    assert result.ok, render_all_text(result.diagnostics, result.sources)
    assert not [d for d in result.diagnostics if d.severity == "warning"]


def test_seed_yaml_mistakes_get_one_report_each(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(
        "id: t\nname: T\ntasks:\n"
        "  - id: a\n    name: A\n    task_type: general\n    dependencies: [b]\n"
        "  - id: b\n    name: B\n    task_type: general\n    dependencies: [a]\n"
        "  - id: c\n    name: C\n    task_type: general\n    dependencies: [zz]\n"
    )
    result = compile_file(str(path))
    errors = [(d.code, d.span.line, d.span.column) for d in result.diagnostics if d.is_error]
    assert errors == [("BMAD-E130", 7, 20), ("BMAD-E100", 15, 20)]
    assert result.diagnostics[0].message == "dependency cycle: a -> b -> a"
