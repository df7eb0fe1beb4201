"""The `ChatModel` port: every chat backend streams the same way.

An adapter's `stream()` yields text deltas (`str`) and then exactly one
`StreamEnd` with the finish reason and token usage. Validation of parameters
happens before `stream()` is called (see `schemas.SamplingParams`); an adapter
only rejects what its backend cannot do. Timing is measured by the engine,
uniformly for all adapters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from workbench.engine.schemas import ChatMessage, FinishReason, ResponseFormat, SamplingParams


@dataclass(frozen=True)
class StreamEnd:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


StreamItem = str | StreamEnd


class ChatModel(ABC):
    """A chat backend: local llama.cpp, an OpenAI-compatible or an Anthropic endpoint."""

    #: "llama.cpp", "openai" or "anthropic"
    provider: str
    #: the id users select it by (`workbench models`)
    model_id: str

    def check(self, params: SamplingParams, response_format: ResponseFormat | None = None) -> None:
        """Raise `InvalidRequest` for what this backend cannot do; called before `stream()`."""

    @abstractmethod
    def stream(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
    ) -> Iterator[StreamItem]:
        """Yield text deltas, then one `StreamEnd`. Raise `WorkbenchError`s only."""

    def close(self) -> None:  # pragma: no cover - default: nothing to release
        """Release resources held by the adapter."""
