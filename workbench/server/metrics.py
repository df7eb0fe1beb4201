"""The server's Prometheus metrics (`GET /metrics`, scope `read:metrics`), built on `prometheus_client`.

* `workbench_http_requests_total{method, route, status}` and
  `workbench_http_request_duration_seconds{method, route}`: every call of a
  route whose router uses `MetricsRoute` (the native `/workbench/v1` routes and
  every compatibility API), by its path template, so ids add no series.
* the seed's `agent_requests_total`, `agent_errors_total`,
  `agent_tokens_used_total` and `agent_processing_seconds{agent_id}`: the
  task routes' generations and agent runs ("workbench" for plain generations).
* gauges read from the engine at each scrape: `workbench_agents`, `workbench_memories`.

A request the client abandons is counted with status 499 (client closed).
Each app keeps its own `CollectorRegistry` on `app.state`, so two servers in
one process never mix their counts.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from workbench.engine.engine import Engine
from workbench.engine.errors import WorkbenchError
from workbench.server.security import APIError, require
from workbench.server.streaming import CLIENT_CLOSED, ClientDisconnected

#: latency histogram buckets, in seconds (local models take seconds, lookups milliseconds)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, math.inf)
#: what `generate_latest` writes (the library's own CONTENT_TYPE_LATEST names a newer version)
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

# The exposition stays the series it always was: no `*_created` timestamp
# series beside each counter and histogram (a process-wide switch of the library).
prometheus_client.disable_created_metrics()


class _EngineGauges:
    """A collector that reads the engine's counts at each scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        engine = self.engine
        yield GaugeMetricFamily(
            "workbench_agents", "Agents defined.", value=engine.list_agents(page=1, per_page=1).total
        )
        yield GaugeMetricFamily("workbench_memories", "Memories stored (unexpired).", value=engine.count_memories())


class MetricsRegistry:
    """The counters and histograms of one app (`prometheus_client` metrics are thread-safe)."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "workbench_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "workbench_http_request_duration_seconds",
            "HTTP request latency by method and route.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.agent_requests = Counter(
            "agent_requests", "Total number of task requests (agent or generation).", ["agent_id"], registry=r
        )
        self.agent_errors = Counter(
            "agent_errors", "Task requests that ended without a result.", ["agent_id"], registry=r
        )
        self.agent_tokens = Counter(
            "agent_tokens_used", "Prompt and completion tokens used by tasks.", ["agent_id"], registry=r
        )
        self.agent_seconds = Histogram(
            "agent_processing_seconds", "Request processing time", ["agent_id"], buckets=BUCKETS, registry=r
        )
        r.register(_EngineGauges(engine))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_task(self, agent_id: str, seconds: float, tokens: int, ok: bool) -> None:
        self.agent_requests.labels(agent_id).inc()
        if not ok:
            self.agent_errors.labels(agent_id).inc()
        self.agent_tokens.labels(agent_id).inc(tokens)
        self.agent_seconds.labels(agent_id).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of everything recorded, and the engine's gauges."""
        return generate_latest(self.registry)


def registry(app: Any) -> MetricsRegistry:
    """The app's registry (`create_app` makes it, with the gauges of the app's engine)."""
    found: MetricsRegistry = app.state.metrics_registry
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
    """An APIRoute that counts and times each call (by its path template, so ids add no series).

    A router adopts it with `APIRouter(route_class=MetricsRoute)`.
    """

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()
        route = re.sub(r"\{(\w+):\w+\}", r"{\1}", self.path)  # /v1/recall/{key:path} -> /v1/recall/{key}

        async def timed(request: Request) -> Response:
            started = time.perf_counter()
            status = 500
            try:
                response: Response = await handler(request)
                status = response.status_code
                return response
            except Exception as exc:
                status = status_of(exc)
                raise
            finally:
                registry(request.app).observe_request(request.method, route, status, time.perf_counter() - started)

        return timed


router = APIRouter(tags=["metrics"], route_class=MetricsRoute)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(request: Request, _: Any = Depends(require("read:metrics"))) -> Response:
    return Response(content=registry(request.app).render(), media_type=PROMETHEUS_TEXT)
