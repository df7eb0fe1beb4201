"""SIGTERM and SIGHUP stop a real server process cleanly, like SIGINT: server.json removed, the
local-session key revoked and gone from the keyring, the process gone within a couple of seconds.

`workbench serve` and the TUI's `--serve` (run in a pseudo-terminal) are real subprocesses.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON, cli_env, wait_until

#: what "stops within a second or two" is allowed on a busy 2-core machine
STOP_WITHIN_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def session_state(home: Path) -> tuple[list[str], str | None]:
    """(names of active local-session keys, the keyring's local-session secret) of `home`."""
    import keyring

    from workbench.engine.engine import Engine
    from workbench.remote import KEYRING_SERVICE, keyring_user

    with Engine(home) as engine:
        active = [k.name for k in engine.api_keys.list() if k.name == "local-session"]
    return active, keyring.get_password(KEYRING_SERVICE, keyring_user(home))


def assert_cleaned_up(home: Path) -> None:
    assert not (home / "server.json").exists(), "server.json was left behind"
    active, secret = session_state(home)
    assert active == [], "the local-session key is still active"
    assert secret is None, "the local-session key is still in the keyring"


def stop_and_time(process: subprocess.Popen, sig: int) -> float:
    started = time.monotonic()
    process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the server did not stop on {signal.Signals(sig).name}") from None
    return time.monotonic() - started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_serve_stops_cleanly_on_signal(workbench_home: Path, sig: int) -> None:
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "workbench", "serve", "--listen", f"127.0.0.1:{port}"],
        env=cli_env(workbench_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: (workbench_home / "server.json").exists() or process.poll() is not None, 120, "server.json")
        assert process.poll() is None, process.stderr.read()
        assert json.loads((workbench_home / "server.json").read_text())["pid"] == process.pid
        # A live connection (an idle keep-alive client) must not hold the stop up.
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert client.recv(1000).startswith(b"HTTP/1.1 200")
            took = stop_and_time(process, sig)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    assert process.returncode == 0, stderr
    assert took < STOP_WITHIN_S, f"stopping took {took:.1f} s"
    assert f"Stopping the server ({signal.Signals(sig).name})" in stderr
    assert "Traceback" not in stderr
    assert_cleaned_up(workbench_home)


def test_tui_serve_stops_cleanly_on_sigterm(workbench_home: Path) -> None:
    port = free_port()
    env = {**cli_env(workbench_home), "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "36"}
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [PYTHON, "-m", "workbench", "--serve", f"127.0.0.1:{port}"],
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    screen: list[bytes] = []

    def drain() -> None:  # the TUI blocks once the terminal's buffer is full
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:
                return
            if not data:
                return
            screen.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_until(
            lambda: (workbench_home / "server.json").exists() or process.poll() is not None,
            180,
            "the TUI's server.json",
        )
        assert process.poll() is None, b"".join(screen)[-2000:]
        # Once loaded (a model still loading on a worker thread would hold any exit up).
        wait_until(lambda: b"Ready" in b"".join(screen) or process.poll() is not None, 180, "the TUI to be ready")
        took = stop_and_time(process, signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    assert took < STOP_WITHIN_S + 5, f"stopping took {took:.1f} s"  # the TUI also closes the engine
    assert_cleaned_up(workbench_home)
