"""Serve the app with uvicorn on one or more addresses, all sharing one engine.

How other processes of the same user find and use a running server (the
DuckDB file has one owner, so a second `workbench` command cannot open it):

* `<home>/server.json` holds `{"pid", "listen": ["HOST:PORT", ...]}` while the
  server runs, and the home's owner lock records the first port (the
  "in use" error names it).
* At start the server creates an API key with every scope, named
  "local-session", and stores its secret in the OS keyring under service
  "workbench", user `server:<home>` (the resolved home path). On shutdown the
  key is revoked and the keyring entry deleted; "local-session" keys left
  active by a server that was killed are revoked at the next start. The CLI
  (`workbench.cli.common.open_engine`) uses this key when `$WORKBENCH_API_KEY` is
  unset; the secret is never written to a file or a log. Without a usable
  keyring the server still runs, and clients need `$WORKBENCH_API_KEY`.
  (`start_local_session` / `end_local_session` do this; a server embedded in
  another process can call them too.)
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.engine.errors import InvalidRequest
from workbench.remote import KEYRING_SERVICE, SERVER_FILE, keyring_user
from workbench.server.security import LOOPBACK_NAMES, ServerSettings

if TYPE_CHECKING:
    from workbench.engine.engine import Engine

DEFAULT_LISTEN = "127.0.0.1:8765"
LOCAL_SESSION_KEY = "local-session"

log = logging.getLogger("workbench.server")


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


def settings_for(
    listens: list[tuple[str, int]], allow_remote: bool, engine: Engine, rate_limit: int | None = None
) -> ServerSettings:
    remote = [host for host, _ in listens if not is_loopback(host)]
    if remote and not allow_remote:
        raise InvalidRequest(
            f"Binding {remote[0]} serves beyond this machine: add --allow-remote (and create an "
            "API key first with `workbench keys create`)."
        )
    if remote and not engine.api_keys.any_active():
        raise InvalidRequest("Serving beyond this machine needs an API key first: `workbench keys create --name NAME`.")
    extra = {h if ":" not in h else f"[{h}]" for h in remote} - set(LOOPBACK_NAMES)
    if rate_limit is not None and not 1 <= rate_limit <= 1_000_000:
        raise InvalidRequest("The rate limit is 1 to 1,000,000 requests per minute per key.")
    settings = ServerSettings(ports={port for _, port in listens}, extra_hosts=extra)
    if rate_limit is not None:
        settings.rate_limit_per_minute = rate_limit
    return settings


def bind(listens: list[tuple[str, int]]) -> list[socket.socket]:
    sockets: list[socket.socket] = []
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
        # Accepted connections inherit TCP_NODELAY from this socket; without it, uvicorn's
        # separate writes of a response's head and body meet delayed ACKs: +40 ms per keep-alive request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.listen(2048)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


#: in-flight requests (a streaming chat) get this long to finish once the server is told to stop
GRACEFUL_S = 2
#: signals that stop the server cleanly (server.json removed, the local-session key revoked); uvicorn
#: itself handles SIGINT and SIGTERM, but re-raises SIGTERM after its shutdown, which killed the
#: process before this module's cleanup ran, and leaves SIGHUP to kill it outright
STOP_SIGNALS = ("SIGTERM", "SIGHUP")


def uvicorn_config(app: Any, read_timeout_s: float | None = None, **options: Any) -> Any:
    """The uvicorn configuration every server of ours runs with (read timeouts, quiet logs)."""
    import uvicorn

    from workbench.server.protocol import READ_TIMEOUT_S, protocol_with

    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http=protocol_with(read_timeout_s or READ_TIMEOUT_S),
        **options,
    )


def serve(
    engine: Engine,
    listens: list[str] | None = None,
    allow_remote: bool = False,
    on_ready: Any = None,
    rate_limit: int | None = None,
    read_timeout_s: float | None = None,
    on_stopping: Callable[[str], None] | None = None,
) -> None:
    """Run until interrupted (SIGINT, SIGTERM, SIGHUP); `<home>/server.json` tells other processes where
    the server is. `on_stopping(reason)` is called once when it begins to stop."""
    import uvicorn

    from workbench.server.app import create_app

    addresses = [parse_listen(v) for v in (listens or [DEFAULT_LISTEN])]
    settings = settings_for(addresses, allow_remote, engine, rate_limit)
    sockets = bind(addresses)
    app = create_app(engine, settings)
    marker = Path(engine.home) / SERVER_FILE
    bound = [f"{h}:{s.getsockname()[1]}" for (h, _), s in zip(addresses, sockets)]
    stopping: list[str] = []

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            stopping.append(signal.Signals(sig).name)
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: Any = None) -> None:
            # Said from the event loop, not the signal handler: a print there could interrupt another print.
            if on_stopping is not None:
                on_stopping(stopping[0] if stopping else "shutdown")
            await super().shutdown(sockets)

    server = Server(uvicorn_config(app, read_timeout_s, timeout_graceful_shutdown=GRACEFUL_S))

    def stop(sig: int, frame: Any) -> None:
        # Also called after uvicorn's own shutdown, when it re-raises the SIGTERM it caught: then it only
        # returns, and the cleanup below runs.
        server.handle_exit(sig, frame)

    previous = _install(STOP_SIGNALS, stop)
    key_id = None
    try:
        # The key exists before server.json does: whoever finds the marker finds the key too.
        key_id = start_local_session(engine)
        settings.local_session_keys.add(key_id)
        marker.write_text(json.dumps({"pid": os.getpid(), "listen": bound}))
        _set_owner_port(engine, sockets[0].getsockname()[1])
        if on_ready is not None:
            on_ready(bound)
        server.run(sockets=sockets)
    finally:
        marker.unlink(missing_ok=True)
        _set_owner_port(engine, None)
        end_local_session(engine, key_id)
        for sock in sockets:
            sock.close()
        _restore(previous)


def _install(names: tuple[str, ...], handler: Callable[[int, Any], None]) -> dict[int, Any]:
    """Set `handler` for the named signals this platform has (main thread only); the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for name in names:
        number = getattr(signal, name, None)
        if number is not None:
            previous[number] = signal.signal(number, handler)
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for number, handler in previous.items():
        signal.signal(number, handler)


def start_local_session(engine: Engine) -> str:
    """Create the all-scopes "local-session" key and put its secret in the OS keyring; its id."""
    for stale in engine.api_keys.list():
        if stale.name == LOCAL_SESSION_KEY:  # left by a server that was killed: one process owns the home
            engine.api_keys.revoke(stale.id)
    info, secret = engine.api_keys.create(LOCAL_SESSION_KEY, ["*"])
    try:
        import keyring

        keyring.set_password(KEYRING_SERVICE, keyring_user(engine.home), secret)
    except Exception as exc:  # no keyring service: clients then need WORKBENCH_API_KEY
        log.warning("could not store the local-session key in the OS keyring (%s)", type(exc).__name__)
    return info.id


def end_local_session(engine: Engine, key_id: str | None) -> None:
    if key_id is None:
        return
    try:
        engine.api_keys.revoke(key_id)
    except Exception:
        log.exception("could not revoke the local-session key")
    try:
        import keyring

        keyring.delete_password(KEYRING_SERVICE, keyring_user(engine.home))
    except Exception:  # already gone, or no keyring service
        pass


def _set_owner_port(engine: Engine, port: int | None) -> None:
    owner = getattr(getattr(engine, "db", None), "owner", None)
    if owner is not None:
        try:
            owner.set_port(port)
        except Exception:
            log.exception("could not record the server port in the owner lock")
