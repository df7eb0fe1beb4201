"""The Memory screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from workbench.tui.screens.base import WorkbenchScreen


class MemoryScreen(WorkbenchScreen):
    TITLE_TEXT = "Memory"

    def compose_body(self) -> ComposeResult:
        yield Static("Memory", id="memory-body")
