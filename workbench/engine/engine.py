"""`Engine`: the in-process implementation of `EngineAPI`.

It wires the store, the model registry and the adapters together. Front ends
(CLI, TUI, server) use it only through the `EngineAPI` methods.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from workbench.engine.agents import builder as agent_builder
from workbench.engine.agents.approvals import Approvals
from workbench.engine.agents.routing import ToolRouter
from workbench.engine.agents.run_store import RunStore
from workbench.engine.agents.runner import AgentRunner
from workbench.engine.agents.services import RunnerServices
from workbench.engine.agents.store import AgentStore
from workbench.engine.chat_turn import Chat, JsonGenerator
from workbench.engine.config import WorkbenchConfig, load_config, resolve_home, secure_home
from workbench.engine.errors import InvalidRequest, ModelNotFound, NotFound, StoreError
from workbench.engine.inference.registry import ModelRegistry
from workbench.engine.knowledge.answer import Passage, write_answer
from workbench.engine.knowledge.base import KnowledgeBase
from workbench.engine.knowledge.builder import generate_knowledge
from workbench.engine.knowledge.graph import ENTITY_INDEX, KnowledgeGraph
from workbench.engine.memory.embedder import Embedder
from workbench.engine.memory.index import VectorIndex
from workbench.engine.memory.store import MEMORY_COLLECTION, MemoryStore, has_memories, memory_text
from workbench.engine.ops import Direction, Permission, bind_operations
from workbench.engine.schemas import (
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
    Citation,
    CollectionInfo,
    DocumentInfo,
    EntityHit,
    Fact,
    GenerationResult,
    IngestEvent,
    IngestRequest,
    KnowledgeEntity,
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
    validate,
)
from workbench.engine.settings import Settings, validate_provider
from workbench.engine.store.apikeys import APIKeys
from workbench.engine.store.conversations import ConversationStore
from workbench.engine.store.db import Database, utcnow
from workbench.engine.tools.base import ToolContext
from workbench.engine.tools.registry import ToolRegistry

log = logging.getLogger("workbench.engine")

#: `validate_provider` is re-exported: the server's provider routes import it from here
__all__ = ["Engine", "validate_provider"]

#: cosine similarity below which a passage without a shared term is not evidence
ANSWER_MIN_SIMILARITY = 0.3


@bind_operations
class Engine:
    """Everything the workbench does, in this process."""

    def __init__(self, home: str | Path | None = None, embedder: Embedder | None = None) -> None:
        self.home = resolve_home(home)
        config = load_config(self.home)
        self.db = Database(self.home)
        secure_home(self.home)  # the database (and files from older versions) owner-only
        self.conversations = ConversationStore(self.db)
        self.models = ModelRegistry(self.home, config)
        self.settings = Settings(self.home, config, self.models)
        self.chat_turns = Chat(self.models, self.conversations)
        #: constrained, unsaved generations for answers, knowledge and skills
        self.json_generator = JsonGenerator(self.chat_turns.generate)
        #: an embedder passed in is shared (e.g. by tests): the engine does not close it
        self._embedder: Embedder | None = embedder
        self._owns_embedder = embedder is None
        self._indexes: dict[str, VectorIndex] = {}
        self._memory: MemoryStore | None = None
        self._knowledge: KnowledgeBase | None = None
        self._graph: KnowledgeGraph | None = None
        self._tools: Any = None
        self._mcp: Any = None
        self._router: Any = None
        self._lazy = threading.Lock()
        self.agents = AgentStore(self.db)
        self.api_keys = APIKeys(self.db)
        self.approvals = Approvals(self.db)
        self.runs = RunStore(self.db)
        self.runner = AgentRunner(
            RunnerServices(
                models=self.models,
                tools=lambda: self.tools,
                router=lambda: self.tool_router,
                tool_context=self.tool_context,
                sessions=self.conversations,
                approvals=self.approvals,
                runs=self.runs,
                search=self.search,
                has_memories=partial(has_memories, self.db),
                retrieve=self.rag_retrieve,
                remember=self.remember,
            )
        )
        #: receives index rebuild progress (done, total); front ends may set it
        self.on_index_progress: Callable[[str, int, int], None] | None = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def config(self) -> WorkbenchConfig:
        """The current settings (`self.settings` changes and saves them)."""
        return self.settings.config

    def close(self) -> None:
        """Flush memory statistics, save indexes, release models, the database and the lock."""
        try:
            if self._mcp is not None:
                self._mcp.close()
            if self._tools is not None:
                self._tools.close()
            if self._memory is not None:
                self._memory.close()
            for index in self._indexes.values():
                index.save()
        finally:
            if self._embedder is not None and self._owns_embedder:
                self._embedder.close()
            self.models.close()
            self.db.close()

    # ------------------------------------------------------- lazy components

    @property
    def embedder(self) -> Embedder:
        """The embedder (loads in the background on first use)."""
        with self._lazy:
            return self._embedder_unlocked()

    def index(self, name: str) -> VectorIndex:
        """The vector index of a collection, opened (or rebuilt) on first use."""
        embedder = self.embedder
        with self._lazy:
            if name not in self._indexes:
                self._check_embedder(name, embedder)
                progress = None
                if self.on_index_progress is not None:
                    callback = self.on_index_progress
                    progress = lambda done, total: callback(name, done, total)  # noqa: E731
                self._indexes[name] = VectorIndex(
                    self.db, self.home / "indexes", name, self._dimensions(name, embedder), progress=progress
                )
            return self._indexes[name]

    def _dimensions(self, name: str, embedder: Embedder) -> int:
        """The collection's vector size without loading the embedder or calling its server when avoidable.

        The embedder's own metadata first; else what the collection's index
        recorded (`_check_embedder` has just confirmed it is this embedder's);
        else ask the embedder (a remote one is called once). An embedder that
        later returns another size is refused when its vectors are staged.
        """
        known = embedder.known_dimensions
        if known is not None:
            return known
        row = self.db.fetchone("SELECT dimensions FROM vector_indexes WHERE collection = ?", [name])
        return int(row[0]) if row is not None else embedder.dimensions

    def _check_embedder(self, name: str, embedder: Embedder) -> None:
        """A collection stays with the embedder that wrote it: other vectors mean nothing there."""
        embedder_id = embedder.model_id
        row = self.db.fetchone("SELECT embedder FROM collection_embedders WHERE collection = ?", [name])
        if row is None:
            self.db.execute("INSERT INTO collection_embedders VALUES (?, ?)", [name, embedder_id])
        elif row[0] != embedder_id:
            raise StoreError(
                f"Collection {name!r} was embedded with {row[0]}, but the configured embedder is {embedder_id}; "
                "switch the embedder back in config.json, or use another collection."
            )

    @property
    def memory(self) -> MemoryStore:
        if self._memory is None:
            store = MemoryStore(
                self.db,
                self.embedder,
                self.index(MEMORY_COLLECTION),
                conversation_ttl_seconds=self.config.conversation_ttl_seconds,
            )
            with self._lazy:
                self._memory = self._memory or store
        return self._memory

    @property
    def knowledge(self) -> KnowledgeBase:
        if self._knowledge is None:
            self._knowledge = KnowledgeBase(self.db, self.embedder, self.index)
        return self._knowledge

    @property
    def graph(self) -> KnowledgeGraph:
        if self._graph is None:
            graph = KnowledgeGraph(self.db, self.embedder, self.index(ENTITY_INDEX))
            with self._lazy:
                self._graph = self._graph or graph
        return self._graph

    @property
    def tools(self) -> ToolRegistry:
        """Every tool: built-in ones, then those of the configured MCP servers."""
        with self._lazy:
            if self._tools is None:
                from workbench.engine.tools.builtin import builtin_tools

                self._tools = ToolRegistry(self.db, [("", builtin_tools), ("mcp.", lambda: self.mcp.tools())])
            return self._tools

    @property
    def mcp(self) -> Any:
        """The MCP client manager (servers start when their tools are first listed)."""
        if self._mcp is None:
            from workbench.engine.tools.mcp import MCPManager

            manager = MCPManager(self.home, self.db)
            with self._lazy:
                self._mcp = self._mcp or manager
        return self._mcp

    @property
    def tool_router(self) -> ToolRouter:
        with self._lazy:
            if self._router is None:
                self._router = ToolRouter(self._embedder_unlocked())
            return self._router

    def _embedder_unlocked(self) -> Embedder:
        """The embedder, created on first use; the caller holds `_lazy`."""
        if self._embedder is None:
            # Not loaded yet: a key lookup or a listing needs only its id and
            # dimensions (from metadata); `embed` or `warm_up` loads it.
            self._embedder = self.models.embedder(self.config.embedder)
        return self._embedder

    def tool_context(self, agent_id: str | None = None) -> ToolContext:
        return ToolContext(
            roots=[Path(r) for r in self.config.workspace_roots],
            allow_private_network=self.config.allow_private_network,
            engine=self,
            agent_id=agent_id,
        )

    def _similarity(self, question: str, sentences: list[str]) -> list[float]:
        """Cosine similarity of each sentence to the question (the embedder's rows are unit length)."""
        vectors = self.embedder.embed([question, *sentences])
        return [float(v) for v in vectors[1:] @ vectors[0]]

    # ---------------------------------------------------------------- memory

    def embedding_model(self) -> str:
        """The id of the embedder that memories and knowledge are embedded with."""
        return self.embedder.model_id

    def embed_texts(self, texts: list[str]) -> Any:
        """Unit-length vectors of `texts` (a float32 array, one row per text) from that embedder."""
        return self.embedder.embed(texts)

    def count_memories(self) -> int:
        """How many memories are stored and unexpired (read from the store: loads no index or embedder)."""
        row = self.db.fetchone("SELECT count(*) FROM memories WHERE expires_at IS NULL OR expires_at > ?", [utcnow()])
        return int(row[0]) if row else 0

    def remember(self, request: RememberRequest | dict[str, Any]) -> RememberResult:
        """Store (or replace) a memory; knowledge memories also become graph facts."""
        return self.remember_many([validate(RememberRequest, request)])[0]

    def remember_many(self, requests: list[RememberRequest | dict[str, Any]]) -> list[RememberResult]:
        """Store many memories in one batch: all are stored, or none (bulk import)."""
        reqs: list[RememberRequest] = [validate(RememberRequest, r) for r in requests]
        stored = self.memory.remember_many(reqs)
        for req, (_, fact) in zip(reqs, stored):
            if fact is not None:
                self.graph.store_fact(
                    fact["subject"],
                    fact["predicate"],
                    fact["object"],
                    ttl_seconds=req.ttl_seconds,
                    source=fact.get("source") or f"memory:{req.namespace}/{req.key}",
                    confidence=float(fact.get("confidence", 1.0)),
                )
        return [result for result, _ in stored]

    def recall(self, key: str, namespace: str = "default") -> MemoryRecord:
        """A memory by exact key, or `NotFound`."""
        return self.memory.recall(key, namespace)

    def forget(self, key: str, namespace: str = "default") -> None:
        """Delete a memory, or raise `NotFound`."""
        self.memory.forget(key, namespace)

    def list_memories(self, namespace: str | None = None, limit: int = 100, offset: int = 0) -> list[MemoryRecord]:
        return self.memory.list(namespace, limit, offset)

    def rag_retrieve(self, request: RagRequest | dict[str, Any]) -> RagResponse:
        """Memories ranked by meaning for a query, optionally with a cited answer."""
        started = time.perf_counter()
        req: RagRequest = validate(RagRequest, request)
        results = self.memory.retrieve(req)
        answer, citations = None, []
        if req.answer and results:
            passages = [Passage(f"memory {r.namespace}/{r.key}", memory_text(r.kind, r.value)) for r in results]
            answer, cited, _ = write_answer(self.json_generator(req.model), req.query, passages, self._similarity)
            citations = [
                Citation(
                    n=n, source=f"{results[n - 1].namespace}/{results[n - 1].key}", snippet=passages[n - 1].text[:300]
                )
                for n in cited
            ]
        elif req.answer:
            answer = "No memory matches the question."
        return RagResponse(
            query=req.query,
            results=results,
            total_results=len(results),
            answer=answer,
            citations=citations,
            sources=[r.key for r in results],
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    # ------------------------------------------------------------- knowledge

    def ingest(self, request: IngestRequest | dict[str, Any]) -> Iterator[IngestEvent]:
        """Ingest files and folders into a collection, streaming `Progress` then `IngestFinished`."""
        req: IngestRequest = validate(IngestRequest, request)
        self._require_paths(req)
        self.embedder.start_loading()  # torch loads while the files are read and chunked
        return self.knowledge.ingest(req)

    def ingest_within(self, request: IngestRequest | dict[str, Any], within: list[str]) -> Iterator[IngestEvent]:
        """`ingest`, reading only files whose real path lies inside the folders `within`.

        Files outside are skipped and reported. The server uses it to confine
        what an API key may read (not part of EngineAPI).
        """
        req: IngestRequest = validate(IngestRequest, request)
        self._require_paths(req)
        return self.knowledge.ingest(req, within)

    def _require_paths(self, req: IngestRequest) -> None:
        """A path that does not exist is a mistake to report at once, not a skipped file.

        Unless the collection holds documents at or under it: re-ingesting a
        deleted file or folder removes them.
        """
        for path in req.paths:
            full = os.path.abspath(os.path.expanduser(path))
            if os.path.lexists(full):
                continue
            known = self.db.fetchone(
                "SELECT 1 FROM documents WHERE collection = ? AND (path = ? OR starts_with(path, ?)) LIMIT 1",
                [req.collection, full, full.rstrip(os.sep) + os.sep],
            )
            if known is None:
                raise InvalidRequest(f"No file or folder at {path}.")

    def search(self, request: SearchRequest | dict[str, Any]) -> SearchResponse:
        """Hybrid (BM25 + vector) search of a collection; every hit carries its ranks."""
        return self.knowledge.search(validate(SearchRequest, request))

    def answer(self, request: AnswerRequest | dict[str, Any]) -> AnswerResponse:
        """Answer a question from a collection; each sentence cites chunks as [n]."""
        started = time.perf_counter()
        req: AnswerRequest = validate(AnswerRequest, request)
        found = self.knowledge.search(
            SearchRequest(query=req.question, collection=req.collection, top_k=req.top_k)
        ).hits
        # Vector search always returns the nearest chunks, however far: only
        # passages sharing a term with the question or close in meaning (or
        # pinned) count.
        hits = [
            h for h in found if h.pinned or h.bm25_rank is not None or (h.vector_score or 0.0) >= ANSWER_MIN_SIMILARITY
        ]
        if not hits:
            return AnswerResponse(
                question=req.question,
                text="No passage in the collection matches the question.",
                citations=[],
                hits=[],
                model=None,
                mode="none",
                latency_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        model = self.models.resolve(req.model).id
        passages = [Passage(f"{h.path}" + (f" § {h.heading}" if h.heading else ""), h.text) for h in hits]
        text, cited, mode = write_answer(
            self.json_generator(model, req.max_tokens), req.question, passages, self._similarity
        )
        citations = [
            Citation(
                n=n,
                source=hits[n - 1].path,
                chunk_id=hits[n - 1].chunk_id,
                ordinal=hits[n - 1].ordinal,
                heading=hits[n - 1].heading,
                start_line=hits[n - 1].start_line,
                end_line=hits[n - 1].end_line,
                snippet=hits[n - 1].text[:300],
            )
            for n in cited
        ]
        return AnswerResponse(
            question=req.question,
            text=text,
            citations=citations,
            hits=hits,
            model=model,
            mode=mode,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    def list_collections(self) -> list[CollectionInfo]:
        return self.knowledge.collections()

    def list_documents(self, collection: str = "default") -> list[DocumentInfo]:
        return self.knowledge.documents(collection)

    def document_chunks(self, collection: str, path: str, limit: int = 200, offset: int = 0) -> list[ChunkInfo]:
        """A document's chunks in order (`NotFound` for an unknown document)."""
        return self.knowledge.chunks(collection, path, limit, offset)

    def set_pinned(self, collection: str, path: str, pinned: bool = True) -> None:
        """Pin a document so its best chunk is part of every search of its collection."""
        self.knowledge.set_pinned(collection, path, pinned)

    def remove_document(self, collection: str, path: str) -> None:
        self.knowledge.remove_document(collection, path)

    # ------------------------------------------------------- knowledge graph

    def store_fact(
        self,
        entity: str,
        attribute: str,
        value: str,
        ttl_seconds: int | None = None,
        source: str | None = None,
        confidence: float = 1.0,
        knowledge_id: str | None = None,
        entity_type: str | None = None,
    ) -> Fact:
        """Record a fact about an entity (it expires after `ttl_seconds` when given)."""
        return self.graph.store_fact(
            entity,
            attribute,
            value,
            ttl_seconds=ttl_seconds,
            source=source,
            confidence=confidence,
            knowledge_id=knowledge_id,
            entity_type=entity_type,
        )

    def retrieve_facts(self, entity: str, attribute: str | None = None) -> list[Fact]:
        return self.graph.retrieve_facts(entity, attribute)

    def create_relationship(
        self, source: str, target: str, relation_type: str, properties: dict[str, Any] | None = None
    ) -> Relation:
        return self.graph.create_relationship(source, target, relation_type, properties)

    def neighbours(
        self, entity: str, max_hops: int = 1, relation_type: str | None = None, direction: Direction = "both"
    ) -> list[Neighbour]:
        return self.graph.neighbours(entity, max_hops, relation_type, direction)

    def search_entities(self, query: str, limit: int = 10) -> list[EntityHit]:
        return self.graph.search_entities(query, limit)

    def generate_knowledge(self, request: KnowledgeRequest | dict[str, Any]) -> KnowledgeResult:
        """KnowledgeBuilder: deepening cycles of constrained extraction, stored as facts."""
        req: KnowledgeRequest = validate(KnowledgeRequest, request)
        model = self.models.resolve(req.model).id
        corpus = req.corpus
        if req.collection:
            hits = self.knowledge.search(SearchRequest(query=req.identifier, collection=req.collection, top_k=8)).hits
            corpus = "\n\n".join([corpus, *(h.text for h in hits)]).strip()
        return generate_knowledge(req, corpus, self.json_generator(model, 600), self.graph)

    def list_knowledge(self, identifier: str) -> list[KnowledgeItem]:
        """The generated knowledge items of an identifier."""
        return [
            KnowledgeItem(
                knowledge_id=f.knowledge_id,
                entity=KnowledgeEntity(text=f.value, type=f.attribute),
                source=f.source or "model",
                confidence=f.confidence,
            )
            for f in self.graph.facts_with_knowledge_id(identifier)
        ]

    # ----------------------------------------------------------------- tools

    def list_tools(self) -> list[ToolInfo]:
        """Built-in tools and the tools of every configured MCP server."""
        return [ToolRegistry.info(tool) for tool in self.tools.tools()]

    def execute_tool(self, request: ToolExecuteRequest | dict[str, Any]) -> ToolExecution:
        """Run one tool now, for the person asking (validated, bounded and audited like an agent's call)."""
        req: ToolExecuteRequest = validate(ToolExecuteRequest, request)
        tool = self.tools.get(req.tool)
        if req.agent_id is not None:
            agent = self.agents.get(req.agent_id)
            if tool not in self.tools.allowed(agent.tools):
                raise InvalidRequest(f"Agent {agent.id!r} is not allowed to use {tool.name}.")
        return self.tools.execute(tool, req.arguments, self.tool_context(req.agent_id), agent_id=req.agent_id)

    def tool_audit(
        self,
        run_id: str | None = None,
        agent_id: str | None = None,
        tool: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditRecord]:
        """Every recorded tool execution, newest first."""
        return self.tools.audit(run_id, agent_id, tool, limit, offset)

    def add_mcp_server(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        permission: Permission = "exec",
        tool_permissions: dict[str, str] | None = None,
    ) -> MCPServerInfo:
        """Configure an MCP server (started over stdio when its tools are first needed)."""
        return self.mcp.add_server(name, command, env=env, permission=permission, tool_permissions=tool_permissions)

    def list_mcp_servers(self) -> list[MCPServerInfo]:
        return self.mcp.list_servers()

    def remove_mcp_server(self, name: str) -> None:
        self.mcp.remove_server(name)

    def accept_mcp_changes(self, server: str, tool: str | None = None) -> None:
        """Re-pin an MCP server's tool descriptions after reviewing a flagged change."""
        self.mcp.accept_changes(server, tool)

    def workspace_roots(self) -> list[str]:
        """Folders the file, shell, git and python tools are confined to."""
        return self.settings.workspace_roots()

    def add_workspace_root(self, path: str) -> list[str]:
        """Add a folder (it must exist; stored resolved) to the workspace roots."""
        return self.settings.add_workspace_root(path)

    def remove_workspace_root(self, path: str) -> list[str]:
        return self.settings.remove_workspace_root(path)

    # ---------------------------------------------------------------- agents

    def create_agent(self, definition: AgentDefinition | dict[str, Any]) -> AgentDefinition:
        """Store a new agent (a duplicate id is a `Conflict`)."""
        return self.agents.create(definition)

    def get_agent(self, agent_id: str) -> AgentDefinition:
        return self.agents.get(agent_id)

    def list_agents(
        self,
        page: int = 1,
        per_page: int = 20,
        sort: str = "-created_at",
        role: str | None = None,
        status: str | None = None,
        parent: str | None = None,
        query: str | None = None,
    ) -> AgentPage:
        return self.agents.list(page, per_page, sort, role, status, parent, query)

    def update_agent(self, agent_id: str, changes: dict[str, Any]) -> AgentDefinition:
        """Partially update an agent (nested settings merge key by key)."""
        return self.agents.update(agent_id, changes)

    def delete_agent(self, agent_id: str) -> None:
        self.agents.delete(agent_id)

    def export_agent(self, agent_id: str) -> str:
        """The agent, its skills, knowledge references and prompt template as one YAML document."""
        return self.agents.export(agent_id)

    def import_agent(self, text: str, replace: bool = False) -> AgentDefinition:
        """Create an agent from an export (`replace` overwrites an existing one with the same id)."""
        agent = self.agents.parse_export(text, self.home / "templates")
        if replace:
            try:
                existing = self.agents.get(agent.id)
            except NotFound:
                existing = None
            if existing is not None:
                return self.agents.replace(agent.model_copy(update={"created_at": existing.created_at}))
        return self.agents.create(agent)

    def generate_skills(self, request: SkillsRequest | dict[str, Any]) -> list[Skill]:
        """Skills of an occupation, generated under a JSON schema in deepening cycles."""
        req: SkillsRequest = validate(SkillsRequest, request)
        model = self.models.resolve(req.model).id
        return agent_builder.generate_skills(
            req, self.json_generator(model, 600, repetition_penalty=agent_builder.SKILLS_REPETITION_PENALTY)
        )

    def create_agent_from_role_model(self, request: RoleModelRequest | dict[str, Any]) -> AgentDefinition:
        """Create an agent, then generate its knowledge and skills (status building -> ready | failed)."""
        req: RoleModelRequest = validate(RoleModelRequest, request)
        model = self.models.resolve(req.model).id
        definition = {
            "name": req.role_model.name,
            "occupation": req.role_model.occupation,
            "instructions": f"You are {req.role_model.name}, working as {req.role_model.occupation}.",
            **req.overrides,
            "id": req.agent_id,
            "status": "building",
        }
        agent = self.agents.create(definition)
        built = agent_builder.build(
            agent, req.deepening_cycles, req.corpus_text, self.generate_knowledge, self.json_generator, model
        )
        return self.agents.replace(built)

    def enrich_agent(
        self, agent_id: str, additional_cycles: int = 1, corpus_text: str = "", model: str | None = None
    ) -> AgentDefinition:
        """Run more knowledge and skill cycles for an agent and merge what is new."""
        agent = self.agents.get(agent_id)
        model_id = self.models.resolve(model or agent.model).id
        built = agent_builder.build(
            agent, additional_cycles, corpus_text, self.generate_knowledge, self.json_generator, model_id
        )
        return self.agents.replace(built)

    def capabilities(self, agent_id: str) -> Capabilities:
        """What an agent knows and can do: generated knowledge, skills, tools, collections."""
        agent = self.agents.get(agent_id)
        return Capabilities(
            agent_id=agent.id,
            name=agent.name,
            occupation=agent.occupation,
            status=agent.status,
            knowledge=agent.generated_knowledge,
            skills=agent.generated_skills,
            tools=agent.tools,
            knowledge_collections=agent.knowledge_collections,
        )

    # ------------------------------------------------------------ agent runs

    def run_agent(self, request: RunRequest | dict[str, Any]) -> Iterator[AgentEvent]:
        """Run an agent on a task, streaming its events; approvals pause it until `resolve_approval`."""
        req: RunRequest = validate(RunRequest, request)
        agent = self.agents.get(req.agent_id)
        if agent.status != "ready":
            raise InvalidRequest(f"Agent {agent.id!r} is {agent.status}, not ready to run.")
        return self.runner.run(agent, req)

    def cancel_run(self, run_id: str) -> bool:
        """Ask a running run to stop (at its next step or approval wait)."""
        return self.runner.cancel(run_id)

    def list_runs(self, agent_id: str | None = None, limit: int = 50, offset: int = 0) -> list[AgentRunRecord]:
        """Agent runs, newest first."""
        return self.runs.list_runs(agent_id, limit, offset)

    def get_run(self, run_id: str) -> AgentRunRecord:
        """One run, or `NotFound`."""
        return self.runs.get(run_id)

    def run_events(self, run_id: str) -> list[RunEventRecord]:
        """Every persisted event of a run, in order."""
        return self.runs.events(run_id)

    def pending_approvals(self, run_id: str | None = None) -> list[ApprovalRecord]:
        return self.approvals.pending(run_id)

    def resolve_approval(self, approval_id: str, approve: bool, reason: str | None = None) -> ApprovalRecord:
        """Approve or deny a pending tool call."""
        return self.approvals.resolve(approval_id, approve, reason)

    # ---------------------------------------------------------------- models

    def version(self) -> VersionInfo:
        """The package version, the store's schema version and the default chat model and embedder."""
        from workbench import __version__

        try:
            default: str | None = self.models.default_id()
        except ModelNotFound:
            default = None
        return VersionInfo(
            package=__version__,
            schema_version=self.db.schema_version(),
            default_model=default,
            embedder=self.embedding_model(),
        )

    def list_models(self) -> list[ModelInfo]:
        """Every selectable model: packaged default, models folders, configured remotes."""
        return self.models.list()

    def set_default_model(self, model: str) -> ModelInfo:
        """Make `model` (an id from `list_models`) the default of new chats; saved in config.json."""
        return self.settings.set_default_model(model)

    def warm_up(self, model: str | None = None) -> None:
        """Load the embedder and the chat model now, so the first request does not wait for them.

        Remote models have nothing to load. Blocks until both are loaded; call it
        from a background thread.
        """
        self.embedder.start_loading()
        adapter = self.models.chat_model(model)
        load = getattr(adapter, "load", None)
        if load is not None:
            load()
        self.embedder.embed(["warm up"])

    # -------------------------------------------------------------- sessions

    def create_session(self, title: str = "New chat", model: str | None = None, system: str | None = None) -> Session:
        """Create an empty session (the model is checked, not loaded)."""
        if model is not None:
            model = self.models.resolve(model).id
        return self.conversations.create_session(title[:200] or "New chat", model, system)

    def list_sessions(self, limit: int = 50, offset: int = 0, query: str | None = None) -> list[Session]:
        """Sessions, most recently used first; `query` keeps those whose title or messages contain it."""
        return self.conversations.list_sessions(limit, offset, (query or "").strip() or None)

    def rename_session(self, session_id: str, title: str) -> Session:
        """Give a session a new title (1-200 characters)."""
        title = " ".join(title.split())
        if not 1 <= len(title) <= 200:
            raise InvalidRequest("A session title is 1-200 characters.")
        return self.conversations.rename_session(session_id, title)

    def get_session(self, session_id: str) -> Session:
        """One session, or `NotFound`."""
        return self.conversations.get_session(session_id)

    def session_messages(self, session_id: str) -> list[MessageRecord]:
        """The messages of a session in order."""
        self.conversations.get_session(session_id)
        return self.conversations.messages(session_id)

    def delete_session(self, session_id: str) -> None:
        """Delete a session with its messages and generation records."""
        self.conversations.delete_session(session_id)

    # ------------------------------------------------------------------ chat

    def chat(self, request: ChatRequest | dict[str, Any]) -> Iterator[ChatEvent]:
        """Stream one chat turn as events: RunStarted, TokenDelta..., RunFinished | RunFailed.

        Invalid requests, unknown sessions and unknown models raise here, before
        any model is called. Failures during generation arrive as `RunFailed`.
        Closing the iterator early cancels the generation; the partial answer
        is stored with finish_reason "cancelled".
        """
        return self.chat_turns.stream(request)

    def generate(self, request: ChatRequest | dict[str, Any]) -> GenerationResult:
        """Run a chat turn to the end and return its result (raises on failure)."""
        return self.chat_turns.generate(request)

    # ------------------------------------------------------------- providers

    def list_providers(self) -> list[ProviderInfo]:
        """Configured remote providers and whether a key is stored for each."""
        return self.settings.providers()

    def add_provider(self, name: str, kind: str, base_url: str, models: list[str] | None = None) -> ProviderInfo:
        """Add or replace a remote provider in the config (its key goes to the keyring separately).

        `models` lists the provider's models offered for selection (none: only `PROVIDER:MODEL` specs).

        Replacing a provider with another `base_url` deletes its stored key: the key was
        meant for the old endpoint and must never be sent to a new one unasked.
        """
        return self.settings.add_provider(name, kind, base_url, list(models or []))

    def remove_provider(self, name: str) -> None:
        """Remove a provider and its stored key."""
        self.settings.remove_provider(name)

    def set_provider_key(self, name: str, api_key: str) -> None:
        """Store a provider's API key in the OS keyring."""
        self.settings.set_provider_key(name, api_key)
