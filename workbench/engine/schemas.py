"""Request, response and event models shared by the engine, CLI, TUI and server.

Everything that crosses a boundary is one of these pydantic models, so that an
in-process `Engine` and a `RemoteEngine` speak exactly the same language.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.engine.errors import InvalidRequest

# Bounds checked before any model is called. They are generous but finite, so
# that absurd values (2**63 tokens, 10,000 stop strings) fail fast and clearly.
MAX_TOKENS_LIMIT = 131_072
MAX_STOP_SEQUENCES = 16
MAX_STOP_LENGTH = 256
MAX_MESSAGE_CHARS = 2_000_000
MAX_SEED = 2**32 - 1
#: max_tokens when the caller leaves it unset (small local models otherwise
#: ramble until the context is full)
DEFAULT_MAX_TOKENS = 1024

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "content_filter", "cancelled"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class SamplingParams(_Model):
    """Sampling parameters of the SLM service's `/v1/infer/sync`.

    `None` means "the provider's default". Ranges follow the seed where they are
    sensible for a general chat product (max_tokens is not capped at 256).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)

    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1, le=1000)
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)
    stop: list[str] = Field(
        default_factory=list, max_length=MAX_STOP_SEQUENCES, alias="stop_sequences"
    )
    seed: int | None = Field(None, ge=0, le=MAX_SEED)

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, stop: list[str]) -> list[str]:
        for item in stop:
            if not item:
                raise ValueError("stop sequences must not be empty strings")
            if len(item) > MAX_STOP_LENGTH:
                raise ValueError(f"each stop sequence must be at most {MAX_STOP_LENGTH} characters")
        return stop

    def explicit(self) -> dict[str, Any]:
        """The parameters the caller actually set (for logging and adapters)."""
        return self.model_dump(exclude_none=True, exclude_defaults=True)


class ResponseFormat(_Model):
    """Constrain output: free text, any JSON object, or JSON matching a schema.

    Accepts our own shape `{"type": "json_object", "schema": {...}}` and the
    OpenAI shape `{"type": "json_schema", "json_schema": {"name", "schema"}}`.
    """

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    json_schema: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _normalise(self) -> ResponseFormat:
        if self.type == "json_schema":
            inner = self.json_schema or {}
            if "schema" not in inner or not isinstance(inner["schema"], dict):
                raise ValueError("response_format json_schema needs json_schema.schema (an object)")
            self.schema_ = inner["schema"]
            self.type = "json_object"
            self.json_schema = None
        if self.schema_ is not None:
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(self.schema_)
            except SchemaError as exc:
                raise ValueError(f"response_format schema is not a valid JSON Schema: {exc.message}") from None
            _check_schema_values(self.schema_)
        return self

    @property
    def is_json(self) -> bool:
        return self.type == "json_object"


def _check_schema_values(node: Any) -> None:
    """No remote references (nothing is fetched) and no NaN or infinite numbers."""
    import math

    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise ValueError("response_format schema may only use local references ($ref starting with '#')")
        for value in node.values():
            _check_schema_values(value)
    elif isinstance(node, list):
        for value in node:
            _check_schema_values(value)
    elif isinstance(node, float) and not math.isfinite(node):
        raise ValueError("response_format schema must not contain NaN or infinite numbers")


class ChatMessage(_Model):
    role: Role
    content: str = Field(max_length=MAX_MESSAGE_CHARS)


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class GenerationResult(_Model):
    """One finished generation: text, usage, timing, and where it was stored."""

    id: str
    session_id: str | None = None
    model: str
    provider: str
    text: str
    #: the parsed JSON value when a JSON response_format was requested
    parsed: Any = None
    #: why `text` did not parse or validate against the requested schema
    parse_error: str | None = None
    finish_reason: FinishReason
    usage: Usage
    latency_ms: float
    time_to_first_token_ms: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class ChatRequest(_Model):
    """Send messages to a model, optionally within a persisted session.

    With `session_id`, the session's history precedes `messages`; without it a
    new session is created (unless `persist` is false).
    """

    messages: list[ChatMessage] = Field(min_length=1)
    session_id: str | None = None
    model: str | None = None
    system: str | None = Field(None, max_length=MAX_MESSAGE_CHARS)
    params: SamplingParams = Field(default_factory=SamplingParams)
    response_format: ResponseFormat | None = None
    persist: bool = True
    title: str | None = Field(None, max_length=200)


# --------------------------------------------------------------------- events


class RunStarted(_Model):
    type: Literal["run_started"] = "run_started"
    run_id: str
    session_id: str | None
    model: str


class TokenDelta(_Model):
    type: Literal["token"] = "token"
    text: str


class RunFinished(_Model):
    type: Literal["run_finished"] = "run_finished"
    result: GenerationResult


class RunFailed(_Model):
    type: Literal["run_failed"] = "run_failed"
    run_id: str | None = None
    code: str
    error: str


ChatEvent = Annotated[Union[RunStarted, TokenDelta, RunFinished, RunFailed], Field(discriminator="type")]


# ------------------------------------------------------------------- records


class ModelInfo(_Model):
    id: str
    provider: Literal["llama.cpp", "openai", "anthropic"]
    source: Literal["package", "models-folder", "path", "remote"]
    location: str
    size_bytes: int | None = None
    is_default: bool = False


class Session(_Model):
    id: str
    title: str
    model: str | None
    system_prompt: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int = 0


class MessageRecord(_Model):
    id: str
    session_id: str
    seq: int
    role: Role
    content: str
    created_at: datetime
    generation_id: str | None = None


class ProviderInfo(_Model):
    name: str
    kind: Literal["openai", "anthropic"]
    base_url: str
    models: list[str]
    has_key: bool


# ------------------------------------------------------------------- helpers


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic error into one readable sentence naming each field."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or "request"
        msg = err.get("msg", "is invalid")
        msg = msg.removeprefix("Value error, ")
        value = err.get("input")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = str(value) if len(str(value)) <= 24 else str(value)[:21] + "..."
            msg += f" (got {shown})"
        elif isinstance(value, list) and len(value) > MAX_STOP_SEQUENCES:
            msg += f" (got {len(value)})"
        parts.append(f"{field}: {msg}")
    return "Invalid request: " + "; ".join(parts) + "."


def validate(model: type[_Model], data: Any) -> Any:
    """Validate `data` as `model`, raising `InvalidRequest` with a clear sentence."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None
