"""The Zahara gateway and runtimes: `POST /execute` and `POST /run` `{task, parameters}`.

With `parameters.agent_id` the agent runs the task; without it the task is
one generation with the default (or given) model. The API has no person to
ask yet, so a tool call that needs an approval is denied at once
("unattended API run") and the response says so.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from workbench.engine.engine import Engine
from workbench.engine.errors import WorkbenchError
from workbench.engine.schemas import ID_PATTERN, MAX_MESSAGE_CHARS, MAX_TOKENS_LIMIT
from workbench.server.deps import EngineDep, allowed_model
from workbench.server.metrics import MetricsRoute, registry
from workbench.server.routes.compat.tasks import (
    DEFAULT_AGENT,
    UNATTENDED,
    elapsed_ms,
    generate_unsaved,
    parse_body,
    run_unattended,
)
from workbench.server.security import APIError, require
from workbench.server.streaming import ClientDisconnected

router = APIRouter(tags=["tasks"], route_class=MetricsRoute)


class ZaharaParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str | None = Field(None, pattern=ID_PATTERN)
    model: str | None = Field(None, min_length=1, max_length=500)
    #: agent runs only
    max_steps: int | None = Field(None, ge=1, le=100)
    #: plain generations only
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    system: str | None = Field(None, max_length=MAX_MESSAGE_CHARS)


class ZaharaRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=20_000)
    parameters: ZaharaParameters = Field(default_factory=ZaharaParameters)

    @field_validator("parameters", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


async def _zahara(request: Request, engine: Engine, body: Any) -> dict[str, Any]:
    started = time.perf_counter()
    req: ZaharaRequest = parse_body(ZaharaRequest, body)
    p = req.parameters
    metrics = registry(request.app)
    answer: dict[str, Any]
    if p.agent_id is None:
        if p.max_steps is not None:
            raise APIError(
                400,
                "INVALID_REQUEST",
                "Invalid request: parameters.max_steps applies to agent runs only (give parameters.agent_id).",
            )
        try:
            model = await run_in_threadpool(allowed_model, engine, p.model)
            result = await generate_unsaved(request, engine, req.task, model, p.system, p.max_tokens, p.temperature)
        except (WorkbenchError, ClientDisconnected):
            metrics.observe_task(DEFAULT_AGENT, time.perf_counter() - started, 0, ok=False)
            raise
        metrics.observe_task(DEFAULT_AGENT, time.perf_counter() - started, result.usage.total_tokens, ok=True)
        answer = {
            "result": result.text,
            "status": "completed",
            "agent_id": None,
            "model": result.model,
            "finish_reason": result.finish_reason,
            "usage": result.usage.model_dump(),
        }
    else:
        unused = [name for name in ("max_tokens", "temperature", "system") if getattr(p, name) is not None]
        if unused:
            raise APIError(
                400,
                "INVALID_REQUEST",
                f"Invalid request: parameters.{unused[0]} applies to plain generations only; an agent "
                "run uses its own settings (model and max_steps may be overridden).",
            )
        try:
            model = await run_in_threadpool(allowed_model, engine, p.model)
            run, denied = await run_unattended(request, engine, p.agent_id, req.task, model, p.max_steps)
        except (WorkbenchError, ClientDisconnected):
            metrics.observe_task(p.agent_id, time.perf_counter() - started, 0, ok=False)
            raise
        tokens = run.prompt_tokens + run.completion_tokens
        metrics.observe_task(p.agent_id, time.perf_counter() - started, tokens, ok=run.status == "finished")
        answer = {
            "result": run.answer,
            "status": "completed" if run.status == "finished" else run.status,
            "agent_id": run.agent_id,
            "run_id": run.id,
            "model": run.model,
            "steps": run.steps,
            "error": run.error,
            "usage": {
                "prompt_tokens": run.prompt_tokens,
                "completion_tokens": run.completion_tokens,
                "total_tokens": tokens,
            },
            "approvals_denied": [
                {"id": a.id, "tool": a.tool, "arguments": a.arguments, "reason": a.reason} for a in denied
            ],
        }
        if denied:
            answer["note"] = (
                f"{len(denied)} tool call(s) needed a person's approval and were denied "
                f"({UNATTENDED}): the API has no person to ask yet."
            )
    return {
        "request_id": request.state.request_id,
        **answer,
        "duration_ms": elapsed_ms(request, started),
        "service": "workbench",
    }


@router.post("/execute", summary="Zahara gateway: run a task")
async def zahara_execute(
    request: Request, engine: EngineDep, body: Any = Body(None), _: Any = Depends(require("execute:agents"))
) -> Any:
    return await _zahara(request, engine, body)


@router.post("/run", summary="Zahara runtime: run a task")
async def zahara_run(
    request: Request, engine: EngineDep, body: Any = Body(None), _: Any = Depends(require("execute:agents"))
) -> Any:
    return await _zahara(request, engine, body)
