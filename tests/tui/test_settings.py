"""The Settings screen against a real engine: models, provider keys, workspace roots, MCP servers, local server."""

from __future__ import annotations

import asyncio
import html
import json
import re
import shlex
import socket
import sys

import httpx
import pytest

from tests.tui.conftest import SIZE, make_app, settle, wait_for
from workbench.engine import secrets
from workbench.server.run import SERVER_FILE

TIME_CMD = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
SECRET = "sk-test-Zq7Rk2Lp9Wx4Mv8Nc3"


def screen_text(app) -> str:
    """Every line the terminal shows (the screenshot's text, spans joined in order)."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for x, y, text in re.findall(r'<text[^>]*x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>', app.export_screenshot()):
        rows.setdefault(float(y), []).append((float(x), html.unescape(text).replace("\xa0", " ")))
    return "\n".join("".join(t for _, t in sorted(spans)) for _, spans in sorted(rows.items()))


def shows(app, text: str) -> bool:
    """Whether `text` is on screen, also when a notification wrapped it over several lines
    (a toast shares its bottom rows with the status line, so toasts are also read on their own)."""
    squash = lambda t: re.sub(r"[\s▌]+", "", t)  # noqa: E731
    toasts = "".join(str(toast.render()) for toast in app.screen.query("Toast"))
    return squash(text) in squash(screen_text(app)) or squash(text) in squash(toasts)


def cells(app, table_id: str) -> list[list[str]]:
    table = app.screen.query_one(f"#{table_id}")
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def static_text(app, widget_id: str) -> str:
    return str(app.screen.query_one(f"#{widget_id}").content)


async def open_tab(pilot, tab: str) -> None:
    await pilot.click(f"#--content-tab-{tab}")
    await pilot.pause()


async def type_into(pilot, input_id: str, text: str) -> None:
    await pilot.click(f"#{input_id}")
    await pilot.press(*text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_switch_the_default_model(tui_engine):
    tui_engine.add_provider("acme", "openai", "https://api.example.com/v1", ["small", "large"])

    async def run():
        app = make_app(tui_engine, mode="settings")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            rows = cells(app, "models-table")
            assert [r[1] for r in rows][1:] == ["acme:small", "acme:large"]
            assert rows[0][0] == "●" and rows[0][2] == "package"
            app.screen.query_one("#models-table").focus()
            await pilot.press("down", "down", "enter")
            await wait_for(pilot, lambda: app.model_label == "acme:large", what="the new default")
            await settle(pilot)
            assert "model acme:large" in app.status
            assert [r[0] for r in cells(app, "models-table")] == ["", "", "●"]

    asyncio.run(run())
    assert [m.id for m in tui_engine.list_models() if m.is_default] == ["acme:large"]


def test_add_a_provider_store_its_key_unseen_then_remove_it(tui_engine):
    async def run():
        app = make_app(tui_engine, mode="settings")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await open_tab(pilot, "tab-providers")
            await pilot.click("#provider-add")  # empty form: a clear message, nothing stored
            await pilot.pause()
            assert shows(app, "Enter the provider's name.")
            await type_into(pilot, "provider-name", "acme")
            await type_into(pilot, "provider-url", "https://api.example.com/v1")
            await type_into(pilot, "provider-models", "small, large")
            await pilot.click("#provider-add")
            await wait_for(pilot, lambda: cells(app, "providers-table"), what="the provider row")
            assert cells(app, "providers-table") == [
                ["acme", "openai", "https://api.example.com/v1", "small, large", "no key"]
            ]

            await type_into(pilot, "provider-key", SECRET)
            assert SECRET not in screen_text(app)  # a password input shows dots while typing
            await pilot.press("enter")
            await wait_for(pilot, lambda: cells(app, "providers-table")[0][-1] == "key stored", what="key stored")
            await settle(pilot)
            assert app.screen.query_one("#provider-key").value == ""
            shown = screen_text(app)
            assert shows(app, "Key stored for acme in the OS keyring.")
            assert SECRET not in shown and SECRET[8:] not in shown

            await pilot.click("#provider-remove")
            await wait_for(pilot, lambda: not cells(app, "providers-table"), what="the provider removed")

    asyncio.run(run())
    assert tui_engine.list_providers() == []
    assert secrets.get_provider_key("acme") is None  # removing the provider removed its key


def test_a_stored_key_is_in_the_keyring(tui_engine):
    tui_engine.add_provider("acme", "anthropic", "https://api.example.com", ["claude"])

    async def run():
        app = make_app(tui_engine, mode="settings")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await open_tab(pilot, "tab-providers")
            await type_into(pilot, "provider-key", SECRET)
            await pilot.click("#provider-key-save")
            await wait_for(pilot, lambda: cells(app, "providers-table")[0][-1] == "key stored", what="key stored")
            assert SECRET not in screen_text(app)

    asyncio.run(run())
    assert secrets.get_provider_key("acme") == SECRET
    assert [p.has_key for p in tui_engine.list_providers()] == [True]


def test_add_and_remove_a_workspace_root(tui_engine, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()

    async def run():
        app = make_app(tui_engine, mode="settings")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await open_tab(pilot, "tab-workspace")
            before = cells(app, "roots-table")
            field = app.screen.query_one("#root-path")
            field.value = str(tmp_path / "missing")
            await pilot.click("#root-add")
            await settle(pilot)
            assert shows(app, f"{tmp_path / 'missing'} is not a folder.")
            assert cells(app, "roots-table") == before
            field.value = str(folder)
            await pilot.click("#root-path")
            await pilot.press("enter")
            await wait_for(pilot, lambda: [str(folder)] in cells(app, "roots-table"), what="the new root")
            assert str(folder) in tui_engine.workspace_roots()
            table = app.screen.query_one("#roots-table")
            table.move_cursor(row=table.get_row_index(str(folder)))
            await pilot.click("#root-remove")
            await wait_for(pilot, lambda: [str(folder)] not in cells(app, "roots-table"), what="the root removed")

    asyncio.run(run())
    assert str(folder) not in tui_engine.workspace_roots()


def test_add_a_real_mcp_server_and_accept_its_tools(tui_engine):
    async def run():
        app = make_app(tui_engine, mode="settings")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+p", *"Settings: MCP")  # the command palette reaches every tab
            await wait_for(pilot, lambda: shows(app, "Show the MCP servers tab"), what="the palette hit")
            await pilot.press("enter")
            await wait_for(
                pilot, lambda: app.screen.query_one("#settings-tabs").active == "tab-mcp", what="the MCP tab"
            )
            app.screen.query_one("#mcp-name").value = "time"
            app.screen.query_one("#mcp-command").value = 'python "unclosed'
            await pilot.click("#mcp-add")
            await pilot.pause()
            assert shows(app, "The command cannot be split into arguments: No closing quotation.")
            assert tui_engine.list_mcp_servers() == []
            app.screen.query_one("#mcp-command").value = shlex.join(TIME_CMD)
            app.clear_notifications()  # the error toast may still cover the button
            await pilot.pause()
            await pilot.click("#mcp-add")
            await wait_for(pilot, lambda: cells(app, "mcp-table"), what="the MCP row")
            assert cells(app, "mcp-table") == [["time", shlex.join(TIME_CMD), "exec", "stopped", ""]]
            await pilot.click("#mcp-accept")  # starts the server and pins its tools as listed now
            await wait_for(pilot, lambda: cells(app, "mcp-table")[0][3] == "running", what="the server running")
            assert set(cells(app, "mcp-table")[0][4].split(", ")) == {"get_current_time", "convert_time"}

    asyncio.run(run())
    (info,) = tui_engine.list_mcp_servers()
    assert info.name == "time" and info.command == TIME_CMD


def test_start_and_stop_the_local_server(tui_engine):
    port = free_port()
    marker = tui_engine.home / SERVER_FILE

    async def run():
        app = make_app(tui_engine, mode="settings")
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await open_tab(pilot, "tab-server")
            assert static_text(app, "server-state") == "Stopped."
            app.screen.query_one("#server-listen").value = f"127.0.0.1:{port}"
            await pilot.click("#server-start")
            await wait_for(pilot, lambda: app.server is not None, what="the server")
            await settle(pilot)
            address = f"http://127.0.0.1:{port}"
            assert static_text(app, "server-state") == f"Serving on {address}"
            assert f"serving {address}" in app.status
            assert json.loads(marker.read_text())["listen"] == [f"127.0.0.1:{port}"]
            key = re.search(r"wbk_[0-9a-f]{16}\.[A-Za-z0-9_-]+", static_text(app, "server-key")).group(0)
            assert "will not be shown again" in static_text(app, "server-key")
            assert app.server.new_key is None  # the screen took it; nothing else will show it

            def fetch() -> tuple[int, int, int]:
                with httpx.Client(base_url=address, timeout=30) as client:
                    return (
                        client.get("/health").status_code,
                        client.get("/workbench/v1/whoami").status_code,
                        client.get("/workbench/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code,
                    )

            assert await asyncio.to_thread(fetch) == (200, 401, 200)

            await pilot.click("#server-stop")
            await settle(pilot)
            assert app.server is None
            assert static_text(app, "server-state") == "Stopped."
            assert "wbk_" not in static_text(app, "server-key")
            assert "serving" not in app.status

    asyncio.run(run())
    assert not marker.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_a_server_started_with_serve_shows_its_new_key_in_settings(tui_engine):
    port = free_port()

    async def run():
        app = make_app(tui_engine, mode="settings", serve=[f"127.0.0.1:{port}"])
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await open_tab(pilot, "tab-server")
            assert app.server is not None
            assert static_text(app, "server-state") == f"Serving on http://127.0.0.1:{port}"
            assert re.search(r"New API key \(all scopes\): wbk_[0-9a-f]{16}\.", static_text(app, "server-key"))
            app.stop_server()

    asyncio.run(run())
    assert [k.name for k in tui_engine.api_keys.list()] == ["tui"]


def test_a_busy_port_is_reported(tui_engine):
    async def run():
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            app = make_app(tui_engine, mode="settings")
            async with app.run_test(size=SIZE, notifications=True) as pilot:
                await settle(pilot)
                await open_tab(pilot, "tab-server")
                app.screen.query_one("#server-listen").value = f"127.0.0.1:{port}"
                await pilot.press("s")
                await settle(pilot)
                assert app.server is None
                assert shows(app, f"Cannot listen on 127.0.0.1:{port}: Address already in use.")
                assert static_text(app, "server-state") == "Stopped."

    asyncio.run(run())


def test_settings_snapshot(tui_engine, snap_compare):
    tui_engine.add_provider("acme", "openai", "https://api.example.com/v1", ["small", "large"])
    app = make_app(tui_engine, mode="settings")
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)
