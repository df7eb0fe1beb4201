"""`EngineAPI`: the one protocol every front end talks to.

`Engine` implements it in-process; a remote client implements it over HTTP
against `workbench serve`. Later capabilities (memory, tools, agents, flows)
extend this protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from workbench.engine.schemas import (
    ChatEvent,
    ChatRequest,
    GenerationResult,
    MessageRecord,
    ModelInfo,
    ProviderInfo,
    Session,
)


@runtime_checkable
class EngineAPI(Protocol):
    # models
    def list_models(self) -> list[ModelInfo]: ...

    # sessions
    def create_session(self, title: str = ..., model: str | None = ..., system: str | None = ...) -> Session: ...
    def list_sessions(self, limit: int = ..., offset: int = ...) -> list[Session]: ...
    def get_session(self, session_id: str) -> Session: ...
    def session_messages(self, session_id: str) -> list[MessageRecord]: ...
    def delete_session(self, session_id: str) -> None: ...

    # chat
    def chat(self, request: ChatRequest | dict[str, Any]) -> Iterator[ChatEvent]: ...
    def generate(self, request: ChatRequest | dict[str, Any]) -> GenerationResult: ...

    # providers
    def list_providers(self) -> list[ProviderInfo]: ...
    def add_provider(self, name: str, kind: str, base_url: str, models: list[str]) -> ProviderInfo: ...
    def remove_provider(self, name: str) -> None: ...
    def set_provider_key(self, name: str, api_key: str) -> None: ...

    def close(self) -> None: ...
