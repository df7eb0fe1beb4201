"""Chrysalis's `POST /api/v1/auth/bootstrap`: the first key, only while none exists, only from loopback."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from workbench.server.deps import EngineDep
from workbench.server.security import APIError, meta

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
_LOCK = threading.Lock()


class BootstrapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("admin", min_length=1, max_length=100)


@router.post("/bootstrap", status_code=201)
def bootstrap(request: Request, engine: EngineDep, body: BootstrapRequest | None = None) -> dict[str, Any]:
    """Create the first API key (all scopes). Refused once any key exists, and from non-loopback clients."""
    client = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(client).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise APIError(403, "AUTHORIZATION_ERROR.BOOTSTRAP_FORBIDDEN", "Bootstrap works only from this machine.")
    keys = engine.api_keys
    with _LOCK:  # two concurrent bootstraps must not both succeed
        if keys.any_active():
            raise APIError(
                409,
                "CONFLICT_ERROR.BOOTSTRAP_DONE",
                "An API key already exists; create more with `workbench keys create`.",
            )
        info, key = keys.create((body or BootstrapRequest()).name, ["*"])
    return {
        "success": True,
        "data": {"token": key, "api_key": key, **info.model_dump(mode="json")},
        "meta": meta(request.state.request_id),
    }
