"""`Engine`: the in-process implementation of `EngineAPI`.

It wires the store, the model registry and the adapters together. Front ends
(CLI, TUI, server) use it only through the `EngineAPI` methods.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from workbench.config import ProviderConfig, load_config, resolve_home, save_config
from workbench.engine import secrets
from workbench.engine.errors import InvalidRequest, NotFound, WorkbenchError, error_from_code
from workbench.engine.inference.base import ChatModel, StreamEnd
from workbench.engine.inference.registry import ModelRegistry
from workbench.engine.schemas import (
    ChatEvent,
    ChatMessage,
    ChatRequest,
    GenerationResult,
    MessageRecord,
    ModelInfo,
    ProviderInfo,
    ResponseFormat,
    RunFailed,
    RunFinished,
    RunStarted,
    Session,
    TokenDelta,
    Usage,
    validate,
)
from workbench.engine.store.conversations import ConversationStore, new_id
from workbench.engine.store.db import Database, utcnow

log = logging.getLogger("workbench.engine")

TITLE_CHARS = 60


class Engine:
    """Everything the workbench does, in this process."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = resolve_home(home)
        self.config = load_config(self.home)
        self.db = Database(self.home)
        self.conversations = ConversationStore(self.db)
        self.models = ModelRegistry(self.home, self.config)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release models, HTTP clients, the database and the home lock."""
        self.models.close()
        self.db.close()

    # ---------------------------------------------------------------- models

    def list_models(self) -> list[ModelInfo]:
        """Every selectable model: packaged default, models folders, configured remotes."""
        return self.models.list()

    # -------------------------------------------------------------- sessions

    def create_session(self, title: str = "New chat", model: str | None = None, system: str | None = None) -> Session:
        """Create an empty session (the model is checked, not loaded)."""
        if model is not None:
            model = self.models.resolve(model).id
        return self.conversations.create_session(title[:200] or "New chat", model, system)

    def list_sessions(self, limit: int = 50, offset: int = 0) -> list[Session]:
        """Sessions, most recently used first."""
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidRequest("limit must be 1..1000 and offset >= 0.")
        return self.conversations.list_sessions(limit, offset)

    def get_session(self, session_id: str) -> Session:
        """One session, or `NotFound`."""
        return self.conversations.get_session(session_id)

    def session_messages(self, session_id: str) -> list[MessageRecord]:
        """The messages of a session in order."""
        self.conversations.get_session(session_id)
        return self.conversations.messages(session_id)

    def delete_session(self, session_id: str) -> None:
        """Delete a session with its messages and generation records."""
        self.conversations.delete_session(session_id)

    # ------------------------------------------------------------------ chat

    def chat(self, request: ChatRequest | dict[str, Any]) -> Iterator[ChatEvent]:
        """Stream one chat turn as events: RunStarted, TokenDelta..., RunFinished | RunFailed.

        Invalid requests, unknown sessions and unknown models raise here, before
        any model is called. Failures during generation arrive as `RunFailed`.
        Closing the iterator early cancels the generation; the partial answer
        is stored with finish_reason "cancelled".
        """
        req: ChatRequest = validate(ChatRequest, request)
        history: list[ChatMessage] = []
        new_session: tuple[str, str | None] | None = None
        system = req.system
        if req.session_id:
            session = self.conversations.get_session(req.session_id)
            session_id: str | None = session.id
            model_spec = req.model or session.model
            system = system if system is not None else session.system_prompt
            history = [ChatMessage(role=m.role, content=m.content) for m in self.conversations.messages(session.id)]
        else:
            session_id = new_id("ses") if req.persist else None
            model_spec = req.model
            title = req.title or _title_from(req.messages)
            new_session = (title, system)
        model = self.models.chat_model(model_spec)
        model.check(req.params, req.response_format)
        messages = ([ChatMessage(role="system", content=system)] if system else []) + history + req.messages
        return self._run(model, req, messages, session_id if req.persist else None, new_session)

    def generate(self, request: ChatRequest | dict[str, Any]) -> GenerationResult:
        """Run a chat turn to the end and return its result (raises on failure)."""
        with closing(self.chat(request)) as events:
            for event in events:
                if isinstance(event, RunFinished):
                    return event.result
                if isinstance(event, RunFailed):
                    raise error_from_code(event.code, event.error)
        raise WorkbenchError("The generation ended without a result.")  # pragma: no cover

    def _run(
        self,
        model: ChatModel,
        req: ChatRequest,
        messages: list[ChatMessage],
        session_id: str | None,
        new_session: tuple[str, str | None] | None,
    ) -> Iterator[ChatEvent]:
        run_id = new_id("gen")
        yield RunStarted(run_id=run_id, session_id=session_id, model=model.model_id)
        started = time.perf_counter()
        first_token_at: float | None = None
        parts: list[str] = []
        end: StreamEnd | None = None
        stream = model.stream(messages, req.params, req.response_format)
        try:
            for item in stream:
                if isinstance(item, StreamEnd):
                    end = item
                    continue
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                parts.append(item)
                yield TokenDelta(text=item)
        except (GeneratorExit, KeyboardInterrupt):
            # The consumer closed the stream, or Ctrl-C landed while this
            # generator ran: keep what was said, marked cancelled.
            stream.close()
            end = StreamEnd("cancelled", 0, len(parts))
            self._finish(run_id, model, req, session_id, new_session, parts, end, started, first_token_at)
            raise
        except WorkbenchError as exc:
            yield RunFailed(run_id=run_id, code=exc.code, error=str(exc))
            return
        except Exception as exc:  # a bug or an unexpected backend failure: log it, tell the user
            log.exception("generation %s failed", run_id)
            # Only the type: an exception's text can carry request data (even a key).
            yield RunFailed(
                run_id=run_id,
                code="internal_error",
                error=f"The generation failed unexpectedly ({type(exc).__name__}); details are in the log.",
            )
            return
        if end is None:
            yield RunFailed(run_id=run_id, code="provider_error", error="The model stream ended without finishing.")
            return
        result = self._finish(run_id, model, req, session_id, new_session, parts, end, started, first_token_at)
        yield RunFinished(result=result)

    def _finish(
        self,
        run_id: str,
        model: ChatModel,
        req: ChatRequest,
        session_id: str | None,
        new_session: tuple[str, str | None] | None,
        parts: list[str],
        end: StreamEnd,
        started: float,
        first_token_at: float | None,
    ) -> GenerationResult:
        now = time.perf_counter()
        text = "".join(parts)
        parsed, parse_error = _parse_output(text, req.response_format, end)
        result = GenerationResult(
            id=run_id,
            session_id=session_id,
            model=model.model_id,
            provider=model.provider,
            text=text,
            parsed=parsed,
            parse_error=parse_error,
            finish_reason=end.finish_reason,
            usage=Usage(
                prompt_tokens=end.prompt_tokens,
                completion_tokens=end.completion_tokens,
                total_tokens=end.prompt_tokens + end.completion_tokens,
            ),
            latency_ms=(now - started) * 1000,
            time_to_first_token_ms=(first_token_at - started) * 1000 if first_token_at else None,
            params=req.params.explicit(),
            created_at=utcnow(),
        )
        if session_id is not None:
            response_format = req.response_format.model_dump(by_alias=True, exclude_none=True) if req.response_format else None
            self.conversations.record_turn(session_id, req.messages, result, response_format, new_session)
        return result

    # ------------------------------------------------------------- providers

    def list_providers(self) -> list[ProviderInfo]:
        """Configured remote providers and whether a key is stored for each."""
        return [
            ProviderInfo(name=name, kind=p.kind, base_url=p.base_url, models=p.models, has_key=_has_key(name))
            for name, p in sorted(self.config.providers.items())
        ]

    def add_provider(self, name: str, kind: str, base_url: str, models: list[str]) -> ProviderInfo:
        """Add or replace a remote provider in the config (its key goes to the keyring separately)."""
        providers = dict(self.config.providers)
        providers[name] = validate_provider(kind=kind, base_url=base_url, models=models)
        self._save_config(providers=providers)
        self.models.forget_provider(name)
        return next(p for p in self.list_providers() if p.name == name)

    def remove_provider(self, name: str) -> None:
        """Remove a provider and its stored key."""
        if name not in self.config.providers:
            raise NotFound(f"No provider named {name!r}.")
        providers = {k: v for k, v in self.config.providers.items() if k != name}
        self._save_config(providers=providers)
        self.models.forget_provider(name)
        secrets.delete_provider_key(name)

    def set_provider_key(self, name: str, api_key: str) -> None:
        """Store a provider's API key in the OS keyring."""
        if name not in self.config.providers:
            raise NotFound(f"No provider named {name!r}; add it first with `workbench providers add`.")
        secrets.set_provider_key(name, api_key)
        self.models.forget_provider(name)

    def _save_config(self, **changes: Any) -> None:
        config = validate_config(self.config.model_dump() | changes)
        save_config(self.home, config)
        self.config = config
        self.models.config = config


def validate_provider(**data: Any) -> ProviderConfig:
    from pydantic import ValidationError

    try:
        return ProviderConfig.model_validate(data)
    except ValidationError as exc:
        from workbench.engine.schemas import describe_validation_error

        raise InvalidRequest(describe_validation_error(exc)) from None


def validate_config(data: dict[str, Any]):
    from pydantic import ValidationError

    from workbench.config import WorkbenchConfig
    from workbench.engine.schemas import describe_validation_error

    try:
        return WorkbenchConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None


def _has_key(provider: str) -> bool:
    from workbench.engine.errors import SecretsError

    try:
        return bool(secrets.get_provider_key(provider))
    except SecretsError:  # no keyring here: listing still works
        return False


def _title_from(messages: list[ChatMessage]) -> str:
    first_user = next((m.content for m in messages if m.role == "user"), messages[0].content)
    line = " ".join("".join(ch for ch in first_user if ch.isprintable() or ch.isspace()).split())
    return (line[: TITLE_CHARS - 1] + "…") if len(line) > TITLE_CHARS else (line or "New chat")


def _parse_output(text: str, response_format: ResponseFormat | None, end: StreamEnd) -> tuple[Any, str | None]:
    if response_format is None or not response_format.is_json:
        return None, None
    if end.finish_reason == "length":
        return None, "the output was cut off by max_tokens before the JSON was complete"
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        return None, f"the output is not valid JSON ({exc})"
    if response_format.schema_ is not None:
        from jsonschema import Draft202012Validator

        error = next(iter(Draft202012Validator(response_format.schema_).iter_errors(parsed)), None)
        if error is not None:
            return parsed, f"the output does not match the schema: {error.message}"
    return parsed, None
