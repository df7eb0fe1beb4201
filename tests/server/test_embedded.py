"""The embedded server (the TUI's local server): real uvicorn on a real port, started and stopped in-process."""

from __future__ import annotations

import json
import os
import socket

import httpx
import pytest

from workbench.engine.errors import InvalidRequest
from workbench.server.embedded import EmbeddedServer
from workbench.server.run import SERVER_FILE


def free_port() -> int:
    # parse_listen refuses port 0, so ask the OS for a free one first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_start_serve_authenticate_and_stop(engine) -> None:
    port = free_port()
    server = EmbeddedServer(engine, [f"127.0.0.1:{port}"])
    server.start()
    marker = engine.home / SERVER_FILE
    try:
        assert server.address == f"http://127.0.0.1:{port}"
        assert server.running
        assert json.loads(marker.read_text()) == {"pid": os.getpid(), "listen": [f"127.0.0.1:{port}"]}
        assert not can_bind(port)
        key = server.new_key
        assert key is not None and key.startswith("wbk_")
        assert [(k.name, k.scopes) for k in engine.api_keys.list()] == [("tui", ["*"]), ("local-session", ["*"])]
        # The user's other processes find the server, and its local-session key, on their own.
        from workbench.remote import RemoteEngine, local_session_key, running_server_url

        assert running_server_url(engine.home) == server.address
        session_key = local_session_key(engine.home)
        assert session_key is not None and session_key != key
        with RemoteEngine(server.address, api_key=session_key) as remote:
            assert remote.list_sessions() == []
        with httpx.Client(base_url=server.address, timeout=30) as client:
            health = client.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "healthy"
            assert client.get("/workbench/v1/whoami").status_code == 401
            who = client.get("/workbench/v1/whoami", headers={"Authorization": f"Bearer {key}"})
            assert who.status_code == 200 and who.json()["name"] == "tui"
    finally:
        server.stop()
    assert not server.running and server.address == "" and server.new_key is None
    assert not marker.exists()
    assert [k.name for k in engine.api_keys.list()] == ["tui"]  # the local-session key is revoked
    assert local_session_key(engine.home) is None
    assert can_bind(port)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_no_new_key_when_the_user_has_one_and_restart_on_the_same_port(engine) -> None:
    engine.api_keys.create("mine", ["read:*"])
    port = free_port()
    for _ in range(2):  # the port is free again after stop: the same address serves again
        server = EmbeddedServer(engine, [f"127.0.0.1:{port}"])
        server.start()
        try:
            assert server.new_key is None
            assert httpx.get(f"{server.address}/health", timeout=30).status_code == 200
        finally:
            server.stop()
    assert [k.name for k in engine.api_keys.list()] == ["mine"]


def test_a_busy_port_is_one_clear_sentence(engine) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        server = EmbeddedServer(engine, [f"127.0.0.1:{port}"])
        with pytest.raises(InvalidRequest) as caught:
            server.start()
    message = str(caught.value)
    assert message == f"Cannot listen on 127.0.0.1:{port}: Address already in use."
    assert not server.running
    assert not (engine.home / SERVER_FILE).exists()
    assert engine.api_keys.list() == []  # no key made for a server that never ran


@pytest.mark.parametrize(
    "listen, expected",
    [
        ("0.0.0.0:8765", "--allow-remote"),
        ("127.0.0.1:99999", "port 1..65535"),
    ],
)
def test_bad_or_remote_addresses_are_refused(engine, listen: str, expected: str) -> None:
    server = EmbeddedServer(engine, [listen])
    with pytest.raises(InvalidRequest, match=expected):
        server.start()
    assert not server.running


def test_the_local_session_key_is_not_rate_limited_but_user_keys_are(engine) -> None:
    from workbench.remote import local_session_key

    port = free_port()
    server = EmbeddedServer(engine, [f"127.0.0.1:{port}"])
    server.start()
    try:
        user_key = server.new_key
        session_key = local_session_key(engine.home)
        with httpx.Client(base_url=server.address, timeout=30) as client:
            user = [
                client.get("/workbench/v1/sessions", headers={"X-API-Key": user_key}).status_code for _ in range(101)
            ]
            assert user[:100] == [200] * 100 and user[100] == 429
            session = [client.get("/workbench/v1/sessions", headers={"X-API-Key": session_key}) for _ in range(150)]
            assert [r.status_code for r in session] == [200] * 150
            assert "X-RateLimit-Limit" not in session[-1].headers
    finally:
        server.stop()
