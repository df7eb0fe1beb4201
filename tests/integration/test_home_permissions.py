"""The home is the owner's alone: folder 700, files 600, whatever the umask, and an older home is tightened.

Real engine on a real home, and the real CLI in a subprocess started with the
common umask 022 (which leaves new files 644 and folders 755).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _loose(home: Path) -> list[str]:
    """Everything in `home` (and `home` itself) that group or others may use (symlinks have no mode of their own)."""
    found = [str(home)] if _mode(home) & 0o077 else []
    for folder, dirs, files in os.walk(home):
        found += [
            os.path.join(folder, n)
            for n in dirs + files
            if not Path(folder, n).is_symlink() and _mode(Path(folder, n)) & 0o077
        ]
    return found


@pytest.fixture
def common_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_home_is_private(workbench_home: Path, common_umask: None) -> None:
    from workbench.engine.engine import Engine

    assert not workbench_home.exists()
    with Engine(workbench_home) as engine:
        engine.add_workspace_root(str(workbench_home.parent))
        assert _mode(workbench_home) == 0o700
        assert _mode(workbench_home / "workbench.duckdb") == 0o600
        assert _mode(workbench_home / "config.json") == 0o600
        assert _mode(workbench_home / "indexes") == 0o700 and _mode(workbench_home / "logs") == 0o700
        assert _loose(workbench_home) == []


def test_an_existing_home_is_tightened_on_open(workbench_home: Path, common_umask: None) -> None:
    from workbench.engine.engine import Engine

    with Engine(workbench_home):
        pass
    # as an older version left it: everything readable by all
    (workbench_home / "workbench.log").write_text("a traceback with a prompt in it\n")
    (workbench_home / "indexes" / "memory").mkdir()
    (workbench_home / "indexes" / "memory" / "vectors.bin").write_bytes(b"\0" * 16)
    (workbench_home / "logs" / "mcp-x.log").write_text("stderr\n")
    for folder, dirs, files in os.walk(workbench_home):
        for name in dirs:
            os.chmod(Path(folder, name), 0o755)
        for name in files:
            os.chmod(Path(folder, name), 0o644)
    os.chmod(workbench_home, 0o755)
    outside = workbench_home.parent / "shared.txt"
    outside.write_text("not ours\n")
    os.chmod(outside, 0o644)
    (workbench_home / "link").symlink_to(outside)  # a symlink is not followed out of the home
    assert len(_loose(workbench_home)) >= 8

    with Engine(workbench_home):
        assert _loose(workbench_home) == []
    assert _mode(workbench_home / "workbench.log") == 0o600
    assert _mode(outside) == 0o644


def test_the_cli_creates_its_log_and_database_private(workbench_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "sessions", "list"],
        env=cli_env(workbench_home),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),
    )
    assert result.returncode == 0, result.stderr
    assert (workbench_home / "workbench.log").exists() and (workbench_home / "workbench.duckdb").exists()
    assert _loose(workbench_home) == []


def test_only_the_workbench_files_of_a_home_are_touched(workbench_home: Path, common_umask: None) -> None:
    """`--home .` in a project folder must not make the project's own files private."""
    from workbench.engine.engine import Engine

    workbench_home.mkdir()
    theirs = [workbench_home / "README.md", workbench_home / "src" / "app.py", workbench_home / "models" / "m.gguf"]
    for path in theirs:
        path.parent.mkdir(exist_ok=True)
        path.write_text("shared\n")
        os.chmod(path, 0o644)
    with Engine(workbench_home):
        pass
    assert [_mode(p) for p in theirs] == [0o644] * 3
    assert _mode(workbench_home / "workbench.duckdb") == 0o600 and _mode(workbench_home) == 0o700
