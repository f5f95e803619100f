"""Atheris (libFuzzer for Python) target: bytes in, `compile_source` (and the formatter) out; any
exception escaping is a finding. Run by test_fuzz.py's slow test:
`python atheris_target.py bmad|yaml -max_total_time=40`. Seeds: the contract files."""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from bmad.compiler.compile import compile_source
    from bmad.compiler.format import format_source

SPEC = Path(__file__).resolve().parents[2] / ".." / "shared" / "spec"


def one_input(data: bytes) -> None:
    if TARGET == "yaml":
        compile_source(data, "fuzz.yaml")
        return
    compile_source(data, "fuzz.bmad")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    format_source(text, "fuzz.bmad")


if __name__ == "__main__":
    TARGET = sys.argv.pop(1)
    corpus = Path("corpus")
    corpus.mkdir(exist_ok=True)
    suffix = ".yaml" if TARGET == "yaml" else ".bmad"
    for seed in sorted(SPEC.glob("*" + suffix)):
        (corpus / seed.name).write_bytes(seed.read_bytes())
    atheris.Setup(sys.argv + [str(corpus)], one_input)
    atheris.Fuzz()
