"""The yes/no dialog every screen uses before a destructive action.

Delete a chat, an agent or a document, overwrite a file, forget a memory: the
screen pushes a `ConfirmDialog` and acts only when it dismisses with True.
The question and title often hold untrusted text (session titles, file names,
agent names), so both are shown literally.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static
from textual.widgets.button import ButtonVariant

from workbench.tui.safe import plain


class ConfirmDialog(ModalScreen[bool]):
    """Dismisses with True only when confirmed (the confirm button or `y`); Esc or Cancel give False.

    Cancel has the focus when the dialog opens, so a stray Enter never confirms.
    """

    CSS_PATH = "confirm.tcss"
    BINDINGS = [
        Binding("escape", "answer(False)", "Cancel", show=True),
        Binding("y", "answer(True)", "Yes", show=True),
    ]

    def __init__(
        self, question: str, confirm_label: str = "Delete", *, title: str = "", variant: ButtonVariant = "error"
    ) -> None:
        super().__init__()
        self._question = question
        self._confirm_label = confirm_label
        self._title = title
        self._variant: ButtonVariant = variant

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes=f"-{self._variant}"):
            if self._title:
                yield Label(plain(self._title), id="confirm-title", markup=False)
            yield Static(plain(self._question), id="confirm-question", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self._confirm_label} (y)", variant=self._variant, id="confirm-yes")
                yield Button("Cancel", id="confirm-no")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
