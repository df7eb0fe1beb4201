"""The workbench's own files are out of the tools' reach, whatever the workspace roots.

A user who adds `~` as a root puts the default home (and the keyring's file)
inside it. Real engine, real files, real subprocesses: every tool call goes
through `Engine.execute_tool` (the registry and the context an agent run gets).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from workbench.engine.tools.base import ToolContext

REFUSED = "the workbench's own files"


def _run(engine, tool: str, **arguments):
    return engine.execute_tool({"tool": tool, "arguments": arguments})


def _refused(result) -> bool:
    return not result.ok and REFUSED in (result.error or "")


@pytest.fixture
def wide_engine(engine, tmp_path: Path):
    """An engine whose only root (tmp_path) contains its home, as `~` contains the default home."""
    assert engine.home.resolve().is_relative_to(tmp_path.resolve())
    engine.add_workspace_root(str(tmp_path))
    (engine.home / "mcp.json").write_text('{"servers": {}}\n')
    return engine


def test_settings_and_mcp_servers_cannot_be_rewritten(wide_engine, tmp_path: Path) -> None:
    home = wide_engine.home
    before = {name: (home / name).read_text() for name in ("config.json", "mcp.json")}
    evil_server = json.dumps({"servers": {"x": {"command": ["sh", "-c", "touch /tmp/pwned"]}}})
    attempts = [
        _run(wide_engine, "write_file", path=str(home / "mcp.json"), content=evil_server),
        _run(wide_engine, "write_file", path=str(home / "config.json"), content='{"workspace_roots": ["/"]}'),
        _run(wide_engine, "write_file", path="home/config.json", content="{}", append=True),  # relative to the root
        _run(wide_engine, "write_file", path=str(home / "templates" / "new.json"), content="{}"),
    ]
    assert all(_refused(a) for a in attempts), [a.error for a in attempts]
    assert {name: (home / name).read_text() for name in before} == before
    assert not (home / "templates").exists()
    # the rest of the root is as reachable as before
    assert _run(wide_engine, "write_file", path=str(tmp_path / "notes.txt"), content="fine").ok


def test_the_home_cannot_be_read_listed_or_searched(wide_engine, tmp_path: Path) -> None:
    home = wide_engine.home
    (home / "secret-notes.txt").write_text("needle in the home\n")
    (tmp_path / "work.txt").write_text("needle in the work\n")
    assert _refused(_run(wide_engine, "read_file", path=str(home / "config.json")))
    assert _refused(_run(wide_engine, "list_dir", path=str(home)))
    assert _refused(_run(wide_engine, "search_files", query="needle", path=str(home)))
    found = _run(wide_engine, "search_files", query="needle", path=str(tmp_path))
    assert found.ok and "needle in the work" in found.output and "needle in the home" not in found.output


def test_symlinks_into_the_home_are_refused(wide_engine, tmp_path: Path) -> None:
    home = wide_engine.home
    (tmp_path / "innocent").symlink_to(home, target_is_directory=True)
    (tmp_path / "settings.json").symlink_to(home / "config.json")
    (tmp_path / "future.json").symlink_to(home / "not-yet.json")  # a dangling link, written through
    (tmp_path / "work.txt").write_text("needle\n")
    (home / "in-home.txt").write_text("needle\n")
    (tmp_path / "needle-link.txt").symlink_to(home / "in-home.txt")
    assert _refused(_run(wide_engine, "read_file", path=str(tmp_path / "innocent" / "config.json")))
    assert _refused(_run(wide_engine, "read_file", path="settings.json"))
    assert _refused(_run(wide_engine, "write_file", path=str(tmp_path / "innocent" / "mcp.json"), content="{}"))
    assert _refused(_run(wide_engine, "write_file", path=str(tmp_path / "future.json"), content="{}"))
    assert not (home / "not-yet.json").exists()
    found = _run(wide_engine, "search_files", query="needle", path=str(tmp_path))
    assert found.ok and "needle-link.txt" not in found.output and "work.txt" in found.output


def test_the_keyring_file_is_refused(engine, tmp_path: Path) -> None:
    """keyrings.alt keeps every stored key in one file (`file_path`); a root holding it does not open it."""
    import base64

    import keyring

    engine.add_provider("corp", "openai", "http://127.0.0.1:9/v1", ["m"])
    engine.set_provider_key("corp", "sk-keyring-secret-0123456789")
    try:
        stored = base64.b64encode(b"sk-keyring-secret-0123456789").decode()  # the plaintext backend's encoding
        keyring_file = Path(keyring.get_keyring().file_path)
        assert stored in keyring_file.read_text()
        engine.add_workspace_root(str(keyring_file.parent.parent))
        read = _run(engine, "read_file", path=str(keyring_file))
        assert _refused(read) and stored not in str(read)
        found = _run(engine, "search_files", query="provider_", path=str(keyring_file.parent.parent))
        assert found.ok and stored not in found.output and "keyring_pass" not in found.output
        assert _refused(_run(engine, "write_file", path=str(keyring_file), content="[x]\n"))
        assert stored in keyring_file.read_text()
    finally:
        engine.remove_provider("corp")


def test_subprocess_tools_never_run_in_the_home(engine, tmp_path: Path) -> None:
    # run_command's cwd, and the first root as the default working folder of both
    engine.add_workspace_root(str(tmp_path))
    assert _refused(_run(engine, "run_command", argv=["touch", "made-here"], cwd=str(engine.home)))
    (tmp_path / "into-home").symlink_to(engine.home, target_is_directory=True)
    assert _refused(_run(engine, "run_command", argv=["touch", "made-here"], cwd="into-home"))
    engine.remove_workspace_root(str(tmp_path))
    engine.add_workspace_root(str(engine.home))
    assert _refused(_run(engine, "run_command", argv=["touch", "made-here"]))
    assert _refused(_run(engine, "run_python", code="open('made-here', 'w').close()"))
    assert not (engine.home / "made-here").exists()


def test_run_python_needs_a_workspace_root(engine) -> None:
    result = _run(engine, "run_python", code="print(42)")
    assert not result.ok and "run_python needs a workspace root" in result.error


def test_git_add_cannot_stage_the_home(wide_engine, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "work.txt").write_text("work\n")
    assert _refused(_run(wide_engine, "git_add", repo=str(tmp_path), paths=["."]))
    assert _run(wide_engine, "git_add", repo=str(tmp_path), paths=["work.txt"]).ok


def test_every_tool_context_of_an_engine_protects_its_home(engine) -> None:
    """Agent runs build their own ToolContext: it is protected from the engine alone."""
    context = ToolContext(roots=[engine.home.parent], engine=engine)
    assert Path(os.path.realpath(engine.home)) in context.protected
