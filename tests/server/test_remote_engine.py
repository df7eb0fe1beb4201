"""RemoteEngine from the command line and at the HTTP edges: --connect, auto-connect, bad URLs, keys, scopes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, cli_env
from tests.server.conftest import start_server
from workbench.engine.errors import (
    AuthenticationFailed,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerUnreachable,
    WorkbenchError,
)
from workbench.remote import RemoteEngine, local_session_key, running_server_url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(home: Path, key: str | None = None) -> dict[str, str]:
    env = cli_env(home)
    env.pop("WORKBENCH_API_KEY", None)
    if key is not None:
        env["WORKBENCH_API_KEY"] = key
    return env


def workbench(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=180,
        input=stdin,
    )


# ------------------------------------------------------------------ --connect


def test_cli_connect_runs_commands_on_the_server(live, tmp_path: Path) -> None:
    client_home = tmp_path / "client-home"
    env = _env(client_home, live.key)
    stored = workbench("--connect", live.base_url, "remember", "greeting", "hello over http", env=env)
    assert stored.returncode == 0, stored.stderr
    assert live.engine.recall("greeting").value == "hello over http"

    # --connect may follow the command too
    recalled = workbench("recall", "greeting", "--connect", live.base_url, env=env)
    assert (recalled.returncode, recalled.stdout) == (0, "hello over http\n")

    # errors are the engine's own sentence
    with pytest.raises(NotFound) as local:
        live.engine.recall("missing")
    missing = workbench("--remote", live.base_url, "recall", "missing", env=env)
    assert missing.returncode == 1 and missing.stderr == f"workbench: error: {local.value}\n"

    forgot = workbench("--connect", live.base_url, "forget", "greeting", env=env)
    assert forgot.returncode == 0 and forgot.stdout == "Forgot default/greeting.\n"
    assert live.engine.list_memories() == []
    # the client never opened a data folder of its own
    assert not (client_home / "workbench.duckdb").exists()

    refused = workbench("--connect", live.base_url, "keys", "list", env=env)
    assert refused.returncode == 1 and "not through --connect" in refused.stderr


def test_cli_connect_to_a_url_where_nothing_listens(tmp_path: Path) -> None:
    port = _free_port()
    result = workbench("--connect", f"http://127.0.0.1:{port}", "recall", "x", env=_env(tmp_path / "h", "wbk_x"))
    assert result.returncode == 1
    assert result.stderr == (
        f"workbench: error: No Workbench server answers at http://127.0.0.1:{port}: "
        "start one with `workbench serve`, or check the URL.\n"
    )
    with RemoteEngine(f"http://127.0.0.1:{port}", "wbk_x") as client:
        with pytest.raises(ServerUnreachable, match=f"at http://127.0.0.1:{port}:"):
            client.list_models()
    bad = workbench("--connect", "ftp://127.0.0.1:1", "models", env=_env(tmp_path / "h"))
    assert bad.returncode == 1 and "must start with http:// or https://" in bad.stderr


def test_wrong_missing_and_revoked_keys(live, tmp_path: Path) -> None:
    wrong = "wbk_0123456789abcdef." + "x" * 43
    result = workbench("--connect", live.base_url, "recall", "x", env=_env(tmp_path / "h", wrong))
    assert result.returncode == 1
    assert "refused the API key (The API key is invalid or revoked)" in result.stderr
    assert "WORKBENCH_API_KEY" in result.stderr and wrong not in result.stderr

    with RemoteEngine(live.base_url, api_key="") as anonymous:
        with pytest.raises(AuthenticationFailed, match="An API key is required"):
            anonymous.list_models()
    info, key = live.engine.api_keys.create("short-lived", ["read:*"])
    with RemoteEngine(live.base_url, key) as client:
        assert client.whoami()["name"] == "short-lived"
        live.engine.api_keys.revoke(info.id)
        with pytest.raises(AuthenticationFailed, match="invalid or revoked"):
            client.list_models()


def test_scopes_are_enforced_per_route(live, tmp_path: Path) -> None:
    _, reader_key = live.engine.api_keys.create("reader", ["read:*"])
    with RemoteEngine(live.base_url, reader_key) as reader:
        assert reader.list_memories() == []
        with pytest.raises(PermissionDenied, match="lacks the scope write:memory"):
            reader.remember({"key": "k", "value": "v"})
        with pytest.raises(PermissionDenied, match="lacks the scope execute:chat"):
            reader.chat({"messages": [{"role": "user", "content": "hi"}]})
    _, default_key = live.engine.api_keys.create("default-scopes")  # read:*, write:*, execute:*
    with RemoteEngine(live.base_url, default_key) as client:
        with pytest.raises(PermissionDenied, match="admin:workspace"):
            client.add_workspace_root(str(tmp_path))
        with pytest.raises(PermissionDenied, match="admin:mcp"):
            client.add_mcp_server("time", [sys.executable, "-m", "mcp_server_time"])
        assert client.workspace_roots() == []
    assert live.engine.workspace_roots() == [] and live.engine.list_mcp_servers() == []

    result = workbench("--connect", live.base_url, "remember", "k", "v", env=_env(tmp_path / "h", reader_key))
    assert result.returncode == 1 and "This key lacks the scope write:memory." in result.stderr


def test_rate_limit_is_a_clear_error(mem_engine) -> None:
    server, thread, sock, port = start_server(mem_engine, rate_limit_per_minute=2)
    _, key = mem_engine.api_keys.create("limited", ["*"])
    try:
        with RemoteEngine(f"http://127.0.0.1:{port}", key) as client:
            with pytest.raises(RateLimited) as limited:
                for _ in range(5):  # at most one window boundary falls within these calls
                    client.list_sessions()
            assert "Rate limit exceeded" in str(limited.value) and limited.value.retry_after >= 1
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ----------------------------------------------------------- auto-connect


def _wait_healthy(proc: subprocess.Popen, port: int) -> None:
    deadline = time.time() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read()}")
        assert time.time() < deadline, "the server did not start"
        time.sleep(0.2)


def test_commands_use_a_running_server_automatically(workbench_home: Path) -> None:
    import keyring

    from workbench.engine.engine import Engine

    home = workbench_home.resolve()
    port = _free_port()
    env = _env(workbench_home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench", "serve", "--listen", f"127.0.0.1:{port}"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(proc, port)
        assert running_server_url(home) == f"http://127.0.0.1:{port}"
        key = local_session_key(home)
        assert key is not None and key == keyring.get_password("workbench", f"server:{home}")
        whoami = httpx.get(
            f"http://127.0.0.1:{port}/workbench/v1/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).json()
        assert (whoami["name"], whoami["scopes"]) == ("local-session", ["*"])

        # no --connect and no WORKBENCH_API_KEY: the server's local-session key from the keyring
        stored = workbench("remember", "auto", "through the running server", env=env)
        assert stored.returncode == 0, stored.stderr
        recalled = workbench("recall", "auto", env=env)
        assert (recalled.returncode, recalled.stdout) == (0, "through the running server\n")
        # an explicit WORKBENCH_API_KEY wins over the keyring
        wrong = workbench("recall", "auto", env=_env(workbench_home, "wbk_0123456789abcdef." + "y" * 43))
        assert wrong.returncode == 1 and "refused the API key" in wrong.stderr
        # the user's own CLI (local-session key) may ingest anywhere it can read; an API key only inside roots
        notes = workbench_home.parent / "notes"
        notes.mkdir()
        (notes / "a.md").write_text("# Notes\n\nThe quokka lives on Rottnest Island.\n")
        ingested = workbench("ingest", str(notes), "-c", "notes", env=env)
        assert ingested.returncode == 0, ingested.stderr
        assert "ingested" in ingested.stdout.lower() or "added" in ingested.stdout.lower(), ingested.stdout
        # key management needs the data folder: the lock error names the server's address
        keys = workbench("keys", "list", env=env)
        assert keys.returncode == 1 and f"--remote http://127.0.0.1:{port}" in keys.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "Serving on" in err
    assert not (workbench_home / "server.json").exists()
    assert local_session_key(home) is None
    with Engine(workbench_home) as engine:
        sessions = [k for k in engine.api_keys.list(include_revoked=True) if k.name == "local-session"]
        assert len(sessions) == 1 and sessions[0].revoked_at is not None
    # with the server gone, the same command opens the data folder itself
    local = workbench("recall", "auto", env=env)
    assert (local.returncode, local.stdout) == (0, "through the running server\n")


def test_a_stale_server_file_is_ignored(workbench_home: Path) -> None:
    from workbench.engine.engine import Engine

    Engine(workbench_home).close()  # the home and its (now free) lock file exist
    # A live pid (this test's) that does not hold the home's lock: left behind by a killed server.
    (workbench_home / "server.json").write_text(json.dumps({"pid": os.getpid(), "listen": ["127.0.0.1:9"]}))
    assert running_server_url(workbench_home) is None
    env = _env(workbench_home)
    assert workbench("remember", "k", "local value", env=env).returncode == 0
    recalled = workbench("recall", "k", env=env)
    assert (recalled.returncode, recalled.stdout) == (0, "local value\n")


def test_ingest_over_http_reads_only_inside_the_workspace_roots(live, tmp_path: Path) -> None:
    from workbench.remote import RemoteEngine

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# Notes\n\nThe quokka lives on Rottnest Island.\n")
    with RemoteEngine(live.base_url, live.key) as remote:
        for path in (str(notes), "/etc", str(notes / ".." / "..")):
            with pytest.raises(WorkbenchError, match="outside the workspace roots"):
                list(remote.ingest({"paths": [path], "collection": "notes"}))
        assert live.engine.list_collections() == []
        live.engine.add_workspace_root(str(notes))
        events = list(remote.ingest({"paths": [str(notes)], "collection": "notes"}))
        assert events[-1].report.added == 1
        # a symlink inside the root that points outside it is judged by its target
        (notes / "escape").symlink_to("/etc")
        with pytest.raises(WorkbenchError, match="outside the workspace roots"):
            list(remote.ingest({"paths": [str(notes / "escape")], "collection": "notes"}))
        # ... also a file symlink met while walking the root: skipped and reported, never read
        secret = tmp_path / "secret.md"
        secret.write_text("# Secret\n\nThe vault code is 1234.\n")
        (notes / "b.md").symlink_to(secret)
        report = list(remote.ingest({"paths": [str(notes)], "collection": "notes"}))[-1].report
        assert [(issue.path, issue.reason) for issue in report.skipped] == [
            (str(secret), "outside the workspace roots")
        ]
        assert [Path(d.path).name for d in live.engine.list_documents("notes")] == ["a.md"]
