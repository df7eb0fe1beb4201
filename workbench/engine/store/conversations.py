"""Sessions, messages and generations: the conversation log in DuckDB.

Rows become schema objects here and nowhere else.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from workbench.engine.errors import NotFound
from workbench.engine.schemas import ChatMessage, GenerationResult, MessageGeneration, MessageRecord, Session
from workbench.engine.store.db import Database, utcnow

_SESSION_COLUMNS = """
    s.id, s.title, s.model, s.system_prompt, s.created_at, s.updated_at,
    (SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count
"""


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _insert_session(conn: Any, session_id: str, title: str, model: str | None, system_prompt: str | None) -> None:
    now = utcnow()
    conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)", [session_id, title, model, system_prompt, now, now])


def _session(row: tuple) -> Session:
    return Session(
        id=row[0],
        title=row[1],
        model=row[2],
        system_prompt=row[3],
        created_at=row[4],
        updated_at=row[5],
        message_count=row[6],
    )


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_session(
        self, title: str, model: str | None, system_prompt: str | None, session_id: str | None = None
    ) -> Session:
        session_id = session_id or new_id("ses")
        with self.db.transaction() as conn:
            _insert_session(conn, session_id, title, model, system_prompt)
        return self.get_session(session_id)

    def get_session(self, session_id: str) -> Session:
        row = self.db.fetchone(f"SELECT {_SESSION_COLUMNS} FROM sessions s WHERE s.id = ?", [session_id])
        if row is None:
            raise NotFound(f"No session with id {session_id!r}; `workbench sessions` lists them.")
        return _session(row)

    def list_sessions(self, limit: int = 50, offset: int = 0, query: str | None = None) -> list[Session]:
        where, params = "", []
        if query:
            # Title or any message containing the words, case-insensitively (LIKE wildcards escaped).
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where = (
                "WHERE s.title ILIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM messages m "
                "WHERE m.session_id = s.id AND m.content ILIKE ? ESCAPE '\\')"
            )
            params = [pattern, pattern]
        rows = self.db.fetchall(
            f"SELECT {_SESSION_COLUMNS} FROM sessions s {where} ORDER BY s.updated_at DESC, s.id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_session(r) for r in rows]

    def rename_session(self, session_id: str, title: str) -> Session:
        self.get_session(session_id)
        with self.db.transaction() as conn:
            conn.execute("UPDATE sessions SET title = ? WHERE id = ?", [title, session_id])
        return self.get_session(session_id)

    def delete_session(self, session_id: str) -> None:
        self.get_session(session_id)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM messages WHERE session_id = ?", [session_id])
            conn.execute("DELETE FROM generations WHERE session_id = ?", [session_id])
            conn.execute("DELETE FROM sessions WHERE id = ?", [session_id])

    def messages(self, session_id: str) -> list[MessageRecord]:
        rows = self.db.fetchall(
            "SELECT m.id, m.session_id, m.seq, m.role, m.content, m.created_at, m.generation_id, m.run_id, "
            "g.model, g.provider, g.prompt_tokens, g.completion_tokens, g.finish_reason, g.latency_ms, g.ttft_ms "
            "FROM messages m LEFT JOIN generations g ON g.id = m.generation_id AND m.role = 'assistant' "
            "WHERE m.session_id = ? ORDER BY m.seq",
            [session_id],
        )
        return [
            MessageRecord(
                id=r[0],
                session_id=r[1],
                seq=r[2],
                role=r[3],
                content=r[4],
                created_at=r[5],
                generation_id=r[6],
                run_id=r[7],
                generation=MessageGeneration(
                    model=r[8],
                    provider=r[9],
                    prompt_tokens=r[10],
                    completion_tokens=r[11],
                    finish_reason=r[12],
                    latency_ms=r[13],
                    time_to_first_token_ms=r[14],
                )
                if r[8] is not None
                else None,
            )
            for r in rows
        ]

    def record_turn(
        self,
        session_id: str,
        new_messages: list[ChatMessage],
        result: GenerationResult,
        response_format: dict[str, Any] | None,
        new_session: tuple[str, str | None] | None = None,
    ) -> None:
        """Store the caller's messages, the answer and its generation in one transaction.

        `new_session` (title, system prompt) creates the session in the same
        transaction, so a failed first turn leaves no empty session behind.
        """
        now = utcnow()
        with self.db.transaction() as conn:
            if new_session is not None:
                _insert_session(conn, session_id, new_session[0], result.model, new_session[1])
            row = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM messages WHERE session_id = ?", [session_id]
            ).fetchone()
            seq = int(row[0])
            conn.execute(
                "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    result.id,
                    session_id,
                    result.model,
                    result.provider,
                    json.dumps(result.params),
                    json.dumps(response_format) if response_format else None,
                    result.usage.prompt_tokens,
                    result.usage.completion_tokens,
                    result.usage.total_tokens,
                    result.finish_reason,
                    result.latency_ms,
                    result.time_to_first_token_ms,
                    result.created_at,
                ],
            )
            for message in new_messages:
                seq += 1
                conn.execute(
                    "INSERT INTO messages (id, session_id, seq, role, content, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [new_id("msg"), session_id, seq, message.role, message.content, now],
                )
            conn.execute(
                "INSERT INTO messages (id, session_id, seq, role, content, generation_id, created_at) "
                "VALUES (?, ?, ?, 'assistant', ?, ?, ?)",
                [new_id("msg"), session_id, seq + 1, result.text, result.id, now],
            )
            conn.execute("UPDATE sessions SET updated_at = ?, model = ? WHERE id = ?", [now, result.model, session_id])

    def record_run_turn(self, session_id: str, task: str, answer: str, run_id: str) -> None:
        """Add an agent run to a chat session: the task as the user's message, the outcome as the answer."""
        now = utcnow()
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT coalesce(max(seq), 0) FROM messages WHERE session_id = ?", [session_id]
            ).fetchone()
            seq = int(row[0])
            conn.execute(
                "INSERT INTO messages (id, session_id, seq, role, content, run_id, created_at) "
                "VALUES (?, ?, ?, 'user', ?, ?, ?), (?, ?, ?, 'assistant', ?, ?, ?)",
                [
                    new_id("msg"),
                    session_id,
                    seq + 1,
                    task,
                    run_id,
                    now,
                    new_id("msg"),
                    session_id,
                    seq + 2,
                    answer,
                    run_id,
                    now,
                ],
            )
            conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", [now, session_id])

    def generation(self, generation_id: str) -> dict[str, Any]:
        row = self.db.fetchone(
            "SELECT id, session_id, model, provider, params, response_format, prompt_tokens, "
            "completion_tokens, total_tokens, finish_reason, latency_ms, ttft_ms, created_at "
            "FROM generations WHERE id = ?",
            [generation_id],
        )
        if row is None:
            raise NotFound(f"No generation with id {generation_id!r}.")
        keys = [
            "id",
            "session_id",
            "model",
            "provider",
            "params",
            "response_format",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "finish_reason",
            "latency_ms",
            "ttft_ms",
            "created_at",
        ]
        record = dict(zip(keys, row))
        record["params"] = json.loads(record["params"])
        if record["response_format"]:
            record["response_format"] = json.loads(record["response_format"])
        return record
