"""The Chat screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from workbench.tui.screens.base import WorkbenchScreen


class ChatScreen(WorkbenchScreen):
    TITLE_TEXT = "Chat"

    def compose_body(self) -> ComposeResult:
        yield Static("Chat", id="chat-body")
