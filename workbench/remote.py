"""`RemoteEngine`: the `EngineAPI` over HTTP, against a running `workbench serve`.

Every `EngineAPI` method calls one Workbench-native route
(`/workbench/v1/...`, see `workbench.server.routes.native`) and returns the
same pydantic models the in-process `Engine` returns, so the CLI, the TUI and
any script work alike on either.

* **Requests** are validated here first, with the engine's own schemas and
  its `validate` helper: an invalid request raises the very `InvalidRequest`
  (same sentence) the local engine raises, without a round trip.
* **Errors** come back as the same `WorkbenchError` subclass with the same
  message: the server's error body carries the engine's code (`NOT_FOUND`,
  `MODEL_NOT_FOUND`, ...), rebuilt with `error_from_code` from the one
  code -> class table, `workbench.engine.errors.ERRORS`; 409 is `Conflict`,
  a request the server's validation refuses is `InvalidRequest`. HTTP-level
  refusals have classes of their own: 401 `AuthenticationFailed` (missing,
  invalid or revoked key), 403 `PermissionDenied` (the key lacks a scope),
  429 `RateLimited` (with `retry_after`), and a server that cannot be reached
  is `ServerUnreachable`, one sentence naming the URL.
* **Streams** (`chat`, `ingest`, `run_agent`) send the request at once (so a
  refused request raises at the call, like the local engine) and return an
  `EventStream`: an iterator of the engine's event models parsed from the
  server-sent events. An `event: error` raises the matching `WorkbenchError`;
  `close()` (or leaving a `with` block, or garbage collection) drops the
  connection, which makes the server cancel the generation, ingestion or run.
* **Timeouts**: 10 s to connect; 10 minutes to read an ordinary answer (a
  knowledge or skills generation on a small CPU model takes minutes); streams
  have no read timeout (an agent run may wait for an approval for long).
  Proxy environment variables are ignored (`trust_env=False`): the server is
  normally on this machine.
* **Paths** (`ingest`, workspace roots, documents) are the server's paths.
  `ingest` and `add_workspace_root` make relative paths absolute against the
  client's working directory first, which is right when the server runs on
  the same machine, the normal case.
* **API key**: the `api_key` argument, else `$WORKBENCH_API_KEY`. The CLI
  (`workbench --connect URL`, or automatically when `<home>/server.json`
  names a live server) also falls back to the key a running server stores in
  the OS keyring at start (`local_session_key`, see `workbench.server.run`).

Not part of the protocol and so not here: `api_keys` (server keys are
managed where the database is, with `workbench keys`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar, get_args
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from workbench.engine.errors import (
    ERRORS,
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    ServerUnreachable,
    WorkbenchError,
    error_from_code,
)
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
    validate,
)

API_PREFIX = "/workbench/v1"
KEY_ENV = "WORKBENCH_API_KEY"
#: the OS keyring service under which a running server keeps its local-session key (user `server:<home>`)
KEYRING_SERVICE = "workbench"
#: in a home: where a running server says where it listens (written by `workbench.server.run.serve`)
SERVER_FILE = "server.json"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0

T = TypeVar("T")


# ------------------------------------------------------------------ server discovery


def keyring_user(home: str | os.PathLike[str]) -> str:
    """The keyring user name of the local-session key of the server of `home` (a resolved path)."""
    return f"server:{home}"


def local_session_key(home: str | os.PathLike[str]) -> str | None:
    """The key a running server of `home` stored in the OS keyring, or None."""
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, keyring_user(home))
    except Exception:  # no usable keyring backend: the caller falls back to $WORKBENCH_API_KEY
        return None


def running_server_url(home: str | os.PathLike[str]) -> str | None:
    """`http://HOST:PORT` of the live server of `home` (per `<home>/server.json`), or None.

    The server must still be alive: its pid exists and the home's owner lock
    is held (a `kill -9` leaves `server.json` behind, and the pid may be reused).
    """
    try:
        marker = json.loads((Path(home) / SERVER_FILE).read_text(encoding="utf-8"))
        pid = int(marker["pid"])
        listens = [str(v) for v in marker["listen"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not listens or not _pid_alive(pid) or not _lock_held(Path(home)):
        return None
    host, _, port = listens[0].rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_held(home: Path) -> bool:
    """Whether some process holds the home's owner lock (an instant, non-blocking probe)."""
    import fcntl

    from workbench.engine.store.lock import LOCK_FILE

    try:
        fd = os.open(home / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# ------------------------------------------------------------------ streams


def _event_types(union: Any) -> set[str]:
    members = get_args(get_args(union)[0]) if get_args(union) else ()
    return {m.model_fields["type"].default for m in members}


class EventStream(Iterator[T], Generic[T]):
    """Engine events parsed from a server-sent event stream; `close()` cancels the operation on the server."""

    def __init__(self, engine: RemoteEngine, response: httpx.Response, adapter: TypeAdapter, known: set[str]) -> None:
        self._engine = engine
        self._response = response
        self._lines = response.iter_lines()
        self._adapter = adapter
        self._known = known
        self._closed = False

    def __iter__(self) -> EventStream[T]:
        return self

    def __next__(self) -> T:
        while True:
            if self._closed:
                raise StopIteration
            kind, data = self._read_event()
            if kind is None:
                self.close()
                raise StopIteration
            if kind == "error":
                self.close()
                payload = _loads(data)
                raise error_from_code(
                    str(payload.get("code", "workbench_error")),
                    str(payload.get("message", "The server reported an error.")),
                )
            if kind not in self._known:
                continue  # an event type this client does not know yet
            try:
                return self._adapter.validate_python(_loads(data))
            except ValidationError as exc:
                self.close()
                raise RemoteError(
                    f"The server at {self._engine.base_url} sent an event this client cannot read "
                    f"({kind}: {exc.errors()[0].get('msg', 'invalid')})."
                ) from None

    def _read_event(self) -> tuple[str | None, str]:
        kind = "message"
        data: list[str] = []
        try:
            for line in self._lines:
                if not line:
                    if data:
                        return kind, "\n".join(data)
                    kind = "message"
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    kind = value
                elif field == "data":
                    data.append(value)
        except httpx.HTTPError as exc:
            if self._closed:
                return None, ""
            self.close()
            raise ServerUnreachable(
                f"The connection to the Workbench server at {self._engine.base_url} broke off "
                f"mid-stream ({type(exc).__name__})."
            ) from None
        if data:
            return kind, "\n".join(data)
        return None, ""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._response.close()

    def __enter__(self) -> EventStream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _loads(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------ the client


_CHAT_EVENT = TypeAdapter(ChatEvent)
_INGEST_EVENT = TypeAdapter(IngestEvent)
_AGENT_EVENT = TypeAdapter(AgentEvent)


def _seg(value: str) -> str:
    """One URL path segment: everything escaped, dots too (so `.` and `..` stay names, not path steps)."""
    return quote(str(value), safe="").replace(".", "%2E")


def _json(model: BaseModel) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class RemoteEngine:
    """Everything the workbench does, in a server process reached over HTTP."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = READ_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = base_url.strip().rstrip("/")
        if url.endswith(API_PREFIX):
            url = url[: -len(API_PREFIX)]
        if not url.startswith(("http://", "https://")):
            raise InvalidRequest(f"The server URL must start with http:// or https:// (got {base_url!r}).")
        self.base_url = url
        #: no data folder on this side
        self.home = None
        key = api_key if api_key is not None else os.environ.get(KEY_ENV)
        headers = {"Authorization": f"Bearer {key.strip()}"} if key and key.strip() else {}
        self._timeout = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S)
        try:
            self._http = httpx.Client(
                base_url=url + API_PREFIX, headers=headers, timeout=self._timeout, trust_env=False, transport=transport
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise InvalidRequest(f"The server URL {base_url!r} is not valid ({exc}).") from None

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections (open streams are closed too)."""
        self._http.close()

    def __repr__(self) -> str:
        return f"RemoteEngine({self.base_url!r})"

    # --------------------------------------------------------- transport

    def _send(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        if stream:
            kwargs["timeout"] = httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
        try:
            request = self._http.build_request(method, path, **kwargs)
            response = self._http.send(request, stream=stream)
        except httpx.ConnectError:
            raise ServerUnreachable(
                f"No Workbench server answers at {self.base_url}: start one with `workbench serve`, or check the URL."
            ) from None
        except httpx.TimeoutException:
            raise ServerUnreachable(f"The Workbench server at {self.base_url} did not answer in time.") from None
        except httpx.HTTPError as exc:
            raise ServerUnreachable(
                f"The connection to the Workbench server at {self.base_url} failed ({type(exc).__name__})."
            ) from None
        if response.status_code >= 400:
            try:
                if stream:
                    response.read()
            finally:
                response.close()
            raise self._error(response)
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RemoteError(
                f"The server at {self.base_url} answered {path} with something other than "
                "JSON; is it a Workbench server?"
            ) from None

    def _get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=_params(**params))

    def _post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self._call("POST", path, json=body, params=_params(**params))

    def _stream(self, path: str, body: Any, adapter: TypeAdapter, union: Any) -> EventStream[Any]:
        response = self._send("POST", path, stream=True, json=body, headers={"Accept": "text/event-stream"})
        return EventStream(self, response, adapter, _event_types(union))

    def _error(self, response: httpx.Response) -> WorkbenchError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code, message = str(error.get("code") or ""), str(error.get("message") or "")
        else:  # not a Workbench error body (a proxy, another program on the port)
            code, message = "", ""
        message = message or f"The server at {self.base_url} answered HTTP {status}."
        if status == 401:
            return AuthenticationFailed(
                f"The Workbench server at {self.base_url} refused the API key "
                f"({message.rstrip('.')}); set {KEY_ENV} to a key from "
                "`workbench keys create`."
            )
        if status == 429:
            retry = response.headers.get("retry-after", "")
            return RateLimited(message, int(retry) if retry.isdigit() else None)
        if status == 409:
            return Conflict(message)
        engine_code = code.lower()
        if engine_code in ERRORS:
            return error_from_code(engine_code, message)
        if status == 403:
            return PermissionDenied(message)
        if status in (400, 413, 422):
            return InvalidRequest(message)
        if status == 404:
            return NotFound(message)
        return RemoteError(message) if not code else WorkbenchError(message)

    # ------------------------------------------------------------- models

    def list_models(self) -> list[ModelInfo]:
        return [ModelInfo.model_validate(m) for m in self._get("/models")]

    def set_default_model(self, model: str) -> ModelInfo:
        return ModelInfo.model_validate(self._call("PUT", "/models/default", json={"model": model}))

    def warm_up(self, model: str | None = None) -> None:
        """Have the server load the embedder and the chat model now (blocks until they are loaded)."""
        self._post("/models/warm-up", {"model": model})

    # ----------------------------------------------------------- sessions

    def create_session(self, title: str = "New chat", model: str | None = None, system: str | None = None) -> Session:
        return Session.model_validate(self._post("/sessions", {"title": title, "model": model, "system": system}))

    def list_sessions(self, limit: int = 50, offset: int = 0, query: str | None = None) -> list[Session]:
        rows = self._get("/sessions", limit=limit, offset=offset, query=query)
        return [Session.model_validate(s) for s in rows]

    def rename_session(self, session_id: str, title: str) -> Session:
        return Session.model_validate(self._call("PATCH", f"/sessions/{_seg(session_id)}", json={"title": title}))

    def get_session(self, session_id: str) -> Session:
        return Session.model_validate(self._get(f"/sessions/{_seg(session_id)}"))

    def session_messages(self, session_id: str) -> list[MessageRecord]:
        return [MessageRecord.model_validate(m) for m in self._get(f"/sessions/{_seg(session_id)}/messages")]

    def delete_session(self, session_id: str) -> None:
        self._call("DELETE", f"/sessions/{_seg(session_id)}")

    # --------------------------------------------------------------- chat

    def chat(self, request: ChatRequest | dict[str, Any]) -> EventStream[ChatEvent]:
        """Stream one chat turn: RunStarted, TokenDelta..., RunFinished | RunFailed; `close()` cancels it."""
        req: ChatRequest = validate(ChatRequest, request)
        return self._stream("/chat", _json(req), _CHAT_EVENT, ChatEvent)

    def generate(self, request: ChatRequest | dict[str, Any]) -> GenerationResult:
        req: ChatRequest = validate(ChatRequest, request)
        return GenerationResult.model_validate(self._post("/generate", _json(req)))

    # ---------------------------------------------------------- providers

    def list_providers(self) -> list[ProviderInfo]:
        return [ProviderInfo.model_validate(p) for p in self._get("/providers")]

    def add_provider(self, name: str, kind: str, base_url: str, models: list[str]) -> ProviderInfo:
        body = {"kind": kind, "base_url": base_url, "models": list(models)}
        return ProviderInfo.model_validate(self._call("PUT", f"/providers/{_seg(name)}", json=body))

    def remove_provider(self, name: str) -> None:
        self._call("DELETE", f"/providers/{_seg(name)}")

    def set_provider_key(self, name: str, api_key: str) -> None:
        """Store the key in the server's OS keyring (it travels once, in the request body)."""
        self._call("PUT", f"/providers/{_seg(name)}/key", json={"api_key": api_key})

    # ------------------------------------------------------------- memory

    def remember(self, request: RememberRequest | dict[str, Any]) -> RememberResult:
        req: RememberRequest = validate(RememberRequest, request)
        return RememberResult.model_validate(self._post("/memory", _json(req)))

    def remember_many(self, requests: list[RememberRequest | dict[str, Any]]) -> list[RememberResult]:
        if len(requests) > 10_000:
            raise InvalidRequest("remember_many takes at most 10,000 memories per call.")
        reqs = [_json(validate(RememberRequest, r)) for r in requests]
        return [RememberResult.model_validate(r) for r in self._post("/memory/batch", reqs)]

    def recall(self, key: str, namespace: str = "default") -> MemoryRecord:
        return MemoryRecord.model_validate(self._get(f"/memory/{_seg(namespace)}/{_seg(key)}"))

    def forget(self, key: str, namespace: str = "default") -> None:
        self._call("DELETE", f"/memory/{_seg(namespace)}/{_seg(key)}")

    def list_memories(self, namespace: str | None = None, limit: int = 100, offset: int = 0) -> list[MemoryRecord]:
        rows = self._get("/memory", namespace=namespace, limit=limit, offset=offset)
        return [MemoryRecord.model_validate(m) for m in rows]

    def rag_retrieve(self, request: RagRequest | dict[str, Any]) -> RagResponse:
        req: RagRequest = validate(RagRequest, request)
        return RagResponse.model_validate(self._post("/memory/retrieve", _json(req)))

    # ------------------------------------------------------ knowledge base

    def ingest(self, request: IngestRequest | dict[str, Any]) -> EventStream[IngestEvent]:
        """Ingest files and folders (the server's paths; relative ones resolved here): Progress..., IngestFinished."""
        req: IngestRequest = validate(IngestRequest, request)
        req = req.model_copy(update={"paths": [str(Path(p).expanduser().absolute()) for p in req.paths]})
        return self._stream("/knowledge/ingest", _json(req), _INGEST_EVENT, IngestEvent)

    def search(self, request: SearchRequest | dict[str, Any]) -> SearchResponse:
        req: SearchRequest = validate(SearchRequest, request)
        return SearchResponse.model_validate(self._post("/knowledge/search", _json(req)))

    def answer(self, request: AnswerRequest | dict[str, Any]) -> AnswerResponse:
        req: AnswerRequest = validate(AnswerRequest, request)
        return AnswerResponse.model_validate(self._post("/knowledge/answer", _json(req)))

    def list_collections(self) -> list[CollectionInfo]:
        return [CollectionInfo.model_validate(c) for c in self._get("/knowledge/collections")]

    def list_documents(self, collection: str = "default") -> list[DocumentInfo]:
        rows = self._get(f"/knowledge/collections/{_seg(collection)}/documents")
        return [DocumentInfo.model_validate(d) for d in rows]

    def document_chunks(self, collection: str, path: str, limit: int = 200, offset: int = 0) -> list[ChunkInfo]:
        rows = self._call(
            "GET",
            f"/knowledge/collections/{_seg(collection)}/chunks",
            params={"path": path, "limit": limit, "offset": offset},
        )
        return [ChunkInfo.model_validate(c) for c in rows]

    def set_pinned(self, collection: str, path: str, pinned: bool = True) -> None:
        self._post(f"/knowledge/collections/{_seg(collection)}/pin", {"path": path, "pinned": pinned})

    def remove_document(self, collection: str, path: str) -> None:
        self._call("DELETE", f"/knowledge/collections/{_seg(collection)}/documents", params={"path": path})

    # ---------------------------------------------- knowledge graph

    def store_fact(self, entity: str, attribute: str, value: str, **options: Any) -> Fact:
        body = {"entity": entity, "attribute": attribute, "value": value, **options}
        return Fact.model_validate(self._post("/graph/facts", body))

    def retrieve_facts(self, entity: str, attribute: str | None = None) -> list[Fact]:
        return [Fact.model_validate(f) for f in self._get("/graph/facts", entity=entity, attribute=attribute)]

    def create_relationship(
        self, source: str, target: str, relation_type: str, properties: dict[str, Any] | None = None
    ) -> Relation:
        body = {"source": source, "target": target, "relation_type": relation_type, "properties": properties}
        return Relation.model_validate(self._post("/graph/relationships", body))

    def neighbours(
        self, entity: str, max_hops: int = 1, relation_type: str | None = None, direction: str = "both"
    ) -> list[Neighbour]:
        rows = self._get(
            "/graph/neighbours", entity=entity, max_hops=max_hops, relation_type=relation_type, direction=direction
        )
        return [Neighbour.model_validate(n) for n in rows]

    def search_entities(self, query: str, limit: int = 10) -> list[EntityHit]:
        return [EntityHit.model_validate(h) for h in self._get("/graph/entities", query=query, limit=limit)]

    def generate_knowledge(self, request: KnowledgeRequest | dict[str, Any]) -> KnowledgeResult:
        req: KnowledgeRequest = validate(KnowledgeRequest, request)
        return KnowledgeResult.model_validate(self._post("/graph/knowledge", _json(req)))

    def list_knowledge(self, identifier: str) -> list[KnowledgeItem]:
        return [KnowledgeItem.model_validate(i) for i in self._get("/graph/knowledge", identifier=identifier)]

    # -------------------------------------------------------------- tools

    def list_tools(self) -> list[ToolInfo]:
        return [ToolInfo.model_validate(t) for t in self._get("/tools")]

    def execute_tool(self, request: ToolExecuteRequest | dict[str, Any]) -> ToolExecution:
        req: ToolExecuteRequest = validate(ToolExecuteRequest, request)
        return ToolExecution.model_validate(self._post("/tools/execute", _json(req)))

    def tool_audit(
        self,
        run_id: str | None = None,
        agent_id: str | None = None,
        tool: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditRecord]:
        rows = self._get("/tools/audit", run_id=run_id, agent_id=agent_id, tool=tool, limit=limit, offset=offset)
        return [AuditRecord.model_validate(r) for r in rows]

    def workspace_roots(self) -> list[str]:
        return list(self._get("/workspace/roots"))

    def add_workspace_root(self, path: str) -> list[str]:
        """Add a folder on the server's machine (a relative path is resolved against this process's cwd)."""
        return list(self._post("/workspace/roots", {"path": str(Path(path).expanduser().absolute())}))

    def remove_workspace_root(self, path: str) -> list[str]:
        given = Path(path).expanduser()
        return list(
            self._call(
                "DELETE",
                "/workspace/roots",
                params={"path": str(given.absolute()) if not given.is_absolute() else path},
            )
        )

    def add_mcp_server(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        permission: str = "exec",
        tool_permissions: dict[str, str] | None = None,
    ) -> MCPServerInfo:
        body = {
            "name": name,
            "command": list(command),
            "env": env,
            "permission": permission,
            "tool_permissions": tool_permissions,
        }
        return MCPServerInfo.model_validate(self._post("/mcp/servers", body))

    def list_mcp_servers(self) -> list[MCPServerInfo]:
        return [MCPServerInfo.model_validate(s) for s in self._get("/mcp/servers")]

    def remove_mcp_server(self, name: str) -> None:
        self._call("DELETE", f"/mcp/servers/{_seg(name)}")

    def accept_mcp_changes(self, server: str, tool: str | None = None) -> None:
        self._post(f"/mcp/servers/{_seg(server)}/accept", {"tool": tool})

    # ------------------------------------------------------------- agents

    def create_agent(self, definition: AgentDefinition | dict[str, Any]) -> AgentDefinition:
        agent: AgentDefinition = validate(AgentDefinition, definition)
        body = agent.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return AgentDefinition.model_validate(self._post("/agents", body))

    def get_agent(self, agent_id: str) -> AgentDefinition:
        return AgentDefinition.model_validate(self._get(f"/agents/{_seg(agent_id)}"))

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
        return AgentPage.model_validate(
            self._get(
                "/agents", page=page, per_page=per_page, sort=sort, role=role, status=status, parent=parent, query=query
            )
        )

    def update_agent(self, agent_id: str, changes: dict[str, Any]) -> AgentDefinition:
        if not isinstance(changes, dict):
            raise InvalidRequest("changes must be a mapping of fields to new values.")
        return AgentDefinition.model_validate(
            self._call("PATCH", f"/agents/{_seg(agent_id)}", json=_plain_json(changes))
        )

    def delete_agent(self, agent_id: str) -> None:
        self._call("DELETE", f"/agents/{_seg(agent_id)}")

    def export_agent(self, agent_id: str) -> str:
        return str(self._get(f"/agents/{_seg(agent_id)}/export")["text"])

    def import_agent(self, text: str, replace: bool = False) -> AgentDefinition:
        return AgentDefinition.model_validate(self._post("/agents/import", {"text": text, "replace": replace}))

    def generate_skills(self, request: SkillsRequest | dict[str, Any]) -> list[Skill]:
        req: SkillsRequest = validate(SkillsRequest, request)
        return [Skill.model_validate(s) for s in self._post("/agents/skills", _json(req))]

    def create_agent_from_role_model(self, request: RoleModelRequest | dict[str, Any]) -> AgentDefinition:
        req: RoleModelRequest = validate(RoleModelRequest, request)
        return AgentDefinition.model_validate(self._post("/agents/from-role-model", _json(req)))

    def enrich_agent(
        self, agent_id: str, additional_cycles: int = 1, corpus_text: str = "", model: str | None = None
    ) -> AgentDefinition:
        if not 1 <= additional_cycles <= 5:
            raise InvalidRequest("additional_cycles must be 1..5.")
        body = {"additional_cycles": additional_cycles, "corpus_text": corpus_text, "model": model}
        return AgentDefinition.model_validate(self._post(f"/agents/{_seg(agent_id)}/enrich", body))

    def capabilities(self, agent_id: str) -> Capabilities:
        return Capabilities.model_validate(self._get(f"/agents/{_seg(agent_id)}/capabilities"))

    # --------------------------------------------------------------- runs

    def run_agent(self, request: RunRequest | dict[str, Any]) -> EventStream[AgentEvent]:
        """Run an agent, streaming its events; `close()` cancels the run on the server."""
        req: RunRequest = validate(RunRequest, request)
        return self._stream("/runs", _json(req), _AGENT_EVENT, AgentEvent)

    def cancel_run(self, run_id: str) -> bool:
        return bool(self._post(f"/runs/{_seg(run_id)}/cancel")["cancelled"])

    def list_runs(self, agent_id: str | None = None, limit: int = 50, offset: int = 0) -> list[AgentRunRecord]:
        if not 1 <= limit <= 1000 or not 0 <= offset <= 1_000_000_000:
            raise InvalidRequest("limit must be 1..1000 and offset 0..1,000,000,000.")
        rows = self._get("/runs", agent_id=agent_id, limit=limit, offset=offset)
        return [AgentRunRecord.model_validate(r) for r in rows]

    def get_run(self, run_id: str) -> AgentRunRecord:
        return AgentRunRecord.model_validate(self._get(f"/runs/{_seg(run_id)}"))

    def run_events(self, run_id: str) -> list[RunEventRecord]:
        return [RunEventRecord.model_validate(e) for e in self._get(f"/runs/{_seg(run_id)}/events")]

    def pending_approvals(self, run_id: str | None = None) -> list[ApprovalRecord]:
        return [ApprovalRecord.model_validate(a) for a in self._get("/approvals", run_id=run_id)]

    def resolve_approval(self, approval_id: str, approve: bool, reason: str | None = None) -> ApprovalRecord:
        body = {"approve": approve, "reason": reason}
        return ApprovalRecord.model_validate(self._post(f"/approvals/{_seg(approval_id)}", body))

    # -------------------------------------------------------------- extra

    def whoami(self) -> dict[str, Any]:
        """The key this client uses, as the server sees it (id, name, scopes; never its secret)."""
        return dict(self._get("/whoami"))


def _plain_json(value: Any) -> Any:
    """`value` with pydantic models dumped, ready for `json=` (agent changes may hold models)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v) for v in value]
    return value
