"""The analysed grammar is kept on disk between runs (parse.grammar_cache_file): a run that loads it
parses exactly as a run that built it, and a damaged or missing file only means building it again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bmad.compiler.parse import grammar_cache_file, grammar_text

SPEC = Path(__file__).resolve().parents[2] / ".." / "shared" / "spec"
PROGRAM = """
import sys
from bmad.compiler import ir_codec
from bmad.compiler.compile import compile_file
from bmad.compiler.parse import parse_text
result = compile_file(sys.argv[1])
print(ir_codec.dumps(result.program))
print([(d.code, d.span.line, d.span.column) for d in result.diagnostics])
print([(d.code, d.span.line, d.span.column, d.message) for d in parse_text("workflow w { task a { prompt } }").diagnostics])
"""


def _run(cache_dir: Path | str, path: Path) -> str:
    env = {**os.environ, "BMAD_CACHE_DIR": str(cache_dir)}
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cache_file_is_named_after_the_grammar(tmp_path, monkeypatch):
    monkeypatch.setenv("BMAD_CACHE_DIR", str(tmp_path / "cache"))
    path = grammar_cache_file(grammar_text())
    assert isinstance(path, str) and path.startswith(str(tmp_path / "cache"))
    assert grammar_cache_file(grammar_text() + "\n// changed") != path


def test_no_cache_when_disabled_or_unusable(tmp_path, monkeypatch):
    monkeypatch.setenv("BMAD_CACHE_DIR", "")
    assert grammar_cache_file(grammar_text()) is False
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("BMAD_CACHE_DIR", str(blocker / "cache"))
    assert grammar_cache_file(grammar_text()) is False


def test_loading_the_cache_parses_as_building_the_grammar(tmp_path):
    path = sorted(SPEC.glob("*.bmad"))[0]
    built = _run(tmp_path, path)  # builds the tables and writes the file
    [cache_file] = list(tmp_path.iterdir())
    loaded = _run(tmp_path, path)  # loads them
    uncached = _run("", path)
    assert built == loaded == uncached
    cache_file.write_bytes(b"damaged")  # Lark rebuilds and rewrites a file it cannot use
    assert _run(tmp_path, path) == built
    assert cache_file.read_bytes() != b"damaged"
