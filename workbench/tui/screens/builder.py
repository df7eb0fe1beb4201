"""The Builder screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from workbench.tui.screens.base import WorkbenchScreen


class BuilderScreen(WorkbenchScreen):
    TITLE_TEXT = "Builder"

    def compose_body(self) -> ComposeResult:
        yield Static("Builder", id="builder-body")
