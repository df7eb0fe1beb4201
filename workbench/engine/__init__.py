"""The workbench engine: models, memory, tools and agents, with no UI.

The package root is lazy (PEP 562): importing `workbench.engine` costs nothing
until a name is used, so `workbench --help` stays fast and heavy libraries
(llama_cpp, torch) load only when needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Engine": "workbench.engine.engine",
    "EngineAPI": "workbench.engine.api",
    "WorkbenchError": "workbench.engine.errors",
    "ChatRequest": "workbench.engine.schemas",
    "ChatMessage": "workbench.engine.schemas",
    "SamplingParams": "workbench.engine.schemas",
    "ResponseFormat": "workbench.engine.schemas",
    "GenerationResult": "workbench.engine.schemas",
}

__all__ = [  # the names of _EXPORTS, spelled out so tools see the re-exports below
    "ChatMessage",
    "ChatRequest",
    "Engine",
    "EngineAPI",
    "GenerationResult",
    "ResponseFormat",
    "SamplingParams",
    "WorkbenchError",
]

if TYPE_CHECKING:  # pragma: no cover
    from workbench.engine.api import EngineAPI
    from workbench.engine.engine import Engine
    from workbench.engine.errors import WorkbenchError
    from workbench.engine.schemas import ChatMessage, ChatRequest, GenerationResult, ResponseFormat, SamplingParams


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
