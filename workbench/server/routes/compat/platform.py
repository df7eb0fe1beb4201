"""The AI Agents Platform: `POST /api/v1/execute` `{task_description, context}` ->
`{result, metadata{agent_id, model, tokens_used, timestamp}, processing_time_ms}`.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from workbench.engine.errors import WorkbenchError
from workbench.server.deps import EngineDep
from workbench.server.metrics import MetricsRoute, registry
from workbench.server.routes.compat.tasks import DEFAULT_AGENT, elapsed_ms, generate_unsaved, parse_body
from workbench.server.security import APIError, require
from workbench.server.streaming import ClientDisconnected

router = APIRouter(tags=["tasks"], route_class=MetricsRoute)

#: context keys and values folded into a Platform prompt (bounded like the task)
MAX_CONTEXT_CHARS = 20_000


class PlatformRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_description: str = Field(min_length=1, max_length=5000)
    context: dict[str, Any] = Field(default_factory=dict)


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
    req: PlatformRequest = parse_body(PlatformRequest, body)
    metrics = registry(request.app)
    try:
        result = await generate_unsaved(request, engine, _platform_prompt(req))
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
        "processing_time_ms": elapsed_ms(request, started),
    }
