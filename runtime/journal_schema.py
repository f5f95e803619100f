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
- Each problem with the file has a stable code (docs/diagnostics.md, BMAD-E340 to E345): one it
  can't be opened or created at (E340), not a journal (E341), a newer bmad's (E342); and, at
  any time, locked by another process past the busy timeout (E343), damaged (E344), or not
  writable because its disk is full or failing (E345). SQLite's own words are kept in the message.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

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


# The journal file's problems, each with its own stable code (docs/diagnostics.md).
E_JOURNAL_OPEN = "BMAD-E340"  # can't be opened or created there (a folder, permissions)
E_NOT_A_JOURNAL = "BMAD-E341"  # not SQLite, or a SQLite database that is not a bmad journal
E_JOURNAL_NEWER = "BMAD-E342"  # written by a newer bmad
E_JOURNAL_BUSY = "BMAD-E343"  # another process held its write lock past the busy timeout
E_JOURNAL_DAMAGED = "BMAD-E344"  # SQLite found the file corrupt
E_JOURNAL_FULL = "BMAD-E345"  # can't be written: the disk is full, or failing
# How long a journal connection waits for another process's write lock before giving up.
BUSY_TIMEOUT_S = 30.0


class JournalFileError(Exception):
    """The file can't be used as a journal; the message says why in plain words."""

    def __init__(self, message: str, code: str = E_NOT_A_JOURNAL):
        super().__init__(message)
        self.message = message
        self.code = code


class JournalNotReady(JournalFileError):
    """An empty database opened read-only: not a journal yet (perhaps one being created now)."""


class JournalUnavailable(Exception):
    """The journal can't be used now: another process holds it locked (E343), SQLite found it
    damaged (E344), its disk is full or failing (E345), or (mid-command) it became read-only
    (E340). Deliberately not a `JournalError`: the commands catch those to print a hint about
    choosing another journal, which is the wrong advice here; this one reaches the command
    line's top level (`cli/main.py`), which prints `error: [CODE] message` and `hint`.
    `resume_ids`: the runs (or batches) a failed write interrupted, for the hint."""

    def __init__(self, code: str, message: str, hint: str, path: Path,
                 resume_ids: tuple[str, ...] = ()):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.path = path
        self.resume_ids = resume_ids

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def full_hint(self) -> str:
        """The hint, and how to continue what the failed write interrupted."""
        if self.code not in (E_JOURNAL_BUSY, E_JOURNAL_FULL) or not self.resume_ids:
            return self.hint
        ids = self.resume_ids
        which = f"`bmad run --resume {ids[0]}`" if len(ids) == 1 else \
            f"`bmad run --resume ID` ({', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''})"
        return f"{self.hint}; then continue with {which}"

    def run_error(self, run_id: str) -> str:
        """What a run this stopped records as its error (resumable once the lock is gone or
        there is space; a damaged journal must be recovered first)."""
        if self.code not in (E_JOURNAL_BUSY, E_JOURNAL_FULL):
            return str(self)
        return f"{self}; resume with `bmad run --resume {run_id}`"


# SQLite's primary result codes (`sqlite3.Error.sqlite_errorcode & 0xff`) for a file's troubles.
_SQLITE_KINDS = {5: "busy", 6: "busy", 8: "readonly", 10: "io", 11: "damaged", 13: "full",
                 14: "cantopen", 26: "notadb"}
# The same told by SQLite's message (an error raised without a code, as tests make them).
_SQLITE_WORDS = (("database is locked", "busy"), ("is locked", "busy"), ("readonly", "readonly"),
                 ("disk I/O error", "io"), ("malformed", "damaged"), ("disk is full", "full"),
                 ("unable to open", "cantopen"), ("file is not a database", "notadb"))


def sqlite_trouble(exc: BaseException) -> str | None:
    """What a SQLite error says about the file: busy, readonly, io, damaged, full, cantopen or
    notadb; None for anything else (a statement bmad got wrong is a bug, not the file)."""
    if not isinstance(exc, sqlite3.Error) or isinstance(exc, sqlite3.IntegrityError):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and (code & 0xFF) in _SQLITE_KINDS:
        return _SQLITE_KINDS[code & 0xFF]
    text = str(exc)
    return next((kind for words, kind in _SQLITE_WORDS if words in text), None)


def lock_holders(path: Path) -> list[str]:
    """The other processes holding a write lock on the journal (on the file itself, or on its
    `-shm` file, where SQLite keeps a WAL journal's write lock), as "pid N: command" (Linux's
    /proc/locks; empty where that can't be read)."""
    try:
        # The bytes a writer locks: in the -shm file the WAL write lock (byte 120); in the file
        # itself (a rollback journal) the RESERVED, PENDING and EXCLUSIVE locks (from 2**30 on).
        # Readers' locks, and a reader's brief lock on its read mark (-shm bytes 123 on), don't
        # keep a writer out.
        first_byte: dict[str, tuple[int, int]] = {}
        for name, lowest, highest in ((path, 1 << 30, 1 << 62),
                                      (path.with_name(path.name + "-shm"), 120, 120)):
            try:
                st = os.stat(name)
            except OSError:
                continue
            first_byte[f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"] = \
                (lowest, highest)
        if not first_byte:
            return []
        pids: list[int] = []
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                # "1: POSIX  ADVISORY  WRITE 4242 fe:00:2483919 120 120" ("->" marks a waiter)
                if len(fields) < 7 or fields[1] == "->" or fields[3] != "WRITE":
                    continue
                span = first_byte.get(fields[5])
                if span is None or not fields[4].isdigit() or not fields[6].isdigit():
                    continue
                pid = int(fields[4])
                if span[0] <= int(fields[6]) <= span[1] and pid != os.getpid() and pid not in pids:
                    pids.append(pid)
    except OSError:
        return []
    holders = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
            command = " ".join(" ".join([os.path.basename(argv[0]), *argv[1:]]).split())
        except (OSError, IndexError):
            command = ""
        if len(command) > 60:
            command = command[:57] + "..."
        holders.append(f"pid {pid}: {command}" if command else f"pid {pid}")
    return holders


def unusable_message(path: Path, exc: sqlite3.DatabaseError) -> str:
    """Why SQLite refused the journal, in plain words: a file or folder it may not write is not
    a file that isn't a journal, nor is a locked or damaged one."""
    text = str(exc)
    trouble = sqlite_trouble(exc)
    if path.is_dir():
        return folder_message(path)
    if trouble == "readonly":
        return (f"can't write the journal {path}: the file is read-only (or its folder is); "
                "a run journals every call")
    if trouble == "cantopen":
        return (f"can't open the journal {path}: its folder must be writable (SQLite keeps "
                f"{path.name}-wal and {path.name}-shm beside it), and the file readable")
    if trouble == "busy":
        holders = lock_holders(path)
        by = f" ({'; '.join(holders)})" if holders else ""
        return (f"the journal {path} is locked by another process{by} for more than "
                f"{BUSY_TIMEOUT_S:g} s")
    if trouble == "damaged":
        return f"the journal {path} is damaged ({text})"
    if trouble == "full":
        return f"the journal's disk is full ({path})"
    if trouble == "io":
        return f"can't write the journal {path} ({text}: the disk failed, or the file went away)"
    return f"{path} is not a bmad journal (not a SQLite database: {text})"


def folder_message(path: Path) -> str:
    return f"the journal {path} is a folder, not a file"


# Each trouble's code, and what to do about it (the command line prints it as the hint).
_TROUBLE_CODES = {"readonly": E_JOURNAL_OPEN, "cantopen": E_JOURNAL_OPEN, "busy": E_JOURNAL_BUSY,
                  "damaged": E_JOURNAL_DAMAGED, "full": E_JOURNAL_FULL, "io": E_JOURNAL_FULL,
                  "notadb": E_NOT_A_JOURNAL}


def trouble_hint(trouble: str, path: Path) -> str:
    if trouble == "busy":
        return "wait for that process to finish, or stop it, then run the command again"
    if trouble == "damaged":
        return (f"save what it still holds (`sqlite3 {path} .recover > dump.sql`), then move "
                f"{path.name} (with its -wal and -shm files) aside: bmad starts a new journal")
    if trouble in ("full", "io"):
        return "free space on that disk (or pass --journal PATH on another one)"
    return "check the path and its permissions, or pass --journal PATH to use another journal file"


def journal_trouble(path: Path, exc: BaseException,
                    resume_ids: tuple[str, ...] = ()) -> JournalUnavailable | None:
    """A SQLite error about the journal file as a `JournalUnavailable` with its code, message
    and hint; None when the error says nothing about the file (then it is a bug)."""
    trouble = sqlite_trouble(exc)
    if trouble is None:
        return None
    if trouble == "readonly":
        message = (f"can't write the journal {path}: the file is read-only (or its folder or "
                   "disk is)")
    else:
        message = unusable_message(path, exc)  # type: ignore[arg-type]
    return JournalUnavailable(_TROUBLE_CODES[trouble], message, trouble_hint(trouble, path),
                              path, resume_ids)


def open_error(path: Path, exc: sqlite3.DatabaseError) -> JournalFileError | JournalUnavailable:
    """What opening the journal raises for a SQLite error: a file that can't be a journal here
    (`JournalFileError`), or one that is locked, damaged or on a full disk (`JournalUnavailable`,
    which the commands don't mistake for a wrong journal)."""
    trouble = sqlite_trouble(exc)
    if trouble in ("busy", "damaged", "full", "io"):
        return journal_trouble(path, exc)  # type: ignore[return-value]
    code = E_JOURNAL_OPEN if trouble in ("readonly", "cantopen") or path.is_dir() \
        else E_NOT_A_JOURNAL
    return JournalFileError(unusable_message(path, exc), code)


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


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction with the write lock taken up front (BEGIN IMMEDIATE: another process
    is waited out up to the busy timeout, and nobody writes between what it reads and writes);
    rolled back on any error, unless SQLite already did (a full disk): a ROLLBACK then fails and
    would hide the error that stopped it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def prepare_schema(db: sqlite3.Connection, path: Path, schema: str, *, writable: bool) -> int:
    """Check the file is a journal this bmad can use and bring it to `CURRENT_VERSION`; returns the
    version found. Raises `JournalFileError` (foreign, newer, or not a database)."""
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = _tables(db)
        foreign = _foreign_table(db, tables) if "runs" in tables else None
    except sqlite3.DatabaseError as exc:
        raise open_error(path, exc) from None
    if foreign is not None:
        table, missing = foreign
        shown = ", ".join(sorted(tables)[:5])
        raise JournalFileError(f"{path} is a SQLite database but not a bmad journal (it holds "
                               f"{shown}; its {table} table has no {', '.join(missing)} "
                               f"column{'s' if len(missing) > 1 else ''}); it was left untouched")
    if version > CURRENT_VERSION:
        raise JournalFileError(
            f"{path} was written by a newer bmad (journal schema {version}; this bmad reads up "
            f"to {CURRENT_VERSION}): upgrade bmad, or use another journal with --journal",
            E_JOURNAL_NEWER)
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
    with write_transaction(db):  # one migrator at a time; others wait (busy timeout), then see it done
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
    return version


def _missing_tables(db: sqlite3.Connection, schema: str, tables: set[str]) -> bool:
    """Whether the schema declares a table this file lacks (a table added since, in this version)."""
    import re

    declared = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", schema))
    return bool(declared - tables)
