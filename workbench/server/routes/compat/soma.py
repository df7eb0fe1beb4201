"""SomaAgentHub's service APIs over the engine: SLM inference, memory, tools.

* `POST /v1/infer/sync` (scope `execute:infer`): `{prompt, max_tokens, temperature, top_p, top_k,
  repetition_penalty, stop_sequences, seed}` -> `{model, completion, usage, finish_reason, latency_ms}`,
  one unsaved generation. Defaults follow the seed (max_tokens 64, temperature 0.8 ...); the ranges are
  the engine's (max_tokens is not capped at 256). A client that disconnects cancels the generation
  (`workbench.server.streaming.generate_to_end`), so the local model is free for the next request.
* `POST /v1/remember` (`write:memory`), `GET /v1/recall/{key}` (`read:memory`, 404 when absent),
  `POST /v1/rag/retrieve` (`read:memory`): the engine's memory models are already the seed's shapes.
* `GET /v1/tools` (`read:tools`) and `POST /v1/tools/{id}/execute` (`execute:tools`): the tool id is
  the tool's name; the body is `{parameters | arguments, action?, agent_id?}`. `action` picks the tool
  `{id}.{action}` (an MCP server's tool: `/v1/tools/mcp.github/execute {"action": "create_issue"}`).
  Calls are validated, bounded and audited by the engine's tool registry; the key holder is the person
  asking, so no approval is requested. A call that does not succeed is an error response (400 invalid
  arguments, 422 tool failure, 403 refused, 504 timeout) carrying the tool's message and audit id.

Errors are in the OpenAI family's shape (the app shapes every `/v1/*` error).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from workbench.engine.errors import NotFound
from workbench.engine.schemas import (
    ID_PATTERN,
    MAX_MESSAGE_CHARS,
    MAX_SEED,
    MAX_STOP_SEQUENCES,
    MAX_TOKENS_LIMIT,
    NAME_PATTERN,
    TOOL_NAME_PATTERN,
    RagRequest,
    RememberRequest,
)
from workbench.server.deps import EngineDep, allowed_model
from workbench.server.metrics import MetricsRoute
from workbench.server.security import APIError, require
from workbench.server.streaming import generate_to_end

router = APIRouter(tags=["soma"], route_class=MetricsRoute)


# ---------------------------------------------------------------- inference


class InferRequest(BaseModel):
    """The seed's `/v1/infer/sync` body (plus an optional model and system prompt)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    prompt: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    max_tokens: int = Field(64, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(1.0, ge=0.0, le=1.0)
    top_k: int = Field(50, ge=1, le=1000)
    repetition_penalty: float = Field(1.0, gt=0.0, le=2.0)
    stop_sequences: list[str] = Field(default_factory=list, max_length=MAX_STOP_SEQUENCES)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    model: str | None = Field(None, min_length=1, max_length=500)
    system: str | None = Field(None, max_length=MAX_MESSAGE_CHARS)


@router.post("/v1/infer/sync", summary="SLM synchronous inference")
async def infer_sync(
    body: InferRequest, request: Request, engine: EngineDep, _: Any = Depends(require("execute:infer"))
) -> dict[str, Any]:
    params = {
        "max_tokens": body.max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "top_k": body.top_k,
        "repetition_penalty": body.repetition_penalty,
        "stop_sequences": body.stop_sequences,
    }
    if body.seed is not None:
        params["seed"] = body.seed
    model = await run_in_threadpool(allowed_model, engine, body.model)
    # Validation and unknown models raise here, before any generation.
    events = await run_in_threadpool(
        engine.chat,
        {
            "messages": [{"role": "user", "content": body.prompt}],
            "model": model,
            "system": body.system,
            "params": params,
            "persist": False,
        },
    )
    result = await generate_to_end(request, events, name="soma-infer")
    return {
        "id": result.id,
        "model": result.model,
        "completion": result.text,
        "usage": result.usage.model_dump(),
        "finish_reason": result.finish_reason,
        "latency_ms": round(result.latency_ms, 3),
        "time_to_first_token_ms": (
            round(result.time_to_first_token_ms, 3) if result.time_to_first_token_ms is not None else None
        ),
    }


# ------------------------------------------------------------------- memory


@router.post("/v1/remember", summary="Store a memory")
def remember(body: RememberRequest, engine: EngineDep, _: Any = Depends(require("write:memory"))) -> dict[str, Any]:
    return engine.remember(body).model_dump(mode="json")


@router.get("/v1/recall/{key:path}", summary="Recall a memory by key")
def recall(
    key: str, request: Request, engine: EngineDep, namespace: str = "default", _: Any = Depends(require("read:memory"))
) -> dict[str, Any]:
    if not re.match(NAME_PATTERN, namespace):
        raise APIError(
            400,
            "INVALID_REQUEST",
            "Invalid request: namespace: letters, digits, '_', '.' and '-' (1 to 64, starting with a letter or digit).",
        )
    return engine.recall(key, namespace).model_dump(mode="json")


@router.post("/v1/rag/retrieve", summary="Retrieve memories by meaning")
def rag_retrieve(body: RagRequest, engine: EngineDep, _: Any = Depends(require("read:memory"))) -> dict[str, Any]:
    response = engine.rag_retrieve(body).model_dump(mode="json")
    if not body.include_metadata:
        for result in response["results"]:
            result.pop("metadata", None)
    return response


# -------------------------------------------------------------------- tools

#: the seed lists a category per tool; built-in tools are grouped by what they touch
CATEGORIES = {
    "read_file": "filesystem",
    "write_file": "filesystem",
    "list_dir": "filesystem",
    "search_files": "filesystem",
    "run_command": "shell",
    "run_python": "code",
    "http_fetch": "network",
    "system_metrics": "system",
    "search_knowledge": "knowledge",
    "remember": "memory",
    "recall": "memory",
}


def _category(name: str, source: str) -> str:
    if source.startswith("mcp"):
        return "mcp"
    if name.startswith("git_"):
        return "development"
    return CATEGORIES.get(name, "general")


@router.get("/v1/tools", summary="List tools")
def list_tools(engine: EngineDep, _: Any = Depends(require("read:tools"))) -> dict[str, Any]:
    tools = [
        {
            "id": t.name,
            "name": t.name,
            "category": _category(t.name, t.source),
            "description": t.description,
            "permission": t.permission,
            "parameters": t.parameters,
            "source": t.source,
            "examples": t.examples,
            "warning": t.warning,
        }
        for t in engine.list_tools()
    ]
    return {"tools": tools, "total": len(tools)}


class ToolExecuteBody(BaseModel):
    """The seed's `{action, parameters}`; `arguments` is accepted as a synonym of `parameters`."""

    model_config = ConfigDict(extra="forbid")

    action: str | None = Field(None, pattern=TOOL_NAME_PATTERN)
    parameters: dict[str, Any] | None = None
    arguments: dict[str, Any] | None = None
    agent_id: str | None = Field(None, pattern=ID_PATTERN)


#: a tool call's status -> (HTTP status, error code) when it did not succeed
FAILURES = {
    "invalid": (400, "INVALID_ARGUMENTS"),
    "error": (422, "TOOL_ERROR"),
    "denied": (403, "TOOL_DENIED"),
    "refused": (403, "TOOL_DENIED"),
    "timeout": (504, "TOOL_TIMEOUT"),
}


@router.post("/v1/tools/{tool_id}/execute", summary="Execute a tool")
def execute_tool(
    tool_id: str,
    engine: EngineDep,
    body: ToolExecuteBody | None = Body(None),
    _: Any = Depends(require("execute:tools")),
) -> dict[str, Any]:
    body = body or ToolExecuteBody()
    if body.parameters is not None and body.arguments is not None and body.parameters != body.arguments:
        raise APIError(400, "INVALID_REQUEST", "Send the tool's arguments once: as parameters or as arguments.")
    arguments = body.parameters if body.parameters is not None else (body.arguments or {})
    name = f"{tool_id}.{body.action}" if body.action else tool_id
    try:
        execution = engine.execute_tool({"tool": name, "arguments": arguments, "agent_id": body.agent_id})
    except NotFound:
        if body.action:
            raise APIError(
                404,
                "NOT_FOUND",
                f"No tool {name!r}: {tool_id!r} has no action {body.action!r} "
                "(GET /v1/tools lists the tools; built-in tools take no action).",
            ) from None
        raise
    if not execution.ok:
        status, code = FAILURES.get(execution.status, (500, "TOOL_ERROR"))
        raise APIError(
            status,
            code,
            f"{execution.error} (audit {execution.audit_id})",
            details={"tool": execution.tool, "status": execution.status, "audit_id": execution.audit_id},
        )
    return {
        "tool_id": execution.tool,
        "action": body.action,
        "status": execution.status,
        "result": execution.output,
        "duration_ms": execution.duration_ms,
        "audit_id": execution.audit_id,
        "executed_at": datetime.now(UTC).isoformat(),
    }
