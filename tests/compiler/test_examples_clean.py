"""The examples are what users copy: each checks with no warning or note and is already formatted
(`bmad check` and `bmad fmt --check` both clean), so a diagnostic on a copied example is news."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmad.cli.check_cmd import plan_checks
from bmad.compiler.compile import compile_file
from bmad.compiler.format import format_source

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.bmad"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_checks_clean_and_is_formatted(path: Path):
    result = compile_file(path)
    assert result.ok
    found = [*result.diagnostics, *plan_checks(result.program)]  # what `bmad check` runs
    assert [f"{d.code} {d.message}" for d in found] == []
    text = path.read_text(encoding="utf-8")
    assert format_source(text, str(path))[0] == text
