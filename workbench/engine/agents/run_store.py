"""The run store: the one owner of the `agent_runs` and `run_events` tables.

A run's row is kept current while it goes on (steps and tokens with each
flush of its events), so the Clinic can show any run, even one that was
interrupted. Nothing else names these tables in SQL (a unit test checks).
"""

from __future__ import annotations

import json
from typing import Any

from workbench.engine.errors import NotFound
from workbench.engine.schemas import AgentRunRecord, RunEventRecord
from workbench.engine.store.db import Database, utcnow

#: one pending event of a run: (seq, type, payload JSON)
PendingEvent = tuple[int, str, str]


class RunStore:
    """Agent runs and their persisted events."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def interrupt_running(self) -> None:
        """Mark runs left "running" by a process that died: they can never finish."""
        self.db.execute(
            "UPDATE agent_runs SET status = 'interrupted', error = 'the workbench stopped during this run' "
            "WHERE status = 'running'"
        )

    def start(self, record: AgentRunRecord) -> None:
        """Insert a new run's row, status running."""
        self.db.execute(
            "INSERT INTO agent_runs VALUES (?, ?, ?, ?, 'running', NULL, NULL, 0, 0, 0, ?, NULL, NULL)",
            [record.id, record.agent_id, record.task, record.model, record.started_at],
        )

    def append(self, record: AgentRunRecord, events: list[PendingEvent]) -> None:
        """Persist `events` and the run's running counts in one transaction."""
        if not events:
            return
        now = utcnow()
        values = ", ".join(["(?, ?, ?, ?, ?)"] * len(events))
        params = [value for seq, kind, payload in events for value in (record.id, seq, kind, payload, now)]
        with self.db.transaction() as conn:
            conn.execute(f"INSERT INTO run_events VALUES {values}", params)
            conn.execute(
                "UPDATE agent_runs SET steps = ?, prompt_tokens = ?, completion_tokens = ? WHERE id = ?",
                [record.steps, record.prompt_tokens, record.completion_tokens, record.id],
            )

    def append_event(self, run_id: str, seq: int, kind: str, payload: str) -> None:
        """Persist one event on its own (the run's last, after its row is closed)."""
        self.db.execute("INSERT INTO run_events VALUES (?, ?, ?, ?, ?)", [run_id, seq, kind, payload, utcnow()])

    def close(self, record: AgentRunRecord) -> None:
        """Write a finished run's outcome to its row."""
        self.db.execute(
            "UPDATE agent_runs SET status = ?, answer = ?, error = ?, steps = ?, prompt_tokens = ?, "
            "completion_tokens = ?, finished_at = ?, duration_ms = ? WHERE id = ?",
            [
                record.status,
                record.answer,
                record.error,
                record.steps,
                record.prompt_tokens,
                record.completion_tokens,
                record.finished_at,
                record.duration_ms,
                record.id,
            ],
        )

    def recent_step_tokens(self, agent_id: str, limit: int = 200) -> list[float]:
        """Completion tokens of the agent's latest steps, newest first (the tripwires' baseline)."""
        rows = self.db.fetchall(
            "SELECT CAST(json_extract(e.payload, '$.completion_tokens') AS DOUBLE) FROM run_events e "
            "JOIN agent_runs r ON r.id = e.run_id WHERE r.agent_id = ? AND e.type = 'step_finished' "
            "ORDER BY e.created_at DESC LIMIT ?",
            [agent_id, limit],
        )
        return [row[0] for row in rows if row[0] is not None]

    def list_runs(self, agent_id: str | None, limit: int, offset: int) -> list[AgentRunRecord]:
        """Runs, newest first (the caller checks the bounds)."""
        sql = "SELECT * FROM agent_runs" + (" WHERE agent_id = ?" if agent_id else "")
        sql += " ORDER BY started_at DESC, id DESC LIMIT ? OFFSET ?"
        rows = self.db.fetchall(sql, [*([agent_id] if agent_id else []), limit, offset])
        return [_run_record(r) for r in rows]

    def get(self, run_id: str) -> AgentRunRecord:
        """One run, or `NotFound`."""
        row = self.db.fetchone("SELECT * FROM agent_runs WHERE id = ?", [run_id])
        if row is None:
            raise NotFound(f"No run {run_id!r}.")
        return _run_record(row)

    def events(self, run_id: str) -> list[RunEventRecord]:
        """Every persisted event of a run, in order (`NotFound` for an unknown run)."""
        self.get(run_id)
        rows = self.db.fetchall(
            "SELECT run_id, seq, type, payload, created_at FROM run_events WHERE run_id = ? ORDER BY seq", [run_id]
        )
        return [
            RunEventRecord(run_id=r[0], seq=r[1], type=r[2], payload=json.loads(r[3]), created_at=r[4]) for r in rows
        ]


def _run_record(row: tuple[Any, ...]) -> AgentRunRecord:
    return AgentRunRecord(
        id=row[0],
        agent_id=row[1],
        task=row[2],
        model=row[3],
        status=row[4],
        answer=row[5],
        error=row[6],
        steps=row[7],
        prompt_tokens=row[8],
        completion_tokens=row[9],
        started_at=row[10],
        finished_at=row[11],
        duration_ms=row[12],
    )
