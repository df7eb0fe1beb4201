"""The one DuckDB file of a workbench home.

`Database` owns the connection for the whole process (DuckDB allows a single
owning process), serialises access from threads, and brings the schema up to
date with the numbered migrations on open.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workbench.engine.errors import StoreError, StoreLocked
from workbench.engine.store.lock import OwnerLock
from workbench.engine.store.migrations import MIGRATIONS, Migration

DB_FILE = "workbench.duckdb"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Database:
    """A DuckDB connection guarded by the home's owner lock and a thread lock."""

    def __init__(self, home: Path, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
        self.home = home
        self.path = home / DB_FILE
        self.owner = OwnerLock(home)
        self.owner.acquire()
        self._mutex = threading.RLock()
        self._conn = None
        try:
            self._conn = self._connect()
            self.migrate(migrations)
        except BaseException:
            if self._conn is not None:
                self._conn.close()
            self.owner.release()
            raise

    def _connect(self):
        import duckdb

        try:
            return duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"The database {self.path} is held by another program; close it and try again."
                ) from None
            raise StoreError(f"Could not open the database {self.path}: {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise StoreError(
                f"The database {self.path} could not be opened ({_first_line(exc)}); "
                "it may be damaged or from a newer DuckDB."
            ) from None

    # ---------------------------------------------------------------- access

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Run statements atomically; yields the connection. Rolls back on error."""
        with self._mutex:
            self._conn.execute("BEGIN TRANSACTION")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def fetchall(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple]:
        with self._mutex:
            return self._conn.execute(sql, params).fetchall()

    def fetchone(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> tuple | None:
        with self._mutex:
            return self._conn.execute(sql, params).fetchone()

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> None:
        with self._mutex:
            self._conn.execute(sql, params)

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
        with self._mutex:
            try:
                self._conn.close()
            finally:
                self.owner.release()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
