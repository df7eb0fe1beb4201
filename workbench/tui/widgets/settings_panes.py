"""The five panes of the Settings screen: tables and forms only.

Panes show what the screen hands them (`show(...)`) and read their inputs
(`*_form()`); the screen makes every engine call. Everything from the
engine or the user is displayed with `plain()` (never parsed as markup).
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Input, Label, Select, Static, TabPane

from workbench.tui.safe import plain
from workbench.tui.widgets import FormError

if TYPE_CHECKING:
    from workbench.engine.schemas import MCPServerInfo, ModelInfo, ProviderInfo

SOURCES = {"package": "package", "models-folder": "models folder", "path": "file", "remote": "remote"}
PERMISSIONS = ["read", "write", "exec", "network"]


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return ""
    return f"{size_bytes / 1_000_000_000:.1f} GB" if size_bytes >= 1_000_000_000 else f"{size_bytes / 1_000_000:.0f} MB"


def _required(widget: Input, what: str) -> str:
    value = widget.value.strip()
    if not value:
        widget.focus()
        raise FormError(f"Enter {what}.")
    return value


class SettingsTable(DataTable):
    """A row-cursor table whose rows are keyed by what they show (model id, provider name, ...)."""

    def __init__(self, *columns: str, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._columns = columns

    def on_mount(self) -> None:
        self.add_columns(*self._columns)

    def fill(self, rows: list[tuple[str, list[Any]]], prefer: str | None = None) -> None:
        """Replace the rows (key, cells); keep the cursor on the same key, else on `prefer`."""
        keep = self.selected_key() or prefer
        self.clear()
        for key, cells in rows:
            self.add_row(*(c if not isinstance(c, str) else plain(c) for c in cells), key=key)
        keys = [key for key, _ in rows]
        target = keep if keep in keys else prefer if prefer in keys else None
        if target is not None:
            self.move_cursor(row=keys.index(target))

    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - no valid cursor: nothing selected
            return None


class ModelsPane(TabPane):
    def __init__(self) -> None:
        super().__init__("Models", id="tab-models")

    def compose(self) -> ComposeResult:
        yield Static(
            "The packaged default, .gguf files in the models folder ($WORKBENCH_HOME/models or ./models) "
            "and remote providers' models. Enter or [Use as default] makes one the default of new chats.",
            classes="pane-hint",
            markup=False,
        )
        with Horizontal(classes="pane-buttons"):
            yield Button("Use as default", id="model-use", variant="primary")
            yield Button("Refresh", id="models-refresh")
        yield SettingsTable("Default", "Model", "Source", "Provider", "Size", id="models-table")

    def show(self, models: list[ModelInfo]) -> None:
        default = next((m.id for m in models if m.is_default), None)
        rows = [
            (
                m.id,
                ["●" if m.is_default else "", m.id, SOURCES.get(m.source, m.source), m.provider, _size(m.size_bytes)],
            )
            for m in models
        ]
        self.query_one(SettingsTable).fill(rows, prefer=default)


class ProvidersPane(TabPane):
    def __init__(self) -> None:
        super().__init__("Providers", id="tab-providers")

    def compose(self) -> ComposeResult:
        yield Static(
            "Remote OpenAI- or Anthropic-compatible APIs. Keys are stored in the OS keyring and never "
            "shown here again.",
            classes="pane-hint",
            markup=False,
        )
        with Horizontal(classes="pane-form"):
            yield Input(placeholder="name", id="provider-name", classes="short")
            yield Select(
                [(k, k) for k in ("openai", "anthropic")], value="openai", allow_blank=False, id="provider-kind"
            )
            yield Input(placeholder="base URL (https://…/v1)", id="provider-url")
            yield Input(placeholder="models, comma-separated", id="provider-models")
            yield Button("Add", id="provider-add", variant="primary")
        with Horizontal(classes="pane-form"):
            yield Label("Key for the selected provider:", id="provider-key-label", classes="form-label", markup=False)
            yield Input(placeholder="API key (hidden)", password=True, id="provider-key")
            yield Button("Store key", id="provider-key-save", variant="primary")
            yield Button("Remove provider", id="provider-remove", variant="error")
        yield SettingsTable("Name", "Kind", "Base URL", "Models", "Key", id="providers-table")

    def show(self, providers: list[ProviderInfo]) -> None:
        rows = [
            (p.name, [p.name, p.kind, p.base_url, ", ".join(p.models), "key stored" if p.has_key else "no key"])
            for p in providers
        ]
        self.query_one(SettingsTable).fill(rows)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.query_one("#provider-key-label", Label).update(f"Key for {event.row_key.value}:")

    def provider_form(self) -> dict[str, Any]:
        name = _required(self.query_one("#provider-name", Input), "the provider's name")
        base_url = _required(self.query_one("#provider-url", Input), "the base URL")
        models = [m.strip() for m in self.query_one("#provider-models", Input).value.split(",") if m.strip()]
        if not models:
            self.query_one("#provider-models", Input).focus()
            raise FormError("Enter at least one model name (comma-separated).")
        kind = self.query_one("#provider-kind", Select).value
        return {"name": name, "kind": str(kind), "base_url": base_url, "models": models}

    def clear_provider_form(self) -> None:
        for widget_id in ("#provider-name", "#provider-url", "#provider-models"):
            self.query_one(widget_id, Input).value = ""


class WorkspacePane(TabPane):
    def __init__(self) -> None:
        super().__init__("Workspace", id="tab-workspace")

    def compose(self) -> ComposeResult:
        yield Static(
            "The file, shell, git and python tools can only touch files inside these folders.",
            classes="pane-hint",
            markup=False,
        )
        with Horizontal(classes="pane-form"):
            yield Input(placeholder="folder to add (~ allowed)", id="root-path")
            yield Button("Add folder", id="root-add", variant="primary")
            yield Button("Remove selected", id="root-remove", variant="error")
        yield SettingsTable("Folder", id="roots-table")

    def show(self, roots: list[str]) -> None:
        self.query_one(SettingsTable).fill([(root, [root]) for root in roots])


class McpPane(TabPane):
    def __init__(self) -> None:
        super().__init__("MCP servers", id="tab-mcp")

    def compose(self) -> ComposeResult:
        yield Static(
            "MCP servers run over stdio when their tools are first needed. Type the command as one line: "
            "it is split like a shell would (shlex) into an argument list, and no shell runs it.",
            classes="pane-hint",
            markup=False,
        )
        with Horizontal(classes="pane-form"):
            yield Input(placeholder="name", id="mcp-name", classes="short")
            yield Input(placeholder="command, e.g. uvx mcp-server-time --local-timezone UTC", id="mcp-command")
            yield Select([(p, p) for p in PERMISSIONS], value="exec", allow_blank=False, id="mcp-permission")
            yield Button("Add", id="mcp-add", variant="primary")
        with Horizontal(classes="pane-buttons"):
            yield Button("Accept tool changes", id="mcp-accept")
            yield Button("Remove selected", id="mcp-remove", variant="error")
        yield SettingsTable("Name", "Command", "Permission", "State", "Tools", id="mcp-table")

    def show(self, servers: list[MCPServerInfo]) -> None:
        rows = []
        for s in servers:
            state = "error" if s.error else "running" if s.running else "stopped"
            rows.append(
                (
                    s.name,
                    [
                        s.name,
                        shlex.join(s.command),
                        s.permission,
                        state,
                        ", ".join(t.rpartition(".")[2] for t in s.tools),
                    ],
                )
            )
        self.query_one(SettingsTable).fill(rows)

    def mcp_form(self) -> dict[str, Any]:
        name = _required(self.query_one("#mcp-name", Input), "the server's name")
        line = _required(self.query_one("#mcp-command", Input), "the command that starts the server")
        try:
            command = shlex.split(line)
        except ValueError as exc:
            raise FormError(f"The command cannot be split into arguments: {exc}.") from None
        permission = str(self.query_one("#mcp-permission", Select).value)
        return {"name": name, "command": command, "permission": permission}

    def clear_mcp_form(self) -> None:
        self.query_one("#mcp-name", Input).value = ""
        self.query_one("#mcp-command", Input).value = ""


class ServerPane(TabPane):
    def __init__(self) -> None:
        super().__init__("Local server", id="tab-server")
        self._key_text = ""

    def compose(self) -> ComposeResult:
        yield Static(
            "Serve this app's engine on this machine (OpenAI-compatible API and more) from this process. "
            "It stops when you stop it or quit.",
            classes="pane-hint",
            markup=False,
        )
        with Horizontal(classes="pane-form"):
            yield Label("Listen on:", classes="form-label")
            yield Input(value="127.0.0.1:8765", placeholder="HOST:PORT", id="server-listen", classes="short")
            yield Button("Start", id="server-start", variant="success")
            yield Button("Stop", id="server-stop", variant="error", disabled=True)
        yield Static("Stopped.", id="server-state", markup=False)
        yield Static("", id="server-key", markup=False)

    def show(self, address: str | None, new_key: str | None) -> None:
        """`address` of the running server (None: stopped); `new_key` only right after it was created.

        A new key stays on screen while that server runs and is dropped when it stops.
        """
        self.query_one("#server-state", Static).update(f"Serving on {address}" if address else "Stopped.")
        self.query_one("#server-start", Button).disabled = address is not None
        self.query_one("#server-stop", Button).disabled = address is None
        if address is None:
            text = ""
        elif new_key is not None:
            text = (
                f"New API key (all scopes): {new_key}\nCopy it now: it will not be shown again. "
                "Manage keys with `workbench keys`."
            )
        elif self._key_text:
            return
        else:
            text = "Use one of your API keys (`workbench keys list`, `workbench keys create`)."
        self._key_text = text
        self.query_one("#server-key", Static).update(text)

    def listen(self) -> str:
        return _required(self.query_one("#server-listen", Input), "an address as HOST:PORT")
