"""The run journal: one SQLite file (WAL) holding runs, tasks, calls, events, outputs and the
cross-run task cache. Each answering call row carries its attempt number within the task (the
task's n-th try, fallbacks included), so no separate attempt rows are written.

Writes are buffered and committed in one transaction per scheduling tick (`flush`): the scheduler
flushes a finished task's rows before any dependent starts, so a crash never loses a result that
something downstream has used. Another process can read the same file at any time (WAL).
Within a task, each finished `for each` item and `reduce` chunk is flushed as it finishes (items
finishing in the same tick share the commit), so a crash loses no paid call a resume could replay.
Default location: `.bmad/runs.db` under the working directory, or under `$BMAD_HOME`.

Each run owns a block of row ids (`runs.call_block`; ids `block << 32` up to the next block) in
`calls` and in `tasks`: a run's rows are one range of each table's own b-tree, so reading them
needs no index, and a commit appends at the end of its block (no index entry, no insert in the
middle of a text-keyed b-tree: two pages fewer per chain commit). A task has one row per run:
when it is written again (a resumed run finishing a task that failed before), the earlier row
is deleted in the same commit.

A commit that fails because of the file (another process's lock held past the busy timeout, a
damaged page, a full or failing disk) raises `JournalUnavailable` with its code (BMAD-E343 to
E345), never SQLite's raw error, and keeps its rows buffered; the command line's top level prints
it (`journal_problem` finds one within a task group's failure). Readers fall back to read-only
opening (read-only media).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import weakref
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any, Iterable

from bmad.runtime.journal_schema import (BUSY_TIMEOUT_S, E_JOURNAL_BUSY, E_JOURNAL_OPEN,
                                         JournalFileError, JournalNotReady, JournalUnavailable,
                                         create_private_file, folder_message, journal_trouble,
                                         open_error, prepare_schema, sqlite_trouble,
                                         write_transaction)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, workflow TEXT, plan_hash TEXT, status TEXT,
  budget_usd REAL, budget_tokens INTEGER, budget_time_s REAL,
  spent_usd REAL DEFAULT 0, tokens INTEGER DEFAULT 0, unknown_cost_calls INTEGER DEFAULT 0,
  elapsed_s REAL DEFAULT 0,
  started_at REAL, finished_at REAL, updated_at REAL, total_tasks INTEGER, done_tasks INTEGER DEFAULT 0,
  pid INTEGER, error TEXT, source TEXT, inputs_json TEXT, options_json TEXT, plan_json TEXT,
  call_block INTEGER);
CREATE TABLE IF NOT EXISTS tasks (
  id INTEGER PRIMARY KEY, run_id TEXT, task_id TEXT, status TEXT, model TEXT, attempts INTEGER,
  cost_usd REAL, tokens INTEGER, quality REAL, output_json TEXT, error TEXT, started_at REAL,
  finished_at REAL, cache_key TEXT, cached INTEGER DEFAULT 0, capability TEXT);
CREATE TABLE IF NOT EXISTS calls (
  id INTEGER PRIMARY KEY, run_id TEXT, task_id TEXT, slot TEXT, model TEXT,
  request_hash TEXT, status TEXT, response_text TEXT, input_tokens INTEGER, output_tokens INTEGER,
  cost_usd REAL, latency_s REAL, error TEXT, error_kind TEXT, cached INTEGER DEFAULT 0,
  purpose TEXT, capability TEXT, quality REAL, created_at REAL, attempt INTEGER);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, ts REAL, kind TEXT, task_id TEXT, data_json TEXT);
CREATE TABLE IF NOT EXISTS plans (plan_hash TEXT PRIMARY KEY, plan_json TEXT);
CREATE TABLE IF NOT EXISTS outputs (run_id TEXT, name TEXT, value_json TEXT, PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS cache (
  key TEXT PRIMARY KEY, workflow TEXT, task_id TEXT, model TEXT, components_json TEXT,
  output_json TEXT, quality REAL, run_id TEXT, created_at REAL);
CREATE INDEX IF NOT EXISTS cache_by_task ON cache (workflow, task_id, created_at);
CREATE TABLE IF NOT EXISTS verdicts (
  run_id TEXT, task_id TEXT, model TEXT, capability TEXT, agreement REAL, created_at REAL,
  slot TEXT);
CREATE TABLE IF NOT EXISTS calibration (
  run_id TEXT, task_id TEXT, capability TEXT, agreement REAL, matched REAL, created_at REAL,
  slot TEXT);
CREATE TABLE IF NOT EXISTS batches (
  id TEXT PRIMARY KEY, workflow TEXT, plan_hash TEXT, status TEXT, source TEXT, inputs_path TEXT,
  total_rows INTEGER, budget_usd REAL, budget_tokens INTEGER, budget_time_s REAL,
  spent_usd REAL DEFAULT 0, tokens INTEGER DEFAULT 0, elapsed_s REAL DEFAULT 0, executor TEXT,
  options_json TEXT, started_at REAL, finished_at REAL, updated_at REAL, pid INTEGER, error TEXT);
CREATE TABLE IF NOT EXISTS batch_rows (
  batch_id TEXT, row_index INTEGER, run_id TEXT, inputs_json TEXT,
  PRIMARY KEY (batch_id, row_index));
CREATE TABLE IF NOT EXISTS holders (
  id TEXT PRIMARY KEY, pid INTEGER, boot_id TEXT, pid_ns INTEGER, start_ticks INTEGER);
"""

_INSERT_CALL = ("INSERT INTO calls (id, run_id, task_id, slot, model, request_hash, status, "
                "response_text, input_tokens, output_tokens, cost_usd, latency_s, error, "
                "error_kind, cached, purpose, capability, quality, created_at, attempt) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_INSERT_TASK = ("INSERT INTO tasks (id, run_id, task_id, status, model, attempts, cost_usd, "
                "tokens, quality, output_json, error, started_at, finished_at, cache_key, cached, "
                "capability) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
# The common rows without the columns they leave NULL (or at their default, `cached` 0): an
# answered call (no error, not cached, no quality; without a capability, or with one) and a task
# that neither failed nor came from the cache (without quality and capability, or with them).
# Python's sqlite3 binds a None through its adapter lookup, ~0.4 us each (an int ~0.1), and a
# chain binds two rows per commit. The rows stored are exactly those of the full statements; a
# row's width says which statement it goes through.
_ANSWER_COLUMNS = ("id, run_id, task_id, slot, model, request_hash, status, response_text, "
                   "input_tokens, output_tokens, cost_usd, latency_s, purpose")
_RESULT_COLUMNS = ("id, run_id, task_id, status, model, attempts, cost_usd, tokens, output_json, "
                   "started_at, finished_at")


def _insert(verb: str, table: str, columns: str) -> str:
    return f"{verb} INTO {table} ({columns}) VALUES ({','.join('?' * (columns.count(',') + 1))})"


_CALL_SQL = {  # by the row's width
    20: _INSERT_CALL,
    16: _insert("INSERT", "calls", _ANSWER_COLUMNS + ", capability, created_at, attempt"),
    15: _insert("INSERT", "calls", _ANSWER_COLUMNS + ", created_at, attempt"),
}
_TASK_SQL = {
    16: _INSERT_TASK,
    13: _insert("INSERT", "tasks", _RESULT_COLUMNS + ", quality, capability"),
    11: _insert("INSERT", "tasks", _RESULT_COLUMNS),
}

# A run's rows in `calls` and `tasks` have the ids `call_block << CALL_BLOCK_BITS` onwards (block
# 0: rows of no run the journal holds).
CALL_BLOCK_BITS = 32
_CALL_BLOCK_SIZE = 1 << CALL_BLOCK_BITS
# One run's rows of `calls` or `tasks`, by id range (parameters: `Journal.rows_of(run_id)`); the
# run id test keeps block 0 apart by run.
ROWS_OF_RUN = "id BETWEEN ? AND ? AND run_id = ?"


def rows_of_runs_join(table: str, alias: str) -> str:
    """Joins `runs r` to its rows of `table` (`calls` or `tasks`) by id range: SQLite walks the
    table's own b-tree for each run."""
    return (f"{table} {alias} ON {alias}.id BETWEEN r.call_block * {_CALL_BLOCK_SIZE} "
            f"AND r.call_block * {_CALL_BLOCK_SIZE} + {_CALL_BLOCK_SIZE - 1}")


def call_id_range(block: int) -> tuple[int, int]:
    """The first and last row id of a run's block."""
    first = block << CALL_BLOCK_BITS
    return first, first + _CALL_BLOCK_SIZE - 1


class _RunRows:
    """What the journal knows of one run's rows: the ids its next call and task rows take, and
    each task's row (a task written again replaces it)."""

    __slots__ = ("next_call", "next_task", "tasks")

    def __init__(self, next_call: int, next_task: int, tasks: dict[str, int]):
        self.next_call = next_call
        self.next_task = next_task
        self.tasks = tasks


FINAL_TASK_STATUSES = ("completed", "skipped")
ACTIVE_RUN_STATUSES = ("running",)


def default_journal_path(cwd: Path | None = None) -> Path:
    home = os.environ.get("BMAD_HOME")
    if home:
        return Path(home) / "runs.db"
    return (cwd or Path.cwd()) / ".bmad" / "runs.db"


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


def dumps(value: Any) -> str:
    # One encoder for every row (json.dumps with options builds a new one per call).
    return _ENCODER.encode(value)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# An id prefix (`bmad show 2026`), matched literally: `%`, `_` and the escape character itself
# are escaped, so `bmad show %` matches no run rather than every run.
PREFIX_MATCH = "id LIKE ? ESCAPE '\\'"


def like_prefix(prefix: str) -> str:
    """The LIKE pattern of PREFIX_MATCH for ids starting with `prefix`."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True, slots=True)
class RecordedCall:
    text: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_s: float


class JournalError(Exception):
    """The file can't be used as a journal (BMAD-E340 to E342): the commands print
    `error: [CODE] message` and their own hint about which journal to use. A journal that is
    locked, damaged or on a full disk raises `JournalUnavailable` instead."""

    def __init__(self, message: str, code: str = E_JOURNAL_OPEN):
        super().__init__(message)
        self.message = message
        self.code = code

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class JournalNotCreatedYet(JournalError):
    """Read-only open of an empty database: a run may be creating the journal this instant."""


# The journal this process opened last (and the `Journal`, while it lives): a SQLite error that
# reaches the command line's top level unhandled (a reader's query on a damaged page, a run's row
# written on a full disk) is about it (`journal_problem`).
_last_path: Path | None = None
_last_journal: weakref.ref[Journal] | None = None


def journal_problem(exc: BaseException, path: Path | None = None) -> JournalUnavailable | None:
    """The journal trouble `exc` is, or holds within exception groups (a task group's failure):
    a `JournalUnavailable`, or a SQLite error about the file (locked, damaged, full, read-only)
    told as one about `path` (else the journal opened last). None when there is none: a SQLite
    error about a statement is a bug, not the file."""
    stack = [exc]
    while stack:
        error = stack.pop()
        if isinstance(error, JournalUnavailable):
            return error
        where = path or _last_path
        if isinstance(error, sqlite3.Error) and where is not None:
            journal = _last_journal() if _last_journal is not None else None
            runs = journal._resume_ids() if journal is not None and journal.path == where else ()
            problem = journal_trouble(where, error, runs)
            if problem is not None:
                return problem
        if isinstance(error, BaseExceptionGroup):
            stack.extend(reversed(error.exceptions))
    return None


def _cannot_open(exc: BaseException) -> bool:
    """SQLite could not open the file read-write (read-only media, folder or file)."""
    if isinstance(exc, JournalFileError):
        return exc.code == E_JOURNAL_OPEN
    return sqlite_trouble(exc) in ("cantopen", "readonly")


def _create_message(path: Path, exc: OSError) -> str:
    """Why the journal's file or folder can't be created: a parent that is a file is named."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"cannot create the journal {path}: {parent} is a file, not a folder"
            break
    return f"cannot create the journal {path}: {exc.strerror or exc}"


class RunClaimRefused(Exception):
    """`Journal.reopen_run` did not claim the run. `status` is None when the run is gone (pruned);
    `pid` is the process that holds it; `changed`: written by another process since the caller
    read it."""

    def __init__(self, run_id: str, status: str | None, pid: int | None, changed: bool = False):
        super().__init__(f"run `{run_id}` can't be claimed ({status or 'gone'})")
        self.run_id, self.status, self.pid, self.changed = run_id, status, pid, changed


_UNCHECKED = object()  # `reopen_run` without a `seen_updated_at` to compare


class Journal:
    """Buffered writer and reader of one journal file."""

    def __init__(self, path: Path | str, *, readonly: bool = False):
        global _last_path, _last_journal
        self.path = Path(path)
        _last_path = self.path
        if self.path.is_dir():  # SQLite would only say it can't open it
            raise JournalError(f"{folder_message(self.path)}: pass a file's path, such as "
                               f"{self.path / 'runs.db'}")
        if not readonly:
            try:
                create_private_file(self.path)  # directory 0700, database 0600
            except OSError as exc:
                raise JournalError(_create_message(self.path, exc)) from None
        elif not self.path.exists():
            raise JournalError(f"no journal at {self.path}")
        self.db = None  # type: ignore[assignment]
        try:
            try:
                self.db = sqlite3.connect(str(self.path), isolation_level=None,
                                          timeout=BUSY_TIMEOUT_S, check_same_thread=False)
                # refuse foreign, corrupt or newer files before changing anything; migrate older ones
                prepare_schema(self.db, self.path, _SCHEMA, writable=not readonly)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable across process crashes
                # Checkpoint (and fsync) every ~16 MB of WAL rather than every 4 MB: fewer stalls.
                self.db.execute("PRAGMA wal_autocheckpoint=4000")
                if not readonly:
                    self.db.executescript(_SCHEMA)
                    self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                                    (str(SCHEMA_VERSION),))
            except (sqlite3.DatabaseError, JournalFileError) as exc:
                if not (readonly and _cannot_open(exc)):
                    raise
                # A reader of a journal SQLite can't open read-write (read-only media, where a
                # journal is usually kept after its runs): read-only instead.
                if self.db is not None:
                    self.db.close()
                    self.db = None  # type: ignore[assignment]
                self.db = self._open_read_only(exc)
        except (sqlite3.DatabaseError, JournalFileError) as exc:
            if self.db is not None:
                self.db.close()
            if isinstance(exc, JournalFileError):
                error = JournalNotCreatedYet if isinstance(exc, JournalNotReady) else JournalError
                raise error(exc.message, exc.code) from None
            problem = open_error(self.path, exc)
            if isinstance(problem, JournalFileError):
                raise JournalError(problem.message, problem.code) from None
            raise problem from None  # locked, damaged, a full disk: not a wrong journal
        # The commits' own cursor (`Connection.execute` builds a cursor per statement).
        self._writer = self.db.cursor()
        self._tasks: list[tuple] = []
        self._calls: list[tuple] = []
        self._events: list[tuple] = []
        self._cache: list[tuple] = []
        self._verdicts: list[tuple] = []
        self._calibration: list[tuple] = []
        self._run_update: tuple | None = None
        self._task_deletes: list[tuple[int]] = []  # rows of tasks written again
        self._runs: dict[str, _RunRows] = {}
        # Why the last commit failed (None once one succeeds): `close` does not try again.
        self._write_failed: JournalUnavailable | None = None
        _last_journal = weakref.ref(self)

    def _open_read_only(self, first: BaseException) -> sqlite3.Connection:
        """The journal opened read-only (`mode=ro`); on read-only media, where SQLite can't
        create the `-shm` file a WAL journal is read with, as an immutable file, unless a `-wal`
        file holds commits that way of reading would miss. Raises `first` (why it couldn't be
        opened read-write) when neither works for that same reason."""
        uri = self.path.absolute().as_uri() + "?mode=ro"
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            unmerged = wal.stat().st_size > 0
        except OSError:
            unmerged = False
        for query in (uri, None if unmerged else uri + "&immutable=1"):
            if query is None:
                break
            db = None
            try:
                db = sqlite3.connect(query, uri=True, isolation_level=None,
                                     timeout=BUSY_TIMEOUT_S, check_same_thread=False)
                prepare_schema(db, self.path, _SCHEMA, writable=False)
                return db
            except (sqlite3.DatabaseError, JournalFileError) as exc:
                if db is not None:
                    db.close()
                if not _cannot_open(exc):
                    raise
        raise first

    def close(self) -> None:
        try:
            if self._write_failed is None:
                self.flush()
            # else the rows a commit couldn't write stay unwritten: trying again would only fail
            # (or wait out another busy timeout) while the error that stopped the run is reported
        finally:
            self.db.close()

    # -- buffered writes ----------------------------------------------------------------------
    # Positional or keyword: the runtime's hot path passes everything by position (cheaper).
    def add_task(self, run_id: str, task_id: str, status: str, model: str | None = None,
                 attempts: int = 0, cost_usd: float | None = 0.0, tokens: int = 0,
                 quality: float | None = None, output: Any = None, error: str | None = None,
                 started_at: float | None = None, finished_at: float | None = None,
                 cache_key: str | None = None, cached: bool = False,
                 capability: str | None = None) -> None:
        rows = self._runs.get(run_id) or self._run_rows(run_id)
        row_id = rows.next_task
        rows.next_task = row_id + 1
        earlier = rows.tasks.get(task_id)
        if earlier is not None:  # one row per task and run: the new one replaces it
            self._task_deletes.append((earlier,))
        rows.tasks[task_id] = row_id
        if error is None and cache_key is None and not cached:  # the common rows: `_TASK_SQL`
            if quality is None and capability is None:
                self._tasks.append((row_id, run_id, task_id, status, model, attempts, cost_usd,
                                    tokens, dumps(output), started_at, finished_at))
            else:
                self._tasks.append((row_id, run_id, task_id, status, model, attempts, cost_usd,
                                    tokens, dumps(output), started_at, finished_at, quality,
                                    capability))
        else:
            self._tasks.append((row_id, run_id, task_id, status, model, attempts, cost_usd,
                                tokens, quality, dumps(output), error, started_at, finished_at,
                                cache_key, int(cached), capability))

    def add_call(self, run_id: str, task_id: str, slot: str, model: str, request_hash: str,
                 status: str, text: str | None = None, input_tokens: int = 0,
                 output_tokens: int = 0, cost_usd: float | None = 0.0, latency_s: float = 0.0,
                 error: str | None = None, error_kind: str | None = None, cached: bool = False,
                 purpose: str = "answer", capability: str | None = None,
                 quality: float | None = None, attempt: int | None = None) -> None:
        """`attempt`: the task's try number for an answering call made now (None for judge and
        review calls, and for recorded calls a resume reuses)."""
        rows = self._runs.get(run_id) or self._run_rows(run_id)
        call_id = rows.next_call
        rows.next_call = call_id + 1
        if error is None and error_kind is None and quality is None and not cached:  # an answer
            if capability is None:
                self._calls.append((call_id, run_id, task_id, slot, model, request_hash, status,
                                    text, input_tokens, output_tokens, cost_usd, latency_s,
                                    purpose, time.time(), attempt))
            else:
                self._calls.append((call_id, run_id, task_id, slot, model, request_hash, status,
                                    text, input_tokens, output_tokens, cost_usd, latency_s,
                                    purpose, capability, time.time(), attempt))
        else:
            self._calls.append((call_id, run_id, task_id, slot, model, request_hash, status,
                                text, input_tokens, output_tokens, cost_usd, latency_s, error,
                                error_kind, int(cached), purpose, capability, quality,
                                time.time(), attempt))

    def rows_range(self, run_id: str) -> tuple[int, int]:
        """The ids a run's rows of `calls` and `tasks` have: its block, or block 0 for a run the
        journal holds no row of (rows written without one, or kept from a run since removed).
        Readers select `ROWS_OF_RUN` with `rows_of(run_id)`."""
        row = self.db.execute("SELECT call_block FROM runs WHERE id=?", (run_id,)).fetchone()
        return call_id_range(row[0] if row and row[0] is not None else 0)

    def rows_of(self, run_id: str) -> tuple[int, int, str]:
        """The parameters of `ROWS_OF_RUN` for one run."""
        return (*self.rows_range(run_id), run_id)

    def _run_rows(self, run_id: str) -> _RunRows:
        """What the file holds of a run's rows: ids continue after the largest in its block, and
        its task rows are known. Kept from then on in memory: one process writes a run at a time
        (a resume of a run still running elsewhere is refused), and `flush` re-numbers if
        another writer took an id anyway."""
        first, last = self.rows_range(run_id)
        ids = []
        for table in ("calls", "tasks"):
            largest = self.db.execute(f"SELECT MAX(id) FROM {table} WHERE id BETWEEN ? AND ?",
                                      (first, last)).fetchone()[0]
            ids.append(first if largest is None else largest + 1)
        tasks = dict(self.db.execute(f"SELECT task_id, id FROM tasks WHERE {ROWS_OF_RUN} "
                                     f"ORDER BY id", (first, last, run_id)))
        rows = self._runs[run_id] = _RunRows(ids[0], ids[1], tasks)
        return rows

    def add_verdict(self, run_id: str, task_id: str, model: str, capability: str | None,
                    agreement: float, slot: str) -> None:
        """One answer's measured quality (0..1): how far it agreed with what a consensus task
        finally decided, or the score a quality gate gave it. `slot` names the answer within the
        task: a resume that replays the answer measures it again, and that second row is dropped."""
        self._verdicts.append((run_id, task_id, model, capability, agreement, time.time(), slot))

    def add_calibration(self, run_id: str, task_id: str, capability: str | None,
                        agreement: float, matched: bool, slot: str) -> None:
        """A consensus that escalated: its agreement before escalating, and whether its decision
        then was the escalation model's answer (what `quality >= auto` learns its bar from).
        `slot` is that answer's: one row per escalation, however often a resume replays it."""
        self._calibration.append((run_id, task_id, capability, agreement, 1.0 if matched else 0.0,
                                  time.time(), slot))

    def add_event(self, run_id: str, kind: str, task_id: str | None, data: dict[str, Any]) -> None:
        self._events.append((run_id, time.time(), kind, task_id, dumps(data)))

    def update_run_progress(self, run_id: str, spent_usd: float, tokens: int, unknown: int,
                            elapsed_s: float, done_tasks: int) -> None:
        self._run_update = (spent_usd, tokens, unknown, elapsed_s, done_tasks, time.time(), run_id)

    @property
    def pending(self) -> bool:
        return bool(self._tasks or self._calls or self._events or self._cache
                    or self._verdicts or self._calibration or self._run_update
                    or self._task_deletes)

    def flush(self) -> None:
        """Commit everything buffered in one transaction."""
        calls, tasks = self._calls, self._tasks
        rare = self._events or self._cache or self._verdicts or self._calibration \
            or self._run_update or self._task_deletes
        if not (calls or tasks or rare):
            return
        try:
            self._commit(calls, tasks, rare)
        except sqlite3.IntegrityError:
            # Only a row id can clash: another writer used ids of this run's block. Take the
            # ids after the block's largest and commit once more.
            if not (calls or tasks):
                raise
            self._renumber()
            self._commit(calls, tasks, rare)
        self._write_failed = None
        calls.clear()
        tasks.clear()
        if rare:
            self._task_deletes.clear()
            self._events.clear()
            self._cache.clear()
            self._verdicts.clear()
            self._calibration.clear()
            self._run_update = None

    def _commit(self, calls: list[tuple], tasks: list[tuple], rare: Any) -> None:
        cur = self._writer
        try:
            cur.execute("BEGIN IMMEDIATE")  # take the write lock up front: waits out another process
            # One row (a chain's commit) goes through `execute`: `executemany` costs more per call.
            # Rows of several widths (see `_CALL_SQL`) go in their order: call ids increase in
            # the order calls were made.
            if len(calls) == 1:
                row = calls[0]
                cur.execute(_CALL_SQL[len(row)], row)
            elif calls:
                for width, rows in groupby(calls, len):
                    cur.executemany(_CALL_SQL[width], rows)
            if len(tasks) == 1:
                row = tasks[0]
                cur.execute(_TASK_SQL[len(row)], row)
            elif tasks:
                for width, rows in groupby(tasks, len):
                    cur.executemany(_TASK_SQL[width], rows)
            if rare:
                self._write_rare(self.db)
            cur.execute("COMMIT")
        except BaseException as exc:
            # SQLite has already rolled back after some errors (a full disk, an I/O error): a
            # ROLLBACK then fails ("no transaction is active") and would hide the real error.
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the error that stopped the commit is the one to report
            if sqlite_trouble(exc) is None:
                raise  # a clash of row ids (see `flush`), a cancellation, or a bug
            # Locked past the busy timeout, damaged, a full disk: the buffered rows stay
            # buffered (a later flush may still write them) and the error says what to do.
            problem = journal_trouble(self.path, exc, self._resume_ids())
            self._write_failed = problem
            raise problem from exc

    def _resume_ids(self) -> tuple[str, ...]:
        """The runs a failed commit interrupted (a batch's row runs as their batch), for the
        hint that says how to continue them."""
        ids: dict[str, None] = {}
        for run_id in (*self._runs, *(row[1] for row in self._calls),
                       *(row[1] for row in self._tasks)):
            batch, dot, row = run_id.rpartition(".")
            ids[batch if run_id.startswith("batch-") and dot and row.isdigit() else run_id] = None
        return tuple(ids)

    def _renumber(self) -> None:
        """Give the buffered call and task rows fresh ids, in their order, after those stored."""
        for row in self._calls + self._tasks:
            self._runs.pop(row[1], None)
        for buffered, field in ((self._calls, "next_call"), (self._tasks, "next_task")):
            renumbered = []
            for row in buffered:
                rows = self._runs.get(row[1]) or self._run_rows(row[1])
                row_id = getattr(rows, field)
                setattr(rows, field, row_id + 1)
                renumbered.append((row_id, *row[1:]))
                if buffered is self._tasks:
                    rows.tasks[row[2]] = row_id
            buffered[:] = renumbered

    def _write_rare(self, db: sqlite3.Connection) -> None:
        """The rows most commits have none of: events, cache entries, verdicts, progress."""
        if self._task_deletes:  # earlier rows of tasks written again (by id: any order works)
            db.executemany("DELETE FROM tasks WHERE id=?", self._task_deletes)
        if self._events:
            db.executemany("INSERT INTO events (run_id, ts, kind, task_id, data_json) "
                           "VALUES (?,?,?,?,?)", self._events)
        if self._cache:
            db.executemany("INSERT OR REPLACE INTO cache VALUES (?,?,?,?,?,?,?,?,?)", self._cache)
        if self._verdicts:
            db.executemany("INSERT OR IGNORE INTO verdicts (run_id, task_id, model, capability, "
                           "agreement, created_at, slot) VALUES (?,?,?,?,?,?,?)", self._verdicts)
        if self._calibration:
            db.executemany("INSERT OR IGNORE INTO calibration (run_id, task_id, capability, "
                           "agreement, matched, created_at, slot) VALUES (?,?,?,?,?,?,?)",
                           self._calibration)
        if self._run_update:
            db.execute("UPDATE runs SET spent_usd=?, tokens=?, unknown_cost_calls=?, "
                       "elapsed_s=?, done_tasks=?, updated_at=? WHERE id=?", self._run_update)

    # -- plans --------------------------------------------------------------------------------
    def has_plan(self, plan_hash: str) -> bool:
        return self.db.execute("SELECT 1 FROM plans WHERE plan_hash=?", (plan_hash,)).fetchone() is not None

    def store_plan(self, plan_hash: str, plan_json: str) -> None:
        """Each sealed plan is stored once, whatever number of runs use it."""
        self.db.execute("INSERT OR IGNORE INTO plans VALUES (?, ?)", (plan_hash, plan_json))

    def plan_json(self, run_id: str) -> str | None:
        row = self.db.execute("SELECT p.plan_json FROM runs r JOIN plans p ON p.plan_hash = r.plan_hash "
                              "WHERE r.id=?", (run_id,)).fetchone()
        return row[0] if row else None

    # -- runs ---------------------------------------------------------------------------------
    def create_run(self, run_id: str, *, workflow: str, plan_hash: str, plan_json: str | None,
                   inputs: dict[str, Any], budget: tuple[float | None, int | None, float | None],
                   total_tasks: int, source: str | None, options: dict[str, Any]) -> None:
        now = time.time()
        with write_transaction(self.db) as db:  # the run and who holds it (`holders`) together
            # The next block: one statement, so two processes starting runs can't take the same one.
            db.execute(
                "INSERT INTO runs (id, workflow, plan_hash, status, budget_usd, budget_tokens, "
                "budget_time_s, started_at, updated_at, total_tasks, pid, source, inputs_json, "
                "options_json, plan_json, call_block) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                "(SELECT COALESCE(MAX(call_block), 0) + 1 FROM runs))",
                (run_id, workflow, plan_hash, "running", budget[0], budget[1], budget[2], now, now,
                 total_tasks, os.getpid(), source, dumps(inputs), dumps(options), plan_json))
            self.record_holder(run_id)
        first = self.rows_range(run_id)[0]
        self._runs[run_id] = _RunRows(first, first, {})

    def reopen_run(self, run_id: str,
                   budget: tuple[float | None, int | None, float | None] | None = None, *,
                   seen_updated_at: Any = _UNCHECKED) -> None:
        """Claim `run_id` for this process (a resume): `running`, with this pid. One compare-and-
        set under the write lock, so two resumes of a run, or a resume and a prune, are serialised:
        raises `RunClaimRefused` when the run is gone (pruned), completed, held by a live process,
        or, given `seen_updated_at` (the `updated_at` the caller read when it decided to resume),
        written since then (another process resumed it meanwhile: what the caller read is stale)."""
        with write_transaction(self.db) as db:  # read and claim under one lock: nobody claims in between
            row = db.execute("SELECT status, pid, updated_at FROM runs WHERE id=?",
                             (run_id,)).fetchone()
            if row is None:
                raise RunClaimRefused(run_id, None, None)
            status, pid, updated_at = row
            if status == "completed":
                raise RunClaimRefused(run_id, status, pid)
            if status == "running" and held_elsewhere(pid, read_holders(db, [run_id]).get(run_id)):
                raise RunClaimRefused(run_id, status, pid)
            if seen_updated_at is not _UNCHECKED and updated_at != seen_updated_at:
                raise RunClaimRefused(run_id, status, pid, changed=True)
            sets, args = "", ()
            if budget is not None:
                sets, args = ", budget_usd=?, budget_tokens=?, budget_time_s=?", tuple(budget)
            # the row as read above (status and pid), or nothing: a belt to the lock's braces
            claimed = db.execute(
                "UPDATE runs SET status='running', finished_at=NULL, error=NULL, pid=?, "
                f"updated_at=?{sets} WHERE id=? AND status IS ? AND pid IS ?",
                (os.getpid(), time.time(), *args, run_id, status, pid)).rowcount
            if claimed != 1:
                raise RunClaimRefused(run_id, status, pid, changed=True)
            self.record_holder(run_id)
        self._runs.pop(run_id, None)  # continue after the rows it wrote before

    def finish_run(self, run_id: str, status: str, *, spent_usd: float, tokens: int,
                   unknown_cost_calls: int, elapsed_s: float, done_tasks: int,
                   error: str | None = None, outputs: dict[str, Any] | None = None) -> None:
        self._run_update = None
        unwritten = None
        try:
            self.flush()
        except JournalUnavailable as problem:
            if problem.code == E_JOURNAL_BUSY:
                raise  # the lock is still held: the small write below would wait it out again
            # A full disk, a damaged page: the buffered rows can't be written, but the run's
            # end may still fit (one row): record it rather than leave the run `running`.
            unwritten = problem
        self._runs.pop(run_id, None)  # a later write (a resume) reads the run's rows back
        now = time.time()
        try:
            self.db.execute("BEGIN")
            self.db.execute("UPDATE runs SET status=?, spent_usd=?, tokens=?, unknown_cost_calls=?, "
                            "elapsed_s=?, done_tasks=?, finished_at=?, updated_at=?, error=? "
                            "WHERE id=?", (status, spent_usd, tokens, unknown_cost_calls,
                                           elapsed_s, done_tasks, now, now, error, run_id))
            if outputs is not None:
                self.db.executemany("INSERT OR REPLACE INTO outputs VALUES (?,?,?)",
                                    [(run_id, k, dumps(v)) for k, v in outputs.items()])
            self.db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self.db.in_transaction:  # not after SQLite rolled back itself (a full disk)
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            problem = unwritten or journal_trouble(self.path, exc, (run_id,))
            if problem is None:
                raise
            raise problem from exc
        if unwritten is not None:
            raise unwritten

    def run(self, run_id: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,))
        row = cur.fetchone()
        if row is None:
            # Accept a unique prefix, like git does for commits (None when several match:
            # `runs_with_prefix` tells the two apart).
            if not run_id:
                return None
            rows = self.db.execute(f"SELECT * FROM runs WHERE {PREFIX_MATCH} LIMIT 2",
                                   (like_prefix(run_id),)).fetchall()
            if len(rows) != 1:
                return None
            row = rows[0]
        return dict(zip([c[0] for c in cur.description], row))

    def missing_run(self, run_id: str) -> str:
        """Why `run(run_id)` found nothing: no such run, or a prefix that several runs share."""
        matches = self.runs_with_prefix(run_id, limit=6)
        if len(matches) > 1:
            shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            return f"`{run_id}` matches several runs in {self.path}: {shown}; give more of the id"
        return f"no run `{run_id}` in {self.path}"

    def runs_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        """Ids of the runs whose id starts with `prefix` (literally: `%` and `_` are no
        wildcards), in id order, at most `limit`."""
        if not prefix:
            return []
        return [r[0] for r in self.db.execute(
            f"SELECT id FROM runs WHERE {PREFIX_MATCH} ORDER BY id LIMIT ?",
            (like_prefix(prefix), limit))]

    def runs(self, limit: int = 50, status: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT id, workflow, status, spent_usd, unknown_cost_calls, budget_usd, tokens, total_tasks, done_tasks, "
               "started_at, finished_at, updated_at, pid FROM runs")
        args: tuple = ()
        if status:
            sql += " WHERE status=?"
            args = (status,)
        cur = self.db.execute(sql + " ORDER BY started_at DESC LIMIT ?", args + (limit,))
        names = [c[0] for c in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        return with_holders(self.db, rows)

    def task_rows(self, run_id: str) -> list[dict[str, Any]]:
        """A run's task rows (each task's one row, without its row id)."""
        cur = self.db.execute(f"SELECT * FROM tasks WHERE {ROWS_OF_RUN} "
                              f"ORDER BY started_at, task_id", self.rows_of(run_id))
        names = [c[0] for c in cur.description]
        return [{k: v for k, v in zip(names, r) if k != "id"} for r in cur.fetchall()]

    def call_rows(self, run_id: str) -> list[dict[str, Any]]:
        cur = self.db.execute(f"SELECT * FROM calls WHERE {ROWS_OF_RUN} ORDER BY id",
                              self.rows_of(run_id))
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def event_rows(self, run_id: str) -> list[dict[str, Any]]:
        cur = self.db.execute("SELECT ts, kind, task_id, data_json FROM events WHERE run_id=? "
                              "ORDER BY id", (run_id,))
        return [{"ts": ts, "event": kind, "task": task, **(loads(data) or {})}
                for ts, kind, task, data in cur.fetchall()]

    def outputs(self, run_id: str) -> dict[str, Any]:
        return {k: loads(v) for k, v in
                self.db.execute("SELECT name, value_json FROM outputs WHERE run_id=? ORDER BY name",
                                (run_id,))}

    def final_tasks(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Tasks a resume must not run again: completed or skipped."""
        rows = self.db.execute(
            "SELECT task_id, status, model, attempts, cost_usd, tokens, quality, output_json "
            f"FROM tasks WHERE {ROWS_OF_RUN} AND status IN ('completed', 'skipped')",
            self.rows_of(run_id))
        return {t: {"status": s, "model": m, "attempts": a, "cost_usd": c, "tokens": tok,
                    "quality": q, "output": loads(o)}
                for t, s, m, a, c, tok, q, o in rows}

    def recorded_calls(self, run_id: str) -> dict[str, RecordedCall]:
        """Successful responses of a run by request hash, for a resume to reuse."""
        rows = self.db.execute(
            "SELECT request_hash, response_text, input_tokens, output_tokens, cost_usd, latency_s "
            f"FROM calls WHERE {ROWS_OF_RUN} AND status='ok' ORDER BY id", self.rows_of(run_id))
        # Negative usage or cost (a journal written before they were refused) counts as none.
        return {h: RecordedCall(t or "", max(i or 0, 0), max(o or 0, 0),
                                None if c is None else max(c, 0.0), l or 0.0)
                for h, t, i, o, c, l in rows}

    def spend(self, run_id: str) -> tuple[float, int, int]:
        """Dollars, tokens and unknown-cost calls actually spent by a run (cached calls are free)."""
        usd, tokens, unknown = self.db.execute(
            "SELECT COALESCE(SUM(MAX(cost_usd, 0)), 0), "
            "COALESCE(SUM(MAX(input_tokens, 0) + MAX(output_tokens, 0)), 0), "
            "SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) FROM calls "
            f"WHERE {ROWS_OF_RUN} AND cached=0", self.rows_of(run_id)).fetchone()
        return float(usd), int(tokens), int(unknown or 0)

    def record_holder(self, key: str) -> None:
        """This process holds the run or batch `key` (inside the caller's transaction)."""
        me = process_identity()
        if me is None:  # no identity to record here: the pid alone tells, as before
            self.db.execute("DELETE FROM holders WHERE id=?", (key,))
        else:
            self.db.execute("INSERT OR REPLACE INTO holders VALUES (?,?,?,?,?)",
                            (key, os.getpid(), *me))

    def held_elsewhere(self, key: str, pid: int | None) -> bool:
        """Whether a live process other than this one holds the run or batch `key` (journaled
        with `pid`)."""
        return held_elsewhere(pid, read_holders(self.db, [key]).get(key))

    def fail_stale_runs(self, table: str = "runs") -> None:
        """Runs (or batches: `table`) left `running` by a dead process are `interrupted`
        (resumable)."""
        assert table in ("runs", "batches")
        running = self.db.execute(f"SELECT id, pid FROM {table} WHERE status='running'").fetchall()
        holders = read_holders(self.db, [key for key, _ in running])
        for key, pid in running:
            if pid and not holder_alive(pid, holders.get(key)):
                # only if that dead process still holds it: a resume may have claimed it since
                self.db.execute(f"UPDATE {table} SET status='interrupted' WHERE id=? AND "
                                "status='running' AND pid=?", (key, pid))

    # -- the cross-run cache ------------------------------------------------------------------
    def cache_get(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT model, output_json, quality, run_id FROM cache WHERE key=?",
                              (key,)).fetchone()
        if row is None:
            return None
        return {"model": row[0], "output": loads(row[1]), "quality": row[2], "run_id": row[3]}

    def cache_latest(self, workflow: str, task_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT key, components_json FROM cache WHERE workflow=? AND task_id=? "
                              "ORDER BY created_at DESC LIMIT 1", (workflow, task_id)).fetchone()
        return None if row is None else {"key": row[0], "components": loads(row[1])}

    def cache_put(self, key: str, *, workflow: str, task_id: str, model: str | None,
                  components: dict[str, Any], output: Any, quality: float | None,
                  run_id: str) -> None:
        # Joins the next group commit: a cache entry is only as durable as the task it records.
        self._cache.append((key, workflow, task_id, model, dumps(components), dumps(output), quality,
                            run_id, time.time()))


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists here (any process: see `holder_alive`)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- who holds a run ------------------------------------------------------------------------------
# A pid alone can't say whether the process that wrote it is alive: the journal may have been
# written in another PID namespace (a container sharing the volume), before a reboot, or by a
# process whose pid was since reused. So each run and batch has a `holders` row, written with its
# creation or claim: the pid with the boot it ran in, its PID namespace and its start time (clock
# ticks since boot, /proc/PID/stat). A row without one (an older bmad, or no /proc) falls back to
# the bare pid.

_INIT_PID_NS = 0xEFFFFFFC  # the initial PID namespace's inode (PROC_PID_INIT_INO): sees every process
_identity: tuple[int, tuple[str, int, int] | None] | None = None  # (pid it is for, identity)


def _start_ticks(pid: int | str) -> int | None:
    """When a process started (clock ticks after boot), or None if it can't be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])  # field 22 (comm may hold spaces)
    except (OSError, IndexError, ValueError):
        return None


def process_identity() -> tuple[str, int, int] | None:
    """This process's boot id, PID namespace and start time; None without /proc (not Linux)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:  # computed again in a forked child
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
                boot = f.read().strip()
            ns = os.stat("/proc/self/ns/pid").st_ino
            start = _start_ticks(pid)
            _identity = (pid, None if start is None else (boot, ns, start))
        except OSError:
            _identity = (pid, None)
    return _identity[1]


def _find_in_namespace(pid: int, ns: int, start: int) -> tuple[bool, bool]:
    """Whether a process this one can see is `pid` of PID namespace `ns`, started at `start`; and
    whether any process of that namespace is visible from here at all."""
    seen = False
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/pid").st_ino != ns:
                continue
            seen = True
            with open(f"/proc/{entry}/status", encoding="utf-8", errors="replace") as f:
                nspid = next((line.split()[1:] for line in f if line.startswith("NSpid:")), [])
        except OSError:
            continue
        if nspid and nspid[-1] == str(pid) and _start_ticks(entry) == start:
            return True, True
    return False, seen


def holder_alive(pid: int | None, holder: tuple | None) -> bool:
    """Whether the process that holds a run or batch is alive. `holder` is its `holders` row
    (pid, boot id, PID namespace, start ticks), or None."""
    if not pid:
        return False
    me = process_identity()
    if holder is None or holder[0] != pid or me is None:  # nothing (current) recorded: the pid
        return process_alive(pid)
    _, boot, ns, start = holder
    if boot != me[0]:
        # Another boot: that process is gone (a WAL journal is shared by the processes of one
        # machine only, so it is not a live process elsewhere).
        return False
    if ns == me[1]:
        return process_alive(pid) and _start_ticks(pid) in (start, None)  # not a reused pid
    found, seen = _find_in_namespace(pid, ns, start)
    if found:
        return True
    if seen or me[1] == _INIT_PID_NS:
        return False  # that namespace is visible from here (or every one is), and it isn't there
    # A namespace hidden from this one (a sibling container's): can't be told; the bare pid, as
    # before (which says nothing about it either way).
    return process_alive(pid)


def held_elsewhere(pid: int | None, holder: tuple | None) -> bool:
    """Whether a live process other than this one holds it (pid `pid`, `holders` row `holder`)."""
    if not pid:
        return False
    me = process_identity()
    if pid == os.getpid() and (holder is None or holder[0] != pid or me is None
                               or tuple(holder[1:]) == me):
        return False  # this process (not the same pid number in another namespace)
    return holder_alive(pid, holder)


def read_holders(db: sqlite3.Connection, keys: list[str]) -> dict[str, tuple]:
    """The `holders` rows of these runs or batches by id (none in a journal from before them)."""
    if not keys:
        return {}
    try:
        out: dict[str, tuple] = {}
        for start in range(0, len(keys), 500):  # under SQLite's bound-parameter limit
            chunk = keys[start:start + 500]
            for key, *holder in db.execute(
                    f"SELECT id, pid, boot_id, pid_ns, start_ticks FROM holders "
                    f"WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                out[key] = tuple(holder)
        return out
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # a journal opened read-only before a writer added it
            return {}
        raise


def with_holders(db: sqlite3.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` of runs (or batches), a `running` one with its `holders` row as `holder` (for
    `holder_alive`; not part of what the commands print)."""
    holders = read_holders(db, [r["id"] for r in rows if r.get("status") == "running"])
    for r in rows:
        if r["id"] in holders:
            r["holder"] = holders[r["id"]]
    return rows


def rows_as_json(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r) for r in rows]
