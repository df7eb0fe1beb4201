"""The Knowledge screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from workbench.tui.screens.base import WorkbenchScreen


class KnowledgeScreen(WorkbenchScreen):
    TITLE_TEXT = "Knowledge"

    def compose_body(self) -> ComposeResult:
        yield Static("Knowledge", id="knowledge-body")
