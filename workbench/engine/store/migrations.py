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
                embedding  BLOB NOT NULL,      -- float32 little-endian
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
    Migration(
        3,
        "memory, knowledge base and knowledge graph",
        (
            # One id space for every vector, whatever its collection.
            "CREATE SEQUENCE vector_id_seq START 1",
            """
            CREATE TABLE memories (
                namespace      VARCHAR NOT NULL,
                key            VARCHAR NOT NULL,
                key_hash       BIGINT NOT NULL,   -- fast point lookups (see MemoryStore)
                kind           VARCHAR NOT NULL,  -- conversation | knowledge | episodic
                value          VARCHAR NOT NULL,  -- JSON
                text           VARCHAR NOT NULL,  -- what was embedded
                metadata       VARCHAR NOT NULL,  -- JSON object
                category       VARCHAR,
                tags           VARCHAR[] NOT NULL,
                vector_id      BIGINT NOT NULL,
                created_at     TIMESTAMPTZ NOT NULL,
                updated_at     TIMESTAMPTZ NOT NULL,
                expires_at     TIMESTAMPTZ,
                accessed_count BIGINT NOT NULL,
                last_accessed  TIMESTAMPTZ,
                PRIMARY KEY (namespace, key)
            )
            """,
            "CREATE INDEX memories_by_hash ON memories (key_hash)",
            "CREATE INDEX memories_by_vector ON memories (vector_id)",
            """
            CREATE TABLE documents (
                id           BIGINT PRIMARY KEY,
                collection   VARCHAR NOT NULL,
                path         VARCHAR NOT NULL,
                content_hash VARCHAR NOT NULL,   -- sha256 of the file's bytes
                size         BIGINT NOT NULL,
                kind         VARCHAR NOT NULL,
                title        VARCHAR,
                pinned       BOOLEAN NOT NULL,
                chunk_count  INTEGER NOT NULL,
                ingested_at  TIMESTAMPTZ NOT NULL,
                UNIQUE (collection, path)
            )
            """,
            """
            CREATE TABLE chunks (
                id          BIGINT PRIMARY KEY,  -- also its vector id
                document_id BIGINT NOT NULL,
                collection  VARCHAR NOT NULL,
                ordinal     INTEGER NOT NULL,
                heading     VARCHAR NOT NULL,
                text        VARCHAR NOT NULL,
                start_line  INTEGER NOT NULL,
                end_line    INTEGER NOT NULL,
                length      INTEGER NOT NULL      -- BM25 document length in terms
            )
            """,
            "CREATE INDEX chunks_by_document ON chunks (document_id)",
            # BM25 postings, written in the same transaction as their chunk.
            """
            CREATE TABLE postings (
                collection VARCHAR NOT NULL,
                term       VARCHAR NOT NULL,
                chunk_id   BIGINT NOT NULL,
                tf         INTEGER NOT NULL,
                length     INTEGER NOT NULL
            )
            """,
            "CREATE SEQUENCE kg_seq START 1",
            """
            CREATE TABLE kg_entities (
                id          BIGINT PRIMARY KEY,
                name        VARCHAR NOT NULL,
                name_key    VARCHAR NOT NULL UNIQUE,  -- casefolded name
                type        VARCHAR NOT NULL,
                description VARCHAR NOT NULL,
                vector_id   BIGINT NOT NULL,
                created_at  TIMESTAMPTZ NOT NULL,
                updated_at  TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE kg_facts (
                id           BIGINT PRIMARY KEY,
                entity_id    BIGINT NOT NULL,
                attribute    VARCHAR NOT NULL,
                value        VARCHAR NOT NULL,
                source       VARCHAR,
                confidence   DOUBLE NOT NULL,
                knowledge_id VARCHAR,
                created_at   TIMESTAMPTZ NOT NULL,
                expires_at   TIMESTAMPTZ
            )
            """,
            "CREATE INDEX kg_facts_by_entity ON kg_facts (entity_id)",
            """
            CREATE TABLE kg_relations (
                id            BIGINT PRIMARY KEY,
                from_id       BIGINT NOT NULL,
                to_id         BIGINT NOT NULL,
                relation_type VARCHAR NOT NULL,
                properties    VARCHAR NOT NULL,  -- JSON object
                created_at    TIMESTAMPTZ NOT NULL,
                UNIQUE (from_id, to_id, relation_type)
            )
            """,
        ),
    ),
    Migration(
        4,
        "embedder of each vector collection",
        (
            # Vectors of different embedders must never share an index.
            "CREATE TABLE collection_embedders (collection VARCHAR PRIMARY KEY, embedder VARCHAR NOT NULL)",
        ),
    ),
    Migration(
        5,
        "agents, runs, approvals, tool audit, MCP pins",
        (
            """
            CREATE TABLE agents (
                id          VARCHAR PRIMARY KEY,
                name        VARCHAR NOT NULL,
                role        VARCHAR NOT NULL,
                status      VARCHAR NOT NULL,
                definition  JSON NOT NULL,      -- the whole AgentDefinition
                created_at  TIMESTAMPTZ NOT NULL,
                updated_at  TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE agent_runs (
                id                VARCHAR PRIMARY KEY,
                agent_id          VARCHAR NOT NULL,
                task              VARCHAR NOT NULL,
                model             VARCHAR NOT NULL,
                status            VARCHAR NOT NULL,  -- running, finished, failed, blocked, cancelled, interrupted
                answer            VARCHAR,
                error             VARCHAR,
                steps             INTEGER NOT NULL,
                prompt_tokens     INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                started_at        TIMESTAMPTZ NOT NULL,
                finished_at       TIMESTAMPTZ,
                duration_ms       DOUBLE
            )
            """,
            "CREATE INDEX agent_runs_by_agent ON agent_runs (agent_id)",
            """
            CREATE TABLE run_events (
                run_id     VARCHAR NOT NULL,
                seq        INTEGER NOT NULL,
                type       VARCHAR NOT NULL,
                payload    JSON NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (run_id, seq)
            )
            """,
            """
            CREATE TABLE approvals (
                id          VARCHAR PRIMARY KEY,
                run_id      VARCHAR,
                agent_id    VARCHAR,
                tool        VARCHAR NOT NULL,
                arguments   JSON NOT NULL,
                permission  VARCHAR NOT NULL,
                status      VARCHAR NOT NULL,  -- pending, approved, denied, expired
                reason      VARCHAR,
                created_at  TIMESTAMPTZ NOT NULL,
                decided_at  TIMESTAMPTZ
            )
            """,
            """
            CREATE TABLE tool_audit (
                id          VARCHAR PRIMARY KEY,
                run_id      VARCHAR,
                agent_id    VARCHAR,
                tool        VARCHAR NOT NULL,
                permission  VARCHAR NOT NULL,
                arguments   JSON NOT NULL,
                status      VARCHAR NOT NULL,  -- ok, error, invalid, denied, refused, timeout
                result      VARCHAR,
                error       VARCHAR,
                duration_ms DOUBLE NOT NULL,
                created_at  TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE mcp_pins (
                server      VARCHAR NOT NULL,
                tool        VARCHAR NOT NULL,
                description VARCHAR NOT NULL,
                schema_hash VARCHAR NOT NULL,
                pinned_at   TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (server, tool)
            )
            """,
        ),
    ),
    Migration(
        6,
        "API keys of the local server",
        (
            """
            CREATE TABLE api_keys (
                id           VARCHAR PRIMARY KEY,
                name         VARCHAR NOT NULL,
                secret_hash  VARCHAR NOT NULL,   -- sha256 of the secret part; the key itself is never stored
                scopes       JSON NOT NULL,
                created_at   TIMESTAMPTZ NOT NULL,
                revoked_at   TIMESTAMPTZ,
                last_used_at TIMESTAMPTZ
            )
            """,
        ),
    ),
    Migration(
        7,
        "Idempotency-Key records of the local server",
        (
            """
            CREATE TABLE idempotency_keys (
                api_key_id   VARCHAR NOT NULL,
                key          VARCHAR NOT NULL,
                fingerprint  VARCHAR NOT NULL,   -- sha256 of method, path, query and the (canonical) body
                method       VARCHAR NOT NULL,
                path         VARCHAR NOT NULL,
                state        VARCHAR NOT NULL,   -- in_flight, done
                owner        VARCHAR NOT NULL,   -- the server instance handling it (others' in-flight rows are stale)
                status       INTEGER,
                content_type VARCHAR,
                body         BLOB,
                created_at   TIMESTAMPTZ NOT NULL,
                expires_at   TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (api_key_id, key)
            )
            """,
        ),
    ),
    Migration(
        8,
        "chat messages written by agent runs",
        ("ALTER TABLE messages ADD COLUMN run_id VARCHAR",),
    ),
    Migration(
        9,
        "idempotency keys of tool calls made by workflow steps",
        ("ALTER TABLE tool_audit ADD COLUMN idempotency_key VARCHAR",),
    ),
)
