"""Workbench-native routes under `/workbench/v1`: the whole `EngineAPI`, one route per method.

`workbench.remote.RemoteEngine` is their client: every `EngineAPI` method maps
to one route here, takes the engine's own request schema as its body where
one exists, and answers with the engine's own response model as JSON
(`model_dump(mode="json")`), so the client rebuilds the very same pydantic
objects. A method that returns nothing answers 204.

Routes (all need an API key; the scope is in brackets)
  models        GET /models [read:models]; PUT /models/default [write:models];
                POST /models/warm-up [execute:chat]
  sessions      POST /sessions, PATCH, DELETE /sessions/{id} [write:sessions];
                GET /sessions, /sessions/{id}, /sessions/{id}/messages [read:sessions]
  chat          POST /chat (SSE), POST /generate [execute:chat]
  providers     GET /providers [read:providers]; PUT /providers/{name},
                DELETE /providers/{name}, PUT /providers/{name}/key [write:providers]
                (the key goes to the server's OS keyring and is never echoed; a new
                base_url for a provider with a stored key also needs [admin:providers]
                and deletes the key)
  memory        POST /memory, POST /memory/batch, DELETE /memory/{namespace}/{key} [write:memory];
                GET /memory, GET /memory/{namespace}/{key}, POST /memory/retrieve [read:memory]
  knowledge     POST /knowledge/ingest (SSE), POST /knowledge/collections/{c}/pin,
                DELETE /knowledge/collections/{c}/documents?path= [write:knowledge];
                POST /knowledge/search, GET /knowledge/collections,
                GET /knowledge/collections/{c}/documents,
                GET /knowledge/collections/{c}/chunks?path= [read:knowledge];
                POST /knowledge/answer [execute:knowledge]
  graph         POST /graph/facts, POST /graph/relationships [write:graph];
                GET /graph/facts, /graph/neighbours, /graph/entities, /graph/knowledge [read:graph];
                POST /graph/knowledge [execute:graph]
  tools         GET /tools [read:tools]; POST /tools/execute [execute:tools]; GET /tools/audit [read:audit]
  workspace     GET /workspace/roots [read:workspace]; POST, DELETE /workspace/roots [admin:workspace]
  MCP servers   GET /mcp/servers [read:mcp]; POST /mcp/servers, DELETE /mcp/servers/{name},
                POST /mcp/servers/{name}/accept [admin:mcp]
  agents        POST /agents, PATCH, DELETE /agents/{id}, POST /agents/import [write:agents]
                (plus [admin:agents] to turn approvals off or grant any tool but a built-in
                read-only one: workbench/server/agent_grants.py);
                GET /agents, /agents/{id}, /agents/{id}/export, /agents/{id}/capabilities [read:agents];
                POST /agents/skills, /agents/from-role-model, /agents/{id}/enrich [execute:agents]
  runs          POST /runs (SSE) [execute:agents]; POST /runs/{id}/cancel [write:runs];
                GET /runs, /runs/{id}, /runs/{id}/events [read:runs]
  approvals     GET /approvals [read:approvals]; POST /approvals/{id} [write:approvals]
  keys          GET /whoami [read:keys]

Adding an MCP server starts a program of the caller's choosing, and a
workspace root widens what the file and shell tools may touch: both need an
`admin:` scope, which keys get only when asked for (`--scopes admin:*` or
`*`). Ingestion reads files the server process can read: grant
`write:knowledge` to trusted keys only.

Over HTTP a model is chosen by id: a model spec must be one `GET /models`
lists or a configured provider's `PROVIDER:MODEL` (the engine would load any
`.gguf` path; the rule is `workbench.server.deps.allowed_model`), and
an agent's prompt template must be built in or live in the home's
`templates/` folder.

Streams (chat, ingest, run_agent) are server-sent events: per engine event
`event: <type>` + `data: <event JSON>`; a failure mid-stream is
`event: error` + `{"code", "message"}`, then the stream ends. Requests that
fail before the stream starts (validation, unknown session, agent or model)
are ordinary HTTP errors. The engine's iterator runs on one thread of its own
(`workbench.server.streaming`); a client that disconnects closes it, which
cancels the generation, the ingestion or the run.

`POST /generate` answers once, at the end, but runs the same chat stream on a
thread of its own (`workbench.server.streaming.generate_to_end`), so a client
that disconnects cancels it too. The other routes that run a model (knowledge
answer, graph knowledge, skills, role-model agents, enrich, memory retrieve
with an answer) make one blocking engine call the engine offers no way to
cancel: they run to their end.

Other routes are plain `def` functions (FastAPI's thread pool): each calls the
engine once, start to end, on one thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from workbench.engine.engine import Engine
from workbench.engine.errors import InvalidRequest
from workbench.engine.schemas import (
    AgentDefinition,
    AnswerRequest,
    ChatRequest,
    IngestRequest,
    KnowledgeRequest,
    RagRequest,
    RememberRequest,
    RoleModelRequest,
    RunRequest,
    SearchRequest,
    SkillsRequest,
    ToolExecuteRequest,
)
from workbench.server.agent_grants import check_agent_grants
from workbench.server.deps import EngineDep, allowed_model
from workbench.server.metrics import MetricsRoute
from workbench.server.security import APIError, require, require_also
from workbench.server.streaming import generate_to_end, sse_response

router = APIRouter(prefix="/workbench/v1", tags=["workbench"], route_class=MetricsRoute)

NO_CONTENT = 204


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(mode="json")


def _done() -> Response:
    return Response(status_code=NO_CONTENT)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------- HTTP-only checks


def _safe_definition(engine: Engine, data: dict[str, Any]) -> None:
    """An agent definition (or changes to one) sent over HTTP: listed models and safe templates only."""
    model = data.get("model")
    if isinstance(model, str):
        allowed_model(engine, model)
    template = data.get("template")
    if isinstance(template, str):
        from workbench.engine.agents.templates import builtin_templates

        if template.strip() not in builtin_templates():
            allowed = (Path(engine.home) / "templates").resolve()
            if not Path(template).expanduser().resolve().is_relative_to(allowed):
                raise InvalidRequest(
                    "Over HTTP an agent's template must be a built-in one (basic, xml, cot) or "
                    f"a file in the server's templates folder ({allowed})."
                )


# ------------------------------------------------------------------ keys


@router.get("/whoami")
def whoami(request: Request, key: Any = Depends(require("read:keys"))) -> dict[str, Any]:
    """The key this request was made with (never its secret)."""
    return key.model_dump(mode="json")


# ---------------------------------------------------------------- models


@router.get("/models")
def list_models(engine: EngineDep, _: Any = Depends(require("read:models"))) -> list[dict[str, Any]]:
    return _dump(engine.list_models())


class ModelChoice(_Body):
    model: str | None = Field(None, max_length=500)


@router.put("/models/default")
def set_default_model(
    request: Request, engine: EngineDep, body: ModelChoice, _: Any = Depends(require("write:models"))
) -> dict[str, Any]:
    """Make a listed model the default of new chats (saved in the server's config)."""
    if body.model is None:
        raise InvalidRequest("Invalid request: model: Field required.")
    allowed_model(engine, body.model)
    return _dump(engine.set_default_model(body.model))


@router.post("/models/warm-up", status_code=NO_CONTENT)
def warm_up(engine: EngineDep, body: ModelChoice, _: Any = Depends(require("execute:chat"))) -> Response:
    """Load the embedder and the chat model now (blocks until both are loaded)."""
    allowed_model(engine, body.model)
    engine.warm_up(body.model)
    return _done()


# -------------------------------------------------------------- sessions


class SessionCreate(_Body):
    title: str = Field("New chat", max_length=10_000)
    model: str | None = Field(None, max_length=500)
    system: str | None = None


@router.post("/sessions")
def create_session(
    engine: EngineDep, body: SessionCreate, _: Any = Depends(require("write:sessions"))
) -> dict[str, Any]:
    allowed_model(engine, body.model)
    return _dump(engine.create_session(body.title, body.model, body.system))


@router.get("/sessions")
def list_sessions(
    engine: EngineDep,
    limit: int = 50,
    offset: int = 0,
    query: str | None = None,
    _: Any = Depends(require("read:sessions")),
) -> list[dict[str, Any]]:
    """Sessions, most recently used first; `query` keeps those whose title or messages contain it."""
    return _dump(engine.list_sessions(limit, offset, query))


class SessionRename(_Body):
    title: str = Field(max_length=10_000)


@router.patch("/sessions/{session_id}")
def rename_session(
    engine: EngineDep, session_id: str, body: SessionRename, _: Any = Depends(require("write:sessions"))
) -> dict[str, Any]:
    return _dump(engine.rename_session(session_id, body.title))


@router.get("/sessions/{session_id}")
def get_session(engine: EngineDep, session_id: str, _: Any = Depends(require("read:sessions"))) -> dict[str, Any]:
    return _dump(engine.get_session(session_id))


@router.get("/sessions/{session_id}/messages")
def session_messages(
    engine: EngineDep, session_id: str, _: Any = Depends(require("read:sessions"))
) -> list[dict[str, Any]]:
    return _dump(engine.session_messages(session_id))


@router.delete("/sessions/{session_id}", status_code=NO_CONTENT)
def delete_session(engine: EngineDep, session_id: str, _: Any = Depends(require("write:sessions"))) -> Response:
    engine.delete_session(session_id)
    return _done()


# ------------------------------------------------------------------ chat


def _start_chat(engine: Engine, body: ChatRequest) -> Any:
    allowed_model(engine, body.model)
    return engine.chat(body)


@router.post("/chat")
async def chat(engine: EngineDep, body: ChatRequest, _: Any = Depends(require("execute:chat"))) -> Any:
    """One chat turn as server-sent events: run_started, token..., run_finished | run_failed."""
    # Validation, unknown sessions and models raise here, as HTTP errors, before any generation.
    events = await run_in_threadpool(_start_chat, engine, body)
    return sse_response(events, name="native-chat")


@router.post("/generate")
async def generate(
    request: Request, engine: EngineDep, body: ChatRequest, _: Any = Depends(require("execute:chat"))
) -> dict[str, Any]:
    """`engine.generate` over HTTP; a client that disconnects cancels the generation (a stored turn ends "cancelled")."""
    events = await run_in_threadpool(_start_chat, engine, body)
    return _dump(await generate_to_end(request, events, name="native-generate"))


# ------------------------------------------------------------- providers


class ProviderBody(_Body):
    kind: str = Field(max_length=40)
    base_url: str = Field(max_length=2000)
    models: list[str] = Field(default_factory=list, max_length=1000)


class ProviderKey(_Body):
    api_key: str = Field(max_length=10_000)


@router.get("/providers")
def list_providers(engine: EngineDep, _: Any = Depends(require("read:providers"))) -> list[dict[str, Any]]:
    return _dump(engine.list_providers())


@router.put("/providers/{name}")
def add_provider(
    request: Request, engine: EngineDep, name: str, body: ProviderBody, _: Any = Depends(require("write:providers"))
) -> dict[str, Any]:
    """Add or replace a provider (its key is set separately).

    Pointing a provider with a stored key at another `base_url` needs `admin:providers`
    (the engine then deletes the key): otherwise a key that may only write providers
    could send the stored key to a listener of its choosing.
    """
    current = {p.name: p for p in engine.list_providers()}.get(name)
    if current is None:
        if _orphan_key(name):  # the keyring is shared by every home: the key may be another's
            require_also(request, "admin:providers", "adding a provider whose name has a key in the keyring")
    elif current.has_key and _endpoint_changes(current.base_url, body.base_url):
        require_also(request, "admin:providers", "changing the endpoint of a provider with a stored key")
    return _dump(engine.add_provider(name, body.kind, body.base_url, body.models))


def _orphan_key(name: str) -> bool:
    from workbench.engine import secrets
    from workbench.engine.errors import SecretsError

    try:
        return bool(secrets.get_provider_key(name))
    except SecretsError:
        return False


def _endpoint_changes(current: str, wanted: str) -> bool:
    from workbench.engine.engine import validate_provider

    try:
        return validate_provider(kind="openai", base_url=wanted).base_url != current
    except InvalidRequest:
        return False  # the engine refuses it with its own sentence


@router.delete("/providers/{name}", status_code=NO_CONTENT)
def remove_provider(engine: EngineDep, name: str, _: Any = Depends(require("write:providers"))) -> Response:
    engine.remove_provider(name)
    return _done()


@router.put("/providers/{name}/key", status_code=NO_CONTENT)
def set_provider_key(
    engine: EngineDep, name: str, body: ProviderKey, _: Any = Depends(require("write:providers"))
) -> Response:
    """Store the provider's key in the server's OS keyring; the answer never contains it."""
    engine.set_provider_key(name, body.api_key)
    return _done()


# ---------------------------------------------------------------- memory


@router.post("/memory")
def remember(engine: EngineDep, body: RememberRequest, _: Any = Depends(require("write:memory"))) -> dict[str, Any]:
    return _dump(engine.remember(body))


@router.post("/memory/batch")
def remember_many(
    engine: EngineDep, body: list[RememberRequest] = Body(...), _: Any = Depends(require("write:memory"))
) -> list[dict[str, Any]]:
    """Store many memories: all of them, or none."""
    return _dump(engine.remember_many(list(body)))


@router.get("/memory")
def list_memories(
    engine: EngineDep,
    namespace: str | None = None,
    limit: int = 100,
    offset: int = 0,
    _: Any = Depends(require("read:memory")),
) -> list[dict[str, Any]]:
    return _dump(engine.list_memories(namespace, limit, offset))


@router.post("/memory/retrieve")
def rag_retrieve(engine: EngineDep, body: RagRequest, _: Any = Depends(require("read:memory"))) -> dict[str, Any]:
    allowed_model(engine, body.model)
    return _dump(engine.rag_retrieve(body))


@router.get("/memory/{namespace}/{key:path}")
def recall(engine: EngineDep, namespace: str, key: str, _: Any = Depends(require("read:memory"))) -> dict[str, Any]:
    return _dump(engine.recall(key, namespace))


@router.delete("/memory/{namespace}/{key:path}", status_code=NO_CONTENT)
def forget(engine: EngineDep, namespace: str, key: str, _: Any = Depends(require("write:memory"))) -> Response:
    engine.forget(key, namespace)
    return _done()


# ------------------------------------------------------------- knowledge


def _check_in_roots(engine: Engine, paths: list[str]) -> list[str]:
    """The workspace roots, once every given path is inside one (files found in a walk are checked by ingest)."""
    import os

    from workbench.engine.tools.paths import protected_paths

    roots = [os.path.realpath(r) for r in engine.workspace_roots()]
    protected = protected_paths(engine.home)
    for path in paths:
        real = os.path.realpath(os.path.expanduser(path))
        if not any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots):
            raise APIError(
                403,
                "PATH_OUTSIDE_ROOTS",
                f"{path!r} is outside the workspace roots; over HTTP, ingest reads only inside them "
                "(`workbench workspace add DIR`).",
            )
        if any(Path(real) == p or Path(real).is_relative_to(p) or p.is_relative_to(real) for p in protected):
            raise APIError(
                403,
                "PATH_OUTSIDE_ROOTS",
                f"{path!r} is or holds the workbench's own files (its home or the keyring), "
                "which are never ingested over HTTP.",
            )
    return roots


@router.post("/knowledge/ingest")
async def ingest(
    request: Request, engine: EngineDep, body: IngestRequest, key: Any = Depends(require("write:knowledge"))
) -> Any:
    """Ingest files and folders (paths on the server's machine) as server-sent events: progress..., ingest_finished.

    Paths must lie inside the workspace roots, except for the server's own
    local-session key (the user's TUI and CLI on this machine): an API key does
    not open every file the server can read.
    """
    if key.id in request.app.state.settings.local_session_keys:
        events = await run_in_threadpool(engine.ingest, body)
    else:
        within = await run_in_threadpool(_check_in_roots, engine, body.paths)
        events = await run_in_threadpool(engine.ingest_within, body, within)
    return sse_response(events, name="native-ingest")


@router.post("/knowledge/search")
def search(engine: EngineDep, body: SearchRequest, _: Any = Depends(require("read:knowledge"))) -> dict[str, Any]:
    return _dump(engine.search(body))


@router.post("/knowledge/answer")
def answer(engine: EngineDep, body: AnswerRequest, _: Any = Depends(require("execute:knowledge"))) -> dict[str, Any]:
    allowed_model(engine, body.model)
    return _dump(engine.answer(body))


@router.get("/knowledge/collections")
def list_collections(engine: EngineDep, _: Any = Depends(require("read:knowledge"))) -> list[dict[str, Any]]:
    return _dump(engine.list_collections())


@router.get("/knowledge/collections/{collection}/documents")
def list_documents(
    engine: EngineDep, collection: str, _: Any = Depends(require("read:knowledge"))
) -> list[dict[str, Any]]:
    return _dump(engine.list_documents(collection))


@router.get("/knowledge/collections/{collection}/chunks")
def document_chunks(
    engine: EngineDep,
    collection: str,
    path: str = Query(..., max_length=10_000),
    limit: int = Query(200, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    _: Any = Depends(require("read:knowledge")),
) -> list[dict[str, Any]]:
    return _dump(engine.document_chunks(collection, path, limit, offset))


class PinBody(_Body):
    path: str = Field(max_length=10_000)
    pinned: bool = True


@router.post("/knowledge/collections/{collection}/pin", status_code=NO_CONTENT)
def set_pinned(
    engine: EngineDep, collection: str, body: PinBody, _: Any = Depends(require("write:knowledge"))
) -> Response:
    engine.set_pinned(collection, body.path, body.pinned)
    return _done()


@router.delete("/knowledge/collections/{collection}/documents", status_code=NO_CONTENT)
def remove_document(
    engine: EngineDep,
    collection: str,
    path: str = Query(..., max_length=10_000),
    _: Any = Depends(require("write:knowledge")),
) -> Response:
    engine.remove_document(collection, path)
    return _done()


# ------------------------------------------------------- knowledge graph


class FactBody(_Body):
    entity: str = Field(max_length=10_000)
    attribute: str = Field(max_length=10_000)
    value: str = Field(max_length=1_000_000)
    ttl_seconds: int | None = None
    source: str | None = Field(None, max_length=10_000)
    confidence: float = 1.0
    knowledge_id: str | None = Field(None, max_length=200)
    entity_type: str | None = Field(None, max_length=200)


class RelationBody(_Body):
    source: str = Field(max_length=10_000)
    target: str = Field(max_length=10_000)
    relation_type: str = Field(max_length=200)
    properties: dict[str, Any] | None = None


@router.post("/graph/facts")
def store_fact(engine: EngineDep, body: FactBody, _: Any = Depends(require("write:graph"))) -> dict[str, Any]:
    options = body.model_dump(exclude={"entity", "attribute", "value"}, exclude_unset=True)
    return _dump(engine.store_fact(body.entity, body.attribute, body.value, **options))


@router.get("/graph/facts")
def retrieve_facts(
    engine: EngineDep, entity: str, attribute: str | None = None, _: Any = Depends(require("read:graph"))
) -> list[dict[str, Any]]:
    return _dump(engine.retrieve_facts(entity, attribute))


@router.post("/graph/relationships")
def create_relationship(
    engine: EngineDep, body: RelationBody, _: Any = Depends(require("write:graph"))
) -> dict[str, Any]:
    return _dump(engine.create_relationship(body.source, body.target, body.relation_type, body.properties))


@router.get("/graph/neighbours")
def neighbours(
    engine: EngineDep,
    entity: str,
    max_hops: int = 1,
    relation_type: str | None = None,
    direction: str = "both",
    _: Any = Depends(require("read:graph")),
) -> list[dict[str, Any]]:
    return _dump(engine.neighbours(entity, max_hops, relation_type, direction))


@router.get("/graph/entities")
def search_entities(
    engine: EngineDep, query: str, limit: int = 10, _: Any = Depends(require("read:graph"))
) -> list[dict[str, Any]]:
    return _dump(engine.search_entities(query, limit))


@router.post("/graph/knowledge")
def generate_knowledge(
    engine: EngineDep, body: KnowledgeRequest, _: Any = Depends(require("execute:graph"))
) -> dict[str, Any]:
    allowed_model(engine, body.model)
    return _dump(engine.generate_knowledge(body))


@router.get("/graph/knowledge")
def list_knowledge(engine: EngineDep, identifier: str, _: Any = Depends(require("read:graph"))) -> list[dict[str, Any]]:
    return _dump(engine.list_knowledge(identifier))


# ----------------------------------------------------------------- tools


@router.get("/tools")
def list_tools(engine: EngineDep, _: Any = Depends(require("read:tools"))) -> list[dict[str, Any]]:
    return _dump(engine.list_tools())


@router.post("/tools/execute")
def execute_tool(
    engine: EngineDep, body: ToolExecuteRequest, _: Any = Depends(require("execute:tools"))
) -> dict[str, Any]:
    """Run one tool now (validated, confined to the workspace roots and audited like an agent's call)."""
    return _dump(engine.execute_tool(body))


@router.get("/tools/audit")
def tool_audit(
    engine: EngineDep,
    run_id: str | None = None,
    agent_id: str | None = None,
    tool: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    _: Any = Depends(require("read:audit")),
) -> list[dict[str, Any]]:
    return _dump(engine.tool_audit(run_id, agent_id, tool, limit, offset))


# ------------------------------------------------------------- workspace


class RootBody(_Body):
    path: str = Field(min_length=1, max_length=10_000)


@router.get("/workspace/roots")
def workspace_roots(engine: EngineDep, _: Any = Depends(require("read:workspace"))) -> list[str]:
    return list(engine.workspace_roots())


@router.post("/workspace/roots")
def add_workspace_root(engine: EngineDep, body: RootBody, _: Any = Depends(require("admin:workspace"))) -> list[str]:
    """Add a folder (on the server's machine) the file, shell, git and python tools may use."""
    return list(engine.add_workspace_root(body.path))


@router.delete("/workspace/roots")
def remove_workspace_root(
    engine: EngineDep,
    path: str = Query(..., min_length=1, max_length=10_000),
    _: Any = Depends(require("admin:workspace")),
) -> list[str]:
    return list(engine.remove_workspace_root(path))


# ----------------------------------------------------------- MCP servers


class MCPServerBody(_Body):
    name: str = Field(max_length=200)
    command: list[str] = Field(min_length=1, max_length=1000)
    env: dict[str, str] | None = None
    permission: Literal["read", "write", "exec", "network"] = "exec"
    tool_permissions: dict[str, str] | None = None


class AcceptBody(_Body):
    tool: str | None = Field(None, max_length=200)


@router.get("/mcp/servers")
def list_mcp_servers(engine: EngineDep, _: Any = Depends(require("read:mcp"))) -> list[dict[str, Any]]:
    return _dump(engine.list_mcp_servers())


@router.post("/mcp/servers")
def add_mcp_server(engine: EngineDep, body: MCPServerBody, _: Any = Depends(require("admin:mcp"))) -> dict[str, Any]:
    """Configure an MCP server: a program the server starts over stdio when its tools are needed."""
    return _dump(
        engine.add_mcp_server(
            body.name, body.command, env=body.env, permission=body.permission, tool_permissions=body.tool_permissions
        )
    )


@router.delete("/mcp/servers/{name}", status_code=NO_CONTENT)
def remove_mcp_server(engine: EngineDep, name: str, _: Any = Depends(require("admin:mcp"))) -> Response:
    engine.remove_mcp_server(name)
    return _done()


@router.post("/mcp/servers/{name}/accept", status_code=NO_CONTENT)
def accept_mcp_changes(
    engine: EngineDep, name: str, body: AcceptBody, _: Any = Depends(require("admin:mcp"))
) -> Response:
    """Re-pin a server's tool descriptions after a reviewed change."""
    engine.accept_mcp_changes(name, body.tool)
    return _done()


# ---------------------------------------------------------------- agents


class ImportBody(_Body):
    text: str = Field(max_length=2_000_000)
    replace: bool = False


class EnrichBody(_Body):
    additional_cycles: int = 1
    corpus_text: str = Field("", max_length=200_000)
    model: str | None = Field(None, max_length=500)


@router.post("/agents")
def create_agent(
    request: Request, engine: EngineDep, body: AgentDefinition, _: Any = Depends(require("write:agents"))
) -> dict[str, Any]:
    _safe_definition(engine, body.model_dump(exclude_unset=True))
    check_agent_grants(request, body.model_dump(mode="json"))
    return _dump(engine.create_agent(body))


@router.get("/agents")
def list_agents(
    engine: EngineDep,
    page: int = 1,
    per_page: int = 20,
    sort: str = "-created_at",
    role: str | None = None,
    status: str | None = None,
    parent: str | None = None,
    query: str | None = None,
    _: Any = Depends(require("read:agents")),
) -> dict[str, Any]:
    return _dump(engine.list_agents(page, per_page, sort, role, status, parent, query))


@router.post("/agents/import")
def import_agent(
    request: Request, engine: EngineDep, body: ImportBody, _: Any = Depends(require("write:agents"))
) -> dict[str, Any]:
    """Create an agent from an export (an inlined template is saved in the server's templates folder)."""
    exported = _exported_agent(body.text)
    if exported is not None:
        replaced = body.replace and isinstance(exported.get("id"), str)
        check_agent_grants(request, exported, _agent_or_none(engine, exported["id"]) if replaced else None)
    return _dump(engine.import_agent(body.text, body.replace))


def _exported_agent(text: str) -> dict[str, Any] | None:
    """The `agent` mapping of an export (None when it is not one: the engine then says why)."""
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    agent = document.get("agent") if isinstance(document, dict) else None
    return agent if isinstance(agent, dict) else None


def _agent_or_none(engine: Engine, agent_id: str) -> Any:
    from workbench.engine.errors import NotFound

    try:
        return engine.get_agent(agent_id)
    except NotFound:
        return None


@router.post("/agents/skills")
def generate_skills(
    engine: EngineDep, body: SkillsRequest, _: Any = Depends(require("execute:agents"))
) -> list[dict[str, Any]]:
    allowed_model(engine, body.model)
    return _dump(engine.generate_skills(body))


@router.post("/agents/from-role-model")
def create_agent_from_role_model(
    request: Request, engine: EngineDep, body: RoleModelRequest, _: Any = Depends(require("execute:agents"))
) -> dict[str, Any]:
    allowed_model(engine, body.model)
    _safe_definition(engine, body.overrides)
    check_agent_grants(request, body.overrides)
    return _dump(engine.create_agent_from_role_model(body))


@router.get("/agents/{agent_id}")
def get_agent(engine: EngineDep, agent_id: str, _: Any = Depends(require("read:agents"))) -> dict[str, Any]:
    return _dump(engine.get_agent(agent_id))


@router.patch("/agents/{agent_id}")
def update_agent(
    request: Request,
    engine: EngineDep,
    agent_id: str,
    changes: dict[str, Any] = Body(...),
    _: Any = Depends(require("write:agents")),
) -> dict[str, Any]:
    """Partially update an agent (nested settings merge key by key)."""
    _safe_definition(engine, changes)
    check_agent_grants(request, changes, engine.get_agent(agent_id))
    return _dump(engine.update_agent(agent_id, changes))


@router.delete("/agents/{agent_id}", status_code=NO_CONTENT)
def delete_agent(engine: EngineDep, agent_id: str, _: Any = Depends(require("write:agents"))) -> Response:
    engine.delete_agent(agent_id)
    return _done()


@router.get("/agents/{agent_id}/export")
def export_agent(engine: EngineDep, agent_id: str, _: Any = Depends(require("read:agents"))) -> dict[str, Any]:
    """The agent as one YAML document, in `text`."""
    return {"text": engine.export_agent(agent_id)}


@router.post("/agents/{agent_id}/enrich")
def enrich_agent(
    engine: EngineDep, agent_id: str, body: EnrichBody, _: Any = Depends(require("execute:agents"))
) -> dict[str, Any]:
    allowed_model(engine, body.model)
    return _dump(engine.enrich_agent(agent_id, body.additional_cycles, body.corpus_text, body.model))


@router.get("/agents/{agent_id}/capabilities")
def capabilities(engine: EngineDep, agent_id: str, _: Any = Depends(require("read:agents"))) -> dict[str, Any]:
    return _dump(engine.capabilities(agent_id))


# ------------------------------------------------------------------ runs


def _start_run(engine: Engine, body: RunRequest) -> Any:
    allowed_model(engine, body.model)
    if body.model is None:
        allowed_model(engine, engine.get_agent(body.agent_id).model)
    return engine.run_agent(body)


@router.post("/runs")
async def run_agent(engine: EngineDep, body: RunRequest, _: Any = Depends(require("execute:agents"))) -> Any:
    """Run an agent as server-sent events; approvals pause it until POST /approvals/{id}."""
    events = await run_in_threadpool(_start_run, engine, body)

    def on_event(pump: Any, event: Any) -> None:
        if getattr(event, "type", None) == "agent_run_started":
            # A run waiting for an approval sends nothing: a disconnect wakes it through cancel_run.
            run_id = event.run_id
            pump.on_cancel = lambda: engine.cancel_run(run_id)

    return sse_response(events, name="native-run", on_event=on_event)


@router.post("/runs/{run_id}/cancel")
def cancel_run(engine: EngineDep, run_id: str, _: Any = Depends(require("write:runs"))) -> dict[str, Any]:
    """Ask a running run to stop; `cancelled` is false when it was not running here."""
    return {"cancelled": bool(engine.cancel_run(run_id))}


@router.get("/runs")
def list_runs(
    engine: EngineDep,
    agent_id: str | None = None,
    limit: int = Query(50, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    _: Any = Depends(require("read:runs")),
) -> list[dict[str, Any]]:
    return _dump(engine.list_runs(agent_id, limit, offset))


@router.get("/runs/{run_id}")
def get_run(engine: EngineDep, run_id: str, _: Any = Depends(require("read:runs"))) -> dict[str, Any]:
    return _dump(engine.get_run(run_id))


@router.get("/runs/{run_id}/events")
def run_events(engine: EngineDep, run_id: str, _: Any = Depends(require("read:runs"))) -> list[dict[str, Any]]:
    return _dump(engine.run_events(run_id))


# ------------------------------------------------------------- approvals


@router.get("/approvals")
def pending_approvals(
    engine: EngineDep, run_id: str | None = None, _: Any = Depends(require("read:approvals"))
) -> list[dict[str, Any]]:
    return _dump(engine.pending_approvals(run_id))


class Decision(_Body):
    approve: bool
    reason: str | None = Field(None, max_length=2000)


@router.post("/approvals/{approval_id}")
def resolve_approval(
    engine: EngineDep, approval_id: str, decision: Decision, _: Any = Depends(require("write:approvals"))
) -> dict[str, Any]:
    """Approve or deny a pending tool call of a running agent."""
    return _dump(engine.resolve_approval(approval_id, decision.approve, decision.reason))
