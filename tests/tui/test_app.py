"""The app shell: first screen, screen keys, command palette entries, status line."""

from __future__ import annotations

from tests.tui.conftest import SIZE, make_app, settle
from workbench.tui.app import SCREENS


async def _run(engine):
    app = make_app(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert type(app.screen).__name__ == "ChatScreen"
        for mode, (_, name, key, _) in SCREENS.items():
            await pilot.press(key)
            await pilot.pause()
            assert type(app.screen).__name__ == name, mode
        status = app.screen.query_one(".status-line")
        assert "Ready" in str(status.render())
        commands = [c.title for c in app.get_system_commands(app.screen)]
        assert {f"Go to {label}" for _, _, _, label in SCREENS.values()} <= set(commands)


def test_screen_keys_and_status(tui_engine):
    import asyncio

    asyncio.run(_run(tui_engine))


def test_an_engine_that_cannot_open_is_reported_not_fatal():
    import asyncio

    from workbench.engine.errors import StoreLocked

    def refuse():
        raise StoreLocked("The database is in use by another process (pid 1).")

    async def run():
        app = make_app(None)
        app._engine_factory = refuse
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.engine_state == "failed"
            assert "in use by another process" in app.status
            await pilot.press("f4")
            assert type(app.screen).__name__ == "MemoryScreen"

    asyncio.run(run())
