"""The Builder screen: list, create, edit, delete, export and import agents, and build one from a role model.

Left: the agents (search, sort, pages). Right: the selected agent's form and
its generated skills and knowledge. The role-model build is one blocking
engine call without progress events, so it runs in a thread worker while the
screen shows an indeterminate bar, the elapsed time, and what a poll of the
store says (the agent exists, knowledge items stored so far).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Select, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from workbench.engine.schemas import AgentDefinition, AgentPage, Capabilities, RoleModelRequest
from workbench.tui.safe import clean, one_line, plain
from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets import FormError
from workbench.tui.widgets.builder_dialogs import PathAnswer, PathDialog, RoleModelDialog
from workbench.tui.widgets.builder_form import AgentForm
from workbench.tui.widgets.builder_panels import BuildProgress, CapabilitiesView
from workbench.tui.widgets.confirm import ConfirmDialog
from workbench.tui.widgets.palette import PaletteCommand, ScreenCommands

SORTS = [
    ("Newest first", "-created_at"),
    ("Oldest first", "created_at"),
    ("Name A-Z", "name"),
    ("Name Z-A", "-name"),
    ("Recently changed", "-updated_at"),
]
PER_PAGE = 20


class BuilderScreen(WorkbenchScreen):
    TITLE_TEXT = "Builder"
    CSS_PATH = "builder.tcss"
    COMMANDS = {ScreenCommands}
    BINDINGS = [
        Binding("ctrl+n", "new_agent", "New", show=True),
        Binding("ctrl+s", "save", "Save", show=True),
        Binding("ctrl+g", "role_model", "Role model", show=True),
        # Export, Import and Delete show their keys on their buttons: the footer keeps room for F1-F6 at 120 columns
        Binding("ctrl+t", "export", "Export", show=False),
        Binding("ctrl+o", "import", "Import", show=False),
        Binding("f8", "delete", "Delete", show=False),
        Binding("pageup", "page(-1)", "Prev page", show=False),
        Binding("pagedown", "page(1)", "Next page", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        #: the agent in the form (None: a new agent)
        self.current: AgentDefinition | None = None
        self.page = 1
        self.pages = 1
        self._agents: dict[str, AgentDefinition] = {}
        self._build: dict[str, Any] | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="builder-main"):
            with Vertical(id="agent-pane"):
                yield Input(placeholder="Search agents (name or id)", id="agent-search")
                yield Select(SORTS, value="-created_at", allow_blank=False, id="agent-sort")
                yield DataTable(id="agents", cursor_type="row", zebra_stripes=True)
                with Horizontal(id="agent-pager"):
                    yield Button("◀", id="page-prev", compact=True)
                    yield Static("", id="page-label")
                    yield Button("▶", id="page-next", compact=True)
            with Vertical(id="agent-detail"):
                yield BuildProgress(id="build-progress")
                yield Static("", id="builder-error", markup=False)
                with TabbedContent(id="builder-tabs"):
                    with TabPane("Definition", id="tab-definition"):
                        yield AgentForm(id="agent-form")
                        with Horizontal(id="form-buttons"):
                            yield Button("Save", id="save", variant="primary")
                            yield Button("New", id="new")
                            yield Button("Role model…", id="role-model")
                            yield Button("Export… ^t", id="export")
                            yield Button("Import… ^o", id="import")
                            yield Button("Delete f8", id="delete", variant="error")
                    with TabPane("Skills & knowledge", id="tab-capabilities"):
                        yield CapabilitiesView(id="capabilities")

    def on_mount(self) -> None:  # WorkbenchScreen.on_mount runs too (Textual calls each class's handler)
        self.query_one("#agents", DataTable).add_columns("Id", "Name", "Status")

    @property
    def form(self) -> AgentForm:
        return self.query_one("#agent-form", AgentForm)

    def palette_commands(self) -> Iterator[PaletteCommand]:
        yield "Builder: new agent", "Empty the form for a new agent", self.action_new_agent
        yield "Builder: save agent", "Create or update the agent in the form", self.action_save
        yield (
            "Builder: agent from a role model",
            "Generate knowledge and skills for a role model",
            self.action_role_model,
        )
        yield "Builder: export agent", "Write the agent in the form to a YAML file", self.action_export
        yield "Builder: import agent", "Create an agent from a YAML export", self.action_import
        yield "Builder: delete agent", "Delete the agent in the form", self.action_delete

    # ----------------------------------------------------------------- loading

    def engine_ready(self) -> None:
        def choices(engine: Any) -> tuple[list[str], list[str], list[str]]:
            return (
                [m.id for m in engine.list_models()],
                [t.name for t in engine.list_tools()],
                [c.name for c in engine.list_collections()],
            )

        self.call_engine(choices, self._choices_loaded, group="builder-choices")

    def _choices_loaded(self, choices: tuple[list[str], list[str], list[str]]) -> None:
        self.form.set_choices(*choices)
        self.load_agents(open_first=True)

    def load_agents(self, select_id: str | None = None, *, open_first: bool = False) -> None:
        """Reload the list page; then open `select_id` (or the first agent if `open_first`)."""
        page, sort = self.page, self.query_one("#agent-sort", Select).value
        query = self.query_one("#agent-search", Input).value.strip() or None
        self.call_engine(
            lambda e: e.list_agents(page=page, per_page=PER_PAGE, sort=sort, query=query),
            lambda result: self._agents_loaded(result, select_id, open_first),
            group="builder-list",
            exclusive=True,
        )

    def _agents_loaded(self, result: AgentPage, select_id: str | None, open_first: bool) -> None:
        table = self.query_one("#agents", DataTable)
        table.clear()
        self._agents = {agent.id: agent for agent in result.items}
        for agent in result.items:
            table.add_row(
                plain(one_line(agent.id, 16)), plain(one_line(agent.name, 16)), plain(agent.status), key=agent.id
            )
        self.pages = max(1, -(-result.total // result.per_page))
        self.query_one("#page-label", Static).update(f"Page {result.page}/{self.pages} · {result.total} agents")
        target = select_id if select_id in self._agents else None
        if target is None and open_first and result.items:
            target = result.items[0].id
        if target is not None:
            table.move_cursor(row=table.get_row_index(target))
            self.open_agent(self._agents[target])
        elif open_first:
            self.action_new_agent()

    def open_agent(self, agent: AgentDefinition) -> None:
        self.current = agent
        self.form.show_agent(agent)
        self._clear_error()
        self.call_engine(
            lambda e: e.capabilities(agent.id),
            lambda caps: self._show_caps(caps, agent),
            group="builder-caps",
            exclusive=True,
        )

    def _show_caps(self, caps: Capabilities, agent: AgentDefinition) -> None:
        self.query_one(CapabilitiesView).show(caps, agent.metadata.get("build_error"))

    # ------------------------------------------------------------------ events

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        agent = self._agents.get(str(event.row_key.value))
        if agent is not None:
            self.open_agent(agent)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "agent-search":
            self.page = 1
            self.load_agents()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "agent-sort" and self.wb.engine is not None:
            self.page = 1
            self.load_agents()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {
            "save": self.action_save,
            "new": self.action_new_agent,
            "role-model": self.action_role_model,
            "export": self.action_export,
            "import": self.action_import,
            "delete": self.action_delete,
            "page-prev": lambda: self.action_page(-1),
            "page-next": lambda: self.action_page(1),
        }
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    def action_page(self, delta: int) -> None:
        page = min(max(1, self.page + delta), self.pages)
        if page != self.page:
            self.page = page
            self.load_agents()

    # ------------------------------------------------------------ create/edit

    def action_new_agent(self) -> None:
        self.current = None
        self.form.show_agent(None)
        self.query_one(CapabilitiesView).show(None)
        self.query_one("#builder-tabs", TabbedContent).active = "tab-definition"
        self._clear_error()
        self.query_one("#agent-name", Input).focus()

    def action_save(self) -> None:
        if self.wb.engine is None:
            return
        try:
            changes = self.form.to_changes()
        except FormError as exc:
            self._show_error(str(exc))
            return
        if self.current is None:
            definition = {"id": self.form.agent_id, **changes}
            if not definition["id"]:
                self._show_error("Give the agent a name (or an id) first.")
                return
            self.call_engine(lambda e: e.create_agent(definition), self._saved, failed=self._save_failed)
        else:
            agent_id = self.current.id
            self.call_engine(lambda e: e.update_agent(agent_id, changes), self._saved, failed=self._save_failed)

    def _saved(self, agent: AgentDefinition) -> None:
        self._clear_error()
        self.notify(f"Saved agent {clean(agent.id)}.", markup=False)
        self.load_agents(select_id=agent.id)

    def _save_failed(self, exc: Exception) -> None:
        self._show_error(str(exc))
        self.show_error(exc)

    def _show_error(self, message: str) -> None:
        error = self.query_one("#builder-error", Static)
        error.update(clean(message))
        error.add_class("-shown")

    def _clear_error(self) -> None:
        error = self.query_one("#builder-error", Static)
        error.update("")
        error.remove_class("-shown")

    def action_delete(self) -> None:
        agent = self.current
        if agent is None or self.wb.engine is None:
            self.notify("Open an agent to delete it.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.call_engine(lambda e: e.delete_agent(agent.id), lambda _: self._deleted(agent))

        self.app.push_screen(
            ConfirmDialog(
                f"Delete the agent {clean(agent.name)} ({clean(agent.id)})? This cannot be undone.", "Delete"
            ),
            answered,
        )

    def _deleted(self, agent: AgentDefinition) -> None:
        self.notify(f"Deleted agent {clean(agent.id)}.", markup=False)
        self.action_new_agent()
        self.load_agents()

    # ---------------------------------------------------------- export/import

    def action_export(self) -> None:
        agent = self.current
        if agent is None or self.wb.engine is None:
            self.notify("Open an agent to export it.", severity="warning")
            return

        def chosen(answer: PathAnswer | None) -> None:
            if answer is None:
                return
            path = Path(answer.path).expanduser()
            if path.exists():
                self.app.push_screen(
                    ConfirmDialog(f"{clean(path)} exists. Overwrite it?", "Overwrite"),
                    lambda yes: self._export(agent.id, path) if yes else None,
                )
            else:
                self._export(agent.id, path)

        self.app.push_screen(
            PathDialog(f"Export {clean(agent.name)} to a YAML file", "Export", f"{agent.id}.yaml"), chosen
        )

    def _export(self, agent_id: str, path: Path) -> None:
        def write(engine: Any) -> Path:
            path.write_text(engine.export_agent(agent_id), encoding="utf-8")
            return path.resolve()

        self.call_engine(write, lambda where: self.notify(f"Exported {agent_id} to {clean(where)}.", markup=False))

    def action_import(self) -> None:
        if self.wb.engine is None:
            return

        def chosen(answer: PathAnswer | None) -> None:
            if answer is None:
                return
            path, replace = Path(answer.path).expanduser(), answer.replace
            self.call_engine(
                lambda e: e.import_agent(path.read_text(encoding="utf-8"), replace=replace), self._imported
            )

        self.app.push_screen(PathDialog("Import an agent from a YAML export", "Import", replace_option=True), chosen)

    def _imported(self, agent: AgentDefinition) -> None:
        self.notify(f"Imported agent {clean(agent.id)}.", markup=False)
        self.load_agents(select_id=agent.id)

    # ------------------------------------------------------- role-model build

    def action_role_model(self) -> None:
        if self.wb.engine is None:
            return
        if self._build is not None:
            self.notify("A role-model build is already running.", severity="warning")
            return
        self.app.push_screen(RoleModelDialog(), lambda request: self._start_build(request) if request else None)

    def _start_build(self, request: RoleModelRequest) -> None:
        name = request.role_model.name
        self._build = {"request": request, "started": time.monotonic(), "timer": self.set_interval(1.0, self._tick)}
        self.query_one(BuildProgress).start(
            f"Building {name} ({request.role_model.occupation}), {request.deepening_cycles} deepening cycle(s)"
        )
        self.run_worker(lambda: self._run_build(request), thread=True, group="builder-build", name="role-model build")

    def _run_build(self, request: RoleModelRequest) -> None:
        """Worker thread: the blocking build (then the new agent's capabilities) without blocking app exit.

        The engine call cannot be interrupted, so it runs on a daemon thread that
        this worker waits for; when the app closes, the worker is cancelled and
        returns, and the abandoned build no longer holds the exit up.
        """
        engine, worker, outcome = self.engine, get_current_worker(), {}

        def build() -> None:
            try:
                agent = engine.create_agent_from_role_model(request)
                outcome["done"] = (agent, engine.capabilities(agent.id), None)
            except Exception as exc:  # noqa: BLE001 - shown to the user
                outcome["done"] = (None, None, exc)

        thread = threading.Thread(target=build, name="role-model build", daemon=True)
        thread.start()
        while thread.is_alive():
            if worker.is_cancelled:
                return
            thread.join(0.25)
        self.app.call_from_thread(self._build_finished, *outcome["done"])

    def _tick(self) -> None:
        if self._build is None:
            return
        self.query_one(BuildProgress).set_elapsed(time.monotonic() - self._build["started"])
        request: RoleModelRequest = self._build["request"]

        def poll(engine: Any) -> str:
            agent = engine.get_agent(request.agent_id)
            if agent.status != "building":
                return "Storing the result…"
            known = len(engine.list_knowledge(request.role_model.name))
            return f"Generating knowledge, then skills ({known} knowledge items stored so far)…"

        self.call_engine(poll, self._polled, failed=lambda exc: None, group="builder-poll", exclusive=True)

    def _polled(self, step: str) -> None:
        if self._build is None:
            return
        self.query_one(BuildProgress).set_step(step)
        if not self._build.get("listed"):  # the agent exists now (status building): show it in the list
            self._build["listed"] = True
            self.load_agents()  # the form is left alone: it may hold unsaved edits

    def _build_finished(self, agent: AgentDefinition | None, caps: Capabilities | None, exc: Exception | None) -> None:
        if self._build is not None:
            self._build["timer"].stop()
        self._build = None
        self.query_one(BuildProgress).stop()
        if exc is not None or agent is None or caps is None:
            self._show_error(f"The role-model build failed: {exc}")
            if exc is not None:
                self.show_error(exc)
            self.load_agents()
            return
        error = agent.metadata.get("build_error")
        if agent.status == "failed":
            self.notify(f"The build of {clean(agent.id)} failed: {clean(error)}", severity="error", markup=False)
        else:
            self.notify(
                f"Built {clean(agent.id)}: {len(caps.skills)} skills, {len(caps.knowledge)} knowledge items.",
                markup=False,
            )
        self.load_agents(select_id=agent.id)
        self.query_one(CapabilitiesView).show(caps, error)
        self.query_one("#builder-tabs", TabbedContent).active = "tab-capabilities"
        # focus inside the pane, or the focus coming back to the form would switch the tab back
        self.query_one(CapabilitiesView).focus()
