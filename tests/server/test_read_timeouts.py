"""A half-sent request is timed out: a real `workbench serve --read-timeout 1`, raw sockets."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import PYTHON, cli_env, wait_until
from tests.server.test_signals import free_port

TIMEOUT_S = 1.0
#: how late the close may come on a busy machine
SLACK_S = 4.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("timeouts") / "home"
    port = free_port()
    process = subprocess.Popen(
        [PYTHON, "-m", "workbench", "serve", "--listen", f"127.0.0.1:{port}", "--read-timeout", str(TIMEOUT_S)],
        env=cli_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: (home / "server.json").exists() or process.poll() is not None, 120, "the server")
        assert process.poll() is None, process.stderr.read()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (head and Content-Length body), however the bytes arrive."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection mid-body: {data!r}"
        body += chunk
    assert len(body) == length, "more bytes than the response announced"
    return head + b"\r\n\r\n" + body


def closed_after(sock: socket.socket) -> tuple[bytes, float]:
    """What the server sent before closing the connection, and how long after the call it closed."""
    started = time.monotonic()
    sock.settimeout(TIMEOUT_S + SLACK_S + 5)
    received = b""
    while True:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            raise AssertionError(f"the connection was still open after {time.monotonic() - started:.1f} s") from None
        if not data:
            return received, time.monotonic() - started
        received += data


def test_half_a_request_head_is_answered_408_and_closed(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)) as sock:
        sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{served}\r\n".encode())  # no blank line
        received, took = closed_after(sock)
    assert received.startswith(b"HTTP/1.1 408"), received
    assert took < TIMEOUT_S + SLACK_S


def test_a_connection_that_sends_nothing_is_closed(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)) as sock:
        received, took = closed_after(sock)
    assert received == b"" and took < TIMEOUT_S + SLACK_S


def test_a_body_that_stops_half_way_is_closed(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)) as sock:
        sock.sendall(
            f"POST /v1/remember HTTP/1.1\r\nHost: 127.0.0.1:{served}\r\nContent-Type: application/json\r\n"
            f'Content-Length: 100\r\n\r\n{{"key": '.encode()
        )
        received, took = closed_after(sock)
    assert took < TIMEOUT_S + SLACK_S and b"200 OK" not in received


def test_a_slow_but_steady_body_and_keep_alive_still_work(served: int) -> None:
    body = b'{"key": "k", "value": "v"}'
    with socket.create_connection(("127.0.0.1", served)) as sock:
        for _ in range(2):  # the second request on the same connection is timed afresh
            sock.sendall(
                f"POST /v1/remember HTTP/1.1\r\nHost: 127.0.0.1:{served}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            )
            for index in range(0, len(body), 9):  # pauses shorter than the timeout, longer in total
                time.sleep(TIMEOUT_S * 0.4)
                sock.sendall(body[index : index + 9])
            sock.settimeout(30)
            answer = read_response(sock)
            assert answer.startswith(b"HTTP/1.1 401"), answer  # the route answered: no API key was sent
