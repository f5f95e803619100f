"""docs/stdlib.md: a page for every pattern, and every bmad example on it compiles cleanly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bmad.compiler.compile import compile_source

from stdlib_support import ALL_PATTERNS

DOC = Path(__file__).resolve().parents[2] / "docs" / "stdlib.md"
BLOCKS = re.findall(r"```bmad\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_every_pattern_has_a_page_with_an_example(pattern):
    text = DOC.read_text(encoding="utf-8")
    assert f"### std.{pattern}\n" in text
    section = text.split(f"### std.{pattern}\n", 1)[1].split("\n### ", 1)[0]
    assert "| input |" in section and "| output |" in section and "Choices" in section
    assert f"use std.{pattern}" in section and f"= {pattern}(" in section


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_example_compiles_without_problems(index, tmp_path):
    result = compile_source(BLOCKS[index], str(tmp_path / "example.bmad"))
    assert result.ok and [f"{d.code} {d.message}" for d in result.diagnostics] == []
