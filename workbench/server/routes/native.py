"""Workbench-native routes under `/workbench/v1`: runs, approvals, the tool audit log, the caller's key.

These grow with the EngineAPI until `RemoteEngine` can cover all of it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from workbench.server.security import require

router = APIRouter(prefix="/workbench/v1", tags=["workbench"])


def _engine(request: Request) -> Any:
    return request.app.state.engine


@router.get("/whoami")
def whoami(request: Request, key: Any = Depends(require("read:keys"))) -> dict[str, Any]:
    """The key this request was made with (never its secret)."""
    return key.model_dump(mode="json")


@router.get("/runs")
def list_runs(request: Request, agent_id: str | None = None, limit: int = Query(50, ge=1, le=1000),
              offset: int = Query(0, ge=0), _: Any = Depends(require("read:runs"))) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in _engine(request).list_runs(agent_id, limit, offset)]


@router.get("/runs/{run_id}")
def get_run(request: Request, run_id: str, _: Any = Depends(require("read:runs"))) -> dict[str, Any]:
    return _engine(request).get_run(run_id).model_dump(mode="json")


@router.get("/runs/{run_id}/events")
def run_events(request: Request, run_id: str, _: Any = Depends(require("read:runs"))) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in _engine(request).run_events(run_id)]


@router.get("/approvals")
def pending_approvals(request: Request, run_id: str | None = None,
                      _: Any = Depends(require("read:approvals"))) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in _engine(request).pending_approvals(run_id)]


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str | None = Field(None, max_length=2000)


@router.post("/approvals/{approval_id}")
def resolve_approval(request: Request, approval_id: str, decision: Decision,
                     _: Any = Depends(require("write:approvals"))) -> dict[str, Any]:
    """Approve or deny a pending tool call of a running agent."""
    return _engine(request).resolve_approval(approval_id, decision.approve, decision.reason).model_dump(mode="json")


@router.get("/tools/audit")
def tool_audit(request: Request, run_id: str | None = None, agent_id: str | None = None, tool: str | None = None,
               limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
               _: Any = Depends(require("read:audit"))) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in _engine(request).tool_audit(run_id, agent_id, tool, limit, offset)]
