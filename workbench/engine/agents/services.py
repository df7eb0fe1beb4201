"""What the agent runner uses, each part narrow and typed (the Engine wires them).

The runner never sees the Engine: it gets its models, tools, router, tool
context, sessions, approvals and run store here, and the four knowledge and
memory calls it makes while building a prompt and after a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from workbench.engine.agents.approvals import Approvals
    from workbench.engine.agents.routing import ToolRouter
    from workbench.engine.agents.run_store import RunStore
    from workbench.engine.chat_turn import ChatModels
    from workbench.engine.schemas import MessageRecord, RagResponse, RememberResult, SearchResponse, Session
    from workbench.engine.tools.base import ToolContext
    from workbench.engine.tools.registry import ToolRegistry


class RunSessions(Protocol):
    """The chat sessions a run continues and records its turn in (the `ConversationStore`)."""

    def get_session(self, session_id: str) -> Session: ...

    def messages(self, session_id: str) -> list[MessageRecord]: ...

    def record_run_turn(self, session_id: str, task: str, answer: str, run_id: str) -> None: ...


@dataclass(frozen=True)
class RunnerServices:
    """Everything `AgentRunner` uses."""

    #: the chat model of a run (`ModelRegistry`)
    models: ChatModels
    #: the tool registry, built on first use (built-in tools, then MCP servers' tools)
    tools: Callable[[], ToolRegistry]
    #: the tool router, built on first use (it loads the embedder)
    router: Callable[[], ToolRouter]
    #: a fresh tool context for an agent (workspace roots, network rule, protected paths)
    tool_context: Callable[[str | None], ToolContext]
    sessions: RunSessions
    approvals: Approvals
    runs: RunStore
    #: hybrid search of a knowledge collection (`Engine.search`), for the prompt's cited knowledge
    search: Callable[[dict[str, Any]], SearchResponse]
    #: whether a memory namespace holds anything (read from the store: loads no index or embedder)
    has_memories: Callable[[str], bool]
    #: memories ranked by meaning (`Engine.rag_retrieve`), for the prompt
    retrieve: Callable[[dict[str, Any]], RagResponse]
    #: store a memory (`Engine.remember`): a finished run's answer, when the agent keeps them
    remember: Callable[[dict[str, Any]], RememberResult]
