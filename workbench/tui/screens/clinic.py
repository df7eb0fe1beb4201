"""The Clinic screen."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from workbench.tui.screens.base import WorkbenchScreen


class ClinicScreen(WorkbenchScreen):
    TITLE_TEXT = "Clinic"

    def compose_body(self) -> ComposeResult:
        yield Static("Clinic", id="clinic-body")
