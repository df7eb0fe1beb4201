"""What the task APIs share: their body validation, one unsaved generation, one unattended agent run.

The task routes (`zahara`: `POST /execute`, `POST /run`; `platform`:
`POST /api/v1/execute`) run the generation or the agent run as an engine
stream (`workbench.server.streaming.run_to_end`), not as a blocking call: a
client that disconnects cancels it, so the local model is not held for an
answer nobody will read. Metrics (`workbench.server.metrics`) count such a
request with status 499 and as a task error; the `agent_*` series come from
the task routes.

Both task APIs answer invalid bodies with 400 and their seed's error shape
(the Platform's `details` names the field and the issue), so their bodies are
validated here (`parse_body`) rather than by FastAPI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from workbench.engine.engine import Engine
from workbench.engine.errors import WorkbenchError
from workbench.server.security import APIError
from workbench.server.streaming import EventPump, generate_to_end, run_to_end

UNATTENDED = "unattended API run"
#: the agent id of a plain generation in the `agent_*` metrics and the Platform's answer
DEFAULT_AGENT = "workbench"


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


def parse_body(model: type[BaseModel], body: Any) -> Any:
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


def elapsed_ms(request: Request, fallback: float) -> float:
    started = getattr(request.state, "started", None) or fallback
    return round((time.perf_counter() - started) * 1000, 3)


async def generate_unsaved(
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
