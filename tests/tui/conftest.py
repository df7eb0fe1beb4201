"""TUI tests: the real app over a real engine (temp home, the session's embedder, the real default model).

`make_app` builds the app over an already-open engine (no warm-up: the
session's models are already loaded or load on first use); `settle` waits
until the engine is open and every worker has finished, so a test or a
snapshot sees a quiet screen.
"""

from __future__ import annotations

from typing import Any

import pytest

SIZE = (120, 36)


@pytest.fixture
def tui_engine(mem_engine):
    """The engine a TUI test drives (closed by `mem_engine`)."""
    return mem_engine


def make_app(engine: Any, mode: str = "chat", **options: Any):
    from workbench.tui.app import WorkbenchApp

    return WorkbenchApp(lambda: engine, warm=False, first_mode=mode, **options)


async def settle(pilot: Any, timeout: float = 120.0) -> None:
    """Wait until the engine is open and no worker is running, then let the screen repaint."""
    import asyncio

    app = pilot.app
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while app.engine_state not in ("ready", "failed"):
        if loop.time() > deadline:
            raise AssertionError(f"the engine did not open (state {app.engine_state})")
        await pilot.pause(0.05)
    while any(not w.is_finished for w in app.workers):
        if loop.time() > deadline:
            raise AssertionError(f"workers still running: {[w.name for w in app.workers if not w.is_finished]}")
        await pilot.pause(0.05)
    await pilot.pause()


async def wait_for(pilot: Any, condition: Any, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll `condition()` on the UI loop until it is true."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)
