"""Small modals of the Chat screen: enter a title, read a cited source chunk.

The confirmation before deleting a chat is the shared `widgets.confirm.ConfirmDialog`.

Everything they show that came from a user, a model or a document is
untrusted text and is displayed literally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from workbench.tui.safe import clean, plain

if TYPE_CHECKING:
    from workbench.engine.schemas import Citation


class TextPromptModal(ModalScreen["str | None"]):
    """Ask for one line of text (a session title); dismisses with it, or None when cancelled."""

    CSS_PATH = "chat_dialogs.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel", show=True)]

    def __init__(self, title: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.prompt_title = title
        self.initial = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.prompt_title, classes="dialog-title")
            yield Input(clean(self.initial), placeholder=self.placeholder, id="prompt-value", max_length=200)
            yield Static("", id="prompt-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save", id="save", variant="primary")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self._save()
        else:
            self.dismiss(None)

    def _save(self) -> None:
        value = " ".join(self.query_one("#prompt-value", Input).value.split())
        if not value:
            self.query_one("#prompt-error", Static).update("The title cannot be empty.")
            return
        self.dismiss(value)


class CitationModal(ModalScreen[None]):
    """The source chunk a citation points to, shown literally."""

    CSS_PATH = "chat_dialogs.tcss"
    BINDINGS = [Binding("escape", "dismiss(None)", "Close", show=True)]

    def __init__(self, citation: Citation, text: str | None = None) -> None:
        super().__init__()
        self.citation = citation
        #: the full chunk text when the caller has it (answer hits), else the citation's snippet
        self.text = text if text is not None else citation.snippet

    def compose(self) -> ComposeResult:
        c = self.citation
        where = c.source + (f" § {c.heading}" if c.heading else "")
        if c.start_line is not None:
            where += f" (lines {c.start_line}-{c.end_line})"
        with Vertical(classes="dialog-box", id="citation-box"):
            yield Static(plain(f"[{c.n}] {where}", style="bold"), id="citation-source", markup=False)
            with VerticalScroll(id="citation-scroll"):
                yield Static(plain(self.text), id="citation-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)
