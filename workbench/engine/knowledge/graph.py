"""Knowledge graph in DuckDB: entities, facts and relations.

Entities are named things (matched case-insensitively) with a type and a
description; each is embedded so entities can be found by meaning. Facts are
(entity, attribute, value) triples with a source, a confidence and an
optional expiry; an entity may hold several values for one attribute.
Relations are typed, directed edges; `neighbours` walks them with recursive
SQL.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import timedelta
from typing import Any, Literal

from workbench.engine.errors import InvalidRequest, NotFound
from workbench.engine.memory.embedder import Embedder
from workbench.engine.memory.index import VectorIndex, sql_int_list
from workbench.engine.schemas import Entity, EntityHit, Fact, Neighbour, Relation
from workbench.engine.store.db import Database, utcnow

ENTITY_INDEX = "kg.entities"
MAX_HOPS = 6
_NAME_LIMIT = 300
_VALUE_LIMIT = 20_000


def name_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def _check_text(label: str, value: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{label} must be a non-empty string.")
    if len(value) > limit:
        raise InvalidRequest(f"{label} must be at most {limit} characters.")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise InvalidRequest(f"{label} must not contain control characters.")
    return value.strip()


class KnowledgeGraph:
    """Entities, facts and relations, with semantic search over entities."""

    def __init__(self, db: Database, embedder: Embedder, index: VectorIndex) -> None:
        self.db = db
        self.embedder = embedder
        self.index = index

    # ------------------------------------------------------------- entities

    def upsert_entity(self, name: str, type: str | None = None, description: str | None = None) -> Entity:
        """Create an entity, or update the type/description given; re-embeds on change."""
        name = _check_text("Entity name", name, _NAME_LIMIT)
        key = name_key(name)
        row = self._entity_row(key)
        if row is not None:
            new_type = type if type else row[2]
            new_description = description if description is not None else row[3]
            if (new_type, new_description) == (row[2], row[3]):
                return _entity(row)
        else:
            new_type, new_description = type or "Thing", description or ""
        vector = self.embedder.embed([_entity_text(name, new_type, new_description)])
        now = utcnow()
        with self.db.transaction() as conn:
            vector_id = conn.execute("SELECT nextval('vector_id_seq')").fetchone()[0]
            if row is None:
                entity_id = conn.execute("SELECT nextval('kg_seq')").fetchone()[0]
                conn.execute(
                    "INSERT INTO kg_entities VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [entity_id, name, key, new_type, new_description, vector_id, now, now],
                )
            else:
                conn.execute(
                    "UPDATE kg_entities SET type = ?, description = ?, vector_id = ?, updated_at = ? WHERE id = ?",
                    [new_type, new_description, vector_id, now, row[0]],
                )
                self.index.stage_delete(conn, [row[4]])
            self.index.stage_add(conn, [vector_id], vector)
        self.index.apply()
        return _entity(self._entity_row(key))

    def get_entity(self, name: str) -> Entity:
        row = self._entity_row(name_key(name))
        if row is None:
            raise NotFound(f"No entity named {name!r} in the knowledge graph.")
        return _entity(row)

    def _entity_row(self, key: str) -> tuple | None:
        return self.db.fetchone(
            "SELECT id, name, type, description, vector_id, created_at FROM kg_entities WHERE name_key = ?", [key]
        )

    def _ensure(self, name: str, type: str | None = None) -> int:
        row = self._entity_row(name_key(_check_text("Entity name", name, _NAME_LIMIT)))
        if row is not None:
            return row[0]
        return self.upsert_entity(name, type).id

    def search_entities(self, query: str, limit: int = 10) -> list[EntityHit]:
        """Entities closest in meaning to `query`."""
        query = _check_text("Query", query, 8000)
        if not 1 <= limit <= 100:
            raise InvalidRequest("limit must be 1..100.")
        hits = self.index.search(self.embedder.embed([query])[0], limit)
        if not hits:
            return []
        rows = self.db.fetchall(
            "SELECT id, name, type, description, vector_id, created_at FROM kg_entities "
            f"WHERE vector_id IN ({sql_int_list(v for v, _ in hits)})"
        )
        by_vector = {r[4]: r for r in rows}
        return [EntityHit(entity=_entity(by_vector[v]), score=round(s, 6)) for v, s in hits if v in by_vector]

    # ---------------------------------------------------------------- facts

    def store_fact(
        self,
        entity: str,
        attribute: str,
        value: str,
        *,
        ttl_seconds: int | None = None,
        source: str | None = None,
        confidence: float = 1.0,
        knowledge_id: str | None = None,
        entity_type: str | None = None,
    ) -> Fact:
        """Record that `entity` has `attribute` = `value`; the same triple is updated, not duplicated."""
        attribute = _check_text("Attribute", attribute, _NAME_LIMIT)
        value = _check_text("Value", str(value), _VALUE_LIMIT)
        if isinstance(confidence, bool) or not 0.0 <= float(confidence) <= 1.0:
            raise InvalidRequest("confidence must be a number from 0 to 1.")
        if ttl_seconds is not None and not 1 <= ttl_seconds <= 10 * 365 * 86400:
            raise InvalidRequest("ttl_seconds must be from 1 second to 10 years.")
        entity_id = self._ensure(entity, entity_type)
        now = utcnow()
        expires_at = now + timedelta(seconds=ttl_seconds) if ttl_seconds else None
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM kg_facts WHERE entity_id = ? AND attribute = ? AND value = ?",
                [entity_id, attribute, value],
            ).fetchone()
            if row is None:
                fact_id = conn.execute("SELECT nextval('kg_seq')").fetchone()[0]
                conn.execute(
                    "INSERT INTO kg_facts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [fact_id, entity_id, attribute, value, source, float(confidence), knowledge_id, now, expires_at],
                )
            else:
                fact_id = row[0]
                conn.execute(
                    "UPDATE kg_facts SET source = coalesce(?, source), confidence = ?, "
                    "knowledge_id = coalesce(?, knowledge_id), expires_at = ? WHERE id = ?",
                    [source, float(confidence), knowledge_id, expires_at, fact_id],
                )
        return self._facts("f.id = ?", [fact_id])[0]

    def retrieve_facts(self, entity: str, attribute: str | None = None) -> list[Fact]:
        """Unexpired facts about an entity (optionally one attribute), newest first."""
        row = self._entity_row(name_key(entity))
        if row is None:
            return []
        where, params = "f.entity_id = ?", [row[0]]
        if attribute is not None:
            where += " AND f.attribute = ?"
            params.append(attribute)
        return self._facts(where, params)

    def facts_with_knowledge_id(self, entity: str) -> list[Fact]:
        row = self._entity_row(name_key(entity))
        if row is None:
            return []
        return self._facts("f.entity_id = ? AND f.knowledge_id IS NOT NULL", [row[0]])

    def _facts(self, where: str, params: list[Any]) -> list[Fact]:
        rows = self.db.fetchall(
            "SELECT f.id, e.name, f.attribute, f.value, f.source, f.confidence, f.knowledge_id, f.created_at, "
            "f.expires_at FROM kg_facts f JOIN kg_entities e ON e.id = f.entity_id "
            f"WHERE {where} AND (f.expires_at IS NULL OR f.expires_at > ?) ORDER BY f.created_at DESC, f.id DESC",
            [*params, utcnow()],
        )
        return [
            Fact(
                id=r[0],
                entity=r[1],
                attribute=r[2],
                value=r[3],
                source=r[4],
                confidence=r[5],
                knowledge_id=r[6],
                created_at=r[7],
                expires_at=r[8],
            )
            for r in rows
        ]

    def purge_expired(self) -> int:
        rows = self.db.fetchall("DELETE FROM kg_facts WHERE expires_at <= ? RETURNING id", [utcnow()])
        return len(rows)

    # ------------------------------------------------------------ relations

    def create_relationship(
        self, source: str, target: str, relation_type: str, properties: dict[str, Any] | None = None
    ) -> Relation:
        """A directed, typed edge (entities are created if new); the same edge is updated."""
        relation_type = _check_text("Relation type", relation_type, 100)
        if properties is not None and not isinstance(properties, dict):
            raise InvalidRequest("Relation properties must be a JSON object.")
        try:
            props = json.dumps(properties or {}, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidRequest("Relation properties must be a JSON object.") from None
        from_id, to_id = self._ensure(source), self._ensure(target)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM kg_relations WHERE from_id = ? AND to_id = ? AND relation_type = ?",
                [from_id, to_id, relation_type],
            ).fetchone()
            if row is None:
                rel_id = conn.execute("SELECT nextval('kg_seq')").fetchone()[0]
                conn.execute(
                    "INSERT INTO kg_relations VALUES (?, ?, ?, ?, ?, ?)",
                    [rel_id, from_id, to_id, relation_type, props, utcnow()],
                )
            else:
                rel_id = row[0]
                conn.execute("UPDATE kg_relations SET properties = ? WHERE id = ?", [props, rel_id])
        return self.relations("r.id = ?", [rel_id])[0]

    def relations(self, where: str = "TRUE", params: list[Any] | None = None) -> list[Relation]:
        rows = self.db.fetchall(
            "SELECT r.id, a.name, b.name, r.relation_type, r.properties, r.created_at FROM kg_relations r "
            "JOIN kg_entities a ON a.id = r.from_id JOIN kg_entities b ON b.id = r.to_id "
            f"WHERE {where} ORDER BY r.id",
            params or [],
        )
        return [
            Relation(
                id=r[0], source=r[1], target=r[2], relation_type=r[3], properties=json.loads(r[4]), created_at=r[5]
            )
            for r in rows
        ]

    def neighbours(
        self,
        entity: str,
        max_hops: int = 1,
        relation_type: str | None = None,
        direction: Literal["out", "in", "both"] = "both",
    ) -> list[Neighbour]:
        """Entities reachable within `max_hops` relations, nearest first, each with the relation path."""
        if not 1 <= max_hops <= MAX_HOPS:
            raise InvalidRequest(f"max_hops must be 1..{MAX_HOPS}.")
        if direction not in ("out", "in", "both"):
            raise InvalidRequest("direction must be out, in or both.")
        start = self._entity_row(name_key(entity))
        if start is None:
            raise NotFound(f"No entity named {entity!r} in the knowledge graph.")
        type_filter = "WHERE relation_type = $relation_type" if relation_type else ""
        edges = []
        if direction in ("out", "both"):
            edges.append(f"SELECT from_id AS a, to_id AS b, relation_type FROM kg_relations {type_filter}")
        if direction in ("in", "both"):
            edges.append(f"SELECT to_id AS a, from_id AS b, relation_type FROM kg_relations {type_filter}")
        params: dict[str, Any] = {"start": start[0], "max_hops": max_hops}
        if relation_type:
            params["relation_type"] = relation_type
        rows = self.db.fetchall(
            f"""
            WITH RECURSIVE edges AS ({" UNION ALL ".join(edges)}),
            walk(id, hops, visited, via) AS (
                SELECT $start::BIGINT, 0, [$start::BIGINT], []::VARCHAR[]
                UNION ALL
                SELECT e.b, w.hops + 1, list_append(w.visited, e.b), list_append(w.via, e.relation_type)
                FROM walk w JOIN edges e ON e.a = w.id
                WHERE w.hops < $max_hops AND NOT list_contains(w.visited, e.b)
            ),
            nearest AS (
                SELECT id, min(hops) AS hops, arg_min(via, hops) AS via FROM walk WHERE hops > 0 GROUP BY id
            )
            SELECT e.id, e.name, e.type, e.description, e.vector_id, e.created_at, n.hops, n.via
            FROM nearest n JOIN kg_entities e ON e.id = n.id
            ORDER BY n.hops, e.name
            """,
            params,
        )
        return [Neighbour(entity=_entity(r[:6]), hops=r[6], via=list(r[7])) for r in rows]


def _entity_text(name: str, type: str, description: str) -> str:
    return f"{name} ({type}): {description}" if description else f"{name} ({type})"


def _entity(row: tuple) -> Entity:
    return Entity(id=row[0], name=row[1], type=row[2], description=row[3], created_at=row[5])
