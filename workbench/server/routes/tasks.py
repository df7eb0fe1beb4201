"""Task routes of two seed APIs, and the server's Prometheus metrics.

* Zahara gateway and runtimes: `POST /execute` and `POST /run`
  `{task, parameters}`. With `parameters.agent_id` the agent runs the task;
  without it the task is one generation with the default (or given) model.
  The API has no person to ask yet, so a tool call that needs an approval is
  denied at once ("unattended API run") and the response says so.
* AI Agents Platform: `POST /api/v1/execute` `{task_description, context}` ->
  `{result, metadata{agent_id, model, tokens_used, timestamp}, processing_time_ms}`.
* `GET /metrics`: Prometheus text (requests per route and status, latency
  histograms, the seed's `agent_*` series, and engine gauges).

The task routes run the generation or the agent run as an engine stream
(`workbench.server.streaming.run_to_end`), not as a blocking call: a client
that disconnects cancels it, so the local model is not held for an answer
nobody will read. Metrics count such a request with status 499 and as a task
error.

Both task APIs answer invalid bodies with 400 and their seed's error shape
(the Platform's `details` names the field and the issue), so their bodies are
validated here rather than by FastAPI.

Metrics come from `MetricsRoute`, an `APIRoute` class that times every call of
its routes (this module's and `soma`'s; other routers may adopt it with
`APIRouter(route_class=MetricsRoute)`). Each app keeps its own registry on
`app.state`, so two servers in one process never mix their counts.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from workbench.engine.engine import Engine
from workbench.engine.errors import WorkbenchError
from workbench.engine.schemas import ID_PATTERN, MAX_MESSAGE_CHARS, MAX_TOKENS_LIMIT
from workbench.server.deps import EngineDep, allowed_model
from workbench.server.security import APIError, require
from workbench.server.streaming import CLIENT_CLOSED, ClientDisconnected, EventPump, generate_to_end, run_to_end

# ================================================================== metrics

#: latency histogram buckets, in seconds (local models take seconds, lookups milliseconds)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, math.inf)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class _Histogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1
        self.total += seconds
        self.count += 1


class MetricsRegistry:
    """Counters and histograms of one app, safe to update from the thread pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], _Histogram] = {}
        #: the seed's agent_* series, per agent id ("workbench" for plain generations)
        self.agent_requests: dict[str, int] = {}
        self.agent_errors: dict[str, int] = {}
        self.agent_tokens: dict[str, int] = {}
        self.agent_seconds: dict[str, _Histogram] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            self.latency.setdefault((method, route), _Histogram()).observe(seconds)

    def observe_task(self, agent_id: str, seconds: float, tokens: int, ok: bool) -> None:
        with self._lock:
            self.agent_requests[agent_id] = self.agent_requests.get(agent_id, 0) + 1
            if not ok:
                self.agent_errors[agent_id] = self.agent_errors.get(agent_id, 0) + 1
            self.agent_tokens[agent_id] = self.agent_tokens.get(agent_id, 0) + tokens
            self.agent_seconds.setdefault(agent_id, _Histogram()).observe(seconds)

    def render(self, gauges: list[tuple[str, str, float]]) -> str:
        """The Prometheus text exposition (format 0.0.4) of everything recorded, plus `gauges`."""
        out: list[str] = []
        with self._lock:
            _family(out, "workbench_http_requests_total", "counter", "HTTP requests by method, route and status.")
            for (method, route, status), n in sorted(self.requests.items()):
                out.append(
                    _sample("workbench_http_requests_total", {"method": method, "route": route, "status": status}, n)
                )
            _family(
                out, "workbench_http_request_duration_seconds", "histogram", "HTTP request latency by method and route."
            )
            for (method, route), hist in sorted(self.latency.items()):
                _histogram(out, "workbench_http_request_duration_seconds", {"method": method, "route": route}, hist)
            _family(out, "agent_requests_total", "counter", "Total number of task requests (agent or generation).")
            for agent, n in sorted(self.agent_requests.items()):
                out.append(_sample("agent_requests_total", {"agent_id": agent}, n))
            _family(out, "agent_errors_total", "counter", "Task requests that ended without a result.")
            for agent, n in sorted(self.agent_errors.items()):
                out.append(_sample("agent_errors_total", {"agent_id": agent}, n))
            _family(out, "agent_tokens_used_total", "counter", "Prompt and completion tokens used by tasks.")
            for agent, n in sorted(self.agent_tokens.items()):
                out.append(_sample("agent_tokens_used_total", {"agent_id": agent}, n))
            _family(out, "agent_processing_seconds", "histogram", "Request processing time")
            for agent, hist in sorted(self.agent_seconds.items()):
                _histogram(out, "agent_processing_seconds", {"agent_id": agent}, hist)
        for name, help_text, value in gauges:
            _family(out, name, "gauge", help_text)
            out.append(_sample(name, {}, value))
        return "\n".join(out) + "\n"


def _family(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def _histogram(out: list[str], name: str, labels: dict[str, str], hist: _Histogram) -> None:
    for bound, n in zip(BUCKETS, hist.counts):
        out.append(_sample(f"{name}_bucket", {**labels, "le": _number(bound)}, n))
    out.append(_sample(f"{name}_sum", labels, hist.total))
    out.append(_sample(f"{name}_count", labels, hist.count))


def _sample(name: str, labels: dict[str, str], value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {_number(value)}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(round(value, 6))


_REGISTRY_LOCK = threading.Lock()


def registry(app: Any) -> MetricsRegistry:
    """The app's registry (created on first use)."""
    found = getattr(app.state, "metrics_registry", None)
    if found is None:
        with _REGISTRY_LOCK:
            found = getattr(app.state, "metrics_registry", None)
            if found is None:
                found = app.state.metrics_registry = MetricsRegistry()
    return found


def status_of(exc: BaseException) -> int:
    """The HTTP status the app's exception handlers give `exc`."""
    if isinstance(exc, ClientDisconnected):  # nobody got an answer: not a server failure
        return CLIENT_CLOSED
    if isinstance(exc, APIError):
        return exc.status
    if isinstance(exc, WorkbenchError):
        return exc.status
    if isinstance(exc, RequestValidationError):
        return 400
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    return 500


class MetricsRoute(APIRoute):
    """An APIRoute that counts and times each call (by its path template, so ids add no series)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        route = re.sub(r"\{(\w+):\w+\}", r"{\1}", self.path)  # /v1/recall/{key:path} -> /v1/recall/{key}

        async def timed(request: Request) -> Response:
            started = time.perf_counter()
            status = 500
            try:
                response = await handler(request)
                status = response.status_code
                return response
            except Exception as exc:
                status = status_of(exc)
                raise
            finally:
                registry(request.app).observe_request(request.method, route, status, time.perf_counter() - started)

        return timed


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


# ================================================================== /metrics


def _gauges(engine: Engine) -> list[tuple[str, str, float]]:
    gauges: list[tuple[str, str, float]] = [
        ("workbench_agents", "Agents defined.", engine.list_agents(page=1, per_page=1).total),
    ]
    db = getattr(engine, "db", None)
    if db is not None:  # the in-process engine: count rows without loading the embedder
        from workbench.engine.store.db import utcnow

        row = db.fetchone("SELECT count(*) FROM memories WHERE expires_at IS NULL OR expires_at > ?", [utcnow()])
        gauges.append(("workbench_memories", "Memories stored (unexpired).", row[0]))
    return gauges


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(request: Request, engine: EngineDep, _: Any = Depends(require("read:metrics"))) -> Response:
    text = registry(request.app).render(_gauges(engine))
    return Response(content=text, media_type=PROMETHEUS_TEXT)
