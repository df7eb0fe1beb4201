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
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=cli_env(home), timeout=300
    )


def one_sentence(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr == f"workbench: error: {expected}\n"


def test_lock_file_that_is_a_folder(workbench_home: Path):
    (workbench_home / "workbench.lock").mkdir(parents=True)
    one_sentence(
        workbench(workbench_home, "sessions", "list"),
        f"{workbench_home / 'workbench.lock'} is a folder, not the home's lock file; remove it and try again.",
    )


def test_indexes_that_is_a_file(workbench_home: Path, embedder):
    workbench_home.mkdir(parents=True)
    (workbench_home / "indexes").write_text("not a folder")
    with Engine(workbench_home, embedder=embedder) as engine:
        with pytest.raises(StoreError) as info:
            engine.remember({"key": "k", "value": "v"})
    assert str(info.value) == (
        f"{workbench_home / 'indexes'} is a file, not the folder of the vector indexes; move it aside and retry."
    )


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


def garble(database: Path, text: str) -> int:
    """Flip 64 bytes of every stored copy of the middle of `text`; returns how many copies."""
    data = bytearray(database.read_bytes())
    probe = text[len(text) // 2 : len(text) // 2 + 32].encode()
    copies = 0
    start = data.find(probe)
    while start >= 0:
        data[start : start + 64] = bytes(b ^ 0x55 for b in data[start : start + 64])
        copies += 1
        start = data.find(probe, start + 64)
    database.write_bytes(bytes(data))
    return copies


def test_garbled_block_inside_the_database(workbench_home: Path, embedder):
    import httpx

    from tests.server.conftest import start_server

    rng = random.Random(5)
    value = "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(300_000)
    )
    with Engine(workbench_home, embedder=embedder) as engine:
        engine.remember({"key": "small", "value": "tiny"})
        engine.remember({"key": "big", "value": value})
    assert garble(workbench_home / DB_FILE, value) >= 1

    engine = Engine(workbench_home, embedder=embedder)  # the damage is not where opening reads
    server, thread, sock, port = start_server(engine)
    _, key = engine.api_keys.create("test", ["*"])
    sentence = (
        f"The database {workbench_home / DB_FILE} is damaged (a block failed its check); "
        "restore it from a backup, or move it aside to start afresh."
    )
    try:
        with pytest.raises(StoreDamaged) as info:
            engine.recall("big")
        assert str(info.value) == sentence
        assert engine.recall("small").value == "tiny"  # the rest of the database still reads
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as client:
            response = client.get("/workbench/v1/memory/default/big")
            assert response.status_code == 500
            assert response.json()["error"] == {"code": "STORE_DAMAGED", "message": sentence, "details": None}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        engine.close()
