"""The "remember" form: key, value, namespace and kind, checked against `RememberRequest` before it closes.

The dialog never calls the engine; it dismisses with a valid request (or None)
and the Memory screen stores it.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, TextArea

from workbench.engine.schemas import NAME_PATTERN, RememberRequest
from workbench.tui.safe import plain

KINDS = ("episodic", "conversation", "knowledge")


class RememberDialog(ModalScreen[RememberRequest | None]):
    CSS_PATH = "memory_form.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", show=True),
        Binding("ctrl+s", "save", "Save", show=True),
    ]

    def __init__(self, namespace: str = "default") -> None:
        super().__init__()
        self._namespace = namespace or "default"

    def compose(self) -> ComposeResult:
        with Vertical(id="mf-box"):
            yield Label("Remember", id="mf-title")
            yield Label("Key")
            yield Input(placeholder="e.g. user.favourite_colour", id="mf-key")
            with Horizontal(id="mf-row"):
                with Vertical():
                    yield Label("Namespace")
                    yield Input(self._namespace, id="mf-namespace")
                with Vertical():
                    yield Label("Kind")
                    yield Select([(k, k) for k in KINDS], value="episodic", allow_blank=False, id="mf-kind")
            yield Label("Value")
            yield TextArea(id="mf-value", soft_wrap=True)
            yield Checkbox("The value is JSON (otherwise it is stored as text)", id="mf-json")
            yield Label("", id="mf-error")
            with Horizontal(id="mf-buttons"):
                yield Button("Save", variant="primary", id="mf-save")
                yield Button("Cancel", id="mf-cancel")

    def on_mount(self) -> None:
        self.query_one("#mf-key", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "mf-save":
            self.action_save()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        error = self.query_one("#mf-error", Label)
        text = self.query_one("#mf-value", TextArea).text
        value: object = text
        if self.query_one("#mf-json", Checkbox).value:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                error.update(plain(f"The value is not valid JSON: {exc}"))
                return
        elif not text.strip():
            error.update("Type a value.")
            return
        namespace = self.query_one("#mf-namespace", Input).value.strip() or "default"
        if not re.match(NAME_PATTERN, namespace):
            error.update(
                plain(
                    f"{namespace!r} is not a namespace name: start with a letter or digit, then "
                    "letters, digits, _ . - (at most 64)."
                )
            )
            return
        try:
            request = RememberRequest(
                key=self.query_one("#mf-key", Input).value,
                value=value,
                namespace=namespace,
                kind=str(self.query_one("#mf-kind", Select).value),  # type: ignore[arg-type]
            )
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
            error.update(plain(problems))
            return
        self.dismiss(request)
