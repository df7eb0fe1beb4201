"""One chat turn: checked up front, streamed as events, recorded in its session.

`Chat.turn` does every check that can fail before a model is called (the
request, the session, the model and what it supports) and returns a
`ChatTurn`; `ChatTurn.stream` calls the model and yields RunStarted,
TokenDelta..., RunFinished | RunFailed, then records the turn (messages and
generation stats) when it belongs to a session. The collaborators are the two
narrow protocols below, not the Engine.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Generator
from contextlib import closing
from typing import Any, Protocol

from workbench.engine.errors import InvalidRequest, WorkbenchError, error_from_code
from workbench.engine.inference.base import ChatModel, StreamEnd
from workbench.engine.schemas import (
    ChatEvent,
    ChatMessage,
    ChatRequest,
    GenerationResult,
    MessageRecord,
    ResponseFormat,
    RunFailed,
    RunFinished,
    RunStarted,
    Session,
    TokenDelta,
    ToolCall,
    Usage,
    validate,
)
from workbench.engine.store.conversations import new_id
from workbench.engine.store.db import utcnow

log = logging.getLogger("workbench.engine")

TITLE_CHARS = 60


class ChatModels(Protocol):
    """Where a turn gets its model (the `ModelRegistry`)."""

    def chat_model(self, spec: str | None) -> ChatModel: ...


class SessionLog(Protocol):
    """Where a turn reads its session's history and records itself (the `ConversationStore`)."""

    def get_session(self, session_id: str) -> Session: ...

    def messages(self, session_id: str) -> list[MessageRecord]: ...

    def record_turn(
        self,
        session_id: str,
        new_messages: list[ChatMessage],
        result: GenerationResult,
        response_format: dict[str, Any] | None,
        new_session: tuple[str, str | None] | None = None,
    ) -> None: ...


class Chat:
    """Chat turns over a model source and a session log."""

    def __init__(self, models: ChatModels, sessions: SessionLog) -> None:
        self.models = models
        self.sessions = sessions

    def turn(self, request: ChatRequest | dict[str, Any]) -> ChatTurn:
        """A checked turn, ready to stream (invalid requests, sessions and models raise here)."""
        req: ChatRequest = validate(ChatRequest, request)
        history: list[ChatMessage] = []
        new_session: tuple[str, str | None] | None = None
        system = req.system
        if req.session_id:
            session = self.sessions.get_session(req.session_id)
            session_id: str | None = session.id
            model_spec = req.model or session.model
            system = system if system is not None else session.system_prompt
            history = [ChatMessage(role=m.role, content=m.content) for m in self.sessions.messages(session.id)]
        else:
            session_id = new_id("ses") if req.persist else None
            model_spec = req.model
            title = req.title or title_from(req.messages)
            new_session = (title, system)
        if req.persist and any(m.role == "tool" or m.tool_calls for m in req.messages):
            # The store keeps role and content only: without the call ids, a
            # stored tool exchange could neither be listed nor replayed.
            raise InvalidRequest(
                "Sessions do not store tool calls and tool results yet; send requests carrying them "
                "with persist false and keep the conversation on your side."
            )
        model = self.models.chat_model(model_spec)
        if req.tools and not model.supports_tools:
            raise InvalidRequest(
                f"{model.model_id} cannot take tools in a chat request: local models call tools through agents "
                "(`workbench run`); pick a remote OpenAI-compatible or Anthropic model for native tool calls."
            )
        model.check(req.params, req.response_format, req.tools)
        messages = ([ChatMessage(role="system", content=system)] if system else []) + history + req.messages
        return ChatTurn(model, req, messages, session_id if req.persist else None, new_session, self.sessions)

    def stream(self, request: ChatRequest | dict[str, Any]) -> Generator[ChatEvent, None, None]:
        """Check the turn now, then stream it (see `Engine.chat`)."""
        return self.turn(request).stream()

    def generate(self, request: ChatRequest | dict[str, Any]) -> GenerationResult:
        """Run a chat turn to the end and return its result (raises on failure)."""
        with closing(self.stream(request)) as events:
            for event in events:
                if isinstance(event, RunFinished):
                    return event.result
                if isinstance(event, RunFailed):
                    raise error_from_code(event.code, event.error)
        raise WorkbenchError("The generation ended without a result.")  # pragma: no cover


class ChatTurn:
    """One checked turn: `stream` generates it and records it in its session (if any)."""

    def __init__(
        self,
        model: ChatModel,
        request: ChatRequest,
        messages: list[ChatMessage],
        session_id: str | None,
        new_session: tuple[str, str | None] | None,
        sessions: SessionLog,
    ) -> None:
        self.model = model
        self.request = request
        self.messages = messages
        #: the session the turn is recorded in (None: not persisted)
        self.session_id = session_id
        #: (title, system prompt) when the turn creates its session
        self.new_session = new_session
        self.sessions = sessions
        self.id = ""  # given when the stream starts

    def stream(self) -> Generator[ChatEvent, None, None]:
        """RunStarted, TokenDelta..., RunFinished | RunFailed; closing early records a cancelled turn."""
        self.id = run_id = new_id("gen")
        model, req = self.model, self.request
        yield RunStarted(run_id=run_id, session_id=self.session_id, model=model.model_id)
        started = time.perf_counter()
        first_token_at: float | None = None
        parts: list[str] = []
        calls: list[ToolCall] = []
        end: StreamEnd | None = None
        stream = model.stream(self.messages, req.params, req.response_format, tools=req.tools)
        try:
            for item in stream:
                if isinstance(item, StreamEnd):
                    end = item
                    continue
                if isinstance(item, ToolCall):  # complete calls: they reach the caller on the result
                    calls.append(item)
                    continue
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                parts.append(item)
                yield TokenDelta(text=item)
        except (GeneratorExit, KeyboardInterrupt):
            # The consumer closed the stream, or Ctrl-C landed while this
            # generator ran: keep what was said, marked cancelled.
            stream.close()  # type: ignore[attr-defined]  # every adapter's stream is a generator
            end = StreamEnd("cancelled", 0, len(parts))
            self._finish(parts, end, started, first_token_at, calls)
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
        result = self._finish(parts, end, started, first_token_at, calls)
        yield RunFinished(result=result)

    def _finish(
        self,
        parts: list[str],
        end: StreamEnd,
        started: float,
        first_token_at: float | None,
        tool_calls: list[ToolCall],
    ) -> GenerationResult:
        model, req = self.model, self.request
        now = time.perf_counter()
        text = "".join(parts)
        parsed, parse_error = parse_output(text, req.response_format, end)
        result = GenerationResult(
            id=self.id,
            session_id=self.session_id,
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
            tool_calls=tool_calls,
        )
        if self.session_id is not None:
            response_format = (
                req.response_format.model_dump(by_alias=True, exclude_none=True) if req.response_format else None
            )
            self.sessions.record_turn(self.session_id, req.messages, result, response_format, self.new_session)
        return result


#: one constrained generation: (messages as role/content dicts, a response format) -> the result
JsonGenerate = Callable[[list[dict[str, str]], dict[str, Any]], GenerationResult]


class JsonGenerator:
    """Constrained, greedy, unsaved generations for the knowledge features (answers, knowledge, skills).

    `json_generator(model, max_tokens)` is the `JsonGenerate` those features
    call with their messages and JSON schema.
    """

    def __init__(self, generate: Callable[[dict[str, Any]], GenerationResult]) -> None:
        self.generate = generate

    def __call__(
        self, model: str | None, max_tokens: int = 512, repetition_penalty: float | None = None
    ) -> JsonGenerate:
        def run(messages: list[dict[str, str]], response_format: dict[str, Any]) -> GenerationResult:
            system = next((m["content"] for m in messages if m["role"] == "system"), None)
            return self.generate(
                {
                    "messages": [m for m in messages if m["role"] != "system"],
                    "system": system,
                    "model": model,
                    "persist": False,
                    "params": {
                        "temperature": 0.0,
                        "max_tokens": max_tokens,
                        **({"repetition_penalty": repetition_penalty} if repetition_penalty else {}),
                    },
                    "response_format": response_format,
                }
            )

        return run


def title_from(messages: list[ChatMessage]) -> str:
    """A new session's title: the first user message on one line, cut to TITLE_CHARS."""
    first_user = next((m.content for m in messages if m.role == "user"), messages[0].content)
    line = " ".join("".join(ch for ch in first_user if ch.isprintable() or ch.isspace()).split())
    return (line[: TITLE_CHARS - 1] + "…") if len(line) > TITLE_CHARS else (line or "New chat")


def parse_output(text: str, response_format: ResponseFormat | None, end: StreamEnd) -> tuple[Any, str | None]:
    """The JSON a response format asked for, parsed and checked: (value, None) or (value or None, why not)."""
    if response_format is None or not response_format.is_json:
        return None, None
    if end.finish_reason == "length":
        return None, "the output was cut off by max_tokens before the JSON was complete"
    if end.finish_reason == "repetition":
        return None, "the model started repeating itself and was stopped before the JSON was complete"
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
