"""Hostile input to the .bmad and YAML front ends, the formatter and the language server: nothing
escapes but diagnostics. Hypothesis here (a few hundred examples, in the default suite); atheris
in the slow suite (coverage-guided, bounded to FUZZ_SECONDS per target) when installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from bmad.compiler import ir_codec
from bmad.compiler.compile import compile_source
from bmad.compiler.format import format_source

from .fuzz_strategies import hostile_bmad, hostile_yaml

HERE = Path(__file__).resolve().parent
FUZZ_SECONDS = int(os.environ.get("BMAD_FUZZ_SECONDS", "30"))
# A fixed seed makes a CI run repeatable (the same mutations in the same order); set another to explore.
FUZZ_SEED = int(os.environ.get("BMAD_FUZZ_SEED", "1"))


def only_diagnostics(text: str, path: str) -> None:
    result = compile_source(text, path)
    for d in result.diagnostics:
        assert d.code.startswith("BMAD-") and d.span.line >= 1 and d.span.column >= 1 and d.message
    if result.program is not None:
        assert ir_codec.loads(ir_codec.dumps(result.program)) == result.program


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile_bmad())
def test_hostile_bmad_gives_only_diagnostics(text):
    only_diagnostics(text, "fuzz.bmad")
    formatted, diagnostics = format_source(text, "fuzz.bmad")
    assert formatted is not None or diagnostics


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile_yaml())
def test_hostile_yaml_gives_only_diagnostics(text):
    only_diagnostics(text, "fuzz.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("target", ["bmad", "yaml"])
def test_atheris_finds_no_escaping_exception(target, tmp_path):
    pytest.importorskip("atheris")
    result = subprocess.run(
        [sys.executable, str(HERE / "atheris_target.py"), target, f"-max_total_time={FUZZ_SECONDS}",
         f"-seed={FUZZ_SEED}", "-rss_limit_mb=3000", "-timeout=30", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=FUZZ_SECONDS + 240, cwd=tmp_path)
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, tail
    assert "Done" in tail or "done" in tail
