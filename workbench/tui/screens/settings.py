"""The Settings screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from workbench.tui.screens.base import WorkbenchScreen


class SettingsScreen(WorkbenchScreen):
    TITLE_TEXT = "Settings"

    def compose_body(self) -> ComposeResult:
        yield Static("Settings", id="settings-body")
