"""Attacks on the server's one security path: hosts, origins, keys, scopes, limits, bootstrap."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, cli_env
from tests.server.conftest import start_server

PROTECTED = ["/workbench/v1/whoami", "/workbench/v1/runs", "/workbench/v1/approvals", "/workbench/v1/tools/audit"]


def raw_get(port: int, path: str, host: str | None, extra: str = "") -> tuple[int, bytes]:
    """A GET with exactly the Host header given (None: no Host line at all)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        lines = [f"GET {path} HTTP/1.1"]
        if host is not None:
            lines.append(f"Host: {host}")
        request = "\r\n".join(lines) + "\r\n" + extra + "Connection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def test_health_needs_no_key_and_carries_every_seed_shape(live) -> None:
    response = httpx.get(f"{live.base_url}/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy" and body["success"] is True and body["data"]["status"] == "healthy"
    assert response.headers["x-request-id"].startswith("req_")
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "host", ["evil.example", "127.0.0.1.nip.io", "localhost.evil.example", "127.0.0.1:1", "evil.example:{port}"]
)
def test_foreign_host_headers_are_refused(live, host: str) -> None:
    status, data = raw_get(live.port, "/health", host.format(port=live.port))
    assert status == 421 and b"INVALID_HOST" in data


def test_missing_or_empty_host_is_refused(live) -> None:
    assert raw_get(live.port, "/health", "")[0] in (400, 421)
    assert raw_get(live.port, "/health", None)[0] in (400, 421)
    assert raw_get(live.port, "/health", f"localhost:{live.port}")[0] == 200
    assert raw_get(live.port, "/health", f"127.0.0.1:{live.port}")[0] == 200


@pytest.mark.parametrize("origin", ["https://evil", "null", "http://evil.example:8765", "http://127.0.0.1:1"])
def test_foreign_origins_are_refused(live, origin: str) -> None:
    with live.client() as client:
        response = client.get("/workbench/v1/whoami", headers={"Origin": origin})
    assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN_ORIGIN"
    with live.client() as client:
        same = client.get("/workbench/v1/whoami", headers={"Origin": live.base_url})
    assert same.status_code == 200


@pytest.mark.parametrize("path", PROTECTED)
def test_every_route_needs_a_valid_key(live, path: str) -> None:
    with live.client(key=None) as client:
        missing = client.get(path)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "AUTHENTICATION_ERROR.MISSING_AUTHORIZATION"
        wrong = client.get(path, headers={"X-API-Key": "wbk_0123456789abcdef.not-the-right-secret-at-all"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "AUTHENTICATION_ERROR.INVALID_TOKEN"
        assert client.get(path, headers={"X-API-Key": live.key}).status_code == 200
        assert client.get(path, headers={"Authorization": f"Bearer {live.key}"}).status_code == 200
        # the key must not leak into any error body
        assert live.key not in wrong.text and "not-the-right-secret" not in wrong.text


def test_a_revoked_key_stops_working_at_once(live) -> None:
    info, key = live.engine.api_keys.create("temp", ["read:*"])
    with live.client(key=key) as client:
        assert client.get("/workbench/v1/whoami").json()["id"] == info.id
        live.engine.api_keys.revoke(info.id)
        assert client.get("/workbench/v1/whoami").status_code == 401


def test_scopes_are_enforced(live) -> None:
    _, reader = live.engine.api_keys.create("reader", ["read:runs"])
    with live.client(key=reader) as client:
        assert client.get("/workbench/v1/runs").status_code == 200
        denied = client.get("/workbench/v1/tools/audit")
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE"
        assert client.post("/workbench/v1/approvals/apr_x", json={"approve": True}).status_code == 403


@pytest.mark.parametrize("param", ["api_key", "key", "token", "access_token"])
def test_keys_in_the_query_string_are_refused(live, param: str) -> None:
    with live.client(key=None) as client:
        response = client.get(f"/workbench/v1/whoami?{param}={live.key}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "KEY_IN_URL"
    assert live.key not in response.text


def test_two_different_keys_in_one_request_are_refused(live) -> None:
    _, other = live.engine.api_keys.create("other", ["*"])
    with live.client() as client:
        response = client.get("/workbench/v1/whoami", headers={"X-API-Key": other})
    assert response.status_code == 401


def test_request_ids_are_echoed_or_made(live) -> None:
    with live.client() as client:
        given = client.get("/workbench/v1/whoami", headers={"X-Request-Id": "abc-123"})
        assert given.headers["x-request-id"] == "abc-123"
        bogus = client.get("/workbench/v1/whoami", headers={"X-Request-Id": "bad id\twith spaces"})
        assert bogus.headers["x-request-id"].startswith("req_")


def test_oversized_bodies_are_refused(live) -> None:
    with live.client() as client:
        response = client.post(
            "/workbench/v1/approvals/apr_x",
            content=b"x" * (9 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 413


def test_rate_limit_headers_and_the_seed_429_body(mem_engine) -> None:
    server, thread, sock, port = start_server(mem_engine, rate_limit_per_minute=3)
    _, key = mem_engine.api_keys.create("limited", ["*"])
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}) as client:
            # stay inside one window: wait if the minute is about to turn
            if 60 - time.time() % 60 < 5:
                time.sleep(60 - time.time() % 60 + 0.1)
            responses = [client.get("/workbench/v1/whoami") for _ in range(4)]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses[:3]] == ["2", "1", "0"]
    assert responses[0].headers["x-ratelimit-limit"] == "3"
    limited = responses[3]
    assert int(limited.headers["retry-after"]) >= 1
    error = limited.json()["error"]
    assert error["code"] == "RATE_LIMIT_EXCEEDED" and error["message"].startswith("Rate limit exceeded. Retry after")
    assert error["details"]["limit"] == 3


def test_bootstrap_only_while_no_key_exists(mem_engine) -> None:
    server, thread, sock, port = start_server(mem_engine)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            first = client.post("/api/v1/auth/bootstrap", json={"name": "admin"})
            assert first.status_code == 201
            body = first.json()
            assert body["success"] is True and body["meta"]["request_id"]
            token = body["data"]["token"]
            assert client.get("/workbench/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            again = client.post("/api/v1/auth/bootstrap", json={"name": "second"})
            assert again.status_code == 409 and again.json()["success"] is False
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert [k.name for k in mem_engine.api_keys.list()] == ["admin"]
    stored = mem_engine.db.fetchall("SELECT secret_hash FROM api_keys")
    assert token.split(".", 1)[1] not in str(stored)  # only the hash is kept


def test_keys_cli_creates_lists_and_revokes(workbench_home: Path) -> None:
    env = cli_env(workbench_home)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
        )

    created = run("keys", "create", "--name", "ci", "--scopes", "read:*,execute:tools")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("wbk_") and "shown only now" in created.stderr
    listed = run("keys", "list")
    assert "ci" in listed.stdout and "execute:tools,read:*" in listed.stdout and key not in listed.stdout
    bad = run("keys", "create", "--name", "x", "--scopes", "root")
    assert bad.returncode == 1 and "Invalid scope" in bad.stderr
    key_id = key.split(".")[0]
    assert run("keys", "revoke", key_id).returncode == 0
    assert "No server API keys" in run("keys", "list").stdout


def test_serve_refuses_a_public_address_without_allow_remote_and_a_key(workbench_home: Path) -> None:
    env = cli_env(workbench_home)
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "serve", "--listen", "0.0.0.0:8799"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 1 and "--allow-remote" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "serve", "--listen", "0.0.0.0:8799", "--allow-remote"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 1 and "API key first" in result.stderr


def test_serve_answers_on_loopback_and_cleans_up(workbench_home: Path) -> None:
    import json
    import signal

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = cli_env(workbench_home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "serve", "--listen", f"127.0.0.1:{port}"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "timeout"
                time.sleep(0.2)
        assert response.status_code == 200
        marker = json.loads((workbench_home / "server.json").read_text())
        assert marker["pid"] == proc.pid and marker["listen"] == [f"127.0.0.1:{port}"]
        assert httpx.get(f"http://127.0.0.1:{port}/workbench/v1/runs").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "Serving on" in err
    assert not (workbench_home / "server.json").exists()


def test_unknown_paths_and_methods_answer_in_the_family_shape(live) -> None:
    with live.client() as client:
        missing = client.get("/v1/nope", headers={"X-Request-Id": "r-404"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
        assert missing.headers["x-request-id"] == "r-404"
        wrong = client.get("/execute")
        assert wrong.status_code == 405 and wrong.json()["service"] == "workbench"
        broken = client.post(
            "/workbench/v1/approvals/apr_x", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400
        assert broken.json()["error"]["details"] == {"field": "body", "issue": "is not valid JSON"}
