"""Requests and responses of the workflow service (the shapes the API's operations table carries)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from workbench.engine.errors import InvalidRequest

WORKFLOW_ID = r"^wf-[0-9a-f]{12}$"
STEP_ID = r"^[a-z][a-z0-9_]{0,63}$"

#: running, waiting_approval (an approval step waits for a person), needs_decision (a side-effecting
#: step was in flight at a crash), interrupted (no process runs it: `resume`), completed, failed,
#: stopped (an approval was denied)
WorkflowState = Literal[
    "running", "waiting_approval", "needs_decision", "interrupted", "completed", "failed", "stopped"
]
#: pending, running, completed, failed, skipped, waiting_approval, answered (an answer is on its way),
#: approved, denied, needs_decision, decided
StepState = str
Choice = Literal["retry", "skip", "fail"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def validate(model: type[Any], data: Any) -> Any:
    """`data` as `model`; InvalidRequest with one sentence when it does not fit."""
    from workbench.engine.schemas import describe_validation_error

    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None


class ValidateRequest(_Model):
    """A definition to check: YAML text (or the path of a file)."""

    text: str | None = Field(None, max_length=256 * 1024)
    path: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ValidateRequest:
        if (self.text is None) == (self.path is None):
            raise ValueError("give exactly one of `text` or `path`")
        return self


class ValidateResponse(_Model):
    name: str
    steps: list[str]
    inputs: dict[str, str | None]


class StartRequest(ValidateRequest):
    inputs: dict[str, str] = Field(default_factory=dict)


class ApproveRequest(_Model):
    workflow_id: str = Field(pattern=WORKFLOW_ID)
    step: str = Field(pattern=STEP_ID)
    approve: bool = True
    reason: str | None = Field(None, max_length=2000)


class DecideRequest(_Model):
    workflow_id: str = Field(pattern=WORKFLOW_ID)
    step: str = Field(pattern=STEP_ID)
    choice: Choice


class StepStatus(_Model):
    id: str
    kind: str
    status: StepState
    attempt: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: what the step does or was about to do (tool and arguments, prompt, agent and task)
    detail: dict[str, Any] = Field(default_factory=dict)
    output: str | None = None
    error: str | None = None


class WorkflowStatus(_Model):
    id: str
    name: str
    status: WorkflowState
    inputs: dict[str, str]
    app_version: str
    created_at: datetime
    updated_at: datetime
    error: str | None = None
    steps: list[StepStatus] = Field(default_factory=list)
    #: approvals and decisions a person must give (step ids)
    waiting_on: list[str] = Field(default_factory=list)
    #: whether a live process runs it (when not, and it has not finished, `resume` continues it)
    active: bool = False


class WorkflowSummary(_Model):
    id: str
    name: str
    status: WorkflowState
    created_at: datetime
    updated_at: datetime
    waiting_on: list[str] = Field(default_factory=list)
