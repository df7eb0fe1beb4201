"""Serve the app with uvicorn on one or more addresses, all sharing one engine."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any

from workbench.engine.errors import InvalidRequest
from workbench.server.security import LOOPBACK_NAMES, ServerSettings

DEFAULT_LISTEN = "127.0.0.1:8765"
SERVER_FILE = "server.json"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidRequest(f"--listen takes HOST:PORT with a port 1..65535 (got {value!r}).")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_for(listens: list[tuple[str, int]], allow_remote: bool, engine: Any) -> ServerSettings:
    remote = [host for host, _ in listens if not is_loopback(host)]
    if remote and not allow_remote:
        raise InvalidRequest(f"Binding {remote[0]} serves beyond this machine: add --allow-remote (and create an "
                             "API key first with `workbench keys create`).")
    if remote and not engine.api_keys.any_active():
        raise InvalidRequest("Serving beyond this machine needs an API key first: `workbench keys create --name NAME`.")
    extra = {h if ":" not in h else f"[{h}]" for h in remote} - set(LOOPBACK_NAMES)
    return ServerSettings(ports={port for _, port in listens}, extra_hosts=extra)


def bind(listens: list[tuple[str, int]]) -> list[socket.socket]:
    sockets = []
    for host, port in listens:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            for other in sockets:
                other.close()
            raise InvalidRequest(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
        sock.listen(2048)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def serve(engine: Any, listens: list[str] | None = None, allow_remote: bool = False,
          on_ready: Any = None) -> None:
    """Run until interrupted; `<home>/server.json` tells other processes where the server is."""
    import uvicorn

    from workbench.server.app import create_app

    addresses = [parse_listen(v) for v in (listens or [DEFAULT_LISTEN])]
    settings = settings_for(addresses, allow_remote, engine)
    sockets = bind(addresses)
    app = create_app(engine, settings)
    marker = Path(engine.home) / SERVER_FILE
    bound = [f"{h}:{s.getsockname()[1]}" for (h, _), s in zip(addresses, sockets)]
    marker.write_text(json.dumps({"pid": os.getpid(), "listen": bound}))
    if on_ready is not None:
        on_ready(bound)
    try:
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        uvicorn.Server(config).run(sockets=sockets)
    finally:
        marker.unlink(missing_ok=True)
        for sock in sockets:
            sock.close()
