"""A yes/no dialog for destructive actions (remove a document, forget a memory)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from workbench.tui.safe import plain


class ConfirmDialog(ModalScreen[bool]):
    """Dismisses with True when the user confirms; `question` is shown literally (it may hold file names)."""

    CSS_PATH = "knowledge_confirm.tcss"
    BINDINGS = [
        Binding("escape", "answer(False)", "Cancel", show=True),
        Binding("y", "answer(True)", "Yes", show=True),
    ]

    def __init__(self, title: str, question: str, confirm_label: str = "Delete") -> None:
        super().__init__()
        self._title = title
        self._question = question
        self._confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Label(plain(self._title), id="confirm-title")
            yield Static(plain(self._question), id="confirm-question")
            with Horizontal(id="confirm-buttons"):
                yield Button(self._confirm_label, variant="error", id="confirm-yes")
                yield Button("Cancel", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
