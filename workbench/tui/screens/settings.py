"""The Settings screen: models, provider keys, workspace roots, MCP servers, the local server.

The panes (workbench/tui/widgets/settings_panes.py) only show data and read
forms; this screen makes every engine call, off the UI thread, and refreshes
the pane it changed. Provider keys go from a password input straight to the
engine (which stores them in the OS keyring); they are never displayed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable, Input, TabbedContent

from workbench.tui.screens.base import WorkbenchScreen
from workbench.tui.widgets import FormError
from workbench.tui.widgets.palette import ScreenCommands
from workbench.tui.widgets.settings_panes import (
    McpPane,
    ModelsPane,
    ProvidersPane,
    ServerPane,
    SettingsTable,
    WorkspacePane,
)


class SettingsScreen(WorkbenchScreen):
    TITLE_TEXT = "Settings"
    CSS_PATH = "settings.tcss"
    COMMANDS = {ScreenCommands}
    BINDINGS = [
        Binding("r", "refresh", "Refresh", show=True),
        Binding("s", "toggle_server", "Start/stop server", show=True),
    ]

    TABS = {
        "tab-models": "Models",
        "tab-providers": "Providers",
        "tab-workspace": "Workspace",
        "tab-mcp": "MCP servers",
        "tab-server": "Local server",
    }

    def compose_body(self) -> ComposeResult:
        with TabbedContent(id="settings-tabs"):
            yield ModelsPane()
            yield ProvidersPane()
            yield WorkspacePane()
            yield McpPane()
            yield ServerPane()

    def engine_ready(self) -> None:
        self.action_refresh()
        # `workbench --serve` starts the server right after the engine opens, after this call.
        self.watch(self.app, "server_address", lambda _address: self._show_server(), init=False)

    def on_screen_resume(self) -> None:
        # The server may have been started elsewhere (workbench --serve) while another screen showed.
        self.call_after_refresh(self._show_server)

    def palette_commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        commands: list[tuple[str, str, Callable[[], Any]]] = [
            ("Settings: refresh", "Reload models, providers, folders and MCP servers", self.action_refresh),
            (
                "Settings: start or stop the local server",
                "Serve this engine on localhost (S)",
                self.action_toggle_server,
            ),
        ]
        for tab_id, label in self.TABS.items():
            commands.append((f"Settings: {label}", f"Show the {label} tab", lambda t=tab_id: self.action_tab(t)))
        return commands

    # ---------------------------------------------------------------- loading

    def action_tab(self, tab_id: str) -> None:
        self.query_one(TabbedContent).active = tab_id

    def action_refresh(self) -> None:
        if self.wb.engine is None:
            return
        self._load_models()
        self._load_providers()
        self.call_engine(lambda e: e.workspace_roots(), self.query_one(WorkspacePane).show)
        self._load_mcp()
        self._show_server()

    def _load_models(self) -> None:
        self.call_engine(lambda e: e.list_models(), self.query_one(ModelsPane).show)

    def _load_providers(self) -> None:
        self.call_engine(lambda e: e.list_providers(), self.query_one(ProvidersPane).show)

    def _load_mcp(self) -> None:
        self.call_engine(lambda e: e.list_mcp_servers(), self.query_one(McpPane).show)

    def _selected(self, table_id: str, what: str) -> str | None:
        key = self.query_one(f"#{table_id}", SettingsTable).selected_key()
        if key is None:
            self.notify(f"Select {what} first.", severity="warning", markup=False)
        return key

    def _done(self, message: str, *reload: Callable[[], None]) -> Callable[[Any], None]:
        def done(_: Any) -> None:
            self.notify(message, markup=False)
            for load in reload:
                load()

        return done

    def _form(self, read: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        try:
            return read()
        except FormError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return None

    # ---------------------------------------------------------------- buttons

    def on_button_pressed(self, event: Button.Pressed) -> None:
        handlers: dict[str, Callable[[], None]] = {
            "model-use": self._use_model,
            "models-refresh": self._load_models,
            "provider-add": self._add_provider,
            "provider-key-save": self._store_key,
            "provider-remove": self._remove_provider,
            "root-add": self._add_root,
            "root-remove": self._remove_root,
            "mcp-add": self._add_mcp,
            "mcp-remove": self._remove_mcp,
            "mcp-accept": self._accept_mcp,
            "server-start": self._start_server,
            "server-stop": self._stop_server,
        }
        handler = handlers.get(event.button.id or "")
        if handler is not None:
            event.stop()
            handler()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        handlers = {
            "provider-key": self._store_key,
            "root-path": self._add_root,
            "mcp-command": self._add_mcp,
            "provider-models": self._add_provider,
            "server-listen": self._start_server,
        }
        handler = handlers.get(event.input.id or "")
        if handler is not None:
            event.stop()
            handler()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "models-table":
            event.stop()
            self._use_model()

    # ----------------------------------------------------------------- models

    def _use_model(self) -> None:
        model = self._selected("models-table", "a model")
        if model is not None:
            self.call_engine(lambda e: e.set_default_model(model), self._model_set)

    def _model_set(self, info: Any) -> None:
        self.wb.model_label = info.id
        self.wb.refresh_status()
        self.notify(f"New chats use {info.id}.", title="Default model", markup=False)
        self._load_models()

    # -------------------------------------------------------------- providers

    def _add_provider(self) -> None:
        pane = self.query_one(ProvidersPane)
        form = self._form(pane.provider_form)
        if form is None:
            return

        def added(info: Any) -> None:
            pane.clear_provider_form()
            self.notify(f"Provider {info.name} saved; store its key below.", markup=False)
            self._load_providers()
            self._load_models()

        self.call_engine(lambda e: e.add_provider(**form), added)

    def _store_key(self) -> None:
        field = self.query_one("#provider-key", Input)
        name = self._selected("providers-table", "a provider")
        if name is None:
            return
        if not field.value.strip():
            self.notify("Enter the API key first.", severity="warning", markup=False)
            return
        secret, field.value = field.value, ""  # gone from the widget before the worker even starts
        self.call_engine(
            lambda e: e.set_provider_key(name, secret),
            self._done(f"Key stored for {name} in the OS keyring.", self._load_providers),
        )

    def _remove_provider(self) -> None:
        name = self._selected("providers-table", "a provider")
        if name is not None:
            self.call_engine(
                lambda e: e.remove_provider(name),
                self._done(f"Provider {name} and its key removed.", self._load_providers, self._load_models),
            )

    # -------------------------------------------------------------- workspace

    def _add_root(self) -> None:
        field = self.query_one("#root-path", Input)
        path = field.value.strip()
        if not path:
            self.notify("Enter a folder to add.", severity="warning", markup=False)
            return

        def added(roots: list[str]) -> None:
            field.value = ""
            self.query_one(WorkspacePane).show(roots)

        self.call_engine(lambda e: e.add_workspace_root(path), added)

    def _remove_root(self) -> None:
        root = self._selected("roots-table", "a folder")
        if root is not None:
            self.call_engine(lambda e: e.remove_workspace_root(root), self.query_one(WorkspacePane).show)

    # -------------------------------------------------------------------- MCP

    def _add_mcp(self) -> None:
        pane = self.query_one(McpPane)
        form = self._form(pane.mcp_form)
        if form is None:
            return

        def added(info: Any) -> None:
            pane.clear_mcp_form()
            self.notify(f"MCP server {info.name} added; it starts when its tools are first needed.", markup=False)
            self._load_mcp()

        self.call_engine(lambda e: e.add_mcp_server(**form), added)

    def _remove_mcp(self) -> None:
        name = self._selected("mcp-table", "an MCP server")
        if name is not None:
            self.call_engine(
                lambda e: e.remove_mcp_server(name), self._done(f"MCP server {name} removed.", self._load_mcp)
            )

    def _accept_mcp(self) -> None:
        name = self._selected("mcp-table", "an MCP server")
        if name is not None:
            self.notify(f"Starting {name} to read its tools…", markup=False)
            self.call_engine(
                lambda e: e.accept_mcp_changes(name),
                self._done(f"The tools of {name} are accepted as they are now.", self._load_mcp),
                group="mcp",
            )

    # ----------------------------------------------------------------- server

    def action_toggle_server(self) -> None:
        if self.wb.server is None:
            self._start_server()
        else:
            self._stop_server()

    def _start_server(self) -> None:
        if self.wb.engine is None or self.wb.server is not None:
            return
        try:
            listen = self.query_one(ServerPane).listen()
        except FormError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        self.wb.start_server([listen], done=self._show_server)  # reports its own errors

    def _stop_server(self) -> None:
        self.wb.stop_server(done=self._show_server)

    def _show_server(self) -> None:
        server = self.wb.server
        new_key = None
        if server is not None:
            new_key, server.new_key = server.new_key, None  # shown once, then only the screen has it
        self.query_one(ServerPane).show(server.address if server is not None else None, new_key)
