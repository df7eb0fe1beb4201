"""Every `EngineAPI` operation, described once: the table the front ends are built from.

Each row (`Op`) names one `EngineAPI` method and says, as data:

* its HTTP route under `/workbench/v1` (method and path; `{name}` segments are
  request fields) and the API-key scope it needs;
* its one **request model**: the method's parameters as pydantic fields, with
  every limit (`Limit`, `Offset`, lengths) stated here and nowhere else. A
  method that takes a request object already (`chat(request)`,
  `create_agent(definition)`) names that parameter in `param`, and its model
  is the engine's own (`ChatRequest`, `AgentDefinition`);
* its **response** type (a model, a list of them, `str`, `bool`, or `None`
  for an answer with no content), and the **event** union when it streams.

Who reads the table:

* `Engine` (through `bind_operations`) validates the keyword parameters of
  every operation with its request model, so an in-process call and an HTTP
  call are refused with the same sentence;
* `workbench.server.routes.native` generates the native routes from it, with
  `response_model`, so `/openapi.json` describes real request and response
  schemas;
* `workbench.remote.RemoteEngine` is one generic call driven by it;
* `tests/unit/test_ops.py` proves that the table, `EngineAPI`, `Engine` and
  `RemoteEngine` agree name for name and type for type.

To add an operation: a method on `EngineAPI` and `Engine`, a request model and
a row here. The route and the client follow.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from workbench.engine.errors import InvalidRequest
from workbench.engine.schemas import (
    MAX_BATCH_ITEMS,
    AgentDefinition,
    AgentEvent,
    AgentPage,
    AgentRunRecord,
    AnswerRequest,
    AnswerResponse,
    ApprovalRecord,
    AuditRecord,
    Capabilities,
    ChatEvent,
    ChatRequest,
    ChunkInfo,
    CollectionInfo,
    DocumentInfo,
    EntityHit,
    Fact,
    GenerationResult,
    IngestEvent,
    IngestRequest,
    KnowledgeItem,
    KnowledgeRequest,
    KnowledgeResult,
    MCPServerInfo,
    MemoryRecord,
    MessageRecord,
    ModelInfo,
    Neighbour,
    ProviderInfo,
    RagRequest,
    RagResponse,
    Relation,
    RememberRequest,
    RememberResult,
    RoleModelRequest,
    RunEventRecord,
    RunRequest,
    SearchRequest,
    SearchResponse,
    Session,
    Skill,
    SkillsRequest,
    ToolExecuteRequest,
    ToolExecution,
    ToolInfo,
    VersionInfo,
    describe_validation_error,
)

# ------------------------------------------------------------------ shared field types

#: a page of a listing: 1..1000 rows (the one place this limit is stated)
Limit = Annotated[int, Field(ge=1, le=1000)]
#: rows skipped before the page
Offset = Annotated[int, Field(ge=0, le=1_000_000_000)]
#: a model id (what `GET /models` lists) or a configured provider's `PROVIDER:MODEL`
ModelSpec = Annotated[str, Field(max_length=500)]
#: a file or folder path
PathText = Annotated[str, Field(min_length=1, max_length=10_000)]
Direction = Literal["out", "in", "both"]
Permission = Literal["read", "write", "exec", "network"]


def _at_most_batch(value: Any) -> Any:
    if isinstance(value, list) and len(value) > MAX_BATCH_ITEMS:
        raise ValueError(
            f"remember_many takes at most {MAX_BATCH_ITEMS:,} memories per call (got {len(value):,}); "
            "send several batches"
        )
    return value


#: a batch of memories, refused before any item is validated when it is too long
MemoryBatch = Annotated[list[RememberRequest], BeforeValidator(_at_most_batch)]


class Params(BaseModel):
    """The parameters of one operation (unknown names are refused)."""

    model_config = ConfigDict(extra="forbid")


class NoParams(Params):
    """An operation without parameters."""


# ------------------------------------------------------------------ request models


class ModelChoice(Params):
    model: ModelSpec


class WarmUp(Params):
    model: ModelSpec | None = None


class SessionCreate(Params):
    title: str = Field("New chat", max_length=10_000)
    model: ModelSpec | None = None
    system: str | None = Field(None, max_length=2_000_000)


class SessionPage(Params):
    limit: Limit = 50
    offset: Offset = 0
    query: str | None = Field(None, max_length=200)


class SessionRef(Params):
    session_id: str


class SessionRename(Params):
    session_id: str
    title: str = Field(max_length=10_000)


class ProviderRef(Params):
    name: str = Field(max_length=200)


class ProviderAdd(Params):
    name: str = Field(max_length=200)
    kind: str = Field(max_length=40)
    base_url: str = Field(max_length=2000)
    models: list[str] | None = Field(None, max_length=1000)


class ProviderKey(Params):
    name: str = Field(max_length=200)
    api_key: str = Field(max_length=10_000)


class RememberMany(Params):
    requests: MemoryBatch


class MemoryRef(Params):
    key: str
    namespace: str = "default"


class MemoryPage(Params):
    namespace: str | None = None
    limit: Limit = 100
    offset: Offset = 0


class CollectionRef(Params):
    collection: str = "default"


class ChunkPage(Params):
    collection: str
    path: PathText
    limit: Limit = 200
    offset: Offset = 0


class DocumentRef(Params):
    collection: str
    path: PathText


class Pin(Params):
    collection: str
    path: PathText
    pinned: bool = True


class FactIn(Params):
    entity: str = Field(max_length=10_000)
    attribute: str = Field(max_length=10_000)
    value: str = Field(max_length=1_000_000)
    ttl_seconds: int | None = None
    source: str | None = Field(None, max_length=10_000)
    confidence: float = 1.0
    knowledge_id: str | None = Field(None, max_length=200)
    entity_type: str | None = Field(None, max_length=200)


class FactQuery(Params):
    entity: str
    attribute: str | None = None


class RelationIn(Params):
    source: str = Field(max_length=10_000)
    target: str = Field(max_length=10_000)
    relation_type: str = Field(max_length=200)
    properties: dict[str, Any] | None = None


class NeighbourQuery(Params):
    entity: str
    max_hops: int = 1
    relation_type: str | None = None
    direction: Direction = "both"


class EntityQuery(Params):
    query: str
    limit: int = 10


class KnowledgeRef(Params):
    identifier: str


class AuditQuery(Params):
    run_id: str | None = None
    agent_id: str | None = None
    tool: str | None = None
    limit: Limit = 100
    offset: Offset = 0


class RootPath(Params):
    path: PathText


class MCPServerAdd(Params):
    name: str = Field(max_length=200)
    command: list[str] = Field(min_length=1, max_length=1000)
    env: dict[str, str] | None = None
    permission: Permission = "exec"
    tool_permissions: dict[str, str] | None = None


class MCPServerRef(Params):
    name: str = Field(max_length=200)


class MCPAccept(Params):
    server: str = Field(max_length=200)
    tool: str | None = Field(None, max_length=200)


class AgentRef(Params):
    agent_id: str


class AgentQuery(Params):
    page: int = 1
    per_page: int = 20
    sort: str = "-created_at"
    role: str | None = None
    status: str | None = None
    parent: str | None = None
    query: str | None = None


class AgentChanges(Params):
    agent_id: str
    changes: dict[str, Any]


class AgentImport(Params):
    text: str = Field(max_length=2_000_000)
    replace: bool = False


class Enrich(Params):
    agent_id: str
    additional_cycles: int = Field(1, ge=1, le=5)
    corpus_text: str = Field("", max_length=200_000)
    model: ModelSpec | None = None


class RunRef(Params):
    run_id: str


class RunPage(Params):
    agent_id: str | None = None
    limit: Limit = 50
    offset: Offset = 0


class ApprovalQuery(Params):
    run_id: str | None = None


class Decision(Params):
    approval_id: str
    approve: bool
    reason: str | None = Field(None, max_length=2000)


# ------------------------------------------------------------------ the table

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass(frozen=True)
class Op:
    """One operation: an `EngineAPI` method, its route, scope, request and response."""

    name: str
    method: HttpMethod
    path: str
    scope: str
    request: type[BaseModel]
    response: Any
    #: the event union when the operation streams (server-sent events over HTTP)
    events: Any = None
    #: the method's one parameter when it takes a request object (`chat(request)`); None: the fields are parameters
    param: str | None = None
    #: the field whose value is the whole JSON body (`remember_many`'s list); None: the body is an object of fields
    body: str | None = None
    #: over HTTP the answer is `{wrap: value}` (a bare `bool` or `str` is not a JSON document of its own)
    wrap: str | None = None
    summary: str = ""

    @property
    def path_fields(self) -> list[str]:
        """The request fields that are path segments, in order."""
        return re.findall(r"{(\w+)(?::path)?}", self.path)

    @property
    def streams(self) -> bool:
        return self.events is not None


def _op(
    name: str, route: str, scope: str, request: type[BaseModel], response: Any = None, summary: str = "", **extra: Any
) -> Op:
    method, _, path = route.partition(" ")
    return Op(name, method, path, scope, request, response, summary=summary, **extra)  # type: ignore[arg-type]


OPERATIONS: tuple[Op, ...] = (
    # models
    _op(
        "version",
        "GET /version",
        "read:models",
        NoParams,
        VersionInfo,
        "The package version, the store's schema version, the default chat model and the embedder.",
    ),
    _op("list_models", "GET /models", "read:models", NoParams, list[ModelInfo], "Every selectable model."),
    _op(
        "set_default_model",
        "PUT /models/default",
        "write:models",
        ModelChoice,
        ModelInfo,
        "Make a listed model the default of new chats (saved in the server's config).",
    ),
    _op(
        "warm_up",
        "POST /models/warm-up",
        "execute:chat",
        WarmUp,
        None,
        "Load the embedder and the chat model now (blocks until both are loaded).",
    ),
    # sessions
    _op("create_session", "POST /sessions", "write:sessions", SessionCreate, Session, "Create an empty chat session."),
    _op(
        "list_sessions",
        "GET /sessions",
        "read:sessions",
        SessionPage,
        list[Session],
        "Sessions, most recently used first; `query` keeps those whose title or messages contain it.",
    ),
    _op(
        "rename_session", "PATCH /sessions/{session_id}", "write:sessions", SessionRename, Session, "Rename a session."
    ),
    _op("get_session", "GET /sessions/{session_id}", "read:sessions", SessionRef, Session, "One session."),
    _op(
        "session_messages",
        "GET /sessions/{session_id}/messages",
        "read:sessions",
        SessionRef,
        list[MessageRecord],
        "The messages of a session, in order.",
    ),
    _op(
        "delete_session",
        "DELETE /sessions/{session_id}",
        "write:sessions",
        SessionRef,
        None,
        "Delete a session with its messages.",
    ),
    # chat
    _op(
        "chat",
        "POST /chat",
        "execute:chat",
        ChatRequest,
        None,
        "One chat turn as server-sent events: run_started, token..., run_finished | run_failed.",
        events=ChatEvent,
        param="request",
    ),
    _op(
        "generate",
        "POST /generate",
        "execute:chat",
        ChatRequest,
        GenerationResult,
        "One chat turn, answered at the end; a client that disconnects cancels it.",
        param="request",
    ),
    # providers
    _op(
        "list_providers",
        "GET /providers",
        "read:providers",
        NoParams,
        list[ProviderInfo],
        "Remote providers and whether a key is stored for each (never the key).",
    ),
    _op(
        "add_provider",
        "PUT /providers/{name}",
        "write:providers",
        ProviderAdd,
        ProviderInfo,
        "Add or replace a provider; a new endpoint for a provider with a stored key also needs admin:providers "
        "and deletes the key.",
    ),
    _op(
        "remove_provider",
        "DELETE /providers/{name}",
        "write:providers",
        ProviderRef,
        None,
        "Remove a provider and its key.",
    ),
    _op(
        "set_provider_key",
        "PUT /providers/{name}/key",
        "write:providers",
        ProviderKey,
        None,
        "Store the provider's key in the server's OS keyring; no answer ever contains it.",
    ),
    # memory
    _op(
        "remember",
        "POST /memory",
        "write:memory",
        RememberRequest,
        RememberResult,
        "Store or replace a memory.",
        param="request",
    ),
    _op(
        "remember_many",
        "POST /memory/batch",
        "write:memory",
        RememberMany,
        list[RememberResult],
        "Store many memories: all of them, or none.",
        body="requests",
    ),
    _op(
        "list_memories",
        "GET /memory",
        "read:memory",
        MemoryPage,
        list[MemoryRecord],
        "Memories, newest first.",
    ),
    _op(
        "rag_retrieve",
        "POST /memory/retrieve",
        "read:memory",
        RagRequest,
        RagResponse,
        "Memories ranked by meaning, optionally with a cited answer.",
        param="request",
    ),
    _op(
        "recall",
        "GET /memory/{namespace}/{key:path}",
        "read:memory",
        MemoryRef,
        MemoryRecord,
        "A memory by exact key.",
    ),
    _op(
        "forget",
        "DELETE /memory/{namespace}/{key:path}",
        "write:memory",
        MemoryRef,
        None,
        "Delete a memory.",
    ),
    # knowledge base
    _op(
        "ingest",
        "POST /knowledge/ingest",
        "write:knowledge",
        IngestRequest,
        None,
        "Ingest files and folders (paths on the server's machine, inside the workspace roots) as server-sent "
        "events: progress..., ingest_finished.",
        events=IngestEvent,
        param="request",
    ),
    _op(
        "search",
        "POST /knowledge/search",
        "read:knowledge",
        SearchRequest,
        SearchResponse,
        "Hybrid (BM25 + vector) search of a collection.",
        param="request",
    ),
    _op(
        "answer",
        "POST /knowledge/answer",
        "execute:knowledge",
        AnswerRequest,
        AnswerResponse,
        "An answer from a collection, with citations.",
        param="request",
    ),
    _op(
        "list_collections",
        "GET /knowledge/collections",
        "read:knowledge",
        NoParams,
        list[CollectionInfo],
        "Collections with their counts.",
    ),
    _op(
        "list_documents",
        "GET /knowledge/collections/{collection}/documents",
        "read:knowledge",
        CollectionRef,
        list[DocumentInfo],
        "The documents of a collection.",
    ),
    _op(
        "document_chunks",
        "GET /knowledge/collections/{collection}/chunks",
        "read:knowledge",
        ChunkPage,
        list[ChunkInfo],
        "A document's chunks, in order.",
    ),
    _op(
        "set_pinned",
        "POST /knowledge/collections/{collection}/pin",
        "write:knowledge",
        Pin,
        None,
        "Pin (or unpin) a document: its best chunk joins every search of its collection.",
    ),
    _op(
        "remove_document",
        "DELETE /knowledge/collections/{collection}/documents",
        "write:knowledge",
        DocumentRef,
        None,
        "Remove a document and its chunks.",
    ),
    # knowledge graph
    _op("store_fact", "POST /graph/facts", "write:graph", FactIn, Fact, "Record a fact about an entity."),
    _op("retrieve_facts", "GET /graph/facts", "read:graph", FactQuery, list[Fact], "The live facts of an entity."),
    _op(
        "create_relationship",
        "POST /graph/relationships",
        "write:graph",
        RelationIn,
        Relation,
        "Relate two entities.",
    ),
    _op(
        "neighbours",
        "GET /graph/neighbours",
        "read:graph",
        NeighbourQuery,
        list[Neighbour],
        "Entities within `max_hops` of an entity.",
    ),
    _op(
        "search_entities",
        "GET /graph/entities",
        "read:graph",
        EntityQuery,
        list[EntityHit],
        "Entities ranked by meaning.",
    ),
    _op(
        "generate_knowledge",
        "POST /graph/knowledge",
        "execute:graph",
        KnowledgeRequest,
        KnowledgeResult,
        "Generate knowledge about an identifier and store it as facts.",
        param="request",
    ),
    _op(
        "list_knowledge",
        "GET /graph/knowledge",
        "read:graph",
        KnowledgeRef,
        list[KnowledgeItem],
        "The generated knowledge of an identifier.",
    ),
    # tools
    _op("list_tools", "GET /tools", "read:tools", NoParams, list[ToolInfo], "Every tool an agent may be given."),
    _op(
        "execute_tool",
        "POST /tools/execute",
        "execute:tools",
        ToolExecuteRequest,
        ToolExecution,
        "Run one tool now (validated, confined to the workspace roots and audited like an agent's call).",
        param="request",
    ),
    _op(
        "tool_audit",
        "GET /tools/audit",
        "read:audit",
        AuditQuery,
        list[AuditRecord],
        "Recorded tool executions, newest first.",
    ),
    _op(
        "workspace_roots",
        "GET /workspace/roots",
        "read:workspace",
        NoParams,
        list[str],
        "The folders the file, shell, git and python tools are confined to.",
    ),
    _op(
        "add_workspace_root",
        "POST /workspace/roots",
        "admin:workspace",
        RootPath,
        list[str],
        "Add a folder (on the server's machine) to the workspace roots.",
    ),
    _op(
        "remove_workspace_root",
        "DELETE /workspace/roots",
        "admin:workspace",
        RootPath,
        list[str],
        "Remove a workspace root.",
    ),
    _op(
        "add_mcp_server",
        "POST /mcp/servers",
        "admin:mcp",
        MCPServerAdd,
        MCPServerInfo,
        "Configure an MCP server: a program the server starts over stdio when its tools are needed.",
    ),
    _op(
        "list_mcp_servers",
        "GET /mcp/servers",
        "read:mcp",
        NoParams,
        list[MCPServerInfo],
        "Configured MCP servers.",
    ),
    _op(
        "remove_mcp_server",
        "DELETE /mcp/servers/{name}",
        "admin:mcp",
        MCPServerRef,
        None,
        "Remove an MCP server.",
    ),
    _op(
        "accept_mcp_changes",
        "POST /mcp/servers/{server}/accept",
        "admin:mcp",
        MCPAccept,
        None,
        "Re-pin a server's tool descriptions after a reviewed change.",
    ),
    # agents
    _op(
        "create_agent",
        "POST /agents",
        "write:agents",
        AgentDefinition,
        AgentDefinition,
        "Create an agent (turning approvals off or granting any tool but a built-in read-only one also needs "
        "admin:agents).",
        param="definition",
    ),
    _op("list_agents", "GET /agents", "read:agents", AgentQuery, AgentPage, "Agents, a page at a time."),
    _op(
        "import_agent",
        "POST /agents/import",
        "write:agents",
        AgentImport,
        AgentDefinition,
        "Create an agent from an export (an inlined template is saved in the server's templates folder).",
    ),
    _op(
        "generate_skills",
        "POST /agents/skills",
        "execute:agents",
        SkillsRequest,
        list[Skill],
        "Generate the skills of an occupation.",
        param="request",
    ),
    _op(
        "create_agent_from_role_model",
        "POST /agents/from-role-model",
        "execute:agents",
        RoleModelRequest,
        AgentDefinition,
        "Create an agent from a role model, with generated knowledge and skills.",
        param="request",
    ),
    _op("get_agent", "GET /agents/{agent_id}", "read:agents", AgentRef, AgentDefinition, "One agent."),
    _op(
        "update_agent",
        "PATCH /agents/{agent_id}",
        "write:agents",
        AgentChanges,
        AgentDefinition,
        "Partially update an agent (nested settings merge key by key).",
        body="changes",
    ),
    _op("delete_agent", "DELETE /agents/{agent_id}", "write:agents", AgentRef, None, "Delete an agent."),
    _op(
        "export_agent",
        "GET /agents/{agent_id}/export",
        "read:agents",
        AgentRef,
        str,
        "The agent as one YAML document, in `text`.",
        wrap="text",
    ),
    _op(
        "enrich_agent",
        "POST /agents/{agent_id}/enrich",
        "execute:agents",
        Enrich,
        AgentDefinition,
        "Run more knowledge and skill cycles for an agent.",
    ),
    _op(
        "capabilities",
        "GET /agents/{agent_id}/capabilities",
        "read:agents",
        AgentRef,
        Capabilities,
        "What an agent knows and can do.",
    ),
    # agent runs and approvals
    _op(
        "run_agent",
        "POST /runs",
        "execute:agents",
        RunRequest,
        None,
        "Run an agent as server-sent events; approvals pause it until POST /approvals/{approval_id}.",
        events=AgentEvent,
        param="request",
    ),
    _op(
        "cancel_run",
        "POST /runs/{run_id}/cancel",
        "write:runs",
        RunRef,
        bool,
        "Ask a running run to stop; `cancelled` is false when it was not running here.",
        wrap="cancelled",
    ),
    _op("list_runs", "GET /runs", "read:runs", RunPage, list[AgentRunRecord], "Agent runs, newest first."),
    _op("get_run", "GET /runs/{run_id}", "read:runs", RunRef, AgentRunRecord, "One run."),
    _op(
        "run_events",
        "GET /runs/{run_id}/events",
        "read:runs",
        RunRef,
        list[RunEventRecord],
        "Every persisted event of a run, in order.",
    ),
    _op(
        "pending_approvals",
        "GET /approvals",
        "read:approvals",
        ApprovalQuery,
        list[ApprovalRecord],
        "Tool calls waiting for a person.",
    ),
    _op(
        "resolve_approval",
        "POST /approvals/{approval_id}",
        "write:approvals",
        Decision,
        ApprovalRecord,
        "Approve or deny a pending tool call of a running agent.",
    ),
)

#: operation name -> its row
OPS: dict[str, Op] = {op.name: op for op in OPERATIONS}


# ------------------------------------------------------------------ binding to an implementation


def parameters(op: Op, arguments: dict[str, Any]) -> BaseModel:
    """The request of `op` from a method's bound arguments, validated (`InvalidRequest` when not valid)."""
    data = arguments[op.param] if op.param is not None else arguments
    if isinstance(data, op.request):
        return data
    try:
        return op.request.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None


def keywords(op: Op, request: BaseModel) -> dict[str, Any]:
    """The keyword arguments of `op`'s method for a validated request."""
    if op.param is not None:
        return {op.param: request}
    return {name: getattr(request, name) for name in type(request).model_fields}


C = TypeVar("C", bound=type)


def bind_operations(cls: C) -> C:
    """Class decorator: every operation of `cls` taking keyword parameters validates them with its request model.

    An operation that takes a request object validates it itself (its model is
    the engine's own); the others are wrapped here, so their limits live in the
    request model alone.
    """
    for op in OPERATIONS:
        if op.param is None and op.request is not NoParams:
            setattr(cls, op.name, _validating(op, getattr(cls, op.name)))
    return cls


def _validating(op: Op, method: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(method)

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as exc:
            raise InvalidRequest(f"{op.name}: {exc}.") from None
        arguments = dict(bound.arguments)
        arguments.pop("self", None)
        return method(self, **keywords(op, parameters(op, arguments)))

    return call
