"""Numbered schema migrations, applied in order and recorded in `schema_migrations`.

Append new migrations; never edit one that has shipped. Each runs in one
transaction together with the row that records it, so a crash mid-migration
leaves the database at the previous version.
"""

from __future__ import annotations

from typing import NamedTuple


class Migration(NamedTuple):
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "conversations",
        (
            """
            CREATE TABLE sessions (
                id            VARCHAR PRIMARY KEY,
                title         VARCHAR NOT NULL,
                model         VARCHAR,
                system_prompt VARCHAR,
                created_at    TIMESTAMPTZ NOT NULL,
                updated_at    TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE generations (
                id                VARCHAR PRIMARY KEY,
                session_id        VARCHAR,
                model             VARCHAR NOT NULL,
                provider          VARCHAR NOT NULL,
                params            JSON NOT NULL,
                response_format   JSON,
                prompt_tokens     INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                total_tokens      INTEGER NOT NULL,
                finish_reason     VARCHAR NOT NULL,
                latency_ms        DOUBLE NOT NULL,
                ttft_ms           DOUBLE,
                created_at        TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE messages (
                id            VARCHAR PRIMARY KEY,
                session_id    VARCHAR NOT NULL,
                seq           INTEGER NOT NULL,
                role          VARCHAR NOT NULL,
                content       VARCHAR NOT NULL,
                generation_id VARCHAR,
                created_at    TIMESTAMPTZ NOT NULL,
                UNIQUE (session_id, seq)
            )
            """,
            "CREATE INDEX messages_by_session ON messages (session_id, seq)",
            "CREATE INDEX generations_by_session ON generations (session_id)",
        ),
    ),
)
