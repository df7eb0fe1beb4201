"""Task routes of two seed APIs.

* Zahara gateway and runtimes: `POST /execute` and `POST /run`
  `{task, parameters}`. With `parameters.agent_id` the agent runs the task;
  without it the task is one generation with the default (or given) model.
  The API has no person to ask yet, so a tool call that needs an approval is
  denied at once ("unattended API run") and the response says so.
* AI Agents Platform: `POST /api/v1/execute` `{task_description, context}` ->
  `{result, metadata{agent_id, model, tokens_used, timestamp}, processing_time_ms}`.

The task routes run the generation or the agent run as an engine stream
(`workbench.server.streaming.run_to_end`), not as a blocking call: a client
that disconnects cancels it, so the local model is not held for an answer
nobody will read. Metrics (`workbench.server.metrics`) count such a request
with status 499 and as a task error; the `agent_*` series come from here.

Both task APIs answer invalid bodies with 400 and their seed's error shape
(the Platform's `details` names the field and the issue), so their bodies are
validated here rather than by FastAPI.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from workbench.engine.engine import Engine
from workbench.engine.errors import WorkbenchError
from workbench.engine.schemas import ID_PATTERN, MAX_MESSAGE_CHARS, MAX_TOKENS_LIMIT
from workbench.server.deps import EngineDep, allowed_model
from workbench.server.metrics import MetricsRoute, registry
from workbench.server.security import APIError, require
from workbench.server.streaming import ClientDisconnected, EventPump, generate_to_end, run_to_end

# ==================================================================== tasks

router = APIRouter(tags=["tasks"], route_class=MetricsRoute)

UNATTENDED = "unattended API run"
DEFAULT_AGENT = "workbench"
#: context keys and values folded into a Platform prompt (bounded like the task)
MAX_CONTEXT_CHARS = 20_000


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


class PlatformRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_description: str = Field(min_length=1, max_length=5000)
    context: dict[str, Any] = Field(default_factory=dict)


#: pydantic error types -> the Platform seed's `details.issue` words
ISSUES = {
    "missing": "missing_required_field",
    "string_too_long": "too_long",
    "string_too_short": "too_short",
    "extra_forbidden": "unknown_field",
    "string_type": "wrong_type",
    "dict_type": "wrong_type",
    "model_type": "wrong_type",
    "int_type": "wrong_type",
    "int_parsing": "wrong_type",
    "float_type": "wrong_type",
    "float_parsing": "wrong_type",
}


def _parse(model: type[BaseModel], body: Any) -> Any:
    """Validate a JSON body, or raise a 400 naming the first problem (field, issue) in the family's shape."""
    if not isinstance(body, dict):
        raise APIError(
            400,
            "INVALID_REQUEST",
            "The request body must be a JSON object.",
            details={"field": "body", "issue": "wrong_type"},
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "body"
        message = first.get("msg", "is invalid").removeprefix("Value error, ")
        if first.get("type") == "extra_forbidden":
            message = f"is not a known field (known: {', '.join(_known_fields(model, first.get('loc', ())))})"
        details: dict[str, Any] = {"field": field, "issue": ISSUES.get(first.get("type", ""), first.get("type"))}
        limit = (first.get("ctx") or {}).get("max_length")
        if limit is not None:
            details["max_length"] = limit
        raise APIError(400, "INVALID_REQUEST", f"Invalid request: {field}: {message}.", details=details) from None


def _known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The fields of the (nested) model an unknown field at `loc` was found in."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return list(model.model_fields)


def _elapsed_ms(request: Request, fallback: float) -> float:
    started = getattr(request.state, "started", None) or fallback
    return round((time.perf_counter() - started) * 1000, 3)


async def _generate(
    request: Request,
    engine: Engine,
    task: str,
    model: str | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> Any:
    """One unsaved generation, cancelled if the client disconnects (`ClientDisconnected`)."""
    params = {k: v for k, v in (("max_tokens", max_tokens), ("temperature", temperature)) if v is not None}
    # Validation and unknown models raise here, before any generation.
    events = await run_in_threadpool(
        engine.chat,
        {
            "messages": [{"role": "user", "content": task}],
            "model": model,
            "system": system,
            "params": params,
            "persist": False,
        },
    )
    return await generate_to_end(request, events, name="task-generate")


def _denying(engine: Engine, events: Iterator[Any], denied: list[Any]) -> Iterator[Any]:
    """An agent run's events, each approval it asks for denied at once (on the thread that runs the run).

    Closing this closes the run's iterator, which cancels the run.
    """
    try:
        for event in events:
            if event.type == "approval_requested":
                denied.append(engine.resolve_approval(event.approval.id, False, UNATTENDED))
            yield event
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


async def run_unattended(
    request: Request, engine: Engine, agent_id: str, task: str, model: str | None = None, max_steps: int | None = None
) -> tuple[Any, list[Any]]:
    """Run an agent to its end; each approval it asks for is denied at once. Returns (run, denied approvals).

    The run is cancelled (status "cancelled") if the client of `request`
    disconnects first; that raises `ClientDisconnected`.
    """
    run_request: dict[str, Any] = {"agent_id": agent_id, "task": task}
    if model is not None:
        run_request["model"] = model
    if max_steps is not None:
        run_request["max_steps"] = max_steps
    denied: list[Any] = []
    finished: list[Any] = []
    events = await run_in_threadpool(engine.run_agent, run_request)

    def on_event(pump: EventPump, event: Any) -> None:
        if event.type == "agent_run_started":
            run_id = event.run_id

            def cancel() -> None:
                engine.cancel_run(run_id)

            # The run also stops at its next step, not only at its next event.
            pump.on_cancel = cancel
        elif event.type == "agent_run_finished":
            finished.append(event.run)

    await run_to_end(request, _denying(engine, events, denied), name="task-run", on_event=on_event)
    if not finished:  # pragma: no cover - the runner always finishes with agent_run_finished
        raise WorkbenchError("The agent run ended without a result.")
    return finished[-1], denied


async def _zahara(request: Request, engine: Engine, body: Any) -> dict[str, Any]:
    started = time.perf_counter()
    req: ZaharaRequest = _parse(ZaharaRequest, body)
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
            result = await _generate(request, engine, req.task, model, p.system, p.max_tokens, p.temperature)
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
        "duration_ms": _elapsed_ms(request, started),
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


def _platform_prompt(req: PlatformRequest) -> str:
    if not req.context:
        return req.task_description
    lines = []
    for key, value in req.context.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        lines.append(f"- {key}: {shown}")
    context = "\n".join(lines)
    if len(context) > MAX_CONTEXT_CHARS:
        raise APIError(
            400,
            "INVALID_REQUEST",
            f"The context is over {MAX_CONTEXT_CHARS:,} characters.",
            details={"field": "context", "issue": "too_long", "max_length": MAX_CONTEXT_CHARS},
        )
    return f"{req.task_description}\n\nContext:\n{context}"


@router.post("/api/v1/execute", summary="AI Agents Platform: execute an agent task")
async def platform_execute(
    request: Request, engine: EngineDep, body: Any = Body(None), _: Any = Depends(require("execute:agents"))
) -> Any:
    started = time.perf_counter()
    req: PlatformRequest = _parse(PlatformRequest, body)
    metrics = registry(request.app)
    try:
        result = await _generate(request, engine, _platform_prompt(req))
    except (WorkbenchError, ClientDisconnected):
        metrics.observe_task(DEFAULT_AGENT, time.perf_counter() - started, 0, ok=False)
        raise
    metrics.observe_task(DEFAULT_AGENT, time.perf_counter() - started, result.usage.total_tokens, ok=True)
    return {
        "result": result.text,
        "metadata": {
            "agent_id": DEFAULT_AGENT,
            "model": result.model,
            "tokens_used": result.usage.total_tokens,
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "processing_time_ms": _elapsed_ms(request, started),
    }
