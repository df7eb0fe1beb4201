"""Approvals: a person decides on write, exec and network tool calls.

A run that needs a decision records a pending approval (persisted, so the
Clinic and the API can list it), emits `ApprovalRequested`, and waits. Any
front end resolves it with `Engine.resolve_approval` — the CLI from the same
thread between two events, the TUI or the server from another thread. A
pending approval that nobody answers expires after the agent's timeout and
counts as a denial: no mode approves on its own.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from workbench.engine.errors import InvalidRequest, NotFound
from workbench.engine.schemas import ApprovalRecord
from workbench.engine.store.conversations import new_id
from workbench.engine.store.db import Database, utcnow

_COLUMNS = "id, run_id, agent_id, tool, arguments, permission, status, reason, created_at, decided_at"


class Approvals:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        # A pending approval from an earlier process can never be answered.
        self.db.execute(
            "UPDATE approvals SET status = 'expired', reason = 'the workbench stopped before a decision', "
            "decided_at = ? WHERE status = 'pending'",
            [utcnow()],
        )

    def request(
        self, run_id: str | None, agent_id: str | None, tool: str, arguments: dict[str, Any], permission: str
    ) -> ApprovalRecord:
        approval_id = new_id("apr")
        with self._lock:
            self._events[approval_id] = threading.Event()
        self.db.execute(
            f"INSERT INTO approvals ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 'pending', NULL, ?, NULL)",
            [
                approval_id,
                run_id,
                agent_id,
                tool,
                json.dumps(arguments, ensure_ascii=False, default=str),
                permission,
                utcnow(),
            ],
        )
        return self.get(approval_id)

    def get(self, approval_id: str) -> ApprovalRecord:
        row = self.db.fetchone(f"SELECT {_COLUMNS} FROM approvals WHERE id = ?", [approval_id])
        if row is None:
            raise NotFound(f"No approval {approval_id!r}.")
        return _record(row)

    def pending(self, run_id: str | None = None) -> list[ApprovalRecord]:
        sql = f"SELECT {_COLUMNS} FROM approvals WHERE status = 'pending'"
        params: list[Any] = []
        if run_id is not None:
            sql += " AND run_id = ?"
            params.append(run_id)
        return [_record(r) for r in self.db.fetchall(sql + " ORDER BY created_at", params)]

    def list(self, run_id: str | None = None, limit: int = 100) -> list[ApprovalRecord]:
        sql = f"SELECT {_COLUMNS} FROM approvals"
        params: list[Any] = []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params.append(run_id)
        return [_record(r) for r in self.db.fetchall(sql + " ORDER BY created_at DESC LIMIT ?", [*params, limit])]

    def resolve(self, approval_id: str, approve: bool, reason: str | None = None) -> ApprovalRecord:
        """Approve or deny a pending call; deciding twice is an error."""
        return self._decide(approval_id, "approved" if approve else "denied", reason)

    def _decide(self, approval_id: str, status: str, reason: str | None) -> ApprovalRecord:
        if reason is not None and len(reason) > 2000:
            raise InvalidRequest("An approval reason is at most 2,000 characters.")
        with self.db.transaction() as conn:
            row = conn.execute("SELECT status FROM approvals WHERE id = ?", [approval_id]).fetchone()
            if row is None:
                raise NotFound(f"No approval {approval_id!r}.")
            if row[0] != "pending":
                raise InvalidRequest(f"Approval {approval_id} is already {row[0]}.")
            conn.execute(
                "UPDATE approvals SET status = ?, reason = ?, decided_at = ? WHERE id = ?",
                [status, reason, utcnow(), approval_id],
            )
        with self._lock:
            event = self._events.pop(approval_id, None)
        if event is not None:
            event.set()
        return self.get(approval_id)

    def wait(self, approval_id: str, timeout_s: float, cancelled: threading.Event | None = None) -> ApprovalRecord:
        """Block until decided, expired after `timeout_s`, or the run is cancelled."""
        with self._lock:
            event = self._events.get(approval_id)
        if event is not None:
            deadline = timeout_s
            step = 0.25
            waited = 0.0
            while waited < deadline and not event.is_set():
                if cancelled is not None and cancelled.is_set():
                    break
                event.wait(min(step, deadline - waited))
                waited += step
        record = self.get(approval_id)
        if record.status == "pending":
            why = (
                "the run was cancelled"
                if cancelled is not None and cancelled.is_set()
                else f"nobody decided within {timeout_s:g} s"
            )
            try:
                record = self._decide(approval_id, "expired", why)
            except InvalidRequest:  # decided at the last moment
                record = self.get(approval_id)
        return record


def _record(row: tuple) -> ApprovalRecord:
    return ApprovalRecord(
        id=row[0],
        run_id=row[1],
        agent_id=row[2],
        tool=row[3],
        arguments=json.loads(row[4]),
        permission=row[5],
        status=row[6],
        reason=row[7],
        created_at=row[8],
        decided_at=row[9],
    )
