"""`bmad check FILE...`: compile files and report every problem, without running anything."""

from __future__ import annotations

import sys
from typing import Any

import typer

from bmad.cli.common import (EXIT_OK, OutputFormat, examples, exit_code, file_problem,
                             print_diagnostics)
from bmad.compiler.diagnostics import Diagnostic, sort_diagnostics

HELP = """Check workflows: parse, resolve imports, type-check, and run the planning checks.

Accepts .bmad files and the seed's YAML format (.yaml/.yml). Nothing is sent to any model.
Exit status: 0 clean or warnings only, 1 errors, 2 usage errors (a missing file, a bad option, a
bmad.toml that holds a key: BMAD-E400).
"""

EPILOG = examples(
    ("bmad check examples/hello.bmad", "check one file; problems go to stderr with the source line"),
    ("bmad check a.bmad b.yaml", "check several files; the exit status covers all of them"),
    ("bmad check --format json a.bmad", "print the diagnostics as a JSON list on stdout"),
)


def check_files(paths: list[str]) -> tuple[list[Diagnostic], dict[str, str], bool]:
    """Compile each path; returns (diagnostics, sources for rendering, whether a path was unusable)."""
    diagnostics: list[Diagnostic] = []
    sources: dict[str, str] = {}
    usage_error = False
    for path in paths:
        problem = file_problem(path)
        if problem is not None:
            diagnostics.append(problem)
            usage_error = True
            continue
        from bmad.compiler.compile import compile_file  # imported here: keeps `bmad --help` fast

        result = compile_file(path)
        diagnostics.extend(result.diagnostics)
        sources.update(result.sources)
        if result.program is not None and result.ok:
            diagnostics.extend(plan_checks(result.program))
    return sort_diagnostics(_unique(diagnostics)), sources, usage_error


def config_refused(diagnostics: list[Diagnostic]) -> bool:
    """Whether `bmad.toml` can't be used (BMAD-E400, above all a key in the file): a refusal with
    exit status 2 for check and plan, as for doctor and run."""
    from bmad.compiler.settings import E_CONFIG

    return any(d.code == E_CONFIG for d in diagnostics)


def plan_checks(program: Any) -> list[Diagnostic]:
    """The optimizer's feasibility checks (e.g. an impossible budget), when the passes provide them."""
    try:
        from bmad.compiler import passes
    except ImportError:
        return []
    from bmad.compiler.gc_pause import collection_paused

    check_plan = getattr(passes, "check_plan", None)
    if not callable(check_plan):
        return []
    with collection_paused():  # planning allocates much and frees little, like the compile
        return list(check_plan(program))


def _unique(items: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[Diagnostic] = set()
    out = []
    for d in items:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def register(app: typer.Typer) -> None:
    @app.command("check", help=HELP, epilog=EPILOG)
    def check(
        files: list[str] = typer.Argument(..., metavar="FILE", show_default=False,
                                          help="Workflow files: .bmad, .yaml or .yml."),
        output: OutputFormat = typer.Option(OutputFormat.text, "--format", "-f",
                                            help="text (rustc-style, on stderr) or json (on stdout)."),
    ) -> None:
        diagnostics, sources, usage_error = check_files(files)
        print_diagnostics(diagnostics, sources, output)
        if output is OutputFormat.text and not diagnostics:
            noun = "file" if len(files) == 1 else "files"
            sys.stderr.write(f"checked {len(files)} {noun}: no problems\n")
        code = exit_code(diagnostics, usage_error=usage_error or config_refused(diagnostics))
        if code != EXIT_OK:
            raise typer.Exit(code)
