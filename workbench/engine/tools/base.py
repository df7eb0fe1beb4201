"""The `Tool` port: what every tool (built-in or MCP) looks like to the registry.

A tool is data plus one function. The registry validates arguments against
`parameters` (a JSON Schema) before `run` is called, enforces the timeout and
the output cap, asks for approval according to `permission`, and audits every
execution. A tool's `run` only does its job: it raises `ToolError` (from
`workbench.engine.errors`) with one user-facing sentence when it cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from workbench.engine.schemas import (
        AgentDefinition,
        MemoryRecord,
        RagRequest,
        RagResponse,
        RememberRequest,
        RememberResult,
        SearchRequest,
        SearchResponse,
    )

Permission = Literal["read", "write", "exec", "network"]
PERMISSIONS: tuple[Permission, ...] = ("read", "write", "exec", "network")

#: default caps; a tool may set its own, lower or higher
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_OUTPUT_CHARS = 16_000


class ToolEngine(Protocol):
    """What tools use of the engine: its home (kept out of reach), knowledge and memory (the `Engine` fits)."""

    @property
    def home(self) -> Path: ...

    def get_agent(self, agent_id: str) -> AgentDefinition: ...

    def search(self, request: SearchRequest | dict[str, Any]) -> SearchResponse: ...

    def remember(self, request: RememberRequest | dict[str, Any]) -> RememberResult: ...

    def recall(self, key: str, namespace: str = "default") -> MemoryRecord: ...

    def rag_retrieve(self, request: RagRequest | dict[str, Any]) -> RagResponse: ...


@dataclass
class ToolContext:
    """What a tool may touch. Built by the engine for each run (or each CLI call)."""

    #: workspace roots that file, shell, git and python tools are confined to
    roots: list[Path] = field(default_factory=list)
    #: let HTTP fetch reach private, loopback and link-local addresses
    allow_private_network: bool = False
    #: the engine, for the knowledge and memory tools (None: those tools refuse)
    engine: ToolEngine | None = None
    agent_id: str | None = None
    run_id: str | None = None
    #: the caps of this call, set by the registry from the tool's own
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    #: resolved paths no tool may touch whatever the roots (the home, the keyring's files);
    #: left empty, it is filled from `engine.home`
    protected: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.protected and self.engine is not None:
            from workbench.engine.tools.paths import protected_paths

            self.protected = protected_paths(self.engine.home)


ToolFunction = Callable[[dict[str, Any], ToolContext], Any]


@dataclass
class Tool:
    name: str
    description: str
    #: JSON Schema of the arguments object
    parameters: dict[str, Any]
    permission: Permission
    run: ToolFunction
    #: example requests a person would solve with this tool (used by tool routing)
    examples: list[str] = field(default_factory=list)
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    #: "builtin" or "mcp:<server>"
    source: str = "builtin"
    #: set when an MCP server's description changed since it was pinned
    warning: str | None = None


def object_schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A closed JSON object schema (no extra keys), the shape every built-in tool takes."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }
