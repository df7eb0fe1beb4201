"""A full disk under a served or CLI home: writes are refused with one
sentence (507 over HTTP, exit 1 on the CLI), never acknowledged unless
durable, and everything acknowledged survives once space returns, in this
process and in a new one. The home sits on a real 12 MB tmpfs."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PYTHON, cli_env
from workbench.engine.engine import Engine
from workbench.engine.errors import NotFound

BIG = 200_000


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 12 MB tmpfs mounted for this test (root only; skipped where mounting is not permitted)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 12 MB tmpfs for the disk-full tests needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to the last page; returns the filler file (unlink it to free the space)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (1 << 20, 1 << 16, 1 << 12):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def big_value(n: int) -> str:
    return f"value {n}: " + "".join(f"{i:x}" for i in range(BIG // 5))[:BIG]


def recall_in_new_process(home: Path, keys: list[str]) -> dict[str, str | None]:
    """What a fresh process finds under each key (None when absent)."""
    script = (
        "import json, sys\n"
        "from workbench.engine.engine import Engine\n"
        "from workbench.engine.errors import NotFound\n"
        "found = {}\n"
        "with Engine(sys.argv[1]) as engine:\n"
        "    for key in sys.argv[2:]:\n"
        "        try:\n"
        "            found[key] = engine.recall(key).value\n"
        "        except NotFound:\n"
        "            found[key] = None\n"
        "print(json.dumps(found))\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", script, str(home), *keys], capture_output=True, text=True, env=cli_env(home), timeout=600
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_served_home_refuses_writes_on_a_full_disk_and_keeps_every_acknowledged_one(small_disk: Path, embedder):
    import httpx

    from tests.server.conftest import start_server

    home = small_disk / "home"
    engine = Engine(home, embedder=embedder)
    server, thread, sock, port = start_server(engine)
    _, key = engine.api_keys.create("test", ["*"])
    acknowledged: dict[str, str] = {}
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=300
        ) as client:

            def remember(name: str, value: str, idempotency_key: str | None = None) -> httpx.Response:
                headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
                response = client.post("/workbench/v1/memory", json={"key": name, "value": value}, headers=headers)
                if response.status_code == 200:
                    acknowledged[name] = value
                return response

            assert remember("before", "written before the disk filled").status_code == 200
            filler = fill(small_disk)
            for n in range(3):
                # With an Idempotency-Key too: whether its record or the memory meets the full disk first, 507.
                response = remember(f"refused{n}", big_value(n), idempotency_key="retry-me" if n == 2 else None)
                assert response.status_code == 507, response.text
                message = response.json()["error"]["message"]
                assert message == f"The disk holding {home} is full; nothing was saved. Free space and retry."
            # Reads go on while the disk is full.
            assert client.get("/workbench/v1/memory/default/before").json()["value"] == acknowledged["before"]

            filler.unlink()
            for n in range(2):
                assert remember(f"after{n}", big_value(10 + n)).status_code == 200
            for name, value in acknowledged.items():
                response = client.get(f"/workbench/v1/memory/default/{name}")
                assert response.status_code == 200, response.text
                assert response.json()["value"] == value
            assert client.get("/workbench/v1/memory/default/refused0").status_code == 404
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        engine.close()

    found = recall_in_new_process(home, [*acknowledged, "refused0", "refused1", "refused2"])
    assert found == {**acknowledged, "refused0": None, "refused1": None, "refused2": None}


def test_cli_remember_and_ingest_on_a_full_disk_say_one_sentence(small_disk: Path, tmp_path: Path, embedder):
    home = small_disk / "home"
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(3):
        (docs / f"note{n}.md").write_text(f"# Note {n}\n\nAbout harbour cranes number {n}.\n" * 40, encoding="utf-8")
    with Engine(home, embedder=embedder) as engine:
        engine.remember({"key": "before", "value": "written before the disk filled"})

    def workbench(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "workbench", *args],
            capture_output=True,
            text=True,
            env=cli_env(home),
            timeout=600,
            input=stdin,
        )

    filler = fill(small_disk)
    sentence = f"workbench: error: The disk holding {home} is full; nothing was saved. Free space and retry.\n"
    refused = workbench("remember", "refused", "-", stdin=big_value(1))
    assert (refused.returncode, refused.stderr) == (1, sentence)
    ingest = workbench("ingest", str(docs))
    assert ingest.returncode == 1
    assert "Traceback" not in ingest.stderr and ingest.stderr.endswith(sentence), ingest.stderr

    filler.unlink()
    with Engine(home, embedder=embedder) as engine:
        assert engine.recall("before").value == "written before the disk filled"
        with pytest.raises(NotFound):
            engine.recall("refused")
        assert engine.list_documents("default") == []  # the refused ingest committed nothing
        report = list(engine.ingest({"paths": [str(docs)]}))[-1].report
        assert report.added == 3
        assert engine.search({"query": "harbour cranes number 2", "mode": "bm25"}).hits[0].path == str(
            docs / "note2.md"
        )


def test_index_save_on_a_full_disk_keeps_the_committed_write_and_the_last_good_file(small_disk: Path):
    """hnswlib writes a short file on ENOSPC without a word: the save must notice, keep the last
    good generation, and fail nothing; the committed rows are replayed on the next open."""
    import numpy as np

    from workbench.engine.memory.index import VectorIndex
    from workbench.engine.store.db import Database

    home = small_disk / "home"
    home.mkdir()
    rng = np.random.default_rng(7)
    db = Database(home)
    try:
        index = VectorIndex(db, home / "indexes", "docs", 384)
        with db.transaction() as conn:
            index.stage_add(conn, list(range(1500)), rng.normal(size=(1500, 384)))
        index.apply()
        assert index.save()
        saved = sorted(p.name for p in (home / "indexes").iterdir())
        record = db.fetchone("SELECT generation, checksum FROM vector_indexes WHERE collection = 'docs'")

        filler = fill(small_disk)
        os.truncate(filler, filler.stat().st_size - 400_000)  # room for a commit, not for a 2.6 MB index file
        vector = rng.normal(size=(1, 384))
        with db.transaction() as conn:
            index.stage_add(conn, [5000], vector)
        index.apply()
        assert index.save() is False
        assert sorted(p.name for p in (home / "indexes").iterdir()) == saved
        assert db.fetchone("SELECT generation, checksum FROM vector_indexes WHERE collection = 'docs'") == record
        assert index.search(vector[0], 1)[0][0] == 5000
        filler.unlink()
    finally:
        db.close()

    db = Database(home)
    try:
        reopened = VectorIndex(db, home / "indexes", "docs", 384)
        assert not reopened.rebuilt_on_open  # the last good file loaded, the new row replayed
        assert reopened.count == 1501 and reopened.search(vector[0], 1)[0][0] == 5000
    finally:
        db.close()
