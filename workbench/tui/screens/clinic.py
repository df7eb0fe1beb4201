"""The Clinic screen: agent runs (status, duration, tokens, every step) and pending approvals.

Tabs leave room for the orchestration views (workflows, trace timelines) of a
later issue. The lists reload on `r`, when the screen is shown again, and
every two seconds while the Clinic is on screen (tables are redrawn only when
something changed; the selected run's events reload while it is running).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from workbench.engine.schemas import AgentRunRecord, ApprovalRecord, RunEventRecord
from workbench.tui.safe import clean, one_line, plain
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets.approval import ApprovalDecision, ApprovalModal, pretty_arguments
from workbench.tui.widgets.clinic_events import RunView, duration
from workbench.tui.widgets.palette import PaletteCommand, ScreenCommands

AUTO_REFRESH_S = 2.0
RUN_LIMIT = 200


class ClinicScreen(WorkbenchScreen):
    TITLE_TEXT = "Clinic"
    CSS_PATH = "clinic.tcss"
    COMMANDS = {ScreenCommands}
    BINDINGS = [
        Binding("r", "refresh", "Refresh", show=True),
        Binding("v", "review", "Review approval", show=True),
        Binding("ctrl+r", "show_tab('tab-runs')", "Runs", show=False),
        Binding("ctrl+a", "show_tab('tab-approvals')", "Approvals", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, AgentRunRecord] = {}
        self._approvals: dict[str, ApprovalRecord] = {}
        self.selected_run: str | None = None

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="clinic-tabs"):
            with TabPane("Runs", id="tab-runs"):
                with Vertical(id="runs-pane"):
                    yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
                    yield RunView(id="run-view")
            with TabPane("Approvals", id="tab-approvals"):
                with Vertical(id="approvals-pane"):
                    yield DataTable(id="approvals", cursor_type="row", zebra_stripes=True)
                    yield Static("No pending approvals.", id="approval-detail", markup=False)
            with TabPane("Workflows & traces", id="tab-orchestration"):
                yield Static(
                    "Workflow runs and trace timelines appear here once orchestration is available.",
                    id="orchestration-note",
                )

    def on_mount(self) -> None:  # WorkbenchScreen.on_mount runs too (Textual calls each class's handler)
        self.query_one("#runs", DataTable).add_columns(
            "Run", "Agent", "Status", "Steps", "Tokens", "Duration", "Started", "Task"
        )
        self.query_one("#approvals", DataTable).add_columns(
            "Tool", "Permission", "Agent", "Run", "Requested", "Arguments"
        )
        self._poll_timer = self.set_interval(AUTO_REFRESH_S, self._poll)

    def palette_commands(self) -> Iterator[PaletteCommand]:
        yield "Clinic: refresh", "Reload runs and pending approvals", self.action_refresh
        yield "Clinic: runs", "Show agent runs", lambda: self.action_show_tab("tab-runs")
        yield (
            "Clinic: pending approvals",
            "Show tool calls waiting for a decision",
            lambda: self.action_show_tab("tab-approvals"),
        )
        yield "Clinic: review approval", "Approve or deny the highlighted approval", self.action_review

    # ---------------------------------------------------------------- loading

    def engine_ready(self) -> None:
        self.action_refresh()

    def on_screen_resume(self) -> None:
        if self.wb.engine is not None:
            self.action_refresh()

    def action_refresh(self, detail: bool = True) -> None:
        """Reload the runs and approvals (and the selected run's events)."""
        if self.wb.engine is None:
            return
        self.call_engine(
            lambda e: (e.list_runs(limit=RUN_LIMIT), e.pending_approvals()),
            lambda result: self._loaded(*result, detail=detail),
            group="clinic-lists",
            exclusive=True,
        )

    def _poll(self) -> None:
        # a cheap poll while the Clinic is on screen: new runs, progress of running ones, new approvals
        if self.wb.engine is None or self.app.screen is not self:
            return
        selected = self._runs.get(self.selected_run or "")
        self.action_refresh(detail=selected is not None and selected.status == "running")

    def _loaded(self, runs: list[AgentRunRecord], approvals: list[ApprovalRecord], *, detail: bool) -> None:
        if runs != list(self._runs.values()):
            self._show_runs(runs)
        keep = self.selected_run if self.selected_run in self._runs else (runs[0].id if runs else None)
        if keep is not None and (detail or keep != self.selected_run):
            self.load_run(keep)
        if approvals != list(self._approvals.values()):
            self._show_approvals(approvals)

    def _show_runs(self, runs: list[AgentRunRecord]) -> None:
        self._runs = {run.id: run for run in runs}
        table = self.query_one("#runs", DataTable)
        table.clear()
        for run in runs:
            table.add_row(
                plain(run.id),
                plain(run.agent_id),
                plain(run.status, _status_style(run.status)),
                str(run.steps),
                str(run.prompt_tokens + run.completion_tokens),
                duration(run.duration_ms),
                run.started_at.strftime("%m-%d %H:%M:%S"),
                plain(one_line(run.task, 30)),
                key=run.id,
            )
        if self.selected_run in self._runs:
            table.move_cursor(row=table.get_row_index(self.selected_run), scroll=False)

    def load_run(self, run_id: str) -> None:
        self.selected_run = run_id
        self.call_engine(
            lambda e: (e.get_run(run_id), e.run_events(run_id)), self._run_loaded, group="clinic-run", exclusive=True
        )

    async def _run_loaded(self, result: tuple[AgentRunRecord, list[RunEventRecord]]) -> None:
        run, events = result
        if run.id == self.selected_run:
            await self.query_one(RunView).show(run, events)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = str(event.row_key.value)
        if event.data_table.id == "runs" and key != self.selected_run and key in self._runs:
            self.load_run(key)
        elif event.data_table.id == "approvals":
            self._show_approval_detail(self._approvals.get(key))

    # -------------------------------------------------------------- approvals

    def _show_approvals(self, approvals: list[ApprovalRecord]) -> None:
        table = self.query_one("#approvals", DataTable)
        keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value if table.row_count else None
        self._approvals = {a.id: a for a in approvals}
        table.clear()
        for a in approvals:
            arguments = one_line(json.dumps(a.arguments, sort_keys=True, ensure_ascii=False, default=str), 40)
            table.add_row(
                plain(a.tool),
                plain(a.permission),
                plain(a.agent_id or "—"),
                plain(a.run_id or "—"),
                a.created_at.strftime("%m-%d %H:%M:%S"),
                plain(arguments),
                key=a.id,
            )
        if keep in self._approvals:
            table.move_cursor(row=table.get_row_index(keep), scroll=False)
        tab = self.query_one("#clinic-tabs", TabbedContent).get_tab("tab-approvals")
        tab.label = f"Approvals ({len(approvals)})" if approvals else "Approvals"
        current = self._highlighted_approval()
        self._show_approval_detail(current)

    def _highlighted_approval(self) -> ApprovalRecord | None:
        table = self.query_one("#approvals", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._approvals.get(str(key))

    def _show_approval_detail(self, approval: ApprovalRecord | None) -> None:
        detail = self.query_one("#approval-detail", Static)
        if approval is None:
            detail.update("No pending approvals." if not self._approvals else "")
            return
        detail.update(
            plain(
                f"{approval.tool} ({approval.permission}) for agent {approval.agent_id or '—'}, "
                f"run {approval.run_id or '—'}\n{pretty_arguments(approval.arguments)}\n\n"
                "Press enter or v to approve or deny."
            )
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "approvals":
            self.action_review()

    def action_review(self) -> None:
        approval = self._highlighted_approval()
        if approval is None:
            self.notify("No pending approval to review.", severity="warning")
            return
        self.query_one("#clinic-tabs", TabbedContent).active = "tab-approvals"
        self.app.push_screen(ApprovalModal(approval), self._decided)

    def _decided(self, decision: ApprovalDecision | None) -> None:
        if decision is None:
            return
        self.call_engine(
            lambda e: e.resolve_approval(decision.approval_id, decision.approve, decision.reason),
            self._resolved,
            failed=self._resolve_failed,
        )

    def _resolved(self, approval: ApprovalRecord) -> None:
        self.notify(f"{clean(approval.tool)}: {approval.status}.", markup=False)
        self.action_refresh()

    def _resolve_failed(self, exc: Exception) -> None:
        self.show_error(exc)
        self.action_refresh()

    def action_show_tab(self, tab: str) -> None:
        self.query_one("#clinic-tabs", TabbedContent).active = tab


def _status_style(status: str) -> str:
    return {
        "running": "bold yellow",
        "finished": "green",
        "failed": "bold red",
        "blocked": "bold red",
        "cancelled": "dim",
        "interrupted": "dim",
        "max_steps": "yellow",
    }.get(status, "")
