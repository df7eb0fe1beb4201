"""Request, response and event models shared by the engine, CLI, TUI and server.

Everything that crosses a boundary is one of these pydantic models, so that an
in-process `Engine` and a `RemoteEngine` speak exactly the same language.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.engine.errors import InvalidRequest

# Bounds checked before any model is called. They are generous but finite, so
# that absurd values (2**63 tokens, 10,000 stop strings) fail fast and clearly.
MAX_TOKENS_LIMIT = 131_072
MAX_STOP_SEQUENCES = 16
MAX_STOP_LENGTH = 256
MAX_MESSAGE_CHARS = 2_000_000
MAX_SEED = 2**32 - 1
#: max_tokens when the caller leaves it unset (small local models otherwise
#: ramble until the context is full; the loop guard ends most runaways sooner)
DEFAULT_MAX_TOKENS = 512

Role = Literal["system", "user", "assistant"]
#: roles a chat request may carry: "tool" messages answer an assistant's tool calls
MessageRole = Literal["system", "user", "assistant", "tool"]
#: "repetition": the loop guard ended a generation that kept repeating itself
#: (see inference/loop_guard.py)
FinishReason = Literal["stop", "length", "content_filter", "cancelled", "tool_calls", "repetition"]
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$"


#: a UTF-16 surrogate code point: in a Python str only an unpaired one (JSON's "\\ud800", or the CLI's
#: surrogate-escaped undecodable bytes), which no database, file or terminal can encode
_SURROGATE = re.compile("[\ud800-\udfff]")


def unpaired_surrogate(value: Any, where: str = "") -> str | None:
    """Where in `value` (strings, dict keys and values, lists) an unpaired surrogate is, e.g. "metadata.tags.0"."""
    if isinstance(value, str):
        return (where or "text") if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and _SURROGATE.search(key):
                return where or "keys"
            found = unpaired_surrogate(item, path)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = unpaired_surrogate(item, f"{where}.{index}" if where else str(index))
            if found:
                return found
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")

    @model_validator(mode="before")
    @classmethod
    def _no_unpaired_surrogates(cls, data: Any) -> Any:
        # One check for every front end (server, CLI, TUI, Python): such text would fail later, half-way
        # through a write (DuckDB, the audit log, a JSON answer), as a 500 or a traceback.
        where = unpaired_surrogate(data)
        if where is not None:
            raise ValueError(f"{where} is not valid Unicode text (it holds an unpaired surrogate such as \\ud800)")
        return data


class SamplingParams(_Model):
    """Sampling parameters of the SLM service's `/v1/infer/sync`.

    `None` means "the provider's default". Ranges follow the seed where they are
    sensible for a general chat product (max_tokens is not capped at 256).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1, le=1000)
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOP_SEQUENCES, alias="stop_sequences")
    seed: int | None = Field(None, ge=0, le=MAX_SEED)

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, stop: list[str]) -> list[str]:
        for item in stop:
            if not item:
                raise ValueError("stop sequences must not be empty strings")
            if len(item) > MAX_STOP_LENGTH:
                raise ValueError(f"each stop sequence must be at most {MAX_STOP_LENGTH} characters")
        return stop

    def explicit(self) -> dict[str, Any]:
        """The parameters the caller actually set (for logging and adapters)."""
        return self.model_dump(exclude_none=True, exclude_defaults=True)


class ResponseFormat(_Model):
    """Constrain output: free text, any JSON object, or JSON matching a schema.

    Accepts our own shape `{"type": "json_object", "schema": {...}}` and the
    OpenAI shape `{"type": "json_schema", "json_schema": {"name", "schema"}}`.
    """

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    json_schema: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _normalise(self) -> ResponseFormat:
        if self.type == "json_schema":
            inner = self.json_schema or {}
            if "schema" not in inner or not isinstance(inner["schema"], dict):
                raise ValueError("response_format json_schema needs json_schema.schema (an object)")
            self.schema_ = inner["schema"]
            self.type = "json_object"
            self.json_schema = None
        if self.schema_ is not None:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(self.schema_)
            except SchemaError as exc:
                raise ValueError(f"response_format schema is not a valid JSON Schema: {exc.message}") from None
            _check_schema_values(self.schema_)
        return self

    @property
    def is_json(self) -> bool:
        return self.type == "json_object"


def _check_schema_values(node: Any) -> None:
    """No remote references (nothing is fetched) and no NaN or infinite numbers."""
    import math

    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise ValueError("response_format schema may only use local references ($ref starting with '#')")
        for value in node.values():
            _check_schema_values(value)
    elif isinstance(node, list):
        for value in node:
            _check_schema_values(value)
    elif isinstance(node, float) and not math.isfinite(node):
        raise ValueError("response_format schema must not contain NaN or infinite numbers")


class ToolSpec(_Model):
    """A tool offered to a model: name, what it does, and a JSON Schema of its arguments."""

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = Field("", max_length=4000)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolCall(_Model):
    """A model's request to call a tool (`id` pairs it with the "tool" message answering it)."""

    id: str = Field(min_length=1, max_length=200)
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(_Model):
    role: MessageRole
    content: str = Field(max_length=MAX_MESSAGE_CHARS)
    #: on assistant messages: the tool calls the model made
    tool_calls: list[ToolCall] | None = None
    #: on "tool" messages: the call this result answers, and the tool's name
    tool_call_id: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=128)


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class GenerationResult(_Model):
    """One finished generation: text, usage, timing, and where it was stored."""

    id: str
    session_id: str | None = None
    model: str
    provider: str
    text: str
    #: the parsed JSON value when a JSON response_format was requested
    parsed: Any = None
    #: why `text` did not parse or validate against the requested schema
    parse_error: str | None = None
    finish_reason: FinishReason
    usage: Usage
    latency_ms: float
    time_to_first_token_ms: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    #: the tools the model called (finish_reason "tool_calls"), with parsed arguments
    tool_calls: list[ToolCall] = Field(default_factory=list)


class ChatRequest(_Model):
    """Send messages to a model, optionally within a persisted session.

    With `session_id`, the session's history precedes `messages`; without it a
    new session is created (unless `persist` is false).
    """

    messages: list[ChatMessage] = Field(min_length=1)
    session_id: str | None = None
    model: str | None = None
    system: str | None = Field(None, max_length=MAX_MESSAGE_CHARS)
    params: SamplingParams = Field(default_factory=SamplingParams)
    response_format: ResponseFormat | None = None
    persist: bool = True
    title: str | None = Field(None, max_length=200)
    #: tools the model may call (native tool calling; remote providers only)
    tools: list[ToolSpec] | None = Field(None, max_length=128)

    @model_validator(mode="after")
    def _check_tools(self) -> ChatRequest:
        names = [t.name for t in self.tools or []]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"tool names must be unique (repeated: {', '.join(duplicates)})")
        for message in self.messages:
            if message.role == "tool" and not message.tool_call_id:
                raise ValueError('a "tool" message needs the tool_call_id of the call it answers')
            if message.tool_calls and message.role != "assistant":
                raise ValueError("only assistant messages carry tool_calls")
        return self


# --------------------------------------------------------------------- events


class RunStarted(_Model):
    type: Literal["run_started"] = "run_started"
    run_id: str
    session_id: str | None
    model: str


class TokenDelta(_Model):
    type: Literal["token"] = "token"
    text: str


class RunFinished(_Model):
    type: Literal["run_finished"] = "run_finished"
    result: GenerationResult


class RunFailed(_Model):
    type: Literal["run_failed"] = "run_failed"
    run_id: str | None = None
    code: str
    error: str


ChatEvent = Annotated[RunStarted | TokenDelta | RunFinished | RunFailed, Field(discriminator="type")]


# ------------------------------------------------------------------- records


class VersionInfo(_Model):
    """What this Workbench is: its package, its store's schema and the models it answers with."""

    package: str
    schema_version: int
    #: the default chat model's id (None when no model is installed)
    default_model: str | None
    embedder: str


class ModelInfo(_Model):
    id: str
    provider: Literal["llama.cpp", "openai", "anthropic"]
    source: Literal["package", "models-folder", "path", "remote"]
    location: str
    size_bytes: int | None = None
    is_default: bool = False
    #: the context window a chat gets (llama.cpp: the configured n_ctx); None when the provider decides
    n_ctx: int | None = None


class Session(_Model):
    id: str
    title: str
    model: str | None
    system_prompt: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int = 0


class MessageGeneration(_Model):
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_ms: float
    time_to_first_token_ms: float | None = None


class MessageRecord(_Model):
    id: str
    session_id: str
    seq: int
    role: Role
    content: str
    created_at: datetime
    generation_id: str | None = None
    #: the agent run this turn was (its task and its outcome), when an agent answered in the chat
    run_id: str | None = None
    #: for an answer: the generation that wrote it (model, tokens, timings), so a reopened chat can show them
    generation: MessageGeneration | None = None


class ProviderInfo(_Model):
    name: str
    kind: Literal["openai", "anthropic"]
    base_url: str
    models: list[str]
    has_key: bool


# ------------------------------------------------------------------- memory

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MemoryKind = Literal["conversation", "knowledge", "episodic"]
MAX_KEY_CHARS = 512
MAX_VALUE_BYTES = 1_000_000
MAX_QUERY_CHARS = 8_000
#: per memory: tags, characters per tag, and its metadata as JSON (README "Limits")
MAX_TAGS = 64
MAX_TAG_CHARS = 128
MAX_METADATA_BYTES = 16 * 1024
#: memories per `remember_many` call (`POST /workbench/v1/memory/batch`)
MAX_BATCH_ITEMS = 1000


def _check_key(key: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise ValueError("must not contain control characters")
    if not key.strip():
        raise ValueError("must not be blank")
    return key


class MemoryMetadataFilter(_Model):
    """Which memories a retrieval may return; every given condition must hold.

    Keys other than namespace/kind/category/tags are matched against the
    memory's metadata (equality), as in the seed's `filter` object.
    """

    model_config = ConfigDict(extra="allow")

    namespace: str | None = Field(None, pattern=NAME_PATTERN)
    kind: MemoryKind | None = None
    category: str | None = Field(None, max_length=200)
    #: every listed tag must be present
    tags: list[str] = Field(default_factory=list, max_length=32)
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)

    def metadata_conditions(self) -> dict[str, Any]:
        """Metadata equality conditions, including the seed-style extra keys."""
        extra = dict(self.model_extra or {})
        for name, value in extra.items():
            if not isinstance(value, (str, int, float, bool)):
                raise InvalidRequest(f"Invalid request: filter.{name}: must be a string, number or boolean.")
        conditions = {**extra, **self.metadata}
        for name in conditions:
            if not 1 <= len(name) <= 200:
                raise InvalidRequest("Invalid request: filter: metadata keys are 1 to 200 characters.")
        return conditions


class RememberRequest(_Model):
    """The seed's `POST /v1/remember` body, plus namespace and kind."""

    key: str = Field(min_length=1, max_length=MAX_KEY_CHARS)
    value: Any
    metadata: dict[str, Any] = Field(default_factory=dict)
    ttl_seconds: int | None = Field(None, ge=1, le=10 * 365 * 86400)
    namespace: str = Field("default", pattern=NAME_PATTERN)
    #: episodic (default): what happened or was said, kept until forgotten;
    #: conversation: short-term turns, expiring after the configured TTL;
    #: knowledge: a fact {subject, predicate, object, source?, confidence?},
    #: also stored in the knowledge graph
    kind: MemoryKind = "episodic"

    _key = field_validator("key")(classmethod(lambda cls, v: _check_key(v)))

    @field_validator("metadata")
    @classmethod
    def _check_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        if "category" in metadata and metadata["category"] is not None and not isinstance(metadata["category"], str):
            raise ValueError("category must be a string")
        tags = metadata.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise ValueError("tags must be a list of strings")
        # Bounded so that one cheap request cannot hold the database for long (tags are a list column).
        if tags is not None and len(tags) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags (got {len(tags)})")
        if tags is not None and any(len(t) > MAX_TAG_CHARS for t in tags):
            raise ValueError(f"a tag is at most {MAX_TAG_CHARS} characters")
        size = len(json.dumps(metadata, ensure_ascii=False, default=str).encode("utf-8", "replace"))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is at most {MAX_METADATA_BYTES // 1024} KiB as JSON (got {size:,} bytes)")
        return metadata


class RememberResult(_Model):
    key: str
    namespace: str
    kind: MemoryKind
    status: Literal["stored", "updated"]
    vector_id: str
    embedding_dimensions: int
    indexed_at: datetime
    expires_at: datetime | None = None


class MemoryRecord(_Model):
    """The seed's `GET /v1/recall/{key}` response, plus namespace and kind."""

    key: str
    namespace: str
    kind: MemoryKind
    value: Any
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    accessed_count: int
    last_accessed: datetime | None = None


class RagRequest(_Model):
    """The seed's `POST /v1/rag/retrieve` body."""

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    top_k: int = Field(5, ge=1, le=20)
    #: minimum cosine similarity. all-MiniLM-L6-v2 scores run lower than the
    #: seed's 768-dim model, so the default is 0.3 rather than the seed's 0.7.
    score_threshold: float = Field(0.3, ge=0.0, le=1.0)
    filter: MemoryMetadataFilter = Field(default_factory=MemoryMetadataFilter)
    include_metadata: bool = True
    #: also write an answer from the results with the chat model
    answer: bool = False
    model: str | None = None


class RagResult(_Model):
    key: str
    namespace: str
    kind: MemoryKind
    value: Any
    score: float
    metadata: dict[str, Any] | None = None
    rank: int


class RagResponse(_Model):
    query: str
    results: list[RagResult]
    total_results: int
    answer: str | None = None
    citations: list[Citation] = Field(default_factory=list)
    sources: list[str]
    latency_ms: float


# ---------------------------------------------------------------- knowledge


class IngestRequest(_Model):
    paths: list[str] = Field(min_length=1, max_length=10_000)
    collection: str = Field("default", pattern=NAME_PATTERN)
    #: pinned documents are part of every search result list of the collection
    pinned: bool = False
    max_chars: int = Field(1000, ge=100, le=20_000)
    overlap_chars: int = Field(150, ge=0, le=5_000)

    @model_validator(mode="after")
    def _check_overlap(self) -> IngestRequest:
        if self.overlap_chars >= self.max_chars // 2:
            raise ValueError("overlap_chars must be less than half of max_chars")
        return self


class FileIssue(_Model):
    path: str
    reason: str


class IngestReport(_Model):
    collection: str
    files_seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_written: int = 0
    duplicates: list[FileIssue] = Field(default_factory=list)
    skipped: list[FileIssue] = Field(default_factory=list)
    seconds: float = 0.0


class Progress(_Model):
    """Progress of a long operation (ingestion, index rebuild)."""

    type: Literal["progress"] = "progress"
    stage: str
    done: int
    total: int
    message: str = ""


class IngestFinished(_Model):
    type: Literal["ingest_finished"] = "ingest_finished"
    report: IngestReport


IngestEvent = Annotated[Progress | IngestFinished, Field(discriminator="type")]


class SearchRequest(_Model):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    collection: str = Field("default", pattern=NAME_PATTERN)
    top_k: int = Field(8, ge=1, le=50)
    mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    #: "convex": min-max normalised scores combined with weights bm25_weight : vector_weight;
    #: "rrf": reciprocal rank fusion, sum(weight / (rrf_k + rank)) (see knowledge/fusion.py)
    fusion: Literal["convex", "rrf"] = "convex"
    bm25_weight: float = Field(0.3, ge=0.0, le=10.0)
    vector_weight: float = Field(0.7, ge=0.0, le=10.0)
    rrf_k: int = Field(60, ge=1, le=1000)
    include_pinned: bool = True


class SearchHit(_Model):
    rank: int
    chunk_id: int
    document_id: int
    path: str
    title: str | None
    heading: str
    ordinal: int
    start_line: int
    end_line: int
    text: str
    fused_score: float
    bm25_rank: int | None = None
    bm25_score: float | None = None
    vector_rank: int | None = None
    vector_score: float | None = None
    pinned: bool = False


class SearchResponse(_Model):
    query: str
    collection: str
    mode: str
    hits: list[SearchHit]
    latency_ms: float


class Citation(_Model):
    """`[n]` in an answer: the chunk it points to."""

    n: int
    source: str
    chunk_id: int | None = None
    ordinal: int | None = None
    heading: str = ""
    start_line: int | None = None
    end_line: int | None = None
    snippet: str


class AnswerRequest(_Model):
    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    collection: str = Field("default", pattern=NAME_PATTERN)
    top_k: int = Field(5, ge=1, le=20)
    model: str | None = None
    max_tokens: int = Field(400, ge=16, le=4096)


class AnswerResponse(_Model):
    question: str
    #: the answer; every sentence ends with its [n] citations
    text: str
    citations: list[Citation]
    hits: list[SearchHit]
    model: str | None
    #: "generated": the model's cited sentences; "extractive": the model wrote
    #: nothing usable, so `text` quotes the passages' best sentence for the question
    mode: Literal["generated", "extractive", "none"] = "generated"
    latency_ms: float


class DocumentInfo(_Model):
    id: int
    collection: str
    path: str
    title: str | None
    kind: str
    size: int
    chunk_count: int
    pinned: bool
    ingested_at: datetime


class ChunkInfo(_Model):
    """One stored chunk of a document, in document order."""

    id: int
    document_id: int
    collection: str
    path: str
    ordinal: int
    heading: str
    start_line: int
    end_line: int
    text: str


class CollectionInfo(_Model):
    name: str
    documents: int
    chunks: int


# ---------------------------------------------------------- knowledge graph


class Entity(_Model):
    id: int
    name: str
    type: str
    description: str
    created_at: datetime


class Fact(_Model):
    id: int
    entity: str
    attribute: str
    value: str
    source: str | None = None
    confidence: float
    knowledge_id: str | None = None
    created_at: datetime
    expires_at: datetime | None = None


class Relation(_Model):
    id: int
    source: str
    target: str
    relation_type: str
    properties: dict[str, Any]
    created_at: datetime


class Neighbour(_Model):
    entity: Entity
    hops: int
    #: relation types from the start entity to this one
    via: list[str]


class EntityHit(_Model):
    entity: Entity
    score: float


class KnowledgeEntity(_Model):
    text: str = Field(min_length=1, max_length=4000)
    type: str = Field(min_length=1, max_length=100)


class KnowledgeItem(_Model):
    """One generated knowledge item, in the KnowledgeBuilder's shape."""

    knowledge_id: str
    entity: KnowledgeEntity
    source: str
    confidence: float = Field(ge=0.0, le=1.0)


class KnowledgeRequest(_Model):
    identifier: str = Field(min_length=1, max_length=200)
    entity_type: str = Field(min_length=1, max_length=100)
    deepening_cycles: int = Field(1, ge=0, le=10)
    #: local text to extract knowledge from (e.g. a knowledge-base collection's text)
    corpus: str = Field("", max_length=200_000)
    #: also draw the corpus from this knowledge-base collection (top chunks for the identifier)
    collection: str | None = Field(None, pattern=NAME_PATTERN)
    items_per_cycle: int = Field(5, ge=1, le=20)
    model: str | None = None

    _identifier = field_validator("identifier")(classmethod(lambda cls, v: _check_key(v)))


class KnowledgeResult(_Model):
    identifier: str
    entity_type: str
    cycles_run: int
    items: list[KnowledgeItem]
    latency_ms: float


# ------------------------------------------------------ tools and approvals

Permission = Literal["read", "write", "exec", "network"]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class ToolInfo(_Model):
    """A tool as users and models see it (built-in or from an MCP server)."""

    name: str
    description: str
    permission: Permission
    parameters: dict[str, Any]
    source: str = "builtin"
    examples: list[str] = Field(default_factory=list)
    #: e.g. an MCP server changed this tool's description since it was pinned
    warning: str | None = None


class ToolExecuteRequest(_Model):
    """Run one tool directly (CLI `tools run`, API `/v1/tools/{id}/execute`)."""

    tool: str = Field(pattern=TOOL_NAME_PATTERN)
    arguments: dict[str, Any] = Field(default_factory=dict)
    agent_id: str | None = Field(None, pattern=ID_PATTERN)


class AuditRecord(_Model):
    id: str
    run_id: str | None
    agent_id: str | None
    tool: str
    permission: str
    arguments: dict[str, Any]
    #: ok, error, invalid, denied, refused, timeout; "running" while the tool runs
    status: str
    result: str | None
    error: str | None
    duration_ms: float
    created_at: datetime
    #: `workflow_id:step_id` when a workflow step made the call
    idempotency_key: str | None = None


class ToolExecution(_Model):
    """The outcome of one tool call: output on success, else a clear error."""

    tool: str
    ok: bool
    status: str
    output: str | None = None
    error: str | None = None
    duration_ms: float
    audit_id: str


class ApprovalRecord(_Model):
    id: str
    run_id: str | None
    agent_id: str | None
    tool: str
    arguments: dict[str, Any]
    permission: str
    #: pending, approved, denied, expired
    status: str
    reason: str | None = None
    created_at: datetime
    decided_at: datetime | None = None


class MCPServerInfo(_Model):
    name: str
    command: list[str]
    permission: Permission
    running: bool
    tools: list[str] = Field(default_factory=list)
    error: str | None = None


# ------------------------------------------------------------------- agents

AgentRole = Literal["parent", "child", "micro"]
AgentStatus = Literal["ready", "building", "failed"]


class Skill(_Model):
    skill_id: str
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    category: str = Field("general", max_length=100)


class MemorySettings(_Model):
    #: recall this agent's memories into the prompt
    enabled: bool = True
    #: the memory namespace (default: "agent:<id>")
    namespace: str | None = Field(None, max_length=200)
    recall_top_k: int = Field(3, ge=0, le=20)
    #: store each finished run's task and answer as a conversation memory
    remember_runs: bool = False


class RoutingSettings(_Model):
    """Tool routing: offer only the tools closest in meaning to the task in each step."""

    enabled: bool = True
    #: at most this many tools per step
    top_k: int = Field(3, ge=1, le=50)
    #: offer only tools scoring within this much (cosine) of the best one
    margin: float = Field(0.05, ge=0.0, le=2.0)
    #: before any tool has run, a best score at least this high means the task
    #: needs a tool: the first step must call one (None: the model may always answer)
    require_tool_score: float | None = Field(0.3, ge=-1.0, le=1.0)
    #: local models: after a call that worked, the next step may only answer (unless a file
    #: the task names is still unread); turn off for a larger local model that chains tools
    answer_after_result: bool = True


class ApprovalPolicy(_Model):
    #: permission classes that pause the run for a person's decision
    require: list[Permission] = Field(default_factory=lambda: ["write", "exec", "network"])
    #: how long a pending approval waits before it counts as denied
    timeout_s: float = Field(600.0, gt=0, le=7 * 86400)


def _guard_models():  # imported late: the guard package defines its own pydantic models
    from workbench.engine.guard.policy import GuardPolicy, TripwirePolicy, Violation

    return GuardPolicy, TripwirePolicy, Violation


GuardPolicy, TripwirePolicy, Violation = _guard_models()


class AgentDefinition(_Model):
    """An agent: who it is, what it may use, and the limits it runs under."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=4000)
    instructions: str = Field("", max_length=100_000)
    model: str | None = Field(None, max_length=500)
    #: allowed tool names; "mcp.time.*"-style patterns allowed
    tools: list[str] = Field(default_factory=list, max_length=200)
    knowledge_collections: list[str] = Field(default_factory=list, max_length=50)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    guardrails: GuardPolicy = Field(default_factory=GuardPolicy)
    tripwires: TripwirePolicy = Field(default_factory=TripwirePolicy)
    approvals: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    max_steps: int = Field(6, ge=1, le=100)
    role: AgentRole = "parent"
    parent: str | None = Field(None, pattern=ID_PATTERN)
    #: a built-in prompt template name (basic, xml, cot) or a template file path
    template: str = Field("basic", max_length=1000)
    occupation: str | None = Field(None, max_length=200)
    status: AgentStatus = "ready"
    generated_knowledge: list[KnowledgeItem] = Field(default_factory=list)
    generated_skills: list[Skill] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _check_parent(self) -> AgentDefinition:
        if self.parent == self.id:
            raise ValueError("an agent cannot be its own parent")
        if self.role == "parent" and self.parent is not None:
            raise ValueError("a parent agent has no parent (use role child or micro)")
        return self


class AgentPage(_Model):
    items: list[AgentDefinition]
    total: int
    page: int
    per_page: int


class Capabilities(_Model):
    agent_id: str
    name: str
    occupation: str | None
    status: AgentStatus
    knowledge: list[KnowledgeItem]
    skills: list[Skill]
    tools: list[str]
    knowledge_collections: list[str]


class RoleModel(_Model):
    name: str = Field(min_length=1, max_length=200)
    occupation: str = Field(min_length=1, max_length=200)


class RoleModelRequest(_Model):
    agent_id: str = Field(pattern=ID_PATTERN)
    role_model: RoleModel
    deepening_cycles: int = Field(1, ge=0, le=5)
    corpus_text: str = Field("", max_length=200_000)
    model: str | None = None
    #: further definition fields (instructions, tools, ...) for the new agent
    overrides: dict[str, Any] = Field(default_factory=dict)


class SkillsRequest(_Model):
    occupation: str = Field(min_length=1, max_length=200)
    deepening_cycles: int = Field(1, ge=0, le=5)
    corpus_text: str = Field("", max_length=200_000)
    model: str | None = None


# ---------------------------------------------------------------- agent runs


class RunRequest(_Model):
    agent_id: str = Field(pattern=ID_PATTERN)
    task: str = Field(min_length=1, max_length=20_000)
    #: overrides of the agent's own settings for this run
    model: str | None = None
    max_steps: int | None = Field(None, ge=1, le=100)
    #: a chat session to continue: its recent turns are the run's context, and the task and the
    #: run's outcome are added to it when the run ends
    session_id: str | None = Field(None, max_length=64)


class AgentRunRecord(_Model):
    id: str
    agent_id: str
    task: str
    model: str
    #: running, finished, failed, blocked, cancelled, max_steps, interrupted
    status: str
    answer: str | None = None
    error: str | None = None
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: float | None = None


class AgentRunStarted(_Model):
    type: Literal["agent_run_started"] = "agent_run_started"
    run_id: str
    agent_id: str
    model: str
    task: str
    #: the chat session the run continues (RunRequest.session_id)
    session_id: str | None = None


class StepStarted(_Model):
    type: Literal["step_started"] = "step_started"
    run_id: str
    step: int
    offered_tools: list[str]


class ToolCallProposed(_Model):
    type: Literal["tool_call_proposed"] = "tool_call_proposed"
    run_id: str
    step: int
    call_id: str
    tool: str
    arguments: dict[str, Any]
    permission: str


class ApprovalRequested(_Model):
    type: Literal["approval_requested"] = "approval_requested"
    run_id: str
    approval: ApprovalRecord


class ApprovalResolved(_Model):
    type: Literal["approval_resolved"] = "approval_resolved"
    run_id: str
    approval: ApprovalRecord


class ToolResult(_Model):
    type: Literal["tool_result"] = "tool_result"
    run_id: str
    step: int
    call_id: str
    execution: ToolExecution


class GuardrailTriggered(_Model):
    type: Literal["guardrail"] = "guardrail"
    run_id: str
    step: int
    violation: Violation


class StepFinished(_Model):
    type: Literal["step_finished"] = "step_finished"
    run_id: str
    step: int
    #: final_answer, tool_call, invalid
    action: str
    output: str
    model_ms: float
    overhead_ms: float
    prompt_tokens: int
    completion_tokens: int


class AgentRunFinished(_Model):
    type: Literal["agent_run_finished"] = "agent_run_finished"
    run: AgentRunRecord


AgentEvent = Annotated[
    AgentRunStarted
    | StepStarted
    | TokenDelta
    | ToolCallProposed
    | ApprovalRequested
    | ApprovalResolved
    | ToolResult
    | GuardrailTriggered
    | StepFinished
    | AgentRunFinished,
    Field(discriminator="type"),
]


class RunEventRecord(_Model):
    run_id: str
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: datetime


# ------------------------------------------------------------------- helpers


#: problems named one by one in a validation error; the rest are counted
MAX_LISTED_ERRORS = 3


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic error into one readable sentence naming each field."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or "request"
        msg = err.get("msg", "is invalid")
        msg = msg.removeprefix("Value error, ")
        value = err.get("input")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = str(value) if len(str(value)) <= 24 else str(value)[:21] + "..."
            msg += f" (got {shown})"
        elif isinstance(value, list) and len(value) > MAX_STOP_SEQUENCES:
            msg += f" (got {len(value)})"
        parts.append(f"{field}: {msg}")
    if len(parts) > MAX_LISTED_ERRORS:  # e.g. 300 bad skills in an import: a sentence, not a page
        parts = parts[:MAX_LISTED_ERRORS] + [f"... and {len(parts) - MAX_LISTED_ERRORS} more"]
    return "Invalid request: " + "; ".join(parts) + "."


def validate(model: type[_Model], data: Any) -> Any:
    """Validate `data` as `model`, raising `InvalidRequest` with a clear sentence."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None
