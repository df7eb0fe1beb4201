"""`/health`: no key needed; a superset of the seeds' health shapes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request

router = APIRouter(tags=["health"])
STARTED = time.time()


@router.get("/health")
def health(request: Request) -> dict[str, Any]:
    from workbench import __version__

    status = {
        "status": "healthy",
        "service": "workbench",
        "version": __version__,
        "uptime_seconds": round(time.time() - STARTED, 3),
        "timestamp": datetime.now(UTC).isoformat(),
    }
    # Chrysalis wraps it: {"success": true, "data": {...}}; the others read the top level.
    return {**status, "success": True, "data": dict(status)}
