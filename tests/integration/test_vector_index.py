"""The hnswlib index is a crash-safe cache of the vectors in DuckDB."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import cli_env
from workbench.engine.errors import InvalidRequest, StoreError
from workbench.engine.memory.index import VectorIndex, decode_vectors
from workbench.engine.store.db import Database

DIM = 16


def vectors(n: int, seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return data / np.linalg.norm(data, axis=1, keepdims=True)


@pytest.fixture
def db(workbench_home: Path):
    workbench_home.mkdir(parents=True, exist_ok=True)
    database = Database(workbench_home)
    yield database
    database.close()


def add(db: Database, index: VectorIndex, ids: list[int], data: np.ndarray) -> None:
    with db.transaction() as conn:
        index.stage_add(conn, ids, data)
    index.apply()


def test_search_finds_exact_match_and_respects_deletes(db, workbench_home):
    index = VectorIndex(db, workbench_home / "indexes", "docs", DIM)
    data = vectors(500)
    add(db, index, list(range(500)), data)
    assert index.count == 500
    best_id, score = index.search(data[42], 1)[0]
    assert best_id == 42 and score == pytest.approx(1.0, abs=1e-5)
    with db.transaction() as conn:
        index.stage_delete(conn, [42])
    index.apply()
    assert 42 not in [i for i, _ in index.search(data[42], 10)]
    assert index.count == 499


def test_recall_against_exact_search(db, workbench_home):
    index = VectorIndex(db, workbench_home / "indexes", "docs", DIM)
    data = vectors(3000, seed=1)
    add(db, index, list(range(3000)), data)
    queries = vectors(50, seed=2)
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    found = [set(i for i, _ in index.search(q, 10)) for q in queries]
    recall = np.mean([len(f & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.95


def test_reopen_loads_the_saved_file_and_replays_later_commits(db, workbench_home):
    folder = workbench_home / "indexes"
    index = VectorIndex(db, folder, "docs", DIM)
    data = vectors(300)
    add(db, index, list(range(200)), data[:200])
    index.save()
    # Committed to DuckDB, never applied to the index nor saved: as after a crash.
    with db.transaction() as conn:
        index.stage_add(conn, list(range(200, 300)), data[200:])
        index.stage_delete(conn, [7])
    reopened = VectorIndex(db, folder, "docs", DIM)
    assert not reopened.rebuilt_on_open
    assert reopened.count == 299
    assert reopened.search(data[250], 1)[0][0] == 250
    assert 7 not in [i for i, _ in reopened.search(data[7], 5)]


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "delete", "garbage"])
def test_damaged_index_file_is_rebuilt_from_duckdb(db, workbench_home, damage):
    folder = workbench_home / "indexes"
    index = VectorIndex(db, folder, "docs", DIM)
    data = vectors(400)
    add(db, index, list(range(400)), data)
    index.save()
    (path,) = folder.glob("docs.*.hnsw")
    if damage == "truncate":
        with path.open("r+b") as handle:
            handle.truncate(path.stat().st_size // 2)
    elif damage == "corrupt":
        raw = bytearray(path.read_bytes())
        for offset in range(1000, len(raw), 997):
            raw[offset] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif damage == "delete":
        path.unlink()
    else:
        path.write_bytes(os.urandom(path.stat().st_size))
    progress: list[tuple[int, int]] = []
    reopened = VectorIndex(db, folder, "docs", DIM, progress=lambda done, total: progress.append((done, total)))
    assert reopened.rebuilt_on_open
    assert progress[0] == (0, 400) and progress[-1] == (400, 400)
    assert reopened.count == 400
    assert all(reopened.search(data[i], 1)[0][0] == i for i in (0, 123, 399))


def test_deletes_past_the_threshold_compact_the_index(db, workbench_home):
    index = VectorIndex(db, workbench_home / "indexes", "docs", DIM, compact_ratio=0.2)
    add(db, index, list(range(100)), vectors(100))
    with db.transaction() as conn:
        index.stage_delete(conn, list(range(30)))
    index.apply()
    assert index.count == 70
    assert index._index.element_count == 70  # rebuilt without the deleted entries


def test_growth_beyond_initial_capacity(db, workbench_home):
    index = VectorIndex(db, workbench_home / "indexes", "docs", DIM)
    data = vectors(3000, seed=5)
    for start in range(0, 3000, 500):
        add(db, index, list(range(start, start + 500)), data[start : start + 500])
    assert index.count == 3000 and index.search(data[2999], 1)[0][0] == 2999


def test_bad_input(db, workbench_home):
    with pytest.raises(InvalidRequest, match="Collection name"):
        VectorIndex(db, workbench_home / "indexes", "../escape", DIM)
    index = VectorIndex(db, workbench_home / "indexes", "docs", DIM)
    with pytest.raises(InvalidRequest, match="vectors of 16 dimensions"):
        with db.transaction() as conn:
            index.stage_add(conn, [1], np.zeros((1, 8)))
    with pytest.raises(InvalidRequest, match="NaN"):
        with db.transaction() as conn:
            index.stage_add(conn, [1], np.full((1, DIM), np.nan))
    index.save()
    with pytest.raises(StoreError, match="16-dimensional"):
        VectorIndex(db, workbench_home / "indexes", "docs", 32)


WRITER = """
import sys, numpy as np
from pathlib import Path
from workbench.engine.store.db import Database
from workbench.engine.memory.index import VectorIndex, decode_vectors
home = Path(sys.argv[1]); start = int(sys.argv[2])
db = Database(home)
index = VectorIndex(db, home / "indexes", "docs", 16)
rng = np.random.default_rng(start)
print("ready", flush=True)
for batch in range(10_000):
    first = start + batch * 50
    data = rng.normal(size=(50, 16)).astype(np.float32)
    with db.transaction() as conn:
        index.stage_add(conn, list(range(first, first + 50)), data)
        if batch % 3 == 2:
            index.stage_delete(conn, [first - 75])
    index.apply()
    if batch % 4 == 0:
        index.save()
    print("committed", flush=True)
"""


def test_kill_9_during_writes_never_needs_repair(workbench_home: Path):
    workbench_home.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    for round_number in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(workbench_home), str(1_000_000 * (round_number + 1))],
            stdout=subprocess.PIPE,
            text=True,
            env=cli_env(workbench_home),
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            # Kill after observed progress (some committed batches), then a random moment into the next ones.
            for _ in range(rng.randint(1, 12)):
                assert child.stdout.readline().strip() == "committed"
            time.sleep(rng.uniform(0.0, 0.2))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            child.stdout.close()
        db = Database(workbench_home)
        try:
            index = VectorIndex(db, workbench_home / "indexes", "docs", DIM)
            live = db.fetchone("SELECT count(*) FROM vectors WHERE collection = 'docs'")[0]
            assert live > 0 and index.count == live
            if live:
                vector_id, embedding = db.fetchone("SELECT id, embedding FROM vectors ORDER BY random() LIMIT 1")
                assert index.search(decode_vectors([embedding], DIM)[0], 1)[0][0] == vector_id
            index.save()
        finally:
            db.close()
