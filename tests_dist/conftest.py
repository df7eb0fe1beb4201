"""The offline executable's smoke test (`make dist-test`), apart from `make test`.

It runs dist/workbench/workbench, never the venv's code, and is meant to run
inside a network namespace with only loopback (`unshare -n`, see the
Makefile). Two guards make "nothing reached for the network" checkable:

* `offline` fails the session unless a connection to a public address fails
  at once (the namespace has no route), or WORKBENCH_DIST_NO_NETNS=1 says the
  namespace could not be made (then the proxies below are the only guard);
* every bundle command gets HTTP(S)_PROXY/ALL_PROXY pointed at a tripwire
  listener on 127.0.0.1: any HTTP client that tries to go out through a proxy
  connects to it, and the session fails. NO_PROXY keeps our own 127.0.0.1
  server direct.

Each command gets its own WORKBENCH_HOME, HOME and XDG_DATA_HOME under a temp
dir and the keyrings.alt file backend, and no Python variables: the bundle
must not need the venv.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = Path(os.environ.get("WORKBENCH_BUNDLE", ROOT / "dist" / "workbench" / "workbench"))


class Tripwire:
    """A listener that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.hits.append(conn.recv(200))
                except OSError:
                    self.hits.append(b"")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="session")
def bundle() -> Path:
    if not os.access(BUNDLE, os.X_OK):
        pytest.fail(f"{BUNDLE} is missing: run `make dist` first.")
    return BUNDLE


@pytest.fixture(scope="session", autouse=True)
def offline() -> None:
    if os.environ.get("WORKBENCH_DIST_NO_NETNS") == "1":
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(3)
    try:
        probe.connect(("1.1.1.1", 443))
    except OSError:
        return  # no route: the namespace holds
    finally:
        probe.close()
    pytest.fail("The network is reachable: run this under `unshare -n` (make dist-test does).")


@pytest.fixture(scope="session")
def tripwire():
    wire = Tripwire()
    yield wire
    wire.close()
    assert not wire.hits, f"the bundle tried to reach the network through the proxy: {wire.hits!r}"


@pytest.fixture
def bundle_env(tmp_path: Path, tripwire: Tripwire) -> dict[str, str]:
    """A clean environment for one bundle command: own home, file keyring, proxies at the tripwire."""
    proxy = f"http://127.0.0.1:{tripwire.port}"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(tmp_path / "user"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "WORKBENCH_HOME": str(tmp_path / "home"),
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "TERM": "xterm-256color",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = proxy
    (tmp_path / "user").mkdir()
    return env
