"""The MCP client against real MCP servers (mcp-server-time, mcp-server-git) over stdio."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from workbench.engine.errors import InvalidRequest, NotFound, ToolError, WorkbenchError
from workbench.engine.store.db import Database
from workbench.engine.tools.base import ToolContext
from workbench.engine.tools.mcp import CONFIG_FILE, MCPManager

TIME_CMD = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
COMMIT_MESSAGE = "Add the greeting file for the MCP test"


def git_cmd(repo: Path) -> list[str]:
    return [sys.executable, "-m", "mcp_server_git", "--repository", str(repo)]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def _wait_gone(pids: set[int], timeout: float = 10.0) -> set[int]:
    """The pids still alive (zombies count as alive) after waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _is_alive(pid)}
        if alive:
            time.sleep(0.05)
    return alive


def _is_alive(pid: int) -> bool:
    try:
        psutil.Process(pid)  # a zombie (exited, not reaped) still counts
    except psutil.NoSuchProcess:
        return False
    return True


def _by_name(tools) -> dict:
    return {tool.name: tool for tool in tools}


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    ident = ["-c", "user.name=Test Person", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (repo / "hello.txt").write_text("hello\n")
    subprocess.run(["git", "-C", str(repo), "add", "hello.txt"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), *ident, "commit", "-q", "-m", COMMIT_MESSAGE], check=True, env=env)
    return repo


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, git_repo: Path):
    """One manager with the time and git servers, started once for the module."""
    home = tmp_path_factory.mktemp("mcp-home")
    db = Database(home)
    manager = MCPManager(home, db)
    manager.add_server("time", TIME_CMD, tool_permissions={"get_current_time": "read"})
    manager.add_server("git", git_cmd(git_repo))
    yield SimpleNamespace(home=home, db=db, manager=manager, repo=git_repo)
    manager.close()
    db.close()


@pytest.fixture
def fresh(workbench_home: Path):
    """A manager on this test's own home (for tests that stop or break servers)."""
    workbench_home.mkdir(parents=True, exist_ok=True)
    db = Database(workbench_home)
    manager = MCPManager(workbench_home, db)
    yield SimpleNamespace(home=workbench_home, db=db, manager=manager)
    manager.close()
    db.close()


# ------------------------------------------------------------------ tools


def test_lists_the_real_tools_of_both_servers(shared):
    tools = _by_name(shared.manager.tools())
    for name in ("mcp.time.get_current_time", "mcp.time.convert_time", "mcp.git.git_status", "mcp.git.git_log"):
        assert name in tools
    now = tools["mcp.time.get_current_time"]
    assert now.source == "mcp:time"
    assert now.permission == "read"  # from tool_permissions
    assert tools["mcp.time.convert_time"].permission == "exec"  # the server default
    assert tools["mcp.git.git_status"].source == "mcp:git"
    assert "timezone" in now.description.lower()
    assert now.parameters["type"] == "object"
    assert "timezone" in now.parameters["properties"]
    assert "repo_path" in tools["mcp.git.git_log"].parameters["properties"]
    assert all(tool.warning is None for tool in tools.values())

    # one server's tools only
    assert {t.name for t in shared.manager.tools("time")} == {"mcp.time.get_current_time", "mcp.time.convert_time"}

    infos = {info.name: info for info in shared.manager.list_servers()}
    assert infos["time"].running and infos["git"].running
    assert infos["time"].error is None
    assert "mcp.git.git_log" in infos["git"].tools
    assert infos["time"].command == TIME_CMD
    assert infos["time"].permission == "exec"


def test_get_current_time_returns_the_current_year(shared):
    tool = _by_name(shared.manager.tools("time"))["mcp.time.get_current_time"]
    before = datetime.now(UTC).year
    text = tool.run({"timezone": "UTC"}, ToolContext())
    after = datetime.now(UTC).year
    data = json.loads(text)
    assert data["timezone"] == "UTC"
    assert int(data["datetime"][:4]) in {before, after}


def test_git_status_and_log_show_the_repository(shared):
    tools = _by_name(shared.manager.tools("git"))
    log = tools["mcp.git.git_log"].run({"repo_path": str(shared.repo)}, ToolContext())
    assert COMMIT_MESSAGE in log
    status = tools["mcp.git.git_status"].run({"repo_path": str(shared.repo)}, ToolContext())
    assert "nothing to commit" in status


def test_error_results_become_tool_errors(shared):
    tools = _by_name(shared.manager.tools("time"))
    with pytest.raises(ToolError, match="Invalid timezone"):
        tools["mcp.time.convert_time"].run(
            {"source_timezone": "Not/AZone", "time": "12:00", "target_timezone": "UTC"}, ToolContext()
        )
    # a protocol-level error (no such tool) is a ToolError too
    with pytest.raises(ToolError, match="Unknown tool"):
        shared.manager.call_tool("time", "no_such_tool", {})
    # the server keeps working after both
    assert json.loads(shared.manager.call_tool("time", "get_current_time", {"timezone": "UTC"}))["timezone"] == "UTC"
    # its stderr went to the log file, not to the terminal
    log = shared.home / "logs" / "mcp-time.log"
    deadline = time.monotonic() + 5
    while "convert_time" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "convert_time" in log.read_text()


# ------------------------------------------------------------------ pins


def _pin(db: Database, server: str, tool: str) -> tuple:
    row = db.fetchone("SELECT description, schema_hash FROM mcp_pins WHERE server = ? AND tool = ?", [server, tool])
    assert row is not None
    return row


def test_a_changed_description_is_flagged_and_not_repinned_silently(shared):
    manager, db = shared.manager, shared.db
    real = _by_name(manager.tools("time"))
    real_desc = real["mcp.time.get_current_time"].description
    assert _pin(db, "time", "get_current_time")[0] == real_desc

    # pretend the server described the tool differently when it was pinned
    db.execute(
        "UPDATE mcp_pins SET description = ? WHERE server = 'time' AND tool = 'get_current_time'", ["Get the time."]
    )
    db.execute("UPDATE mcp_pins SET schema_hash = ? WHERE server = 'time' AND tool = 'convert_time'", ["0" * 64])
    for _ in range(2):  # listing twice does not update the pin behind the user's back
        tools = _by_name(manager.tools("time"))
        warning = tools["mcp.time.get_current_time"].warning
        assert warning is not None and "changed since it was pinned" in warning
        assert f"13 -> {len(real_desc)} characters" in warning
        assert "\n" not in warning and warning.endswith(".")
        assert tools["mcp.time.get_current_time"].description == real_desc
        assert "input schema" in tools["mcp.time.convert_time"].warning
        assert _pin(db, "time", "get_current_time")[0] == "Get the time."
    pins = {p["tool"]: p for p in manager.pins("time")}
    assert pins["get_current_time"]["changed"] is True
    assert pins["get_current_time"]["description"] == "Get the time."
    assert pins["get_current_time"]["name"] == "mcp.time.get_current_time"
    # other servers' tools are untouched
    assert all(t.warning is None for t in manager.tools("git"))

    with pytest.raises(NotFound):
        manager.accept_changes("time", "no_such_tool")
    assert manager.accept_changes("time", "mcp.time.get_current_time") == ["mcp.time.get_current_time"]
    tools = _by_name(manager.tools("time"))
    assert tools["mcp.time.get_current_time"].warning is None
    assert tools["mcp.time.convert_time"].warning is not None  # not accepted yet
    assert _pin(db, "time", "get_current_time")[0] == real_desc

    assert sorted(manager.accept_changes("time")) == ["mcp.time.convert_time", "mcp.time.get_current_time"]
    assert all(t.warning is None for t in manager.tools("time"))
    assert all(p["changed"] is False for p in manager.pins("time"))


# --------------------------------------------------------------- failures


def test_a_server_that_cannot_start_is_reported_and_the_others_work(shared):
    manager = shared.manager
    manager.add_server("missing", ["/nonexistent/mcp-server-binary"])
    manager.add_server("quits", [sys.executable, "-c", "import sys; sys.exit(3)"])
    try:
        names = {t.name for t in manager.tools()}
        assert "mcp.time.get_current_time" in names and "mcp.git.git_status" in names
        assert not any(n.startswith(("mcp.missing.", "mcp.quits.")) for n in names)
        infos = {info.name: info for info in manager.list_servers()}
        assert not infos["missing"].running and infos["missing"].tools == []
        assert "'/nonexistent/mcp-server-binary' was not found" in infos["missing"].error
        assert "exited or closed its connection" in infos["quits"].error
        assert infos["time"].error is None and infos["time"].running
        with pytest.raises(ToolError, match="could not start"):
            manager.tools("missing")
        with pytest.raises(ToolError, match="could not start"):
            manager.call_tool("missing", "anything", {})
        converted = manager.call_tool(
            "time", "convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}
        )
        assert json.loads(converted)["target"]["datetime"][11:16] == "21:00"
    finally:
        manager.remove_server("missing")
        manager.remove_server("quits")
    assert {info.name for info in manager.list_servers()} == {"time", "git"}


def test_an_unresponsive_server_times_out(fresh):
    before = _children()
    fresh.manager.add_server("sleepy", [sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=1)
    started = time.monotonic()
    with pytest.raises(ToolError, match="did not answer within 1 s"):
        fresh.manager.tools("sleepy")
    assert time.monotonic() - started < 15
    assert not _wait_gone(_children() - before, timeout=1)
    (info,) = fresh.manager.list_servers()
    assert not info.running and "did not answer" in info.error


def test_a_killed_server_restarts_on_next_use(shared):
    manager = shared.manager
    manager.tools("time")
    (pid,) = {p.pid for p in psutil.Process().children() if "mcp_server_time" in " ".join(p.cmdline())}
    psutil.Process(pid).kill()
    assert not _wait_gone({pid})
    with pytest.raises(ToolError, match="closed its connection"):
        manager.call_tool("time", "get_current_time", {"timezone": "UTC"})
    assert not {i.name: i for i in manager.list_servers()}["time"].running
    text = manager.call_tool("time", "get_current_time", {"timezone": "UTC"})
    assert json.loads(text)["timezone"] == "UTC"
    info = {i.name: i for i in manager.list_servers()}["time"]
    assert info.running and info.error is None


# ------------------------------------------------------------------ config


def test_config_is_validated_and_written_atomically(fresh):
    manager, home = fresh.manager, fresh.home
    bad_names = ["Bad", "", "-x", "a" * 33, "a b", "x/y"]
    for name in bad_names:
        with pytest.raises(InvalidRequest, match="server name"):
            manager.add_server(name, ["echo"])
    for command in ([], [""], ["py\x00thon"], "python -m server", ["python", ""]):
        with pytest.raises(InvalidRequest, match="command"):
            manager.add_server("x", command)
    with pytest.raises(InvalidRequest, match="permission"):
        manager.add_server("x", ["echo"], permission="root")
    with pytest.raises(InvalidRequest, match="tool_permissions"):
        manager.add_server("x", ["echo"], tool_permissions={"t": "admin"})
    with pytest.raises(InvalidRequest, match="env"):
        manager.add_server("x", ["echo"], env={"A=B": "c"})
    assert not (home / CONFIG_FILE).exists()

    info = manager.add_server("ok-1", ["echo", "hi"], env={"TOKEN": "t"}, cwd="/tmp")
    assert info.name == "ok-1" and info.permission == "exec" and not info.running and info.tools == []
    path = home / CONFIG_FILE
    data = json.loads(path.read_text())
    assert data["servers"]["ok-1"] == {
        "command": ["echo", "hi"],
        "env": {"TOKEN": "t"},
        "cwd": "/tmp",
        "permission": "exec",
        "tool_permissions": {},
        "timeout_s": 30.0,
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir() if p.name.startswith(".mcp.")] == []
    with pytest.raises(InvalidRequest, match="already exists"):
        manager.add_server("ok-1", ["echo"])
    with pytest.raises(NotFound):
        manager.remove_server("nope")

    broken = {
        "{not json": "not valid JSON",
        "[]": "must be a JSON object",
        '{"servers": []}': "servers",
        '{"servers": {"Bad Name": {"command": ["a"]}}}': "server name",
        '{"servers": {"x": {"command": []}}}': "servers.x.command",
        '{"servers": {"x": {"command": ["a"], "shell": true}}}': "shell",
        '{"servers": {"x": {"command": ["a"], "timeout_s": -1}}}': "timeout_s",
        '{"servers": {}, "extra": 1}': "extra",
    }
    for text, problem in broken.items():
        path.write_text(text)
        for call in (manager.list_servers, manager.tools, lambda: manager.add_server("y", ["echo"])):
            with pytest.raises(InvalidRequest) as err:
                call()
            assert str(path) in str(err.value) and problem in str(err.value)
    path.write_text('{"servers": {"hand-written": {"command": ["echo"]}}}')
    assert [i.name for i in manager.list_servers()] == ["hand-written"]


def test_remove_server_then_close_leave_no_child_processes(fresh, git_repo):
    manager, db = fresh.manager, fresh.db
    before = _children()
    manager.add_server("time", TIME_CMD)
    manager.add_server("git", git_cmd(git_repo))
    assert len(manager.tools()) > 10
    pids = _children() - before
    time_pids = {p for p in pids if "mcp_server_time" in " ".join(psutil.Process(p).cmdline())}
    git_pids = {p for p in pids if "mcp_server_git" in " ".join(psutil.Process(p).cmdline())}
    assert len(time_pids) == 1 and len(git_pids) == 1
    assert db.fetchone("SELECT count(*) FROM mcp_pins WHERE server = 'time'")[0] == 2

    # remove_server stops that server only and forgets its pins
    manager.remove_server("time")
    assert not _wait_gone(time_pids, timeout=1)
    assert all(_is_alive(p) for p in git_pids)
    assert db.fetchone("SELECT count(*) FROM mcp_pins WHERE server = 'time'")[0] == 0
    assert db.fetchone("SELECT count(*) FROM mcp_pins WHERE server = 'git'")[0] > 0
    assert "time" not in json.loads((fresh.home / CONFIG_FILE).read_text())["servers"]
    assert [i.name for i in manager.list_servers()] == ["git"]
    with pytest.raises(NotFound):
        manager.remove_server("time")
    with pytest.raises(NotFound):
        manager.tools("time")
    assert COMMIT_MESSAGE in manager.call_tool("git", "git_log", {"repo_path": str(git_repo)})

    # close stops the rest and leaves no child process behind
    manager.close()
    assert not _wait_gone(pids, timeout=1)
    assert _children() - before == set()
    manager.close()  # idempotent
    with pytest.raises(WorkbenchError, match="closed"):
        manager.tools()
    assert all(not info.running for info in manager.list_servers())
