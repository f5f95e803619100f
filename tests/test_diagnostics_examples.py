"""Every bad example in docs/diagnostics.md really produces its section's code, so the catalogue
can't drift from the compiler.

A section (`### BMAD-XNNN: title`) shows its bad example as a fenced ```bmad or ```yaml block
before its **Fix**; this test compiles that block the way `bmad check` does
(`compile_source`, then `passes.check_plan` when the program compiled cleanly) and plans it as
`bmad plan` would, both with every provider simulated (`--provider sim`) and on a machine with no
provider keys set (W200-W203), and asserts that the code is among the diagnostics and plan notes.
When the section also shows the diagnostic as bmad prints it (a ```text block), the whole block
must be what bmad prints today, figures aside: the headline, the source excerpt with its carets,
and every note and help line.

Conventions of the page, for writers of sections:

- The main example is compiled as `example.bmad` (or `example.yaml`) in an empty folder; when its
  first line is `# file: NAME` it is compiled as NAME instead. Further blocks before **Fix** whose
  first line is `# file: NAME` are written next to it first (imported files, for instance).
- A section whose code needs more than a file to appear says so with a marker comment,
  `<!-- example: KIND -->`, and shows the situation instead; its example is not compiled. The kinds
  are in `EXAMPLE_KINDS` below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bmad.compiler.compile import compile_source
from bmad.compiler.diagnostics import render_text

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "diagnostics.md"

# `<!-- example: KIND -->`: why a section's example can't be compiled from a file alone.
EXAMPLE_KINDS = {
    "runtime": "reported while running a plan (`bmad run`): needs a journal, inputs or providers",
    "editor": "reported by the language server to an editor",
    "ir": "only from IR or planner calls made by other tools: from a file, `bmad check` and "
          "`bmad plan` report the mistake earlier (under the code the section names) or never",
    "plan-file": "about a sealed plan file written by `bmad plan -o`",
    "file": "about the file itself (its size, bytes or permissions), not its text",
    "config": "about `bmad.toml`, read by `bmad doctor` and the providers",
    "internal": "a bug in bmad itself: no valid input should produce it",
}

_SECTION = re.compile(r"^### (BMAD-[EW]\d{3})\b[^\n]*\n(.*?)(?=^##|\Z)", re.S | re.M)
_FENCE = re.compile(r"^```([a-z]*)[^\n]*\n(.*?)^```", re.S | re.M)
_MARKER = re.compile(r"<!--\s*example:\s*([a-z-]+)\s*-->")
_FILE_LINE = re.compile(r"#\s*file:\s*(\S+)\s*$")
_FIX = re.compile(r"^\**Fix\b", re.M)


@dataclass(frozen=True)
class Section:
    code: str
    body: str

    @property
    def marker(self) -> str | None:
        m = _MARKER.search(self.body)
        return m.group(1) if m else None

    @property
    def bad_part(self) -> str:
        fix = _FIX.search(self.body)
        return self.body[:fix.start()] if fix else self.body

    def blocks(self) -> list[tuple[str, str]]:
        """(language, text) of the fenced blocks before the fix."""
        return [(m.group(1), m.group(2)) for m in _FENCE.finditer(self.bad_part)]

    def example(self) -> tuple[str, str] | None:
        """(file name, text) of the bad example: the first ```bmad or ```yaml block."""
        for language, text in self.blocks():
            if language in ("bmad", "yaml"):
                return _file_name(text) or f"example.{language}", text
        return None

    def extra_files(self) -> dict[str, str]:
        """Other files the example needs (blocks after it that start with `# file: NAME`)."""
        files = {}
        for language, text in self.blocks()[1:]:
            name = _file_name(text)
            if language in ("bmad", "yaml") and name:
                files[name] = text
        return files

    def printed(self) -> str | None:
        """The diagnostic as the section shows bmad printing it: its first ```text block."""
        for language, text in self.blocks():
            if language == "text" and text.strip():
                return text.strip("\n")
        return None


def _file_name(text: str) -> str | None:
    first = text.split("\n", 1)[0]
    m = _FILE_LINE.fullmatch(first.strip())
    return m.group(1) if m else None


def _wording(printed: str) -> str:
    """Printed text without its figures or trailing blanks: positions, costs and token counts move
    with the catalog's prices and the estimator, the wording, carets and hints must not."""
    lines = [re.sub(r"\d[\d,.]*", "#", line).rstrip() for line in printed.strip("\n").splitlines()]
    return "\n".join(lines)


def doc_sections() -> list[Section]:
    return [Section(m.group(1), m.group(2)) for m in _SECTION.finditer(DOC.read_text(encoding="utf-8"))]


def diagnose(name: str, text: str) -> list[tuple[str, str]]:
    """(code, printed text) of everything `bmad check` and `bmad plan` report for the file `name`
    (in the current directory): a plan's notes print as `CODE: message`."""
    from bmad.compiler import passes
    from bmad.compiler.passes.context import make_context

    result = compile_source(text, name)
    reported = [(d.code, render_text(d, result.sources)) for d in result.diagnostics]
    if not result.ok or result.program is None:
        return reported
    program = result.program
    reported += [(d.code, render_text(d, result.sources)) for d in passes.check_plan(program)]
    if program.workflows:
        for provider_mode in ("sim", None):  # every model simulated; real providers without keys
            context = make_context(program, environment={}, provider_mode=provider_mode)
            plan, diagnostics = passes.plan_program(program, context)
            reported += [(d.code, render_text(d, result.sources)) for d in diagnostics]
            if plan is not None:
                reported += [(n.code, f"{n.code}: {n.message}") for n in plan.notes]
    return reported


# Sections whose ```text block still shows only the first printed line, compared on that line
# until the section is brought up to date (then remove it from here).
PRINTED_FIRST_LINE_ONLY: dict[str, str] = {}  # code -> why its block can show only the first line

SECTIONS = doc_sections()


def test_the_page_has_sections():
    assert len(SECTIONS) > 100


@pytest.mark.parametrize("section", SECTIONS, ids=[s.code for s in SECTIONS])
def test_bad_example_reports_its_code(section: Section, tmp_path, monkeypatch):
    if section.marker is not None:
        assert section.marker in EXAMPLE_KINDS, (
            f"{section.code}: unknown example kind `{section.marker}`; known: {sorted(EXAMPLE_KINDS)}")
        pytest.skip(f"{section.code}: {EXAMPLE_KINDS[section.marker]}")
    example = section.example()
    assert example is not None, (
        f"{section.code}: no ```bmad or ```yaml bad example before **Fix**, and no "
        f"`<!-- example: KIND -->` marker saying why")
    name, text = example
    monkeypatch.chdir(tmp_path)
    for extra, content in section.extra_files().items():
        (tmp_path / extra).write_text(content, encoding="utf-8")
    (tmp_path / name).write_text(text, encoding="utf-8")
    reported = diagnose(name, text)
    codes = sorted({code for code, _ in reported})
    assert section.code in codes, f"{section.code}: the bad example reports {codes or 'nothing'}"
    printed = section.printed()
    if printed is not None:
        texts = [text for code, text in reported if code == section.code]
        if section.code in PRINTED_FIRST_LINE_ONLY:
            printed = printed.splitlines()[0]
            texts = [text.splitlines()[0] for text in texts]
        assert _wording(printed) in {_wording(text) for text in texts}, (
            f"{section.code}: the page shows\n{printed}\nbut bmad prints\n" + "\n--\n".join(texts))
