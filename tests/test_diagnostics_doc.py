"""docs/diagnostics.md documents every diagnostic code the source tree can report, each in a section
of its own (`### BMAD-E123: title`) with the fix."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOC = REPO_ROOT / "docs" / "diagnostics.md"
CODE = re.compile(r"BMAD-[EW]\d{3}")
SOURCE_SUFFIXES = (".py", ".lark", ".bmad")
NOT_SOURCE = {"tests", "docs", ".git", "build", "dist", "bench", "examples", "editors"}


def source_files() -> list[Path]:
    found = []
    for path in REPO_ROOT.rglob("*"):
        parts = path.relative_to(REPO_ROOT).parts
        if parts[0] in NOT_SOURCE or any(p.startswith(".") or p.endswith(".egg-info") or p == "__pycache__"
                                         for p in parts):
            continue
        if path.suffix in SOURCE_SUFFIXES and path.is_file():
            found.append(path)
    return found


def codes_in_source() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for path in source_files():
        for code in set(CODE.findall(path.read_text(encoding="utf-8", errors="replace"))):
            where.setdefault(code, []).append(str(path.relative_to(REPO_ROOT)))
    return where


def documented_sections() -> dict[str, str]:
    """Code -> the text of its `### BMAD-...` section."""
    text = DOC.read_text(encoding="utf-8")
    sections: dict[str, str] = {}
    for match in re.finditer(r"^### (BMAD-[EW]\d{3})\b(.*?)(?=^##|\Z)", text, re.S | re.M):
        sections[match.group(1)] = match.group(2)
    return sections


def test_source_tree_has_codes_to_document():
    assert len(codes_in_source()) > 40


def test_every_code_in_the_source_tree_has_a_section():
    sections = documented_sections()
    missing = {code: files for code, files in sorted(codes_in_source().items()) if code not in sections}
    assert not missing, "codes without a `### CODE: title` section in docs/diagnostics.md: " + ", ".join(
        f"{code} ({', '.join(sorted(files))})" for code, files in missing.items())


def test_semantic_check_sections_say_how_to_fix():
    sections = documented_sections()
    checks = {code for code in codes_in_source() if re.fullmatch(r"BMAD-[EW]1\d\d", code)}
    assert checks, "the semantic checks report codes"
    lacking = sorted(code for code in checks if "Fix" not in sections.get(code, ""))
    assert not lacking, f"sections without a fix: {lacking}"


def test_no_code_is_documented_twice():
    headings = re.findall(r"^### (BMAD-[EW]\d{3})\b", DOC.read_text(encoding="utf-8"), re.M)
    assert len(headings) == len(set(headings))


def test_commands_shown_on_the_page_exist():
    """Every `$ bmad COMMAND` (and `$ bmad workflow SUBCOMMAND`) in an example is a real command."""
    import typer

    from bmad.cli.main import app

    root = typer.main.get_command(app)
    shown = re.findall(r"^\$ bmad ([a-z][a-z_-]*)(?: ([a-z][a-z_-]*))?", DOC.read_text(encoding="utf-8"), re.M)
    assert shown, "the page shows commands"
    unknown = set()
    for command, sub in shown:
        if command not in root.commands:
            unknown.add(f"bmad {command}")
        elif command == "workflow" and sub not in root.commands["workflow"].commands:
            unknown.add(f"bmad workflow {sub}")
    assert not unknown, f"docs/diagnostics.md shows commands bmad doesn't have: {sorted(unknown)}"
