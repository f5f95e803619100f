"""Every stdlib module is in `bmad fmt` layout, so reading one teaches the house layout (and a span
in a std file points where the reader expects)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import bmad

STDLIB_FILES = sorted((Path(bmad.__file__).resolve().parent / "stdlib").glob("*.bmad"))


def test_the_stdlib_is_there():
    assert {"models", "quality", "consensus", "code_review"} <= {p.stem for p in STDLIB_FILES}


def test_every_stdlib_file_is_fmt_clean():
    proc = subprocess.run([sys.executable, "-m", "bmad", "fmt", "--check", *map(str, STDLIB_FILES)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", STDLIB_FILES, ids=lambda p: p.name)
def test_formatting_a_stdlib_file_changes_nothing(path):
    from bmad.compiler.format import format_source

    text = path.read_text(encoding="utf-8")
    formatted, diagnostics = format_source(text, str(path))
    assert diagnostics == [] and formatted == text
