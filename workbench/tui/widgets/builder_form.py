"""The agent form of the Builder: an `AgentDefinition`'s editable fields, in and out as plain data.

The form only converts between widgets and data (`show_agent`, `to_changes`);
the Builder screen does every engine call. Values the user typed that cannot
even be read (an empty number) raise `FormError`; everything else is checked
by the engine, whose message the screen shows.
"""

from __future__ import annotations

import re
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Select, SelectionList, Switch, TextArea

from workbench.engine.schemas import AgentDefinition, ApprovalPolicy, GuardPolicy, TripwirePolicy
from workbench.tui.safe import plain
from workbench.tui.widgets import FormError

PERMISSIONS = ("read", "write", "exec", "network")


def suggest_id(name: str) -> str:
    """An agent id made from a name: "Ada Lovelace" -> "ada-lovelace"."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip("-._")
    return slug[:64]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _number(widget: Input, label: str, kind: type) -> Any:
    text = widget.value.strip()
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise FormError(f"{label}: enter {what} (got {text!r}).") from None


class AgentForm(VerticalScroll):
    """Name, description, instructions, model, tools, collections, guardrails, max steps."""

    def compose(self) -> ComposeResult:
        yield Label("Id (letters, digits, - _ .; empty: made from the name)", classes="field-label")
        yield Input(id="agent-id", placeholder="e.g. researcher")
        yield Label("Name", classes="field-label")
        yield Input(id="agent-name", placeholder="e.g. Researcher")
        yield Label("Description", classes="field-label")
        yield Input(id="agent-description")
        yield Label("Instructions", classes="field-label")
        yield TextArea(id="agent-instructions", soft_wrap=True)
        with Horizontal(classes="field-row"):
            yield Label("Model", classes="inline-label")
            yield Select([], id="agent-model", prompt="Default model", allow_blank=True)
        with Horizontal(classes="field-row"):
            yield Label("Max steps", classes="inline-label")
            yield Input(id="agent-max-steps", type="integer", classes="short")
        yield Label("Allowed tools", classes="field-label")
        yield SelectionList[str](id="agent-tools")
        yield Label("Knowledge collections", classes="field-label")
        yield SelectionList[str](id="agent-collections")
        yield Label("Guardrails", classes="section-label")
        with Horizontal(classes="field-row"):
            yield Switch(id="guard-secrets")
            yield Label("Block secrets", classes="switch-label")
            yield Switch(id="guard-pii")
            yield Label("Redact personal data", classes="switch-label")
        yield Label("Ask a person before tools that", classes="field-label")
        yield SelectionList[str](*((p, p) for p in PERMISSIONS), id="guard-approvals")
        yield Label(
            "Deny patterns (one regex per line; a match blocks the prompt, reply or tool call)", classes="field-label"
        )
        yield TextArea(id="guard-deny", classes="patterns")
        yield Label(
            "Tool deny patterns (one regex per line, matched against the tool and its arguments)", classes="field-label"
        )
        yield TextArea(id="guard-tool-deny", classes="patterns")
        with Horizontal(classes="field-row"):
            yield Label("Run time limit (s)", classes="inline-label")
            yield Input(id="trip-seconds", type="number", classes="short")
            yield Label("Token limit", classes="inline-label")
            yield Input(id="trip-tokens", type="integer", classes="short")

    # ------------------------------------------------------------- choices

    def set_choices(self, models: list[str], tools: list[str], collections: list[str]) -> None:
        """The models, tools and collections the engine offers (kept for every agent shown)."""
        self._models, self._tools, self._collections = models, tools, collections

    def _fill(self, selector: str, names: list[str], chosen: list[str]) -> None:
        widget = self.query_one(selector, SelectionList)
        widget.clear_options()
        # keep values the engine does not list (an "mcp.time.*" pattern, a removed collection)
        everything = list(dict.fromkeys([*names, *chosen]))
        widget.add_options([(plain(name), name, name in chosen) for name in everything])

    # ----------------------------------------------------------- in and out

    def show_agent(self, agent: AgentDefinition | None) -> None:
        """Fill the form from `agent`, or with a new agent's defaults (`None`)."""
        models = getattr(self, "_models", [])
        self.query_one("#agent-id", Input).value = agent.id if agent else ""
        self.query_one("#agent-id", Input).disabled = agent is not None
        self.query_one("#agent-name", Input).value = agent.name if agent else ""
        self.query_one("#agent-description", Input).value = agent.description if agent else ""
        self.query_one("#agent-instructions", TextArea).load_text(agent.instructions if agent else "")
        model = self.query_one("#agent-model", Select)
        chosen_model = agent.model if agent else None
        options = list(dict.fromkeys([*models, *([chosen_model] if chosen_model else [])]))
        model.set_options([(plain(m), m) for m in options])
        model.value = chosen_model if chosen_model else Select.NULL
        self.query_one("#agent-max-steps", Input).value = str(agent.max_steps if agent else 6)
        self._fill("#agent-tools", getattr(self, "_tools", []), agent.tools if agent else [])
        self._fill(
            "#agent-collections", getattr(self, "_collections", []), agent.knowledge_collections if agent else []
        )
        guard = agent.guardrails if agent else GuardPolicy()
        trip = agent.tripwires if agent else TripwirePolicy()
        approvals = agent.approvals if agent else ApprovalPolicy()
        self.query_one("#guard-secrets", Switch).value = guard.block_secrets
        self.query_one("#guard-pii", Switch).value = guard.redact_pii
        required = self.query_one("#guard-approvals", SelectionList)
        required.deselect_all()
        for permission in approvals.require:
            required.select(permission)
        self.query_one("#guard-deny", TextArea).load_text("\n".join(guard.deny_patterns))
        self.query_one("#guard-tool-deny", TextArea).load_text("\n".join(guard.tool_deny_patterns))
        self.query_one("#trip-seconds", Input).value = f"{trip.max_run_seconds:g}"
        self.query_one("#trip-tokens", Input).value = str(trip.max_total_tokens)
        self.scroll_home(animate=False)

    def _ticked(self, selector: str) -> list[str]:
        """The ticked values in list order (stable whatever order they were ticked in)."""
        options = self.query_one(selector, SelectionList)
        ticked = set(options.selected)
        values = [options.get_option_at_index(i).value for i in range(options.option_count)]
        return [value for value in values if value in ticked]

    @property
    def agent_id(self) -> str:
        """The id typed for a new agent, or one made from its name."""
        typed = self.query_one("#agent-id", Input).value.strip()
        return typed or suggest_id(self.query_one("#agent-name", Input).value)

    def to_changes(self) -> dict[str, Any]:
        """The form as agent fields (without the id); raises `FormError` for unreadable numbers."""
        model = self.query_one("#agent-model", Select).value
        return {
            "name": self.query_one("#agent-name", Input).value.strip(),
            "description": self.query_one("#agent-description", Input).value,
            "instructions": self.query_one("#agent-instructions", TextArea).text,
            "model": None if model is Select.NULL else model,
            "max_steps": _number(self.query_one("#agent-max-steps", Input), "Max steps", int),
            "tools": self._ticked("#agent-tools"),
            "knowledge_collections": self._ticked("#agent-collections"),
            "guardrails": {
                "block_secrets": self.query_one("#guard-secrets", Switch).value,
                "redact_pii": self.query_one("#guard-pii", Switch).value,
                "deny_patterns": _lines(self.query_one("#guard-deny", TextArea).text),
                "tool_deny_patterns": _lines(self.query_one("#guard-tool-deny", TextArea).text),
            },
            "tripwires": {
                "max_run_seconds": _number(self.query_one("#trip-seconds", Input), "Run time limit", float),
                "max_total_tokens": _number(self.query_one("#trip-tokens", Input), "Token limit", int),
            },
            "approvals": {
                "require": [p for p in PERMISSIONS if p in self.query_one("#guard-approvals", SelectionList).selected],
            },
        }
