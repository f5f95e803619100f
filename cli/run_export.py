"""How `bmad export RUN` (and `bmad workflow export`) writes a journaled run: json, yaml, detailed, html.

`json` is `runtime/export.py`'s contract (its field names are public); `yaml` is the same data;
`detailed` is the text report and `html` the self-contained page, both drawn from
`runtime/run_report.py`. Output goes to stdout, or to `-o FILE`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

EXPORT_FORMATS = ("json", "yaml", "detailed", "html")


def _fail(message: str, hint: str | None = None, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    if hint:
        typer.echo(f"  = help: {hint}", err=True)
    return typer.Exit(code)


def render_export(journal, run_id: str, fmt: str, *, color: bool = False) -> str | None:
    """The run in a format, or None when the journal has no such run."""
    from bmad.runtime.export import export_run

    if fmt in ("json", "yaml"):
        data = export_run(journal, run_id)
        if data is None:
            return None
        if fmt == "json":
            # json escapes C0 controls only; DEL, C1 (0x9b is a one-byte CSI) and bidi overrides
            # would reach a terminal raw, so they are written as \u escapes too (same string).
            from bmad.compiler.terminal_text import JSON_UNSAFE

            text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
            return text.translate(JSON_UNSAFE)
        import yaml

        return yaml.safe_dump(json.loads(json.dumps(data, default=str)), sort_keys=True, allow_unicode=True)
    from bmad.runtime.run_report import build_run_report

    report = build_run_report(journal, run_id)
    if report is None:
        return None
    if fmt == "html":
        from bmad.runtime.report_html import render_run_html

        return render_run_html(report)
    from bmad.runtime.report_text import render_run_text

    return render_run_text(report, color=color)


def write_export(run_id: str, fmt: str, output: Optional[Path], journal: Optional[Path]) -> None:
    """The body of `bmad export`: checks the format and the run, then prints or writes the report."""
    from bmad.cli.common import color_enabled
    from bmad.runtime.journal import Journal, JournalError, default_journal_path

    if fmt not in EXPORT_FORMATS:
        raise _fail(f"unknown --format `{fmt}`", f"use one of {', '.join(EXPORT_FORMATS)}")
    path = journal if journal is not None else default_journal_path()
    try:
        j = Journal(path, readonly=True)
    except JournalError as exc:
        raise _fail(str(exc), "runs are journaled where `bmad run` ran (or pass --journal PATH)")
    try:
        text = render_export(j, run_id, fmt, color=fmt == "detailed" and output is None
                             and color_enabled(sys.stdout))
        missing = j.missing_run(run_id) if text is None else None
    finally:
        j.db.close()
    if missing is not None:
        raise _fail(missing, "list runs with `bmad runs`", code=1)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"can't write {output}: {exc.strerror or exc}")
    sys.stderr.write(f"wrote the {fmt} report of run {run_id} to {output}\n")
