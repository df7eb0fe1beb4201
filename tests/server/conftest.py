"""A real uvicorn server on 127.0.0.1 (ephemeral port) over a real engine, per test."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest


@dataclass
class LiveServer:
    engine: Any
    base_url: str
    port: int
    key: str

    def client(self, key: str | None = "default", **kwargs: Any) -> httpx.Client:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {self.key if key == 'default' else key}"
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=120, **kwargs)


def start_server(engine: Any, **settings: Any):
    import socket

    import uvicorn

    from workbench.server.app import create_app
    from workbench.server.security import ServerSettings

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as run.bind() does
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    app = create_app(engine, ServerSettings(ports={port}, **settings))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    return server, thread, sock, port


@pytest.fixture
def live(mem_engine):
    """A served engine (sharing the session's embedder) and an all-scopes key."""
    server, thread, sock, port = start_server(mem_engine)
    _, key = mem_engine.api_keys.create("test", ["*"])
    try:
        yield LiveServer(engine=mem_engine, base_url=f"http://127.0.0.1:{port}", port=port, key=key)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
