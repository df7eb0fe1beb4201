"""What a person sees of workflows: their steps' states, kept next to DBOS's tables.

DBOS checkpoints step outputs for recovery; these two tables (`wb_workflows`,
`wb_steps`, in the same SQLite file, `<home>/workflows.sqlite`) say in our
words what each workflow and step is doing, and hold the marker that detects a
side-effecting step in flight at a crash: a tool step's row is set "running"
(with its attempt number) before the tool runs, in its own committed
transaction, so a step body that finds its own "running" row was interrupted.

Readable without DBOS or the engine: `status`, `list`, `approve` and `decide`
work from another process while a workflow runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.engine.workflows.models import StepStatus, WorkflowStatus, WorkflowSummary

DATABASE_FILE = "workflows.sqlite"
#: step states a workflow's re-execution must not overwrite with "waiting"
FINAL_STEP_STATES = ("completed", "failed", "skipped", "approved", "denied")

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS wb_workflows (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        definition  TEXT NOT NULL,
        inputs      TEXT NOT NULL,
        status      TEXT NOT NULL,   -- running, completed, failed, stopped
        app_version TEXT NOT NULL,
        owner_pid   INTEGER,
        error       TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS wb_steps (
        workflow_id TEXT NOT NULL,
        step_id     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL,
        attempt     INTEGER NOT NULL DEFAULT 1,
        detail      TEXT NOT NULL DEFAULT '{}',
        output      TEXT,
        error       TEXT,
        started_at  TEXT,
        finished_at TEXT,
        PRIMARY KEY (workflow_id, step_id)
    )
    """,
)


def now() -> str:
    return datetime.now(UTC).isoformat()


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed, not yet reaped by its parent) runs nothing
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class WorkflowStore:
    """The `wb_*` tables of one home's workflow database (thread-safe; one short connection per call)."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / DATABASE_FILE
        self._lock = threading.Lock()
        self._ready = False

    def exists(self) -> bool:
        return self.path.exists()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA busy_timeout=30000")
        if not self._ready:
            for statement in SCHEMA:
                connection.execute(statement)
            self._ready = True
            try:
                os.chmod(self.path, 0o600)
            except OSError:
                pass
        return connection

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        with self._lock:
            connection = self._connect()
            try:
                return connection.execute(sql, params).rowcount
            finally:
                connection.close()

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            connection = self._connect()
            try:
                return connection.execute(sql, params).fetchall()
            finally:
                connection.close()

    # ------------------------------------------------------------ workflows

    def create(self, workflow_id: str, name: str, definition: str, inputs: dict[str, str], app_version: str) -> None:
        stamp = now()
        self._run(
            "INSERT INTO wb_workflows VALUES (?, ?, ?, ?, 'running', ?, ?, NULL, ?, ?)",
            (workflow_id, name, definition, json.dumps(inputs), app_version, os.getpid(), stamp, stamp),
        )

    def claim(self, workflow_id: str) -> None:
        """This process runs the workflow now (it resumed it)."""
        self._run(
            "UPDATE wb_workflows SET owner_pid = ?, status = 'running', updated_at = ? WHERE id = ?",
            (os.getpid(), now(), workflow_id),
        )

    def finish(self, workflow_id: str, status: str, error: str | None = None) -> None:
        self._run(
            "UPDATE wb_workflows SET status = ?, error = ?, owner_pid = NULL, updated_at = ? WHERE id = ?",
            (status, error, now(), workflow_id),
        )

    def workflow_row(self, workflow_id: str) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT id, name, definition, inputs, status, app_version, owner_pid, error, created_at, updated_at "
            "FROM wb_workflows WHERE id = ?",
            (workflow_id,),
        )
        if not rows:
            return None
        keys = ("id", "name", "definition", "inputs", "status", "app_version", "owner_pid", "error")
        row = dict(zip(keys, rows[0], strict=False))
        row["created_at"], row["updated_at"] = rows[0][8], rows[0][9]
        row["inputs"] = json.loads(row["inputs"])
        return row

    # ---------------------------------------------------------------- steps

    def step_row(self, workflow_id: str, step_id: str) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT kind, status, attempt, detail, output, error FROM wb_steps WHERE workflow_id = ? AND step_id = ?",
            (workflow_id, step_id),
        )
        if not rows:
            return None
        kind, status, attempt, detail, output, error = rows[0]
        return {
            "kind": kind,
            "status": status,
            "attempt": attempt,
            "detail": json.loads(detail),
            "output": output,
            "error": error,
        }

    def set_step(
        self,
        workflow_id: str,
        step_id: str,
        kind: str,
        status: str,
        *,
        attempt: int = 1,
        detail: dict[str, Any] | None = None,
        output: str | None = None,
        error: str | None = None,
        unless_final: bool = False,
    ) -> None:
        """Insert or update a step's row (`unless_final`: leave a finished step as it is)."""
        stamp = now()
        finished = stamp if status in FINAL_STEP_STATES else None
        started = None if status == "pending" else stamp  # a parallel member queued, not started
        guard = f" WHERE wb_steps.status NOT IN ({', '.join('?' * len(FINAL_STEP_STATES))})" if unless_final else ""
        self._run(
            "INSERT INTO wb_steps (workflow_id, step_id, kind, status, attempt, detail, output, error, started_at,"
            " finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (workflow_id, step_id) DO UPDATE SET"
            " status = excluded.status, attempt = excluded.attempt,"
            " detail = CASE WHEN excluded.detail = '{}' THEN wb_steps.detail ELSE excluded.detail END,"
            " output = excluded.output, error = excluded.error,"
            " started_at = COALESCE(wb_steps.started_at, excluded.started_at), finished_at = excluded.finished_at"
            + guard,
            (
                workflow_id,
                step_id,
                kind,
                status,
                attempt,
                json.dumps(detail or {}, ensure_ascii=False, default=str),
                output,
                error,
                started,
                finished,
            )
            + (FINAL_STEP_STATES if unless_final else ()),
        )
        self._run("UPDATE wb_workflows SET updated_at = ? WHERE id = ?", (stamp, workflow_id))

    def transition(self, workflow_id: str, step_id: str, before: str, after: str) -> bool:
        """Move a step from state `before` to `after`; False when it was not in `before` (someone was first)."""
        changed = self._run(
            "UPDATE wb_steps SET status = ? WHERE workflow_id = ? AND step_id = ? AND status = ?",
            (after, workflow_id, step_id, before),
        )
        return changed == 1

    # ---------------------------------------------------------------- views

    def status(self, workflow_id: str) -> WorkflowStatus | None:
        row = self.workflow_row(workflow_id)
        if row is None:
            return None
        rows = self._rows(
            "SELECT step_id, kind, status, attempt, started_at, finished_at, detail, output, error FROM wb_steps "
            "WHERE workflow_id = ? ORDER BY rowid",
            (workflow_id,),
        )
        steps = [
            StepStatus(
                id=r[0],
                kind=r[1],
                status=r[2],
                attempt=r[3],
                started_at=r[4],
                finished_at=r[5],
                detail=json.loads(r[6]),
                output=r[7],
                error=r[8],
            )
            for r in rows
        ]
        waiting = [s.id for s in steps if s.status in ("waiting_approval", "needs_decision")]
        return WorkflowStatus(
            id=row["id"],
            name=row["name"],
            status=self._state(row, steps),
            inputs=row["inputs"],
            app_version=row["app_version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            error=row["error"],
            steps=steps,
            waiting_on=waiting,
            active=row["status"] == "running" and pid_alive(row["owner_pid"]),
        )

    @staticmethod
    def _state(row: dict[str, Any], steps: list[StepStatus]) -> Any:
        if row["status"] != "running":
            return row["status"]
        if any(s.status == "needs_decision" for s in steps):
            return "needs_decision"
        if any(s.status == "waiting_approval" for s in steps):
            return "waiting_approval"
        return "running" if pid_alive(row["owner_pid"]) else "interrupted"

    def list(self, limit: int = 50, offset: int = 0) -> list[WorkflowSummary]:
        if not self.exists():
            return []
        ids = self._rows("SELECT id FROM wb_workflows ORDER BY created_at DESC, id LIMIT ? OFFSET ?", (limit, offset))
        out = []
        for (workflow_id,) in ids:
            status = self.status(workflow_id)
            if status is not None:
                out.append(
                    WorkflowSummary(
                        id=status.id,
                        name=status.name,
                        status=status.status,
                        created_at=status.created_at,
                        updated_at=status.updated_at,
                        waiting_on=status.waiting_on,
                    )
                )
        return out
