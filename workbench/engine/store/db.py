"""The one DuckDB file of a workbench home.

`Database` owns the connection for the whole process (DuckDB allows a single
owning process), serialises access from threads, and brings the schema up to
date with the numbered migrations on open.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.engine.errors import StorageFull, StoreDamaged, StoreError, StoreLocked, StoreUnavailable
from workbench.engine.store.lock import OwnerLock
from workbench.engine.store.migrations import MIGRATIONS, Migration

DB_FILE = "workbench.duckdb"


def utcnow() -> datetime:
    return datetime.now(UTC)


def spare_duckdb_the_pandas_probe() -> None:
    """Mark pandas absent, once, when it is not installed: DuckDB tries to import it on every parameterised execute.

    DuckDB (1.4) checks each parameter against pandas' types and, with pandas
    not installed, runs a failed `import pandas` (a search of sys.path) three
    times per execute: about half the cost of a small INSERT or SELECT. A None
    entry in sys.modules is what Python itself uses for "known absent":
    `import pandas` still raises ModuleNotFoundError and
    `importlib.util.find_spec("pandas")` still returns None, at once.
    """
    import importlib.util
    import sys

    if "pandas" not in sys.modules and importlib.util.find_spec("pandas") is None:
        sys.modules["pandas"] = None  # type: ignore[assignment]


class Database:
    """A DuckDB connection guarded by the home's owner lock and a thread lock.

    A failed COMMIT or ROLLBACK, or any I/O or fatal error, leaves DuckDB's
    in-memory state out of step with its files (after a disk-full commit it
    has mixed the failed rows into the next ones), so the connection is
    dropped at once, unused, and the caller gets `StorageFull` or
    `StoreUnavailable`. The next access reopens the file (DuckDB replays its
    write-ahead log, which holds exactly the acknowledged commits) and
    checkpoints it; while the disk is still full the reopened connection serves
    reads and each write fails at its commit again. The owner lock stays held
    throughout.
    """

    def __init__(self, home: Path, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
        self.home = home
        self.path = home / DB_FILE
        self.owner = OwnerLock(home)
        self.owner.acquire()
        self._mutex = threading.RLock()
        self._conn: Any = None
        try:
            self._conn = self._connect()
            self.migrate(migrations)
        except BaseException:
            self._drop()
            self.owner.release()
            raise

    def _connect(self) -> Any:
        spare_duckdb_the_pandas_probe()
        import duckdb

        try:
            conn = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            problem = _classify(exc, self.home)
            # Not just "lock": a checksum error names a "block".
            if isinstance(exc, duckdb.IOException) and "lock on file" in str(exc).lower():
                raise StoreLocked(
                    f"The database {self.path} is held by another program; close it and try again."
                ) from None
            if problem == "full":
                raise StorageFull(self._full_message()) from None
            if problem == "damaged":
                raise StoreDamaged(self._damaged_message()) from None
            if isinstance(exc, duckdb.IOException):
                raise StoreError(f"Could not open the database {self.path}: {_first_line(exc)}") from None
            raise StoreError(
                f"The database {self.path} could not be opened ({_first_line(exc)}); "
                "it may be damaged or from a newer DuckDB."
            ) from None
        try:
            # A connection dropped after a failure must never checkpoint its
            # suspect memory into the file on close; `close()` checkpoints a
            # healthy one explicitly instead.
            conn.execute("PRAGMA disable_checkpoint_on_shutdown")
        except duckdb.Error:
            conn.close()
            raise
        return conn

    # ------------------------------------------------------------- failures

    def _connection(self) -> Any:
        """The open connection, reopening a dropped one first (call under the mutex)."""
        if self._conn is None:
            self._reopen()
        return self._conn

    def _reopen(self) -> None:
        import duckdb

        conn = self._connect()
        try:
            # Folds the replayed log into the file, and proves the disk takes writes again.
            conn.execute("CHECKPOINT")
        except duckdb.Error as exc:
            conn.close()  # a failed checkpoint invalidates the instance
            if _classify(exc, self.home) != "full":
                raise StoreUnavailable(
                    f"The database {self.path} cannot be written ({_first_line(exc)}); retry once that is fixed."
                ) from None
            # Still full: a fresh connection serves reads; a write fails at its commit (and drops it again).
            conn = self._connect()
        self._conn = conn

    def _drop(self) -> None:
        """Close the connection without using it further (it may be in a bad state)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone either way
                pass

    def _failed(self, exc: BaseException, always_fatal: bool = False, reading: bool = False) -> BaseException | None:
        """The error to raise instead of `exc` (dropping the connection when unsafe), or None to re-raise it."""
        import duckdb

        if not isinstance(exc, duckdb.Error):
            return None
        problem = _classify(exc, self.home)
        if reading and problem is None and "invalid unicode" in str(exc).lower():
            problem = "damaged"  # stored text that no longer decodes: DuckDB does not checksum every read
        if problem == "damaged":
            return StoreDamaged(self._damaged_message())
        if problem is None and not always_fatal:
            return None
        self._drop()
        if problem == "full":
            return StorageFull(self._full_message())
        return StoreUnavailable(
            f"The database {self.path} failed ({_first_line(exc)}), so nothing was saved; retry, and it reopens safely."
        )

    def _damaged_message(self) -> str:
        return (
            f"The database {self.path} is damaged (a block failed its check); "
            "restore it from a backup, or move it aside to start afresh."
        )

    def _full_message(self) -> str:
        return f"The disk holding {self.home} is full; nothing was saved. Free space and retry."

    # ---------------------------------------------------------------- access

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Run statements atomically; yields the connection. Rolls back on error.

        Raises `StorageFull`/`StoreUnavailable` when the commit or rollback
        fails: the change is then not saved, and was not acknowledged.
        """
        with self._mutex:
            conn = self._connection()
            self._run(conn, "BEGIN TRANSACTION")
            try:
                yield conn
            except BaseException as exc:
                replacement = self._failed(exc)
                if self._conn is not None:
                    try:
                        conn.execute("ROLLBACK")
                    except BaseException as rollback_exc:
                        raise self._failed(rollback_exc, always_fatal=True) or rollback_exc from None
                if replacement is not None:
                    raise replacement from None
                raise
            self._run(conn, "COMMIT", always_fatal=True)

    def _run(self, conn: Any, sql: str, params: Any = (), always_fatal: bool = False, reading: bool = False) -> Any:
        try:
            return conn.execute(sql, params)
        except BaseException as exc:
            replacement = self._failed(exc, always_fatal, reading)
            if replacement is not None:
                raise replacement from None
            raise

    def fetchall(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple]:
        with self._mutex:
            cursor = self._run(self._connection(), sql, params, reading=True)
            try:
                return cursor.fetchall()
            except BaseException as exc:
                raise self._failed(exc, reading=True) or exc from None

    def fetchone(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> tuple | None:
        with self._mutex:
            cursor = self._run(self._connection(), sql, params, reading=True)
            try:
                return cursor.fetchone()
            except BaseException as exc:
                raise self._failed(exc, reading=True) or exc from None

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> None:
        with self._mutex:
            # A statement outside a transaction commits on its own; a failed commit says so and drops the connection.
            self._run(self._connection(), sql, params)

    # ------------------------------------------------------------ migrations

    def schema_version(self) -> int:
        row = self.fetchone("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    def migrate(self, migrations: tuple[Migration, ...]) -> None:
        versions = [m.version for m in migrations]
        if versions != sorted(set(versions)):
            raise StoreError("Migrations must have unique, increasing version numbers.")
        self.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                name       VARCHAR NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL
            )
            """
        )
        current = self.schema_version()
        known = versions[-1] if versions else 0
        if current > known:
            raise StoreError(
                f"The database {self.path} is at schema version {current}, newer than this "
                f"workbench knows ({known}); upgrade workbench to open it."
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            with self.transaction() as conn:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    [migration.version, migration.name, utcnow()],
                )

    def close(self) -> None:
        import duckdb

        with self._mutex:
            try:
                if self._conn is not None:
                    try:
                        self._conn.execute("CHECKPOINT")
                    except duckdb.Error:
                        pass  # e.g. a full disk: the write-ahead log keeps every commit; the next open replays it
                    self._conn.close()
            finally:
                self._conn = None
                self.owner.release()


#: fragments of DuckDB messages that mean the file can no longer be trusted from memory
_FATAL_MARKERS = (
    "failed to commit",
    "failed to rollback",
    "cannot continue operation",
    "invalidated",
    "could not write",
    "could not read",
    "could not truncate",
    "could not fsync",
)


def _classify(exc: BaseException, home: Path) -> str | None:
    """'full', 'damaged', 'fatal', or None for an ordinary error (bad SQL, constraint, ...)."""
    import duckdb

    message = str(exc).lower()
    if "no space left on device" in message or "disk quota exceeded" in message:
        return "full"
    if isinstance(exc, duckdb.IOException) and ("checksum" in message or "corrupt" in message):
        return "damaged"
    fatal = isinstance(exc, (duckdb.FatalException, duckdb.InternalException, duckdb.IOException)) or any(
        marker in message for marker in _FATAL_MARKERS
    )
    if not fatal:
        return None
    try:
        # Some write failures do not name the cause; a disk with almost nothing left is the likely one.
        if shutil.disk_usage(home).free < 1 << 20:
            return "full"
    except OSError:
        pass
    return "fatal"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
