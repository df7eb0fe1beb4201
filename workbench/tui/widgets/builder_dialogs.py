"""The Builder's dialogs: a file path (export/import) and the role-model wizard's questions.

Its confirmations (delete an agent, overwrite a file) use the shared `widgets.confirm.ConfirmDialog`.

Each dialog only collects an answer and dismisses with it; the screen that
opened it does the engine work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static, TextArea

from workbench.engine.schemas import RoleModelRequest, describe_validation_error
from workbench.tui.widgets.builder_form import suggest_id


@dataclass
class PathAnswer:
    path: str
    replace: bool = False


class PathDialog(ModalScreen[PathAnswer | None]):
    """Ask for a file path; `replace_option` adds the import's "replace an existing agent" checkbox."""

    CSS_PATH = "builder_dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=True)]

    def __init__(self, title: str, action: str, default: str = "", *, replace_option: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self._title, self._action, self._default, self._replace_option = title, action, default, replace_option

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title, classes="dialog-title", markup=False)
            yield Input(self._default, id="path-input", placeholder="path/to/agent.yaml")
            if self._replace_option:
                yield Checkbox("Replace an existing agent with the same id", id="path-replace")
            yield Static("", id="path-error", classes="dialog-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self._action, id="path-ok", variant="primary")
                yield Button("Cancel", id="path-cancel")

    def on_mount(self) -> None:
        self.query_one("#path-input", Input).focus()

    def _submit(self) -> None:
        path = self.query_one("#path-input", Input).value.strip()
        if not path:
            self.query_one("#path-error", Static).update("Type a file path.")
            return
        replace = self._replace_option and self.query_one("#path-replace", Checkbox).value
        self.dismiss(PathAnswer(path, replace))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "path-ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class RoleModelDialog(ModalScreen[RoleModelRequest | None]):
    """The role-model wizard's questions: name, occupation, id, deepening cycles, optional source text."""

    CSS_PATH = "builder_dialogs.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel", show=True)]

    def __init__(self, model: str | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self._model = model

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wizard"):
            yield Label("New agent from a role model", classes="dialog-title")
            yield Static(
                "The model writes knowledge and skills for a person in an occupation; each deepening "
                "cycle adds more (and takes longer).",
                classes="dialog-help",
            )
            with Horizontal(classes="wizard-row"):
                with Vertical():
                    yield Label("Role model's name", classes="field-label")
                    yield Input(id="wizard-name", placeholder="e.g. Ada Lovelace")
                with Vertical():
                    yield Label("Occupation", classes="field-label")
                    yield Input(id="wizard-occupation", placeholder="e.g. Mathematician")
            with Horizontal(classes="wizard-row"):
                with Vertical():
                    yield Label("Agent id (empty: made from the name)", classes="field-label")
                    yield Input(id="wizard-id")
                with Vertical():
                    yield Label("Deepening cycles (0-5)", classes="field-label")
                    yield Input("1", id="wizard-cycles", type="integer")
            yield Label("Source text about the role model (optional)", classes="field-label")
            yield TextArea(id="wizard-corpus", soft_wrap=True)
            yield Static("", id="wizard-error", classes="dialog-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Create", id="wizard-ok", variant="primary")
                yield Button("Cancel", id="wizard-cancel")

    def on_mount(self) -> None:
        self.query_one("#wizard-name", Input).focus()

    def _request(self) -> dict[str, Any]:
        name = self.query_one("#wizard-name", Input).value.strip()
        cycles = self.query_one("#wizard-cycles", Input).value.strip()
        return {
            "agent_id": self.query_one("#wizard-id", Input).value.strip() or suggest_id(name) or "",
            "role_model": {"name": name, "occupation": self.query_one("#wizard-occupation", Input).value.strip()},
            "deepening_cycles": int(cycles) if cycles.lstrip("-").isdigit() else cycles,
            "corpus_text": self.query_one("#wizard-corpus", TextArea).text.strip(),
            "model": self._model,
        }

    def _submit(self) -> None:
        from pydantic import ValidationError

        try:
            request = RoleModelRequest.model_validate(self._request())
        except ValidationError as exc:
            self.query_one("#wizard-error", Static).update(describe_validation_error(exc))
            return
        self.dismiss(request)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "wizard-ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
