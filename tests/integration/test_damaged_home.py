"""A damaged home, or a damaged import, gets one sentence, never a traceback:
a garbled block inside the database, `indexes` being a file, `workbench.lock`
being a folder, and an agent file with hundreds of bad skills."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import cli_env
from workbench.engine.engine import Engine
from workbench.engine.errors import StoreDamaged, StoreError
from workbench.engine.store.db import DB_FILE

#: DuckDB's file layout: three 4 kB headers, then 256 kB blocks, each starting with its checksum
HEADERS, BLOCK = 3 * 4096, 256 * 1024


def workbench(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          env=cli_env(home), timeout=300)


def one_sentence(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr == f"workbench: error: {expected}\n"


def test_lock_file_that_is_a_folder(workbench_home: Path):
    (workbench_home / "workbench.lock").mkdir(parents=True)
    one_sentence(workbench(workbench_home, "sessions", "list"),
                 f"{workbench_home / 'workbench.lock'} is a folder, not the home's lock file; remove it and try again.")


def test_indexes_that_is_a_file(workbench_home: Path, embedder):
    workbench_home.mkdir(parents=True)
    (workbench_home / "indexes").write_text("not a folder")
    with Engine(workbench_home, embedder=embedder) as engine:
        with pytest.raises(StoreError) as info:
            engine.remember({"key": "k", "value": "v"})
    assert str(info.value) == (
        f"{workbench_home / 'indexes'} is a file, not the folder of the vector indexes; move it aside and retry.")


def test_agent_import_with_hundreds_of_bad_skills_names_a_few(workbench_home: Path, tmp_path: Path):
    document = {
        "format": "workbench-agent/1",
        "agent": {"id": "crowded", "name": "Crowded"},
        "skills": [{"skill_id": f"s{n}", "name": ""} for n in range(300)],
    }
    path = tmp_path / "crowded.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    result = workbench(workbench_home, "agents", "import", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.count("generated_skills.") == 3, result.stderr
    assert result.stderr.rstrip().endswith("... and 297 more."), result.stderr
