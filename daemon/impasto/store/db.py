"""The SQLite connection: WAL, pragmas, 0600 file mode, numbered migrations, a thread lock."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_MS = 10_000
# The size the WAL file is cut back to after a checkpoint: without it the file keeps the size
# of the largest transaction ever (clearing a long queue: hundreds of MB) for the daemon's life.
WAL_SIZE_LIMIT = 8 * 1024 * 1024
log = logging.getLogger(__name__)
_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")


class DatabaseError(Exception):
    """The database cannot be opened or migrated; the message says what to do."""


class StorageFullError(sqlite3.OperationalError):
    """A write failed because the disk holding the database is full (SQLITE_FULL)."""


def _full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == sqlite3.SQLITE_FULL) or "disk is full" in str(exc)


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Turn SQLITE_FULL into StorageFullError so callers can tell "disk full" from a bug."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if _full(exc) and not isinstance(exc, StorageFullError):
            raise StorageFullError(
                f"the disk holding the database is full ({exc}); free some space"
            ) from exc
        raise


@dataclass(frozen=True)
class Migration:
    """One numbered schema step, read from ``store/migrations/NNNN_name.sql``."""

    version: int
    name: str
    sql: str


def load_migrations(folder: Traversable | None = None) -> list[Migration]:
    """Read the numbered ``.sql`` files in order; numbers must run 1, 2, 3, ... without gaps."""
    folder = folder if folder is not None else resources.files("impasto.store") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match is not None:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise DatabaseError(
                f"migration {migration.name} is out of sequence (expected {expected})"
            )
    return found


def split_statements(script: str) -> list[str]:
    """Split a SQL script into whole statements (trigger bodies stay in one piece)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip().strip(";").strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise DatabaseError(f"migration has an unterminated statement: {pending.strip()[:80]!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


def _casefold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


class Database:
    """One SQLite connection shared by the asyncio thread and the worker-supervisor threads."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.path = path
        self._connection = connection
        # sqlite3 connections are not safe for concurrent use; one lock serializes callers.
        self._lock = threading.RLock()
        # A second connection for long reads (see read()), opened on first use.
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run one statement in its own implicit transaction and return all rows."""
        with self._lock, _storage_errors():
            return self._connection.execute(sql, parameters).fetchall()

    def read(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run one read-only statement on a connection of its own, for reads that grow with
        the table (a history search over every prompt): the event loop's short statements on
        the main connection do not wait for them (WAL lets readers run beside writes)."""
        with self._read_lock, _storage_errors():
            if self._reader is None:
                self._reader = _connect(self.path)
                self._reader.execute("PRAGMA query_only = ON")
            return self._reader.execute(sql, parameters).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the write lock from the start (BEGIN IMMEDIATE); commit on success."""
        with self._lock, _storage_errors():
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise
            try:
                self._connection.execute("COMMIT")
            except sqlite3.Error:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
                raise

    @property
    def user_version(self) -> int:
        """The schema version recorded by the last applied migration."""
        return int(self.execute("PRAGMA user_version")[0][0])

    def integrity_check(self) -> str:
        """Run ``PRAGMA integrity_check``; ``"ok"`` means the file is sound."""
        rows = self.execute("PRAGMA integrity_check")
        return "\n".join(str(row[0]) for row in rows)

    def close(self) -> None:
        """Close the connection; a WAL checkpoint runs when the last connection closes."""
        with self._lock:
            self._connection.close()
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_database(
    path: Path, *, migrations: Sequence[Migration] | None = None, recover: bool = True
) -> Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date.

    A file SQLite cannot read (not a database, or a damaged one: ``PRAGMA quick_check``) is
    moved aside with its WAL files to ``<name>.corrupt-<time>`` and a new one is made, with a
    warning naming where the old one went; ``recover=False`` raises DatabaseError instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chosen = list(migrations) if migrations is not None else load_migrations()
    try:
        return _open(path, chosen)
    except sqlite3.DatabaseError as exc:
        if not _damaged(exc):
            raise DatabaseError(f"cannot open the database {path}: {exc}") from exc
        if not recover:
            raise DatabaseError(
                f"the database {path} is damaged ({exc}); move it away and Impasto makes a new one"
            ) from exc
        aside = _move_aside(path)
        log.warning(
            "the database %s could not be read (%s): moved it to %s and started a new one; "
            "the job history and queue it held are in that file, the images stay in the "
            "output folder",
            path,
            exc,
            aside,
        )
    return _open(path, chosen)


def _open(path: Path, migrations: list[Migration]) -> Database:
    _create_private_file(path)
    try:
        connection = _connect(path)
    except sqlite3.OperationalError as exc:
        raise DatabaseError(f"cannot open the database {path}: {exc}") from exc
    try:
        _configure(connection)
        _check_pages(connection)
        _migrate(connection, migrations, path)
        _check_columns(connection, migrations, path)
    except BaseException:
        connection.close()
        raise
    return Database(connection, path)


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode, with rows by name and the SQL functions we use."""
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    connection.row_factory = sqlite3.Row
    connection.create_function("casefold", 1, _casefold, deterministic=True)
    return connection


class _DamagedError(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found damage the open itself did not."""


def _check_pages(connection: sqlite3.Connection) -> None:
    # quick_check reads every page once (linear in the file, milliseconds for a large
    # queue), so damage is found at start rather than as failures in the middle of a job.
    rows = [str(row[0]) for row in connection.execute("PRAGMA quick_check(5)").fetchall()]
    if rows != ["ok"]:
        problems = [line for row in rows for line in row.splitlines() if "***" not in line]
        raise _DamagedError(f"damaged: {'; '.join(problems)}"[:300])


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """True for a file SQLite cannot read as a database (not locks, not a full disk)."""
    if isinstance(exc, _DamagedError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _move_aside(path: Path) -> Path:
    """Rename ``path`` and its -wal/-shm files to ``<name>.corrupt-<time>``; the new name."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, Path(f"{aside}{suffix}"))
    return aside


def _create_private_file(path: Path) -> None:
    # Create the file ourselves so it is 0600 from the first byte; SQLite gives the
    # -wal and -shm files the same mode as the database file.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    if os.name == "posix":
        os.chmod(path, 0o600)


def _configure(connection: sqlite3.Connection) -> None:
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = _switch_to_wal(connection)
    if mode.lower() != "wal":
        raise DatabaseError(f"the database could not switch to WAL mode (got {mode!r})")
    # NORMAL is durable in WAL mode except for the last commits before a power loss.
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    connection.execute("PRAGMA foreign_keys = ON")


def _switch_to_wal(connection: sqlite3.Connection) -> str:
    # Switching a new file to WAL needs an exclusive lock and SQLite does not call the
    # busy handler for it, so concurrent first opens retry here.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", None) in (
                sqlite3.SQLITE_BUSY,
                sqlite3.SQLITE_LOCKED,
            )
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _columns(connection: sqlite3.Connection) -> dict[str, set[str]]:
    """Each table's column names."""
    tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {
        str(table[0]): {str(c[1]) for c in connection.execute(f"PRAGMA table_info('{table[0]}')")}
        for table in tables
        if not str(table[0]).startswith("sqlite_")
    }


def _check_columns(connection: sqlite3.Connection, migrations: list[Migration], path: Path) -> None:
    """DatabaseError when a table lacks a column the migrations make (a file changed by hand,
    or a copy of another build's): its version says it is current, but every query naming
    the column would fail. Compared with the schema the migrations build in memory."""
    expected = sqlite3.connect(":memory:", isolation_level=None)
    try:
        _migrate(expected, migrations)
        wanted = _columns(expected)
    finally:
        expected.close()
    present = _columns(connection)
    missing = [
        f"{t}.{c}" for t, cols in wanted.items() for c in sorted(cols - present.get(t, set()))
    ]
    if missing:
        raise DatabaseError(
            f"the database {path} lacks {', '.join(missing[:5])} though its schema version "
            "says it is current (changed by hand?): move it away and Impasto makes a new one, "
            "or point it at another data directory"
        )


def _migrate(
    connection: sqlite3.Connection, migrations: list[Migration], path: Path | None = None
) -> None:
    latest = migrations[-1].version if migrations else 0
    # The version is read under the write lock, so two processes opening the same new
    # file never apply a migration twice.
    connection.execute("BEGIN IMMEDIATE")
    try:
        current = int(connection.execute("PRAGMA user_version").fetchone()[0])
        if current > latest:
            raise DatabaseError(
                f"the database {path or 'file'} has schema version {current}, newer than this "
                f"Impasto knows ({latest}): a newer Impasto wrote it; upgrade Impasto, or point "
                "it at another data directory (data_dir)"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in split_statements(migration.sql):
                try:
                    connection.execute(statement)
                except sqlite3.Error as exc:
                    raise DatabaseError(f"migration {migration.name} failed: {exc}") from exc
            connection.execute(f"PRAGMA user_version = {migration.version}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
