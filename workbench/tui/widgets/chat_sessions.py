"""The sessions pane: a search box over a list of sessions (titles are untrusted text, shown literally)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from workbench.tui.safe import one_line, plain

if TYPE_CHECKING:
    from workbench.engine.schemas import Session


def _label(session: Session) -> object:
    label = plain(one_line(session.title, 28))
    count = session.message_count
    label.append(f"\n{count} message{'s' if count != 1 else ''}", style="dim")
    return label


class SessionOptions(OptionList):
    BINDINGS = [Binding("delete", "screen.delete_session", "Delete", show=True)]  # shown while the chat list has focus


class SessionsPane(Vertical):
    """Search input + session list; the screen reacts to `Input.Changed` and `OptionList.OptionSelected`."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Search chats (Ctrl+F)", id="session-search", max_length=200)
        yield SessionOptions(id="session-list")

    def show_sessions(self, sessions: Iterable[Session], current: str | None) -> None:
        options = self.query_one(SessionOptions)
        sessions = list(sessions)
        options.clear_options()
        options.add_options([Option(_label(s), id=s.id) for s in sessions])
        ids = [s.id for s in sessions]
        if current in ids:
            options.highlighted = ids.index(current)

    @property
    def query_text(self) -> str:
        return self.query_one("#session-search", Input).value.strip()
