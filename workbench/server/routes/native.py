"""Workbench-native routes under `/workbench/v1`: the whole `EngineAPI`, generated from the operations table.

Every row of `workbench.engine.ops.OPERATIONS` becomes one route here: its
method and path, its scope (`require`), its request model (path segments,
query parameters for GET and DELETE, a JSON body otherwise) and its response
model (`response_model`, so `/openapi.json` describes the real answers). An
operation that answers nothing answers 204; one that streams answers
server-sent events. `workbench.remote.RemoteEngine` is the client, generated
from the same table. The table is the list of routes and scopes;
`/openapi.json` shows each operation's scope too (`x-scope`).

What only HTTP needs is here, per operation (`GUARDS`), run before the engine
is called:

* a model is chosen by id: any request field `model` must name a model
  `GET /models` lists or a configured provider's `PROVIDER:MODEL` (the engine
  would load any `.gguf` path; the rule is `workbench.server.deps.allowed_model`);
  an agent's prompt template must be built in or live in the home's `templates/`;
* turning an agent's approvals off or granting it any tool but a built-in
  read-only one needs `admin:agents` (`workbench/server/agent_grants.py`);
* pointing a provider with a stored key at another `base_url` needs
  `admin:providers` (the engine then deletes the key), as does adding a
  provider whose name has a key in the keyring;
* ingestion reads only inside the workspace roots, except for the server's
  own local-session key (the user's TUI and CLI on this machine).

Adding an MCP server starts a program of the caller's choosing, and a
workspace root widens what the file and shell tools may touch: both need an
`admin:` scope, which keys get only when asked for (`--scopes admin:*` or `*`).

Streams (chat, ingest, run_agent) are server-sent events: per engine event
`event: <type>` + `data: <event JSON>`; a failure mid-stream is
`event: error` + `{"code", "message"}`, then the stream ends. Requests that
fail before the stream starts (validation, unknown session, agent or model)
are ordinary HTTP errors. The engine's iterator runs on one thread of its own
(`workbench.server.streaming`); a client that disconnects closes it, which
cancels the generation, the ingestion or the run.

`POST /generate` answers once, at the end, but runs the same chat stream on a
thread of its own (`workbench.server.streaming.generate_to_end`), so a client
that disconnects cancels it too. The other operations that run a model
(knowledge answer, graph knowledge, skills, role-model agents, enrich, memory
retrieve with an answer) make one blocking engine call the engine offers no
way to cancel: they run to their end. Every other operation calls the engine
once, on FastAPI's thread pool.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, TypeAdapter, create_model
from starlette.concurrency import run_in_threadpool

from workbench.engine.engine import Engine
from workbench.engine.errors import InvalidRequest, NotFound
from workbench.engine.ops import OPERATIONS, OPS, Op, Params, keywords, parameters
from workbench.engine.schemas import AgentDefinition, IngestRequest, RoleModelRequest, RunRequest
from workbench.server.agent_grants import check_agent_grants
from workbench.server.deps import EngineDep, allowed_model
from workbench.server.metrics import MetricsRoute
from workbench.server.security import APIError, require, require_also
from workbench.server.streaming import generate_to_end, sse_response

router = APIRouter(prefix="/workbench/v1", tags=["workbench"], route_class=MetricsRoute)

NO_CONTENT = 204


# ------------------------------------------------------------------ keys


@router.get("/whoami")
def whoami(request: Request, key: Any = Depends(require("read:keys"))) -> dict[str, Any]:
    """The key this request was made with (never its secret)."""
    return dict(key.model_dump(mode="json"))


# --------------------------------------------------------- HTTP-only checks

#: a check run before the engine is called: (request, engine, validated request model) -> None or raise
Guard = Callable[[Request, Engine, Any], None]


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


def _provider_guard(request: Request, engine: Engine, req: Any) -> None:
    current = {p.name: p for p in engine.list_providers()}.get(req.name)
    if current is None:
        if _orphan_key(req.name):  # the keyring is shared by every home: the key may be another's
            require_also(request, "admin:providers", "adding a provider whose name has a key in the keyring")
    elif current.has_key and _endpoint_changes(current.base_url, req.base_url):
        require_also(request, "admin:providers", "changing the endpoint of a provider with a stored key")


def _create_agent_guard(request: Request, engine: Engine, req: AgentDefinition) -> None:
    _safe_definition(engine, req.model_dump(exclude_unset=True))
    check_agent_grants(request, req.model_dump(mode="json"))


def _import_guard(request: Request, engine: Engine, req: Any) -> None:
    exported = _exported_agent(req.text)
    if exported is not None:
        replaced = req.replace and isinstance(exported.get("id"), str)
        check_agent_grants(request, exported, _agent_or_none(engine, exported["id"]) if replaced else None)


def _role_model_guard(request: Request, engine: Engine, req: RoleModelRequest) -> None:
    _safe_definition(engine, req.overrides)
    check_agent_grants(request, req.overrides)


def _update_agent_guard(request: Request, engine: Engine, req: Any) -> None:
    _safe_definition(engine, req.changes)
    check_agent_grants(request, req.changes, engine.get_agent(req.agent_id))


def _run_guard(request: Request, engine: Engine, req: RunRequest) -> None:
    if req.model is None:
        allowed_model(engine, engine.get_agent(req.agent_id).model)


GUARDS: dict[str, Guard] = {
    "add_provider": _provider_guard,
    "create_agent": _create_agent_guard,
    "import_agent": _import_guard,
    "create_agent_from_role_model": _role_model_guard,
    "update_agent": _update_agent_guard,
    "run_agent": _run_guard,
}


def _checked(op: Op, request: Request, engine: Engine, req: BaseModel) -> None:
    """Every check HTTP adds before `op` runs: the model rule for any `model` field, then the operation's own."""
    if "model" in type(req).model_fields:
        model = getattr(req, "model", None)
        if model is None or isinstance(model, str):
            allowed_model(engine, model)
    guard = GUARDS.get(op.name)
    if guard is not None:
        guard(request, engine, req)


def _call(op: Op, request: Request, engine: Engine, req: BaseModel) -> Any:
    _checked(op, request, engine, req)
    return getattr(engine, op.name)(**keywords(op, req))


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
    try:
        return engine.get_agent(agent_id)
    except NotFound:
        return None


# ------------------------------------------------------------------ calling the engine


def _ingest_within_roots(op: Op, request: Request, engine: Engine, req: BaseModel, key: Any) -> Any:
    """Ingestion reads only inside the workspace roots, except for the server's own local-session key."""
    if key.id in request.app.state.settings.local_session_keys:
        return _call(op, request, engine, req)
    _checked(op, request, engine, req)
    assert isinstance(req, IngestRequest)
    return engine.ingest_within(req, _check_in_roots(engine, req.paths))


def _cancel_on_disconnect(engine: Engine) -> Callable[[Any, Any], None]:
    def on_event(pump: Any, event: Any) -> None:
        if getattr(event, "type", None) == "agent_run_started":
            # A run waiting for an approval sends nothing: a disconnect wakes it through cancel_run.
            run_id = event.run_id
            pump.on_cancel = lambda: engine.cancel_run(run_id)

    return on_event


#: operations whose engine call HTTP makes its own way (the others: `_call`)
STARTS: dict[str, Callable[[Op, Request, Engine, BaseModel, Any], Any]] = {"ingest": _ingest_within_roots}
#: streams that watch their events (`on_event` of `sse_response`)
WATCHERS: dict[str, Callable[[Engine], Callable[[Any, Any], None]]] = {"run_agent": _cancel_on_disconnect}


async def _answer(op: Op, request: Request, engine: Engine, req: BaseModel, key: Any) -> Any:
    """Run `op` on FastAPI's thread pool and answer: JSON, 204, or server-sent events."""
    if op.name == "generate":
        # Runs the chat stream, so a client that disconnects cancels the generation.
        events = await run_in_threadpool(_call, OPS["chat"], request, engine, req)
        return _json(op, await generate_to_end(request, events, name="native-generate"))
    start = STARTS.get(op.name)
    if start is not None:
        value = await run_in_threadpool(start, op, request, engine, req, key)
    else:
        value = await run_in_threadpool(_call, op, request, engine, req)
    if op.events is not None:
        watcher = WATCHERS.get(op.name)
        return sse_response(value, name=f"native-{op.name}", on_event=watcher(engine) if watcher else None)
    if op.response is None:
        return Response(status_code=NO_CONTENT)
    return _json(op, value)


def _json(op: Op, value: Any) -> JSONResponse:
    content = _adapter(op.response).dump_python(value, mode="json")
    return JSONResponse({op.wrap: content} if op.wrap is not None else content)


@cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


# ------------------------------------------------------------------ one route per operation


def _copy(model: type[BaseModel], names: list[str], suffix: str, base: type[BaseModel] | None) -> type[BaseModel]:
    """A model of some of `model`'s fields (same types, defaults and limits)."""
    fields: Any = {name: (model.model_fields[name].annotation, model.model_fields[name]) for name in names}
    return create_model(f"{model.__name__}{suffix}", __base__=base, **fields)


def _endpoint(op: Op) -> Callable[..., Any]:
    """The route function of `op`: its signature declares what FastAPI reads and documents."""
    fields = op.request.model_fields
    rest = [] if op.param is not None else [f for f in fields if f not in op.path_fields]
    declared = [
        # Underscored: a path field may be called `key` (a memory's).
        inspect.Parameter("request_", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
        inspect.Parameter("engine_", inspect.Parameter.KEYWORD_ONLY, annotation=EngineDep),
        inspect.Parameter(
            "key_", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[Any, Depends(require(op.scope))]
        ),
    ]
    declared += [inspect.Parameter(f, inspect.Parameter.KEYWORD_ONLY, annotation=str) for f in op.path_fields]
    if op.param is not None:
        declared.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=op.request))
    elif rest and op.method in ("GET", "DELETE"):
        query = _copy(op.request, rest, "Query", None)
        declared.append(
            inspect.Parameter("query", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[query, Query()])
        )
    elif op.body is not None:
        info = fields[op.body]
        annotation = Annotated.__class_getitem__((info.annotation, *info.metadata, Body()))  # type: ignore[attr-defined]
        declared.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=annotation))
    elif rest:
        body = _copy(op.request, rest, "Body", Params)
        declared.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=body))

    async def endpoint(request_: Request, engine_: Engine, key_: Any, **values: Any) -> Any:
        if op.param is not None:
            req = values["body"]
        else:
            data = {f: values[f] for f in op.path_fields}
            given = values.get("query", values.get("body"))
            if op.body is not None:
                data[op.body] = given
            elif isinstance(given, BaseModel):
                data.update({f: getattr(given, f) for f in type(given).model_fields})
            req = parameters(op, data)
        return await _answer(op, request_, engine_, req, key_)

    endpoint.__name__ = endpoint.__qualname__ = op.name
    endpoint.__doc__ = op.summary
    endpoint.__signature__ = inspect.Signature(declared)  # type: ignore[attr-defined]
    return endpoint


def _response_model(op: Op) -> Any:
    if op.events is not None or op.response is None:
        return None
    if op.wrap is not None:
        fields: Any = {op.wrap: (op.response, ...)}
        return create_model(f"{op.name.title().replace('_', '')}Answer", **fields)
    return op.response


def _responses(op: Op) -> dict[int | str, dict[str, Any]]:
    if op.events is None:
        return {}
    return {
        200: {
            "description": "Server-sent events: `event: <type>` and `data: <event JSON>` per event.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }


for _op in OPERATIONS:
    router.add_api_route(
        _op.path,
        _endpoint(_op),
        methods=[_op.method],
        name=_op.name,
        summary=_op.summary,
        response_model=_response_model(_op),
        status_code=NO_CONTENT if _op.response is None and _op.events is None else 200,
        responses=_responses(_op),
        description=f"{_op.summary}\n\nNeeds an API key with the scope `{_op.scope}`.",
        openapi_extra={"x-scope": _op.scope},
    )
del _op
