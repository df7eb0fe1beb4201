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
    Migration(
        2,
        "vectors",
        (
            "CREATE SEQUENCE vector_seq START 1",
            """
            CREATE TABLE vectors (
                collection VARCHAR NOT NULL,
                id         BIGINT NOT NULL,
                embedding  FLOAT[] NOT NULL,
                seq        BIGINT NOT NULL,
                PRIMARY KEY (collection, id)
            )
            """,
            """
            CREATE TABLE vector_tombstones (
                collection VARCHAR NOT NULL,
                id         BIGINT NOT NULL,
                seq        BIGINT NOT NULL
            )
            """,
            "CREATE INDEX vectors_by_seq ON vectors (collection, seq)",
            """
            CREATE TABLE vector_indexes (
                collection    VARCHAR PRIMARY KEY,
                dimensions    INTEGER NOT NULL,
                generation    BIGINT NOT NULL,
                applied_seq   BIGINT NOT NULL,
                element_count BIGINT NOT NULL,
                deleted_count BIGINT NOT NULL,
                checksum      BIGINT NOT NULL,
                saved_at      TIMESTAMPTZ NOT NULL
            )
            """,
        ),
    ),
)
