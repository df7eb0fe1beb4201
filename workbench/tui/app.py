"""The Workbench TUI: six screens over one `EngineAPI`.

The app paints first and opens the engine afterwards, on a thread: the
database opens, then the embedder and the chat model load in the background
while the status line says so. Every screen talks to the engine only through
`EngineAPI` (in-process `Engine`, or `RemoteEngine` with `--connect`), from
thread workers; widgets are only touched on the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from workbench.tui.safe import clean, one_line

if TYPE_CHECKING:
    from workbench.engine.api import EngineAPI

#: mode name -> (module, class, key, label); the screens import lazily so the first paint is fast
SCREENS: dict[str, tuple[str, str, str, str]] = {
    "chat": ("workbench.tui.screens.chat", "ChatScreen", "f1", "Chat"),
    "builder": ("workbench.tui.screens.builder", "BuilderScreen", "f2", "Builder"),
    "knowledge": ("workbench.tui.screens.knowledge", "KnowledgeScreen", "f3", "Knowledge"),
    "memory": ("workbench.tui.screens.memory", "MemoryScreen", "f4", "Memory"),
    "clinic": ("workbench.tui.screens.clinic", "ClinicScreen", "f5", "Clinic"),
    "settings": ("workbench.tui.screens.settings", "SettingsScreen", "f6", "Settings"),
}


def _screen_factory(mode: str) -> Callable[[], Screen]:
    def make() -> Screen:
        import importlib

        module, name, _, _ = SCREENS[mode]
        return getattr(importlib.import_module(module), name)()

    return make


class WorkbenchApp(App[None]):
    """`engine_factory` opens the engine (on a worker thread); `serve` starts the local server on it."""

    CSS_PATH = "app.tcss"
    TITLE = "Workbench"
    MODES = {mode: _screen_factory(mode) for mode in SCREENS}
    BINDINGS = [
        # priority: a focused TextArea would otherwise take F6 (select line) and the like
        *(Binding(key, f"show('{mode}')", label, priority=True) for mode, (_, _, key, label) in SCREENS.items()),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    #: "opening" -> "warming" -> "ready", or "failed"
    engine_state: reactive[str] = reactive("opening")
    #: the status line's text
    status: reactive[str] = reactive("Opening the database…")
    #: the embedded server's address ("" while none runs); screens watch it
    server_address: reactive[str] = reactive("")

    def __init__(
        self,
        engine_factory: Callable[[], EngineAPI],
        *,
        warm: bool = True,
        serve: list[str] | None = None,
        first_mode: str = "chat",
    ) -> None:
        super().__init__()
        self._engine_factory = engine_factory
        self._warm = warm
        self._serve = serve
        self._first_mode = first_mode
        self.engine: EngineAPI | None = None
        #: the embedded local server (workbench.server.embedded.EmbeddedServer) while it runs
        self.server: Any = None
        self.model_label = ""

    # ---------------------------------------------------------------- startup

    def on_mount(self) -> None:
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        # Thread workers run on the loop's default executor; its default size
        # (cores + 4) is too small once runs wait on approvals next to a chat.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="workbench-tui")
        )
        self.switch_mode(self._first_mode)
        # Open the engine once the first screen is on the terminal: its imports (DuckDB, pydantic
        # models) would otherwise compete with the first paint for the interpreter.
        self.call_after_refresh(self.run_worker, self._open_engine, thread=True, group="startup", name="open engine")

    def _open_engine(self) -> None:
        try:
            engine = self._engine_factory()
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app stays usable
            self.call_from_thread(self._engine_failed, exc)
            return
        try:
            self.model_label = next((m.id for m in engine.list_models() if m.is_default), "")
        except Exception:  # noqa: BLE001 - no model installed: chat says so when used
            self.model_label = ""
        self.call_from_thread(self._engine_opened, engine)
        if not self._warm:
            self.call_from_thread(self._engine_warmed, None)
            return
        try:
            engine.warm_up()
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self._engine_warmed, exc)
            return
        self.call_from_thread(self._engine_warmed, None)

    def _engine_opened(self, engine: EngineAPI) -> None:
        self.engine = engine
        self.engine_state = "warming"
        self.status = "Loading the model and the embedder…" if self._warm else "Ready"
        if self._serve is not None:
            self.start_server(self._serve)

    def _engine_failed(self, exc: Exception) -> None:
        self.engine_state = "failed"
        self.status = f"The engine could not open: {one_line(exc, 200)}"
        self.notify(clean(str(exc)), title="Cannot open the engine", severity="error", markup=False, timeout=30)

    def _engine_warmed(self, exc: Exception | None) -> None:
        if exc is not None:
            self.notify(clean(str(exc)), title="Model not loaded", severity="warning", markup=False, timeout=15)
        self.engine_state = "ready"
        self.refresh_status()

    def refresh_status(self) -> None:
        """Rebuild the status line from the engine and the server (UI thread)."""
        if self.engine is None:
            return
        parts = ["Ready" if self.engine_state == "ready" else "Loading the model and the embedder…"]
        if self.model_label:
            parts.append(f"model {self.model_label}")
        where = getattr(self.engine, "base_url", None)
        parts.append(f"connected to {where}" if where else "in-process engine")
        if self.server is not None:
            parts.append(f"serving {self.server.address}")
        self.status = " · ".join(p for p in parts if p)

    # ------------------------------------------------------------- navigation

    def action_show(self, mode: str) -> None:
        if mode in SCREENS:
            self.switch_mode(mode)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, (_, _, key, label) in SCREENS.items():
            yield SystemCommand(
                f"Go to {label}", f"Open the {label} screen ({key.upper()})", lambda m=mode: self.action_show(m)
            )

    # ----------------------------------------------------------------- server

    def start_server(self, listens: list[str], done: Callable[[], None] | None = None) -> None:
        """Serve this app's engine on localhost from this process (`workbench --serve`, or Settings).

        Binding, the key store and uvicorn's start run on a worker thread; `done`
        runs on the UI thread afterwards, whether the server started or not.
        """
        if self.engine is None or self.server is not None:
            return
        engine = self.engine

        def work() -> None:
            from workbench.server.embedded import EmbeddedServer

            server = EmbeddedServer(engine, listens or None)
            try:
                server.start()
            except Exception as exc:  # noqa: BLE001 - reported, the app goes on
                self.call_from_thread(self._server_changed, None, exc, done)
                return
            self.call_from_thread(self._server_changed, server, None, done)

        self.run_worker(work, thread=True, group="server", exclusive=True, name="start server")

    def stop_server(self, done: Callable[[], None] | None = None) -> None:
        """Stop the embedded server (in-flight requests get a few seconds) on a worker thread."""
        if self.server is None:
            if done is not None:
                done()
            return
        server, self.server = self.server, None

        def work() -> None:
            server.stop()
            self.call_from_thread(self._server_changed, None, None, done)

        self.run_worker(work, thread=True, group="server", exclusive=True, name="stop server")

    def _server_changed(self, server: Any, exc: Exception | None, done: Callable[[], None] | None) -> None:
        if exc is not None:
            self.notify(clean(str(exc)), title="Server not started", severity="error", markup=False, timeout=15)
        elif server is not None:
            self.server = server
            note = " A new API key was created: Settings (F6) shows it once." if server.new_key else ""
            self.notify(clean(f"Serving on {server.address}.{note}"), title="Local server", markup=False, timeout=10)
        self.server_address = self.server.address if self.server is not None else ""
        self.refresh_status()
        if done is not None:
            done()

    def shutdown(self) -> None:
        """Stop the server and close the engine (after the app has exited)."""
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def run_tui(engine_factory: Callable[[], EngineAPI], serve: list[str] | None = None) -> int:
    """Run the TUI until the user quits; always closes the engine."""
    app = WorkbenchApp(engine_factory, serve=serve)
    restore = _quit_on_signals(app)
    try:
        app.run()
    finally:
        restore()
        app.shutdown()
    return app.return_code or 0


def _quit_on_signals(app: App[None]) -> Callable[[], None]:
    """SIGTERM and SIGHUP quit the app like Ctrl+Q, so the terminal is restored and `shutdown` stops the
    local server (server.json removed, its local-session key revoked) instead of the process dying with
    them left behind. Returns a function that puts the previous handlers back."""
    import signal

    def handler(sig: int, frame: object) -> None:
        loop = app._loop
        if loop is not None and loop.is_running():  # the handler runs between the loop's callbacks
            loop.call_soon_threadsafe(app.exit)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
