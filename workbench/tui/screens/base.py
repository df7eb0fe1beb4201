"""What every screen shares: the header, footer and status line, and engine calls off the UI thread.

Screens never call the engine on the event loop: `call_engine` runs a function
of the engine in a thread worker and hands the result (or the error) back on
the UI thread. Long streams (chat, ingest, agent runs) use `run_worker(...,
thread=True)` directly and post results with `app.call_from_thread`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from workbench.tui.safe import clean

if TYPE_CHECKING:
    from workbench.engine.api import EngineAPI
    from workbench.tui.app import WorkbenchApp


class StatusLine(Static):
    """One line under each screen: engine state, model, server address."""

    DEFAULT_CLASSES = "status-line"

    def __init__(self) -> None:
        super().__init__("", markup=False)

    def on_mount(self) -> None:
        self.watch(self.app, "status", self._show)

    def _show(self, status: str) -> None:
        self.update(clean(status))


class WorkbenchScreen(Screen):
    """Base of the six screens. Subclasses implement `compose_body` and may override `engine_ready`."""

    #: shown in the header
    TITLE_TEXT = "Workbench"

    @property
    def wb(self) -> WorkbenchApp:
        return self.app  # type: ignore[return-value]

    @property
    def engine(self) -> EngineAPI:
        """The engine; only valid once `engine_ready` has been called."""
        engine = self.wb.engine
        if engine is None:
            raise RuntimeError("the engine is not open yet")
        return engine

    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.compose_body()
        yield StatusLine()
        yield Footer(compact=True)  # every screen key fits in 120 columns, beside the screen's own

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        self.sub_title = self.TITLE_TEXT
        self.watch(self.app, "engine_state", self._engine_state_changed)

    def _engine_state_changed(self, state: str) -> None:
        if state in ("ready", "warming") and not getattr(self, "_engine_seen", False):
            self._engine_seen = True
            self.engine_ready()

    def engine_ready(self) -> None:
        """Called once, on the UI thread, when the engine is open (the model may still be loading)."""

    def call_engine(
        self,
        call: Callable[[EngineAPI], Any],
        done: Callable[[Any], None] | None = None,
        *,
        failed: Callable[[Exception], None] | None = None,
        group: str = "engine",
        exclusive: bool = False,
    ) -> None:
        """Run `call(engine)` in a thread worker; `done(result)` / `failed(error)` run on the UI thread.

        Without `failed`, an engine error becomes an error notification with its
        message (shown literally, never as markup).
        """
        app = self.app

        def work() -> None:
            try:
                result = call(self.engine)
            except Exception as exc:  # noqa: BLE001 - every failure is shown, none kills the UI
                app.call_from_thread(failed or self.show_error, exc)
                return
            if done is not None:
                app.call_from_thread(done, result)

        self.run_worker(work, thread=True, group=group, exclusive=exclusive)

    def show_error(self, exc: Exception) -> None:
        """An error notification: the engine's message, literally."""
        from workbench.engine.errors import WorkbenchError

        message = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
        self.notify(clean(message), title="Error", severity="error", markup=False, timeout=8)
