"""The `ChatModel` port: every chat backend streams the same way.

An adapter's `stream()` yields text deltas (`str`) and, when the model calls
tools, one complete `ToolCall` per call (id, name and parsed arguments dict;
never fragments: wire fragments are assembled by the adapter, and arguments
that are not a JSON object raise `ProviderError`), and last exactly one
`StreamEnd` with the finish reason and token usage. The finish reason is
"tool_calls" when the model called tools. Tools are
offered with `tools=[ToolSpec, ...]`; an adapter whose backend cannot call
tools natively has `supports_tools = False` and refuses them. Validation of
parameters happens before `stream()` is called (see `schemas.SamplingParams`);
an adapter only rejects what its backend cannot do. Timing is measured by the
engine, uniformly for all adapters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from workbench.engine.schemas import ChatMessage, FinishReason, ResponseFormat, SamplingParams, ToolCall, ToolSpec


@dataclass(frozen=True)
class StreamEnd:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int


StreamItem = str | ToolCall | StreamEnd


class ChatModel(ABC):
    """A chat backend: local llama.cpp, an OpenAI-compatible or an Anthropic endpoint."""

    #: "llama.cpp", "openai" or "anthropic"
    provider: str
    #: the id users select it by (`workbench models`)
    model_id: str
    #: whether `stream()` accepts `tools` (native tool calling)
    supports_tools: bool = False

    def check(
        self,
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> None:
        """Raise `InvalidRequest` for what this backend cannot do; called before `stream()`."""

    @abstractmethod
    def stream(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[StreamItem]:
        """Yield text deltas, then any `ToolCall`s, then one `StreamEnd`. Raise `WorkbenchError`s only.

        `messages` may hold assistant messages with `tool_calls` and "tool"
        messages answering them; adapters translate both to their wire format.
        """

    def close(self) -> None:  # pragma: no cover - default: nothing to release
        """Release resources held by the adapter."""
