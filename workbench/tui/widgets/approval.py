"""The approval modal: the exact tool and its full arguments, approve or deny.

Reusable by any screen that meets a pending approval (the Chat screen during a
run, the Clinic for pending approvals): push `ApprovalModal(approval)` with a
callback; it dismisses with an `ApprovalDecision` (or `None` when closed with
escape, which decides nothing). Resolving the approval through the engine is
the caller's job, off the UI thread. Everything shown is untrusted text and is
displayed literally.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from workbench.tui.safe import clean, plain

if TYPE_CHECKING:
    from workbench.engine.schemas import ApprovalRecord


@dataclass(frozen=True)
class ApprovalDecision:
    approval_id: str
    approve: bool
    reason: str | None = None


def pretty_arguments(arguments: object) -> str:
    """The arguments as indented JSON, exactly as the tool would receive them."""
    try:
        return json.dumps(arguments, indent=2, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return repr(arguments)


class ApprovalModal(ModalScreen["ApprovalDecision | None"]):
    """Approve or deny one tool call; dismisses with the decision."""

    CSS_PATH = "approval.tcss"

    BINDINGS = [
        Binding("a", "decide(True)", "Approve", show=True),
        Binding("d", "decide(False)", "Deny", show=True),
        Binding("escape", "dismiss_undecided", "Decide later", show=True),
    ]

    def __init__(self, approval: ApprovalRecord) -> None:
        super().__init__()
        self.approval = approval

    def compose(self) -> ComposeResult:
        approval = self.approval
        with Vertical(id="approval-box"):
            yield Label("A tool call needs your approval", id="approval-title")
            yield Static(plain(f"Tool: {approval.tool}"), id="approval-tool", markup=False)
            yield Static(
                plain(
                    f"Permission: {approval.permission}"
                    + (f" · agent {approval.agent_id}" if approval.agent_id else "")
                ),
                id="approval-meta",
                markup=False,
            )
            with VerticalScroll(id="approval-args"):
                yield Static(plain(pretty_arguments(approval.arguments)), id="approval-arguments", markup=False)
            yield Input(placeholder="Reason (optional, recorded with the decision)", id="approval-reason")
            with Horizontal(id="approval-buttons"):
                yield Button("Approve (a)", id="approve", variant="success")
                yield Button("Deny (d)", id="deny", variant="error")

    def on_mount(self) -> None:
        self.query_one("#deny", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_decide(event.button.id == "approve")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#deny", Button).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While typing a reason, "a" and "d" are letters, not decisions.
        return not (action == "decide" and isinstance(self.focused, Input))

    def action_decide(self, approve: bool) -> None:
        reason = clean(self.query_one("#approval-reason", Input).value).strip() or None
        self.dismiss(ApprovalDecision(self.approval.id, approve, reason))

    def action_dismiss_undecided(self) -> None:
        self.dismiss(None)
