"""Ingestion killed with SIGKILL at random moments never leaves a half-written
document, an orphaned chunk, posting or vector, nor an index out of step."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON, cli_env
from workbench.engine.engine import Engine

FILES = 40
GROUP_SIZE = 5
GROUPS = FILES // GROUP_SIZE
ROUNDS = 10
#: whole ingests a child must report before its kill is scheduled (the first round always waits for one)
WAIT_FOR_INGESTS = (0, 1, 1, 2)

TOPICS = ["harbour cranes", "alpine glaciers", "desert beetles", "river barges", "orchard pests",
          "volcanic soils", "tidal mills", "lighthouse lenses"]  # fmt: skip

#: chunk size for every ingest: a few chunks per file
CHUNKING = {"max_chars": 300, "overlap_chars": 50}

# The files sit in eight folders of five, ingested one folder at a time, each
# child starting at another folder: an ingest is one transaction after its
# embedding. The child reports each finished ingest; the parent waits for a
# number of them (observed progress, not a guess of how fast a busy machine
# is), then kills after a random fraction of another ingest, so kills land
# before, inside and after commits, and during index saves.
WRITER = r"""
import random, sys
from pathlib import Path
from workbench.engine.engine import Engine
from tests.integration.test_ingest_crash import CHUNKING, GROUP_SIZE, GROUPS, file_path, write_file

home, docs, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
engine = Engine(home)
engine.index("kb.default")  # loads the embedder and opens (or repairs) the index
engine.embedder.embed(["warm up"])
print("ready", flush=True)
rng = random.Random(seed)
for step in range(10_000):
    group = (seed + step) % GROUPS
    write_file(docs, group * GROUP_SIZE + rng.randrange(GROUP_SIZE), seed * 100_000 + step)
    if rng.random() < 0.25:
        file_path(docs, group * GROUP_SIZE + rng.randrange(GROUP_SIZE)).unlink(missing_ok=True)
    for event in engine.ingest({"paths": [str(docs / f"g{group}")], **CHUNKING}):
        pass
    print("ingested", flush=True)
"""


def unique_word(number: int) -> str:
    return f"uniq{number:02d}marker"


def file_path(docs: Path, number: int) -> Path:
    return docs / f"g{number // GROUP_SIZE}" / f"doc{number:02d}.md"


def write_file(docs: Path, number: int, revision: int) -> None:
    """Write document `number` atomically: a killed writer leaves the old or the new file."""
    rng = random.Random(number * 7919 + revision)
    sections = [f"# Document {number}\n\nThis is about {unique_word(number)} and revision {revision}.\n"]
    for section in range(3):
        topic = rng.choice(TOPICS)
        sentences = " ".join(
            f"Note {rng.randrange(10_000)} on {topic} in season {rng.randrange(4)}." for _ in range(rng.randint(3, 6))
        )
        sections.append(f"## Part {section} on {topic}\n\n{sentences}\n")
    target = file_path(docs, number)
    target.parent.mkdir(exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text("\n".join(sections), encoding="utf-8")
    os.replace(temporary, target)


def check_store(engine: Engine, rng: random.Random) -> int:
    """Every document wholly present or absent, no orphans, index in step; returns the document count."""
    db = engine.db
    documents = db.fetchall("SELECT id, path, chunk_count FROM documents WHERE collection = 'default'")
    for document_id, path, chunk_count in documents:
        ordinals = [
            r[0]
            for r in db.fetchall("SELECT ordinal FROM chunks WHERE document_id = ? ORDER BY ordinal", [document_id])
        ]
        assert ordinals == list(range(chunk_count)), path
    assert (
        db.fetchone(
            "SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM postings p WHERE p.chunk_id = c.id)"
        )[0]
        == 0
    )
    # All of a chunk's postings: their term frequencies add up to its length in terms.
    assert (
        db.fetchone(
            "SELECT count(*) FROM chunks c JOIN (SELECT chunk_id, sum(tf) AS terms FROM postings GROUP BY chunk_id) p "
            "ON p.chunk_id = c.id WHERE p.terms != c.length"
        )[0]
        == 0
    )
    assert (
        db.fetchone(
            "SELECT count(*) FROM chunks c WHERE NOT EXISTS "
            "(SELECT 1 FROM vectors v WHERE v.collection = 'kb.default' AND v.id = c.id)"
        )[0]
        == 0
    )
    assert (
        db.fetchone(
            "SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = c.document_id)"
        )[0]
        == 0
    )
    assert (
        db.fetchone(
            "SELECT count(*) FROM postings p WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = p.chunk_id)"
        )[0]
        == 0
    )
    assert (
        db.fetchone(
            "SELECT count(*) FROM vectors v WHERE v.collection = 'kb.default' "
            "AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = v.id)"
        )[0]
        == 0
    )
    chunks = db.fetchone("SELECT count(*) FROM chunks WHERE collection = 'default'")[0]
    assert engine.index("kb.default").count == chunks
    if documents:
        _, path, _ = rng.choice(documents)
        number = int(Path(path).stem.removeprefix("doc"))
        hits = engine.search({"query": unique_word(number)}).hits
        assert hits[0].path == path and hits[0].bm25_rank == 1
    return len(documents)


@pytest.mark.timeout(1200)
def test_kill_9_during_ingestion_leaves_whole_documents(workbench_home: Path, embedder, tmp_path: Path):
    workbench_home.mkdir(parents=True, exist_ok=True)
    docs = tmp_path / "docs"
    docs.mkdir()
    for number in range(FILES):
        write_file(docs, number, 0)
    rng = random.Random(20240607)
    seen_counts = []
    errors = tmp_path / "child-stderr.txt"
    for round_number in range(1, ROUNDS + 1):
        with errors.open("w") as stderr:
            child = subprocess.Popen(
                [PYTHON, "-c", WRITER, str(workbench_home), str(docs), str(round_number)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=cli_env(workbench_home),
            )
        try:
            assert child.stdout.readline().strip() == "ready", errors.read_text()
            wait_for = max(rng.choice(WAIT_FOR_INGESTS), 1 if round_number == 1 else 0)
            for _ in range(wait_for):
                assert child.stdout.readline().strip() == "ingested", errors.read_text()
            time.sleep(rng.uniform(0.0, 1.0))  # where inside the next ingest: timing may vary, progress may not
            assert child.poll() is None, errors.read_text()  # still ingesting when killed
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            child.stdout.close()
        with Engine(workbench_home, embedder=embedder) as engine:
            seen_counts.append(check_store(engine, rng))

    # The first round was killed after a whole ingest, so the checks saw real data from then on.
    assert min(seen_counts) > 0, seen_counts

    for number in range(FILES):
        write_file(docs, number, 999_999)
    with Engine(workbench_home, embedder=embedder) as engine:
        events = list(engine.ingest({"paths": [str(docs)], **CHUNKING}))
        report = events[-1].report
        assert report.skipped == [] and report.duplicates == []
        assert (report.added + report.updated, report.unchanged, report.removed) == (FILES, 0, 0)
        assert check_store(engine, rng) == FILES
        stored = dict(engine.db.fetchall("SELECT path, content_hash FROM documents"))
        assert stored == {
            str(file_path(docs, n)): hashlib.sha256(file_path(docs, n).read_bytes()).hexdigest() for n in range(FILES)
        }
        for number in (0, 17, 39):
            hits = engine.search({"query": unique_word(number), "mode": "bm25"}).hits
            assert hits[0].path == str(file_path(docs, number))
