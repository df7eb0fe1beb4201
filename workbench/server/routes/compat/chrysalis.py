"""Chrysalis's AgentBuilder, KnowledgeBuilder and SkillBuilder APIs over the engine, on one port.

Request and response shapes are the seed's (the Chrysalis integration guide), so a Chrysalis client
works unchanged; every answer is `{success, data, meta{request_id, timestamp, version}}` and every
error `{success: false, error{code, message, category, details, ...}, meta}` (the app shapes errors
of every `/api/v1/*` path; codes like `NOT_FOUND_ERROR.RESOURCE_NOT_FOUND`).

Agents (`read:agents` / `write:agents`; `tools` beyond the built-in read-only ones also need
`admin:agents`, see `workbench/server/agent_grants.py`):
* `POST /api/v1/agents` `{agent_id, role_model{name, occupation, ...}, deepening_cycles}` -> 201, the
  agent with generated knowledge and skills (engine `create_agent_from_role_model`); a taken id is
  409 `CONFLICT_ERROR.DUPLICATE_RESOURCE`. `deepening_cycles` defaults to 0 (Chrysalis's default) and
  is 0..5 here; optional `corpus_text`, `model`, `description`, `instructions`, `tools`,
  `knowledge_collections`.
* `GET /api/v1/agents?page&per_page&sort&filter[status]` -> a page, with `meta.pagination`
  `{page, per_page, total, total_pages, has_next, has_prev}`; `sort` is one of created_at,
  updated_at, name, agent_id (`-` for descending; default `-created_at`); per_page is clamped to
  1..100 like Chrysalis does.
* `GET /api/v1/agents/{id}`, `PATCH` (role_model fields merge; `deepening_cycles` is recorded;
  `generated_skills` / `generated_knowledge` replace the lists), `DELETE` -> `{deleted, agent_id}`,
  `GET /api/v1/agents/{id}/capabilities` -> `{skills, knowledge, ...}`.

Agent status maps ready -> "completed", building -> "pending", failed -> "failed".

Knowledge (`read:knowledge` / `write:knowledge`):
* `POST /api/v1/knowledge` `{identifier, entity_type, deepening_cycles, text?, source?, confidence?}`
  -> 201, `data` the list of new items: `text` stores that item as given (the seed's custom
  knowledge), `deepening_cycles` > 0 generates items with the model.
* `GET /api/v1/knowledge?filter[identifier]=...&filter[type]=...&page&per_page` -> the items.
* `POST /api/v1/knowledge/search` `{query, limit, entity_type?}` -> items of the entities closest in
  meaning to the query, each with `identifier`, `entity_type` and `relevance_score`.

Skills (`write:skills`): `POST /api/v1/skills` `{occupation, deepening_cycles, corpus_text}` -> 201,
`data` the list of skills (not stored: PATCH them onto an agent as `generated_skills`).
"""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from workbench.engine.errors import Conflict
from workbench.engine.schemas import ID_PATTERN, MAX_QUERY_CHARS, AgentDefinition, KnowledgeItem
from workbench.server.agent_grants import check_agent_grants
from workbench.server.deps import EngineDep, allowed_model
from workbench.server.metrics import MetricsRoute
from workbench.server.security import APIError, meta, require

router = APIRouter(prefix="/api/v1", tags=["chrysalis"], route_class=MetricsRoute)

STATUS_OUT = {"ready": "completed", "building": "pending", "failed": "failed"}
STATUS_IN = {"completed": "ready", "pending": "building", "failed": "failed", "ready": "ready", "building": "building"}
SORTS = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "name": "name",
    "role_model.name": "name",
    "agent_id": "id",
    "id": "id",
}


def _ok(request: Request, data: Any, pagination: dict[str, Any] | None = None) -> dict[str, Any]:
    envelope = meta(request.state.request_id)
    if pagination is not None:
        envelope["pagination"] = pagination
    return {"success": True, "data": data, "meta": envelope}


def _pagination(page: int, per_page: int, total: int) -> dict[str, Any]:
    pages = math.ceil(total / per_page) if total else 0
    return {
        "page": page,
        "per_page": per_page,
        "total": total,
        "total_pages": pages,
        "has_next": page < pages,
        "has_prev": page > 1,
    }


def _page_params(page: int, per_page: int) -> tuple[int, int]:
    """Chrysalis clamps rather than refuses: page >= 1, per_page 1..100."""
    return max(page, 1), min(max(per_page, 1), 100)


# ------------------------------------------------------------------ agents


class RoleModelBody(BaseModel):
    """`{name, occupation}` plus any further properties (kept with the agent)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=200)
    occupation: str = Field(min_length=1, max_length=200)


class CreateAgentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(pattern=ID_PATTERN)
    role_model: RoleModelBody
    deepening_cycles: int = Field(0, ge=0, le=5)
    corpus_text: str = Field("", max_length=200_000)
    model: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = Field(None, max_length=4000)
    instructions: str | None = Field(None, max_length=100_000)
    tools: list[str] | None = Field(None, max_length=200)
    knowledge_collections: list[str] | None = Field(None, max_length=50)


class RoleModelPatch(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str | None = Field(None, min_length=1, max_length=200)
    occupation: str | None = Field(None, min_length=1, max_length=200)


class KnowledgeEntityIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, max_length=4000)
    type: str = Field(min_length=1, max_length=100)


class KnowledgeItemIn(BaseModel):
    """A knowledge item as this API returns it (extra fields such as `relevance_score` are dropped)."""

    model_config = ConfigDict(extra="ignore")

    knowledge_id: str = Field(min_length=1, max_length=200)
    entity: KnowledgeEntityIn
    source: str = Field("api", max_length=500)
    confidence: float = Field(1.0, ge=0.0, le=1.0)


class SkillIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    skill_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    category: str = Field("general", max_length=100)


class PatchAgentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role_model: RoleModelPatch | None = None
    #: recorded with the agent (Chrysalis allows 0..11); generation runs only on create
    deepening_cycles: int | None = Field(None, ge=0, le=11)
    generated_skills: list[SkillIn] | None = Field(None, max_length=1000)
    generated_knowledge: list[KnowledgeItemIn] | None = Field(None, max_length=5000)
    description: str | None = Field(None, max_length=4000)
    instructions: str | None = Field(None, max_length=100_000)
    model: str | None = Field(None, max_length=500)
    tools: list[str] | None = Field(None, max_length=200)
    knowledge_collections: list[str] | None = Field(None, max_length=50)


def agent_out(agent: AgentDefinition) -> dict[str, Any]:
    """An agent in Chrysalis's shape (plus the workbench fields a client may want)."""
    extra = agent.metadata.get("role_model")
    role_model = {
        **(extra if isinstance(extra, dict) else {}),
        "name": agent.name,
        "occupation": agent.occupation or "",
    }
    out = {
        "agent_id": agent.id,
        "role_model": role_model,
        "generated_skills": [s.model_dump(mode="json") for s in agent.generated_skills],
        "generated_knowledge": [k.model_dump(mode="json") for k in agent.generated_knowledge],
        "status": STATUS_OUT.get(agent.status, agent.status),
        "deepening_cycles": agent.metadata.get("deepening_cycles", 0),
        "description": agent.description,
        "instructions": agent.instructions,
        "model": agent.model,
        "tools": agent.tools,
        "knowledge_collections": agent.knowledge_collections,
        "created_at": agent.created_at.isoformat() if agent.created_at else None,
        "updated_at": agent.updated_at.isoformat() if agent.updated_at else None,
    }
    if agent.status == "failed" and agent.metadata.get("build_error"):
        out["error"] = agent.metadata["build_error"]
    return out


@router.post("/agents", status_code=201, summary="Create an agent from a role model")
def create_agent(
    body: CreateAgentBody, request: Request, engine: EngineDep, _: Any = Depends(require("write:agents"))
) -> dict[str, Any]:
    extra = body.role_model.model_extra or {}
    overrides: dict[str, Any] = {
        "metadata": {"deepening_cycles": body.deepening_cycles, **({"role_model": extra} if extra else {})}
    }
    for name in ("description", "instructions", "tools", "knowledge_collections"):
        value = getattr(body, name)
        if value is not None:
            overrides[name] = value
    check_agent_grants(request, overrides)
    model = allowed_model(engine, body.model)
    if model is not None:
        overrides["model"] = model
    agent = engine.create_agent_from_role_model(
        {
            "agent_id": body.agent_id,
            "role_model": {"name": body.role_model.name, "occupation": body.role_model.occupation},
            "deepening_cycles": body.deepening_cycles,
            "corpus_text": body.corpus_text,
            "model": model,
            "overrides": overrides,
        }
    )
    return _ok(request, agent_out(agent))


@router.get("/agents", summary="List agents")
def list_agents(
    request: Request,
    engine: EngineDep,
    page: int = 1,
    per_page: int = 20,
    sort: str = Query("-created_at", max_length=100),
    status: str | None = Query(None, alias="filter[status]", max_length=20),
    _: Any = Depends(require("read:agents")),
) -> dict[str, Any]:
    page, per_page = _page_params(page, per_page)
    fields = [f.strip() for f in sort.split(",") if f.strip()] or ["-created_at"]
    column = fields[0].lstrip("-")
    if len(fields) > 1 or column not in SORTS:
        raise APIError(
            400,
            "VALIDATION_ERROR",
            "Invalid request: sort: one field of created_at, updated_at, name, agent_id (prefix '-' for descending).",
            details={"field": "sort", "issue": "is not supported"},
        )
    engine_sort = ("-" if fields[0].startswith("-") else "") + SORTS[column]
    engine_status = None
    if status is not None:
        if status not in STATUS_IN:
            raise APIError(
                400,
                "VALIDATION_ERROR",
                "Invalid request: filter[status]: completed, pending or failed.",
                details={"field": "filter[status]", "issue": "is not a status"},
            )
        engine_status = STATUS_IN[status]
    result = engine.list_agents(page=page, per_page=per_page, sort=engine_sort, status=engine_status)
    return _ok(request, [agent_out(a) for a in result.items], _pagination(page, per_page, result.total))


@router.get("/agents/{agent_id}", summary="Get an agent")
def get_agent(
    agent_id: str, request: Request, engine: EngineDep, _: Any = Depends(require("read:agents"))
) -> dict[str, Any]:
    return _ok(request, agent_out(engine.get_agent(agent_id)))


@router.patch("/agents/{agent_id}", summary="Update an agent (partial)")
def update_agent(
    agent_id: str, body: PatchAgentBody, request: Request, engine: EngineDep, _: Any = Depends(require("write:agents"))
) -> dict[str, Any]:
    current = engine.get_agent(agent_id)
    changes: dict[str, Any] = {}
    metadata = dict(current.metadata)
    if body.role_model is not None:
        if body.role_model.name is not None:
            changes["name"] = body.role_model.name
        if body.role_model.occupation is not None:
            changes["occupation"] = body.role_model.occupation
        extra = body.role_model.model_extra or {}
        if extra:
            old = metadata.get("role_model")
            metadata["role_model"] = {**(old if isinstance(old, dict) else {}), **extra}
    if body.deepening_cycles is not None:
        metadata["deepening_cycles"] = body.deepening_cycles
    if metadata != current.metadata:
        changes["metadata"] = metadata
    # lists replace the agent's (a merged list from a client repeats items: the first copy is kept)
    if body.generated_skills is not None:
        changes["generated_skills"] = _unique([s.model_dump() for s in body.generated_skills], "skill_id")
    if body.generated_knowledge is not None:
        changes["generated_knowledge"] = _unique([k.model_dump() for k in body.generated_knowledge], "knowledge_id")
    for name in ("description", "instructions", "tools", "knowledge_collections"):
        value = getattr(body, name)
        if value is not None:
            changes[name] = value
    if body.model is not None:
        changes["model"] = allowed_model(engine, body.model)
    check_agent_grants(request, changes, current)
    agent = engine.update_agent(agent_id, changes) if changes else current
    return _ok(request, agent_out(agent))


def _unique(items: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    seen: set[str] = set()
    kept = []
    for item in items:
        if item[key] not in seen:
            seen.add(item[key])
            kept.append(item)
    return kept


@router.delete("/agents/{agent_id}", summary="Delete an agent")
def delete_agent(
    agent_id: str, request: Request, engine: EngineDep, _: Any = Depends(require("write:agents"))
) -> dict[str, Any]:
    try:
        engine.delete_agent(agent_id)
    except Conflict as exc:  # it is the parent of other agents
        raise APIError(409, "CONFLICT_ERROR.RESOURCE_CONFLICT", str(exc)) from None
    return _ok(request, {"deleted": True, "agent_id": agent_id})


@router.get("/agents/{agent_id}/capabilities", summary="An agent's skills and knowledge")
def capabilities(
    agent_id: str, request: Request, engine: EngineDep, _: Any = Depends(require("read:agents"))
) -> dict[str, Any]:
    caps = engine.capabilities(agent_id)
    return _ok(
        request,
        {
            "agent_id": caps.agent_id,
            "skills": [s.model_dump(mode="json") for s in caps.skills],
            "knowledge": [k.model_dump(mode="json") for k in caps.knowledge],
            "tools": caps.tools,
            "knowledge_collections": caps.knowledge_collections,
        },
    )


# --------------------------------------------------------------- knowledge


class CreateKnowledgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(min_length=1, max_length=200)
    entity_type: str = Field("Thing", min_length=1, max_length=100)
    deepening_cycles: int = Field(0, ge=0, le=10)
    #: one item to store as given (the seed's custom knowledge); `entity_type` is its type
    text: str | None = Field(None, min_length=1, max_length=4000)
    source: str | None = Field(None, min_length=1, max_length=500)
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    #: local text to generate from, and/or a knowledge-base collection to draw it from
    corpus_text: str = Field("", max_length=200_000)
    collection: str | None = Field(None, max_length=64)
    items_per_cycle: int = Field(5, ge=1, le=20)
    model: str | None = Field(None, min_length=1, max_length=500)


@router.post("/knowledge", status_code=201, summary="Create knowledge for an identifier")
def create_knowledge(
    body: CreateKnowledgeBody, request: Request, engine: EngineDep, _: Any = Depends(require("write:knowledge"))
) -> dict[str, Any]:
    from workbench.engine.knowledge.builder import knowledge_id

    items: list[dict[str, Any]] = []
    if body.text is not None:
        text = " ".join(body.text.split())
        item = KnowledgeItem(
            knowledge_id=knowledge_id(body.identifier, text),
            entity={"text": text, "type": body.entity_type},
            source=body.source or "api",
            confidence=body.confidence if body.confidence is not None else 1.0,
        )
        # entity_type is the item's type, and the entity's type when this creates the entity
        engine.store_fact(
            body.identifier,
            body.entity_type,
            text,
            source=item.source,
            confidence=item.confidence,
            knowledge_id=item.knowledge_id,
            entity_type=body.entity_type,
        )
        items.append(item.model_dump(mode="json"))
    elif body.source is not None or body.confidence is not None:
        raise APIError(
            400,
            "VALIDATION_ERROR",
            "Invalid request: source and confidence describe a given text; send text with them.",
            details={"field": "text", "issue": "is missing"},
        )
    if body.deepening_cycles > 0:
        result = engine.generate_knowledge(
            {
                "identifier": body.identifier,
                "entity_type": body.entity_type,
                "deepening_cycles": body.deepening_cycles,
                "corpus": body.corpus_text,
                "collection": body.collection,
                "items_per_cycle": body.items_per_cycle,
                "model": allowed_model(engine, body.model),
            }
        )
        items += [i.model_dump(mode="json") for i in result.items]
    return _ok(request, items)


@router.get("/knowledge", summary="List knowledge items of an identifier")
def list_knowledge(
    request: Request,
    engine: EngineDep,
    identifier: str | None = Query(None, alias="filter[identifier]", max_length=200),
    item_type: str | None = Query(None, alias="filter[type]", max_length=100),
    page: int = 1,
    per_page: int = 20,
    _: Any = Depends(require("read:knowledge")),
) -> dict[str, Any]:
    if not identifier:
        raise APIError(
            400,
            "VALIDATION_ERROR",
            "Invalid request: filter[identifier]: is required (the entity whose knowledge to list).",
            details={"field": "filter[identifier]", "issue": "is required"},
        )
    page, per_page = _page_params(page, per_page)
    items = engine.list_knowledge(identifier)
    if item_type:
        items = [i for i in items if i.entity.type.casefold() == item_type.casefold()]
    shown = items[(page - 1) * per_page : page * per_page]
    return _ok(request, [i.model_dump(mode="json") for i in shown], _pagination(page, per_page, len(items)))


class SearchKnowledgeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    limit: int = Field(10, ge=1, le=100)
    entity_type: str | None = Field(None, min_length=1, max_length=100)


@router.post("/knowledge/search", summary="Search knowledge by meaning")
def search_knowledge(
    body: SearchKnowledgeBody, request: Request, engine: EngineDep, _: Any = Depends(require("read:knowledge"))
) -> dict[str, Any]:
    terms = set(re.findall(r"\w+", body.query.casefold()))
    results: list[dict[str, Any]] = []
    for hit in engine.search_entities(body.query, limit=min(max(body.limit, 10) * 2, 100)):
        if body.entity_type and hit.entity.type.casefold() != body.entity_type.casefold():
            continue
        items = engine.list_knowledge(hit.entity.name)
        # within one entity: the items sharing most words with the query first, then the surest
        items.sort(key=lambda i: (-len(terms & set(re.findall(r"\w+", i.entity.text.casefold()))), -i.confidence))
        for item in items:
            results.append(
                {
                    **item.model_dump(mode="json"),
                    "identifier": hit.entity.name,
                    "entity_type": hit.entity.type,
                    "relevance_score": round(hit.score, 6),
                }
            )
        if len(results) >= body.limit:
            break
    return _ok(request, results[: body.limit])


# ------------------------------------------------------------------ skills


class SkillsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    occupation: str = Field(min_length=1, max_length=200)
    deepening_cycles: int = Field(0, ge=0, le=5)
    corpus_text: str = Field("", max_length=200_000)
    model: str | None = Field(None, min_length=1, max_length=500)


@router.post("/skills", status_code=201, summary="Generate skills for an occupation")
def create_skills(
    body: SkillsBody, request: Request, engine: EngineDep, _: Any = Depends(require("write:skills"))
) -> dict[str, Any]:
    skills = engine.generate_skills({**body.model_dump(), "model": allowed_model(engine, body.model)})
    return _ok(request, [s.model_dump(mode="json") for s in skills])
