"""`bmad runs --prune`: apply journal retention (flags, else bmad.toml's `[journal]`) and report it;
and the same rules after each `bmad run` (a batch too) when `[journal] prune_after_run = true`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

EXIT_INVALID = 2


def prune_journal(path: Path, older_than_days: float | None, keep: int | None, as_json: bool) -> None:
    import sqlite3

    from bmad.runtime.journal import Journal, JournalError, journal_problem
    from bmad.runtime.retention import Retention, RetentionError, configured_retention, prune_runs

    if older_than_days is not None or keep is not None:
        retention = Retention(keep_days=older_than_days, keep_runs=keep)
    else:
        try:
            retention = configured_retention()
        except RetentionError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID)
    if retention.empty:
        typer.echo("error: nothing to prune by", err=True)
        typer.echo("  = help: pass --older-than DAYS and/or --keep N, or set keep_days / keep_runs "
                   "under [journal] in bmad.toml", err=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        journal = Journal(path, readonly=True)
    except JournalError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID)
    try:
        report = prune_runs(journal.db, retention)
    except sqlite3.Error as exc:
        # The journal's own trouble, told by its code (docs/diagnostics.md): locked by another
        # process past the busy timeout (E343), damaged (E344), a full or failing disk (E345),
        # read-only media or file (E340). Anything else is a bug: the top level says so.
        problem = journal_problem(exc, path)
        if problem is None:
            raise
        typer.echo(f"error: {problem}; nothing pruned", err=True)
        typer.echo(f"  = help: {problem.full_hint()}", err=True)
        raise typer.Exit(EXIT_INVALID)  # as every journal diagnostic (cli/main.py)
    finally:
        journal.db.close()
    if as_json:
        sys.stdout.write(json.dumps({"removed": report.removed, "kept_running": report.kept_running,
                                     "kept_in_running_batch": report.kept_in_batch},
                                    indent=2) + "\n")
        return
    sys.stdout.write(f"removed {len(report.removed)} run(s) from {path}"
                     + (f"; kept {report.kept_running} still running" if report.kept_running else "")
                     + (f"; kept {report.kept_in_batch} of a batch still running"
                        if report.kept_in_batch else "")
                     + "\n")


def prune_after_run(path: Path, retention, spare: frozenset[str]) -> None:
    """`[journal] prune_after_run = true`: apply the rules once a run (or a batch) is over,
    sparing the runs it made (`spare`). A journal another process holds locked is left for the
    next run (said on stderr)."""
    import sqlite3

    from bmad.runtime.journal import Journal, JournalError, JournalUnavailable, journal_problem
    from bmad.runtime.retention import prune_runs

    if not retention.after_run or retention.empty:
        return
    try:
        journal = Journal(path, readonly=True)
        try:
            report = prune_runs(journal.db, retention, spare=spare)
        finally:
            journal.db.close()
    except (JournalError, JournalUnavailable, sqlite3.Error) as exc:
        # the run's outcome stands; the journal's trouble is named by its code (BMAD-E34x)
        problem = (journal_problem(exc, path) or exc) if isinstance(exc, sqlite3.Error) else exc
        sys.stderr.write(f"warning: journal retention not applied this time: {problem}\n")
        return
    if report.removed:
        sys.stderr.write(f"pruned {len(report.removed)} old run(s) from {path} (bmad.toml [journal])\n")
