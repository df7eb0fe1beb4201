"""The local server run inside another process (the TUI): start, serve on a thread, stop cleanly.

`workbench serve` blocks in uvicorn on the main thread; the TUI instead serves
its own engine from a daemon thread and can stop and start it again. Both
write `<home>/server.json` so other processes find the server. Loopback only:
serving beyond this machine stays a deliberate `workbench serve --allow-remote`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.engine.errors import InvalidRequest
from workbench.server.run import (
    DEFAULT_LISTEN,
    SERVER_FILE,
    _set_owner_port,
    bind,
    end_local_session,
    parse_listen,
    settings_for,
    start_local_session,
    uvicorn_config,
)

if TYPE_CHECKING:
    from workbench.engine.engine import Engine

#: name of the key created when the user has none
KEY_NAME = "tui"
#: how long start() waits for uvicorn to accept connections
START_TIMEOUT_S = 20.0
#: in-flight requests (a streaming chat) get this long to finish on stop()
GRACEFUL_S = 5


class EmbeddedServer:
    """The API over `engine` on `listens` (default 127.0.0.1:8765), served from a daemon thread."""

    def __init__(self, engine: Engine, listens: list[str] | None = None) -> None:
        self.engine = engine
        self.listens = list(listens or [DEFAULT_LISTEN])
        #: "HOST:PORT" per bound socket, once started
        self.bound: list[str] = []
        #: the full API key created at start when the user had none; shown once, then forget it
        self.new_key: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sockets: list[Any] = []
        self._marker: Path | None = None
        #: id of the "local-session" key whose secret is in the OS keyring while the server runs
        self._session_key: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def address(self) -> str:
        """The first address as a URL, e.g. "http://127.0.0.1:8765" ("" before start)."""
        if not self.bound:
            return ""
        host, _, port = self.bound[0].rpartition(":")
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        """Bind, serve on a daemon thread, make a key if the user has none, write server.json.

        Raises `InvalidRequest` with one sentence when an address is malformed,
        not loopback, or in use.
        """
        import uvicorn

        from workbench.server.app import create_app

        if self._thread is not None:
            raise InvalidRequest(f"The local server is already running on {self.address}.")
        api_keys = getattr(self.engine, "api_keys", None)
        home = getattr(self.engine, "home", None)
        if api_keys is None or home is None:
            raise InvalidRequest(
                "The local server can only serve an in-process engine, not one this app is connected to."
            )
        addresses = [parse_listen(value) for value in self.listens]
        settings_for(addresses, False, self.engine)  # loopback only, before anything binds
        sockets = bind(addresses)
        actual = [(host, sock.getsockname()[1]) for (host, _), sock in zip(addresses, sockets)]
        settings = settings_for(actual, False, self.engine)
        app = create_app(self.engine, settings)
        # log_config=None: leave the host process's logging alone (uvicorn's own config writes to stderr).
        config = uvicorn_config(app, log_config=None, timeout_graceful_shutdown=GRACEFUL_S)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True, name="workbench-server")
        self._server, self._thread, self._sockets = server, thread, sockets
        self.bound = [f"{host}:{port}" for host, port in actual]
        created = None
        try:
            # Before serving: while no key exists, anyone on this machine could bootstrap the first one.
            if not api_keys.any_active():
                created, self.new_key = api_keys.create(KEY_NAME, ["*"])
            # The key other processes of this user connect with (RemoteEngine finds it in the keyring).
            self._session_key = start_local_session(self.engine)
            settings.local_session_keys.add(self._session_key)
            thread.start()
            deadline = time.monotonic() + START_TIMEOUT_S
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise InvalidRequest(f"The local server on {', '.join(self.listens)} did not start.")
                time.sleep(0.01)
            self._marker = Path(home) / SERVER_FILE
            self._marker.write_text(json.dumps({"pid": os.getpid(), "listen": self.bound}))
            _set_owner_port(self.engine, actual[0][1])
        except Exception:
            self.stop()
            if created is not None:  # nobody ever saw it
                api_keys.revoke(created.id)
            raise

    # ------------------------------------------------------------------- stop

    def stop(self) -> None:
        """Finish in-flight requests (briefly), stop the thread, free the ports, remove server.json."""
        server, thread, sockets = self._server, self._thread, self._sockets
        self._server, self._thread, self._sockets = None, None, []
        if server is not None:
            server.should_exit = True
        if thread is not None and thread.ident is not None:  # started
            thread.join(timeout=GRACEFUL_S + 5)
        for sock in sockets:
            sock.close()
        if self._marker is not None:
            self._remove_marker(self._marker)
            self._marker = None
            _set_owner_port(self.engine, None)
        end_local_session(self.engine, self._session_key)
        self._session_key = None
        self.bound = []
        self.new_key = None

    @staticmethod
    def _remove_marker(marker: Path) -> None:
        """Remove server.json if it is still this process's (another server may have replaced it)."""
        try:
            owner = json.loads(marker.read_text()).get("pid")
        except (OSError, ValueError, AttributeError):
            return
        if owner == os.getpid():
            marker.unlink(missing_ok=True)
