"""Model and agent pickers (Selects whose labels are untrusted text, shown literally).

The agent picker's value says what a message does: `CHAT` (plain chat with
the picked model), `agent:<id>` (run that agent on the message) or
`kb:<collection>` (answer from that knowledge collection, with citations).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.widgets import Select

from workbench.tui.safe import one_line, plain

if TYPE_CHECKING:
    from workbench.engine.schemas import AgentDefinition, CollectionInfo, ModelInfo

CHAT = "chat"
AGENT_PREFIX = "agent:"
KNOWLEDGE_PREFIX = "kb:"


class ModelPicker(Select[str]):
    """The model a chat turn (or an agent run) uses; starts on the engine's default model."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__([], prompt="Model", allow_blank=True, **kwargs)  # type: ignore[arg-type]

    models: list[ModelInfo] = []

    def set_models(self, models: Iterable[ModelInfo], selected: str | None = None) -> None:
        models = self.models = list(models)
        self.set_options([(plain(one_line(m.id, 60)), m.id) for m in models])
        ids = [m.id for m in models]
        choice = selected if selected in ids else next((m.id for m in models if m.is_default), None)
        if choice is not None:
            self.value = choice

    def select_model(self, model_id: str) -> None:
        """Show `model_id` when the engine offers it (e.g. the model an opened session used)."""
        if any(m.id == model_id for m in self.models):
            self.value = model_id

    @property
    def model(self) -> str | None:
        return None if self.value is Select.BLANK else str(self.value)


class AgentPicker(Select[str]):
    """Plain chat, an agent, or a knowledge collection to answer from."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            [(plain("Plain chat (no agent)"), CHAT)], prompt="Agent", allow_blank=False, value=CHAT, **kwargs
        )  # type: ignore[arg-type]

    def set_choices(self, agents: Iterable[AgentDefinition], collections: Iterable[CollectionInfo]) -> None:
        current = self.value
        options: list[tuple[object, str]] = [(plain("Plain chat (no agent)"), CHAT)]
        options += [(plain(f"Agent: {one_line(a.name, 40)} ({a.id})"), AGENT_PREFIX + a.id) for a in agents]
        options += [
            (plain(f"Ask knowledge: {one_line(c.name, 40)} ({c.chunks} chunks)"), KNOWLEDGE_PREFIX + c.name)
            for c in collections
            if c.chunks
        ]
        self.set_options(options)  # type: ignore[arg-type]
        values = [value for _, value in options]
        self.value = current if current in values else CHAT

    @property
    def choices(self) -> list[str]:
        """The values on offer (CHAT, agent:<id>..., kb:<collection>...)."""
        return [value for _, value in self._options if isinstance(value, str)]

    @property
    def agent_id(self) -> str | None:
        value = str(self.value)
        return value[len(AGENT_PREFIX) :] if value.startswith(AGENT_PREFIX) else None

    @property
    def collection(self) -> str | None:
        value = str(self.value)
        return value[len(KNOWLEDGE_PREFIX) :] if value.startswith(KNOWLEDGE_PREFIX) else None
