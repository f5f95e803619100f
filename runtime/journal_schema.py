"""The journal file's safety: private permissions, a version stamp, forward migrations, clear refusals.

- The directory bmad creates for a journal is 0700 and the database file 0600 (SQLite gives its
  `-wal` and `-shm` files the database's mode): prompts and answers are private to the user.
- `PRAGMA user_version` is the schema version. An older journal (including the unversioned ones
  written before versioning, version 0) is migrated forward in one transaction when opened; a
  newer one is refused with a message naming both versions, never half-read.
- A SQLite file that is not a journal is refused untouched: one without a `runs` table, and one
  whose `runs` (or `meta`, `tasks`, `calls`) table lacks the columns every bmad journal has had
  since the first ones (`JOURNAL_KEY_COLUMNS`), whatever its `user_version`: a user's own
  `runs` table is never ALTERed. A file that is not SQLite at all is refused with the path,
  never a traceback.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

CURRENT_VERSION = 6
# A new journal's page size. A commit writes each page it changed to the WAL, and a chain task's
# commit changes two or three pages with a few hundred bytes each: 1 KiB pages write a quarter of
# the bytes 4 KiB pages do (and checksum a quarter), while a larger row spills into overflow
# pages, about its own size in bytes either way. Measured on a 10k-task chain: ~3 us of CPU a
# task less than with 4 KiB pages (bench/README.md, "Runtime", round 7).
NEW_JOURNAL_PAGE_SIZE = 1024
BMAD_TABLES = frozenset({"meta", "runs", "tasks", "calls"})
# The columns each of bmad's tables has had in every journal version, from the unversioned
# (version 0) journals on (tests/runtime/old_journals.py, tests/hardening/test_journal_safety.py
# OLD_SCHEMA): a table of one of these names without them is not bmad's, and neither is its file.
JOURNAL_KEY_COLUMNS: dict[str, frozenset[str]] = {
    "runs": frozenset({"id", "workflow", "plan_hash", "status", "started_at"}),
    "meta": frozenset({"key", "value"}),
    "tasks": frozenset({"run_id", "task_id", "status"}),
    "calls": frozenset({"run_id", "task_id", "status"}),
}


class JournalFileError(Exception):
    """The file can't be used as a journal; the message says why in plain words."""


class JournalNotReady(JournalFileError):
    """An empty database opened read-only: not a journal yet (perhaps one being created now)."""


def unusable_message(path: Path, exc: sqlite3.DatabaseError) -> str:
    """Why SQLite refused the journal, in plain words: a file or folder it may not write is not
    a file that isn't a journal."""
    text = str(exc)
    if "readonly" in text:
        return (f"can't write the journal {path}: the file is read-only (or its folder is); "
                "a run journals every call")
    if "unable to open" in text:
        return (f"can't open the journal {path}: its folder must be writable (SQLite keeps "
                f"{path.name}-wal and {path.name}-shm beside it), and the file readable")
    return f"{path} is not a bmad journal (not a SQLite database: {text})"


def create_private_file(path: Path) -> None:
    """Create the journal's directory (0700) and an empty database file (0600) if missing."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        os.chmod(parent, 0o700)  # the mode above is masked by the umask
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _foreign_table(db: sqlite3.Connection, tables: set[str]) -> tuple[str, list[str]] | None:
    """The first of bmad's tables in the file that lacks columns every journal has had, with the
    columns it lacks; None when each one present has them."""
    for table in ("runs", "meta", "tasks", "calls"):
        if table in tables:
            have = {r[1] for r in db.execute(f'PRAGMA table_info("{table}")')}
            missing = sorted(JOURNAL_KEY_COLUMNS[table] - have)
            if missing:
                return table, missing
    return None


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _add_missing_columns(db: sqlite3.Connection, schema: str) -> None:
    """Version 1: columns added to the tables since the first journals (ALTER TABLE ADD COLUMN,
    defaults as in the schema), read off the current schema built in memory."""
    model = sqlite3.connect(":memory:")
    try:
        for statement in _statements(schema):
            model.execute(statement)
        for table in _tables(model) & _tables(db):
            have = {r[1] for r in db.execute(f'PRAGMA table_info("{table}")')}
            for _cid, name, kind, _notnull, default, _pk in model.execute(f'PRAGMA table_info("{table}")'):
                if name not in have:
                    default_sql = f" DEFAULT {default}" if default is not None else ""
                    db.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {kind}{default_sql}')
    finally:
        model.close()


def _index_runs_for_retention(db: sqlite3.Connection, schema: str) -> None:
    """Version 2: an index for `bmad runs --prune` (oldest first, by status)."""
    db.execute("CREATE INDEX IF NOT EXISTS runs_by_started ON runs (started_at)")


def _fold_attempts_into_calls(db: sqlite3.Connection, schema: str) -> None:
    """Version 3: the attempt number lives on the call row (`calls.attempt`) and the `attempts`
    table, which repeated each answering call row, is dropped. Old answering calls are numbered
    per run and task in the order they were made, as the runtime numbered them (recorded calls a
    resume reused were not attempts)."""
    have = {r[1] for r in db.execute('PRAGMA table_info("calls")')}
    if "attempt" not in have:
        db.execute('ALTER TABLE calls ADD COLUMN attempt INTEGER')
    db.execute("CREATE TEMP TABLE numbered_calls (id INTEGER PRIMARY KEY, n INTEGER)")
    try:
        db.execute("INSERT INTO numbered_calls SELECT id, ROW_NUMBER() OVER "
                   "(PARTITION BY run_id, task_id ORDER BY id) FROM calls "
                   "WHERE COALESCE(purpose, 'answer') IN ('answer', 'repair') "
                   "AND COALESCE(cached, 0) = 0 AND attempt IS NULL")
        db.execute("UPDATE calls SET attempt = (SELECT n FROM numbered_calls "
                   "WHERE numbered_calls.id = calls.id) "
                   "WHERE id IN (SELECT id FROM numbered_calls)")
    finally:
        db.execute("DROP TABLE numbered_calls")
    db.execute("DROP TABLE IF EXISTS attempts")


def _create_statement(schema: str, table: str) -> str:
    prefix = f"CREATE TABLE IF NOT EXISTS {table} ("
    return next(s for s in _statements(schema) if s.startswith(prefix))


def _rebuild(db: sqlite3.Connection, schema: str, table: str, where: str = "") -> None:
    """Re-create `table` as the current schema declares it, keeping every row (columns by name,
    in their stored order); its indexes are re-created from the schema afterwards."""
    old = f"{table}_before_v{CURRENT_VERSION}"
    db.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')
    db.execute(_create_statement(schema, table))
    have = [r[1] for r in db.execute(f'PRAGMA table_info("{old}")')]
    want = {r[1] for r in db.execute(f'PRAGMA table_info("{table}")')}
    columns = ", ".join(f'"{c}"' for c in have if c in want)
    db.execute(f'INSERT OR REPLACE INTO "{table}" ({columns}) SELECT {columns} FROM "{old}" '
               f'{where} ORDER BY rowid')
    db.execute(f'DROP TABLE "{old}"')


def _single_page_result_rows(db: sqlite3.Connection, schema: str) -> None:
    """Version 4: a finished task's commit touches fewer pages. `tasks` is a WITHOUT ROWID table
    (the row lives in its key's b-tree: one b-tree written per task row, not the table and its
    key index); `calls` keeps its `id` (still increasing in the order calls were made) without
    AUTOINCREMENT (no `sqlite_sequence` row rewritten per call), and its index is by run alone
    (reads go by run; the request hash in the key put each insert on a random page)."""
    # Every task row a run wrote has both key columns; a NULL key can't be in the new table.
    _rebuild(db, schema, "tasks", "WHERE run_id IS NOT NULL AND task_id IS NOT NULL")
    _rebuild(db, schema, "calls")
    db.execute("DROP INDEX IF EXISTS calls_by_run")
    if "sqlite_sequence" in _tables(db):
        db.execute("DELETE FROM sqlite_sequence WHERE name = 'calls'")
    for statement in _statements(schema):  # the indexes the rebuilt tables lost
        if statement.startswith("CREATE INDEX"):
            db.execute(statement)


def _index_call_blocks(db: sqlite3.Connection, schema: str) -> None:
    """The block numbers of runs are unique, and the next one is found from this index."""
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS runs_by_call_block ON runs (call_block)")


def _call_id_blocks(db: sqlite3.Connection, schema: str) -> None:
    """Version 5: each run owns a block of row ids (`runs.call_block`; its rows have the ids
    `block << 32` onwards) in `calls` and in `tasks`, so a run's rows are found by id range in
    each table's own b-tree and a commit appends at the end of its block: the `calls_of_run`
    index and the `tasks` key b-tree (text keys, inserts all over it), each a page written per
    commit, are gone. Runs are numbered in the order they started; rows whose run is gone take
    block 0. Every row is kept, and a run's calls keep their order."""
    from bmad.runtime.journal import CALL_BLOCK_BITS

    if "call_block" not in {r[1] for r in db.execute('PRAGMA table_info("runs")')}:
        db.execute("ALTER TABLE runs ADD COLUMN call_block INTEGER")
    db.execute("CREATE TEMP TABLE numbered_runs (id TEXT PRIMARY KEY, n INTEGER)")
    try:
        db.execute("INSERT INTO numbered_runs SELECT id, ROW_NUMBER() OVER "
                   "(ORDER BY started_at, rowid) FROM runs")
        db.execute("UPDATE runs SET call_block = (SELECT n FROM numbered_runs "
                   "WHERE numbered_runs.id = runs.id)")
    finally:
        db.execute("DROP TABLE numbered_runs")
    _index_call_blocks(db, schema)
    for table, order in (("calls", "x.id"), ("tasks", "x.started_at, x.task_id")):
        old = f"{table}_before_v5"
        db.execute(f'ALTER TABLE "{table}" RENAME TO "{old}"')  # its indexes go with it
        db.execute(_create_statement(schema, table))
        have = [r[1] for r in db.execute(f'PRAGMA table_info("{old}")')]
        want = {r[1] for r in db.execute(f'PRAGMA table_info("{table}")')}
        columns = [c for c in have if c in want and c != "id"]
        db.execute(
            f'INSERT INTO "{table}" (id, {", ".join(columns)}) '
            f'SELECT (COALESCE(r.call_block, 0) << {CALL_BLOCK_BITS}) + ROW_NUMBER() OVER '
            f'(PARTITION BY r.call_block ORDER BY {order}) - 1, '
            f'{", ".join(f"x.{col}" for col in columns)} '
            f'FROM "{old}" x LEFT JOIN runs r ON r.id = x.run_id ORDER BY {order}')
        db.execute(f'DROP TABLE "{old}"')


def _index_measurements(db: sqlite3.Connection, schema: str) -> None:
    """One row per measured answer: a resume replays the answers its task gave before the
    interruption and measures them again, and the key turns that second row into a no-op."""
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS verdicts_once "
               "ON verdicts (run_id, task_id, model, slot)")
    db.execute("CREATE UNIQUE INDEX IF NOT EXISTS calibration_once "
               "ON calibration (run_id, task_id, slot)")


def _measure_each_answer_once(db: sqlite3.Connection, schema: str) -> None:
    """Version 6: `verdicts` and `calibration` rows name the answer they measure (`slot`), keyed
    so a resume can't count an answer twice. Old rows have no slot and stay as they are (a resume
    may have doubled some; which, can't be told now). Calibration rows of runs pruned before
    pruning removed them are dropped: a learned bar should not rest on runs the user removed."""
    for table in ("verdicts", "calibration"):
        if "slot" not in {r[1] for r in db.execute(f'PRAGMA table_info("{table}")')}:
            db.execute(f'ALTER TABLE "{table}" ADD COLUMN slot TEXT')
    db.execute("DELETE FROM calibration WHERE run_id NOT IN (SELECT id FROM runs)")
    _index_measurements(db, schema)


# MIGRATIONS[n] takes a journal from version n-1 to version n.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection, str], None]] = {
    1: _add_missing_columns,
    2: _index_runs_for_retention,
    3: _fold_attempts_into_calls,
    4: _single_page_result_rows,
    5: _call_id_blocks,
    6: _measure_each_answer_once,
}


def prepare_schema(db: sqlite3.Connection, path: Path, schema: str, *, writable: bool) -> int:
    """Check the file is a journal this bmad can use and bring it to `CURRENT_VERSION`; returns the
    version found. Raises `JournalFileError` (foreign, newer, or not a database)."""
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = _tables(db)
        foreign = _foreign_table(db, tables) if "runs" in tables else None
    except sqlite3.DatabaseError as exc:
        raise JournalFileError(unusable_message(path, exc)) from None
    if foreign is not None:
        table, missing = foreign
        shown = ", ".join(sorted(tables)[:5])
        raise JournalFileError(f"{path} is a SQLite database but not a bmad journal (it holds "
                               f"{shown}; its {table} table has no {', '.join(missing)} "
                               f"column{'s' if len(missing) > 1 else ''}); it was left untouched")
    if version > CURRENT_VERSION:
        raise JournalFileError(
            f"{path} was written by a newer bmad (journal schema {version}; this bmad reads up "
            f"to {CURRENT_VERSION}): upgrade bmad, or use another journal with --journal")
    if tables and "runs" not in tables:
        shown = ", ".join(sorted(tables)[:5])
        raise JournalFileError(f"{path} is a SQLite database but not a bmad journal (it holds "
                               f"{shown}); it was left untouched")
    if not tables and not writable:
        raise JournalNotReady(f"{path} holds no bmad journal (the database is empty)")
    if version == CURRENT_VERSION and not writable:
        return version
    if version == CURRENT_VERSION and BMAD_TABLES <= tables and not _missing_tables(db, schema, tables):
        return version
    if not tables:  # only takes effect on an empty file (another process may be creating it)
        db.execute(f"PRAGMA page_size = {NEW_JOURNAL_PAGE_SIZE}")
    db.execute("BEGIN IMMEDIATE")  # one migrator at a time; others wait (busy timeout), then see it done
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        fresh = not _tables(db)
        for statement in _statements(schema):
            db.execute(statement)
        if not fresh:
            for target in range(version + 1, CURRENT_VERSION + 1):
                MIGRATIONS[target](db, schema)
        else:
            _index_runs_for_retention(db, schema)
            _index_call_blocks(db, schema)
            _index_measurements(db, schema)
        db.execute(f"PRAGMA user_version = {CURRENT_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return version


def _missing_tables(db: sqlite3.Connection, schema: str, tables: set[str]) -> bool:
    """Whether the schema declares a table this file lacks (a table added since, in this version)."""
    import re

    declared = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema))
    return bool(declared - tables)
