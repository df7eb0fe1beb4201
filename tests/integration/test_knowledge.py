"""Knowledge base: ingest, hybrid search, pins and cited answers, with the real
embedder, the real default chat model, real DuckDB and real files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.unit.test_loaders import minimal_pdf
from workbench.engine.engine import Engine
from workbench.engine.errors import InvalidRequest, NotFound
from workbench.engine.knowledge.base import BATCH_CHUNKS
from workbench.engine.schemas import IngestFinished, IngestReport, Progress

GUIDE_MD = """\
# Telescope guide

The quasar telescope on the ridge was finished in 1987.
Its mirror is cleaned every spring by the observatory staff.

## Install

Mount the tripod, then level the base plate.

```python
def zenith_angle(altitude):
    return 90 - altitude
```

## Maintenance

Oil the gears twice a year.
"""

NOTES_TXT = "Field notes: a pelican colony nests on the south island.\nThe birds return in April.\n"

PAGE_HTML = (
    "<html><head><title>Coastal page</title></head><body>"
    "<h1>Lighthouses</h1><p>Lighthouse keepers trim the lamp wick at dusk.</p>"
    "<script>var ignored = 'scriptword';</script></body></html>"
)

CODE_PY = '''\
def frobnicate(values):
    """Double every value."""
    return [v * 2 for v in values]


class Widget:
    colour = "teal"
'''

DATA_JSON = '{"volcano": "Etna", "height_m": 3357, "country": "Italy"}'

TABLE_CSV = "city,river\nParis,Seine\nLondon,Thames\n"

SUPPORTED_FILES = ["code.py", "data.json", "guide.md", "notes.txt", "page.html", "paper.pdf", "table.csv"]
SKIPPED_FILES = {
    "blob.txt": "binary file",
    "empty.md": "empty file",
    "image.xyz": "unsupported file type .xyz",
    "latin1.txt": "not valid UTF-8 text",
}


def write_corpus(folder: Path) -> Path:
    """The mixed folder: one file of each supported kind plus four that must be skipped."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "guide.md").write_text(GUIDE_MD, encoding="utf-8")
    (folder / "notes.txt").write_text(NOTES_TXT, encoding="utf-8")
    (folder / "page.html").write_text(PAGE_HTML, encoding="utf-8")
    (folder / "code.py").write_text(CODE_PY, encoding="utf-8")
    (folder / "data.json").write_text(DATA_JSON, encoding="utf-8")
    (folder / "table.csv").write_text(TABLE_CSV, encoding="utf-8")
    (folder / "paper.pdf").write_bytes(
        minimal_pdf([["Glacier retreat in the Alps"], ["Ice cores from 1850 onwards"]], title="Glacier paper")
    )
    (folder / "empty.md").write_text("", encoding="utf-8")
    (folder / "blob.txt").write_bytes(b"header\0\x01\x02binary payload")
    (folder / "image.xyz").write_text("not a format we read", encoding="utf-8")
    (folder / "latin1.txt").write_bytes("café crème brûlée".encode("latin-1"))
    return folder


def ingest(engine: Engine, *paths: Path, **options) -> tuple[list, IngestReport]:
    events = list(engine.ingest({"paths": [str(p) for p in paths], **options}))
    finished = [e for e in events if isinstance(e, IngestFinished)]
    assert len(finished) == 1 and events[-1] is finished[0]
    return events, finished[0].report


def doc_id(engine: Engine, path: Path, collection: str = "default") -> int | None:
    row = engine.db.fetchone("SELECT id FROM documents WHERE collection = ? AND path = ?", [collection, str(path)])
    return None if row is None else row[0]


def assert_consistent(engine: Engine, collection: str = "default") -> int:
    """Every document whole, nothing orphaned, the index in step; returns the chunk count."""
    db = engine.db
    for document_id, path, chunk_count in db.fetchall(
        "SELECT id, path, chunk_count FROM documents WHERE collection = ?", [collection]
    ):
        ordinals = [
            r[0]
            for r in db.fetchall("SELECT ordinal FROM chunks WHERE document_id = ? ORDER BY ordinal", [document_id])
        ]
        assert ordinals == list(range(chunk_count)), path
    missing_postings = db.fetchone(
        "SELECT count(*) FROM chunks c WHERE c.collection = ? "
        "AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.chunk_id = c.id)",
        [collection],
    )[0]
    missing_vectors = db.fetchone(
        "SELECT count(*) FROM chunks c WHERE c.collection = ? "
        "AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.collection = ? AND v.id = c.id)",
        [collection, f"kb.{collection}"],
    )[0]
    assert (missing_postings, missing_vectors) == (0, 0)
    # All of a chunk's postings: their term frequencies add up to its length in terms.
    partial_postings = db.fetchone(
        "SELECT count(*) FROM chunks c JOIN (SELECT chunk_id, sum(tf) AS terms FROM postings GROUP BY chunk_id) p "
        "ON p.chunk_id = c.id WHERE c.collection = ? AND p.terms != c.length",
        [collection],
    )[0]
    assert partial_postings == 0
    orphan_chunks = db.fetchone(
        "SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = c.document_id)"
    )[0]
    orphan_postings = db.fetchone(
        "SELECT count(*) FROM postings p WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = p.chunk_id)"
    )[0]
    orphan_vectors = db.fetchone(
        "SELECT count(*) FROM vectors v WHERE v.collection = ? "
        "AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.id = v.id)",
        [f"kb.{collection}"],
    )[0]
    assert (orphan_chunks, orphan_postings, orphan_vectors) == (0, 0, 0)
    chunks = db.fetchone("SELECT count(*) FROM chunks WHERE collection = ?", [collection])[0]
    assert engine.index(f"kb.{collection}").count == chunks
    return chunks


def hit_paths(response) -> list[str]:
    return [h.path for h in response.hits]


# ------------------------------------------------------------------- ingest


def test_ingest_mixed_folder_reports_added_skipped_and_progress(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    events, report = ingest(mem_engine, docs)

    assert report.collection == "default"
    assert report.files_seen == 11
    assert (report.added, report.updated, report.unchanged, report.removed) == (7, 0, 0, 0)
    assert {Path(s.path).name: s.reason for s in report.skipped} == SKIPPED_FILES
    assert all(Path(s.path).parent == docs for s in report.skipped)
    assert report.duplicates == []
    stored = mem_engine.db.fetchall("SELECT path, kind, title FROM documents ORDER BY path")
    assert [Path(p).name for p, _, _ in stored] == SUPPORTED_FILES
    kinds = {Path(p).name: (kind, title) for p, kind, title in stored}
    assert kinds["guide.md"] == ("markdown", "Telescope guide")
    assert kinds["page.html"] == ("html", "Coastal page")
    assert kinds["paper.pdf"] == ("pdf", "Glacier paper")
    assert kinds["code.py"] == ("code", None) and kinds["table.csv"] == ("csv", None)
    total_chunks = mem_engine.db.fetchone("SELECT count(*) FROM chunks")[0]
    assert report.chunks_written == total_chunks >= 7

    progress = [e for e in events if isinstance(e, Progress)]
    assert events[:-1] == progress and isinstance(events[-1], IngestFinished)
    assert progress[0].done == 0
    assert all(p.total == 11 for p in progress)
    assert all(a.done <= b.done for a, b in zip(progress, progress[1:]))
    assert progress[-1].done == progress[-1].total == 11


def test_markdown_chunks_follow_headings_and_keep_code_fences_whole(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    ingest(mem_engine, docs)
    guide = docs / "guide.md"
    rows = mem_engine.db.fetchall(
        "SELECT heading, start_line, end_line, text FROM chunks WHERE document_id = ? ORDER BY ordinal",
        [doc_id(mem_engine, guide)],
    )
    assert [r[0] for r in rows] == ["Telescope guide", "Telescope guide > Install", "Telescope guide > Maintenance"]
    fenced = [text for _, _, _, text in rows if "```python" in text]
    assert len(fenced) == 1
    assert "def zenith_angle(altitude):\n    return 90 - altitude\n```" in fenced[0]
    # Line numbers point at the source file.
    lines = guide.read_text(encoding="utf-8").split("\n")
    for _, start, end, text in rows:
        own = text.split("\n")
        assert own[0] == lines[start - 1] and own[-1] == lines[end - 1]
    pdf = mem_engine.db.fetchall(
        "SELECT heading, text FROM chunks WHERE document_id = ? ORDER BY ordinal",
        [doc_id(mem_engine, docs / "paper.pdf")],
    )
    assert pdf == [("page 1", "Glacier retreat in the Alps"), ("page 2", "Ice cores from 1850 onwards")]
    html = mem_engine.db.fetchall(
        "SELECT text FROM chunks WHERE document_id = ?", [doc_id(mem_engine, docs / "page.html")]
    )
    assert "Lighthouse keepers trim the lamp wick at dusk." in html[0][0] and "scriptword" not in html[0][0]


def test_progress_across_several_batches_never_goes_back(mem_engine: Engine, tmp_path: Path):
    docs = tmp_path / "many"
    docs.mkdir()
    sentence = "Sentence {i} of file {f} talks about harbour number {i} and its cranes."
    files = BATCH_CHUNKS // 60 + 2
    for f in range(files):
        text = "\n\n".join(sentence.format(i=i, f=f) for i in range(60))
        (docs / f"file{f}.txt").write_text(text, encoding="utf-8")
    events, report = ingest(mem_engine, docs, max_chars=100, overlap_chars=0)
    progress = [e for e in events if isinstance(e, Progress)]
    assert report.added == files and report.chunks_written == 60 * files
    # More chunks than one commit batch: progress is reported in between,
    # including while a batch is being embedded.
    assert any(0 < p.done < p.total for p in progress)
    assert any(p.stage == "embedding" and p.done < p.total for p in progress)
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    assert progress[-1].done == progress[-1].total == files
    assert assert_consistent(mem_engine) == 60 * files


def test_every_document_is_stored_whole(mem_engine: Engine, tmp_path: Path):
    ingest(mem_engine, write_corpus(tmp_path / "docs"))
    db = mem_engine.db
    for document_id, chunk_count in db.fetchall("SELECT id, chunk_count FROM documents"):
        assert db.fetchone("SELECT count(*) FROM chunks WHERE document_id = ?", [document_id])[0] == chunk_count
        for (chunk_id,) in db.fetchall("SELECT id FROM chunks WHERE document_id = ?", [document_id]):
            assert db.fetchone("SELECT count(*) FROM postings WHERE chunk_id = ?", [chunk_id])[0] > 0
            assert (
                db.fetchone("SELECT count(*) FROM vectors WHERE collection = 'kb.default' AND id = ?", [chunk_id])[0]
                == 1
            )
    chunks = assert_consistent(mem_engine)
    assert mem_engine.index("kb.default").count == chunks == sum(c.chunks for c in mem_engine.list_collections())
    # Stored content hashes are those of the files.
    for path, content_hash, size in db.fetchall("SELECT path, content_hash, size FROM documents"):
        data = Path(path).read_bytes()
        assert (content_hash, size) == (hashlib.sha256(data).hexdigest(), len(data))


# ------------------------------------------------------------------- search


def test_hybrid_search_puts_the_distinctive_file_first_with_its_ranks(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    ingest(mem_engine, docs)
    for word, name in [
        ("quasar", "guide.md"),
        ("frobnicate", "code.py"),
        ("pelican", "notes.txt"),
        ("Thames", "table.csv"),
        ("glacier", "paper.pdf"),
        ("lighthouse", "page.html"),
        ("volcano", "data.json"),
    ]:
        response = mem_engine.search({"query": word})
        assert response.mode == "hybrid" and response.collection == "default"
        assert Path(response.hits[0].path) == docs / name, word
        assert response.hits[0].bm25_rank == 1 and response.hits[0].vector_rank is not None

    response = mem_engine.search({"query": "glacier ice pelican birds", "top_k": 8})
    hits = response.hits
    assert len(hits) == 8 and [h.rank for h in hits] == list(range(1, 9))
    assert [h.fused_score for h in hits] == sorted((h.fused_score for h in hits), reverse=True)
    for h in hits:
        assert (h.bm25_rank is None) == (h.bm25_score is None)
        assert (h.vector_rank is None) == (h.vector_score is None)
        assert h.bm25_rank is not None or h.vector_rank is not None
        assert 0.0 <= h.fused_score <= 1.0  # normalised scores, convex weights
        assert not h.pinned
        row = mem_engine.db.fetchone(
            "SELECT c.document_id, d.path, c.ordinal, c.start_line, c.end_line, c.text FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE c.id = ?",
            [h.chunk_id],
        )
        assert row == (h.document_id, h.path, h.ordinal, h.start_line, h.end_line, h.text)
    # Reciprocal rank fusion, the earlier default, stays available.
    for h in mem_engine.search(
        {"query": "glacier ice pelican birds", "top_k": 8, "fusion": "rrf", "bm25_weight": 1, "vector_weight": 1}
    ).hits:
        expected = sum(1.0 / (60 + r) for r in (h.bm25_rank, h.vector_rank) if r is not None)
        assert h.fused_score == pytest.approx(expected, abs=1e-6)


def test_search_modes_and_weights(mem_engine: Engine, tmp_path: Path):
    ingest(mem_engine, write_corpus(tmp_path / "docs"))
    query = "glacier ice pelican birds lighthouse"

    def ids(**options) -> list[int]:
        return [h.chunk_id for h in mem_engine.search({"query": query, "top_k": 8, **options}).hits]

    bm25 = mem_engine.search({"query": query, "mode": "bm25", "top_k": 8}).hits
    assert len(bm25) == 4  # two PDF pages, the notes and the HTML page
    assert all(h.vector_rank is None and h.vector_score is None for h in bm25)
    assert [h.bm25_rank for h in bm25] == [1, 2, 3, 4]
    assert [h.bm25_score for h in bm25] == sorted((h.bm25_score for h in bm25), reverse=True)
    assert {Path(h.path).name for h in bm25} == {"paper.pdf", "notes.txt", "page.html"}

    vector = mem_engine.search({"query": query, "mode": "vector", "top_k": 8}).hits
    assert len(vector) == 8
    assert all(h.bm25_rank is None and h.bm25_score is None for h in vector)
    assert [h.vector_rank for h in vector] == list(range(1, 9))
    assert [h.vector_score for h in vector] == sorted((h.vector_score for h in vector), reverse=True)

    # A zero weight turns hybrid into the other retriever's ordering.
    assert ids(vector_weight=0) == [h.chunk_id for h in bm25]
    assert ids(bm25_weight=0) == [h.chunk_id for h in vector]
    # With rank fusion at equal weights, every BM25 match outranks every chunk found by vectors alone.
    assert set(ids(fusion="rrf", bm25_weight=1, vector_weight=1)[:4]) == {h.chunk_id for h in bm25}
    # Convex fusion: the best of each list leads, whatever the other list says of it.
    assert {bm25[0].chunk_id, vector[0].chunk_id} <= set(ids(bm25_weight=1, vector_weight=1)[:2])
    # Weighting vectors heavily makes hybrid follow the vector order.
    assert ids(vector_weight=10, bm25_weight=0.01) == [h.chunk_id for h in vector]


def test_search_errors(mem_engine: Engine, tmp_path: Path):
    with pytest.raises(NotFound, match="ingest"):
        mem_engine.search({"query": "anything"})
    ingest(mem_engine, write_corpus(tmp_path / "docs"))
    with pytest.raises(NotFound, match="No collection 'nope'"):
        mem_engine.search({"query": "quasar", "collection": "nope"})
    for bad in ({"top_k": 0}, {"top_k": 51}, {"top_k": -3}):
        with pytest.raises(InvalidRequest, match="top_k"):
            mem_engine.search({"query": "quasar", **bad})
    with pytest.raises(InvalidRequest, match="query"):
        mem_engine.search({"query": ""})
    with pytest.raises(InvalidRequest, match="mode"):
        mem_engine.search({"query": "quasar", "mode": "fuzzy"})
    with pytest.raises(InvalidRequest, match="weight"):
        mem_engine.search({"query": "quasar", "bm25_weight": 0, "vector_weight": 0})
    with pytest.raises(InvalidRequest, match="collection"):
        mem_engine.search({"query": "quasar", "collection": "../etc"})


def test_bm25_is_current_right_after_each_ingest(mem_engine: Engine, tmp_path: Path):
    ingest(mem_engine, write_corpus(tmp_path / "docs"))
    assert mem_engine.search({"query": "zorblaxian", "mode": "bm25"}).hits == []
    extra = tmp_path / "extra" / "creatures.md"
    extra.parent.mkdir()
    extra.write_text("# Creatures\n\nThe zorblaxian hums at night near the reservoir.\n", encoding="utf-8")
    _, report = ingest(mem_engine, extra)
    assert report.added == 1
    hits = mem_engine.search({"query": "zorblaxian", "mode": "bm25"}).hits
    assert [Path(h.path) for h in hits] == [extra]
    assert "zorblaxian hums" in hits[0].text and hits[0].bm25_score > 0
    # Plural and capitalised forms reach the same term.
    assert [h.chunk_id for h in mem_engine.search({"query": "Zorblaxians", "mode": "bm25"}).hits] == [hits[0].chunk_id]


# ---------------------------------------------------------------- re-ingest


def test_reingest_skips_unchanged_and_follows_changes(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    _, first = ingest(mem_engine, docs)
    chunks_before = assert_consistent(mem_engine)

    _, again = ingest(mem_engine, docs)
    assert (again.added, again.updated, again.unchanged, again.removed, again.chunks_written) == (0, 0, 7, 0, 0)
    assert {Path(s.path).name: s.reason for s in again.skipped} == SKIPPED_FILES
    assert assert_consistent(mem_engine) == chunks_before

    code = docs / "code.py"
    code_doc = doc_id(mem_engine, code)
    code_chunks = [r[0] for r in mem_engine.db.fetchall("SELECT id FROM chunks WHERE document_id = ?", [code_doc])]
    assert code_chunks
    notes_doc = doc_id(mem_engine, docs / "notes.txt")
    (docs / "notes.txt").write_text("Field notes: a cormorant dries its wings on the pier.\n", encoding="utf-8")
    code.unlink()
    (docs / "added.md").write_text("# Added\n\nA brand new page about the saffron harvest.\n", encoding="utf-8")

    _, changed = ingest(mem_engine, docs)
    assert (changed.added, changed.updated, changed.removed, changed.unchanged) == (1, 1, 1, 5)
    assert changed.chunks_written == 2
    assert doc_id(mem_engine, code) is None
    assert doc_id(mem_engine, docs / "notes.txt") == notes_doc
    id_list = ", ".join(map(str, code_chunks))
    db = mem_engine.db
    assert db.fetchone(f"SELECT count(*) FROM chunks WHERE id IN ({id_list}) OR document_id = ?", [code_doc])[0] == 0
    assert db.fetchone(f"SELECT count(*) FROM postings WHERE chunk_id IN ({id_list})")[0] == 0
    assert db.fetchone(f"SELECT count(*) FROM vectors WHERE id IN ({id_list})")[0] == 0
    assert assert_consistent(mem_engine) == chunks_before  # one chunk gone, one chunk added
    assert mem_engine.search({"query": "frobnicate", "mode": "bm25"}).hits == []
    assert str(code) not in hit_paths(mem_engine.search({"query": "frobnicate Widget", "top_k": 50}))
    assert mem_engine.search({"query": "pelican", "mode": "bm25"}).hits == []
    assert hit_paths(mem_engine.search({"query": "cormorant", "mode": "bm25"})) == [str(docs / "notes.txt")]
    assert hit_paths(mem_engine.search({"query": "saffron"}))[0] == str(docs / "added.md")
    names = [Path(d.path).name for d in mem_engine.list_documents()]
    assert names == sorted({*SUPPORTED_FILES, "added.md"} - {"code.py"})


def test_reingesting_one_file_leaves_the_others_alone(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    ingest(mem_engine, docs)
    (docs / "guide.md").unlink()
    _, report = ingest(mem_engine, docs / "notes.txt")
    # Only the given file is looked at: guide.md's document is not removed by this run.
    assert (report.files_seen, report.unchanged, report.removed) == (1, 1, 0)
    assert doc_id(mem_engine, docs / "guide.md") is not None
    _, report = ingest(mem_engine, docs)
    assert report.removed == 1 and doc_id(mem_engine, docs / "guide.md") is None
    assert_consistent(mem_engine)


def test_duplicate_content_is_reported_and_stored_once(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    (docs / "notes-copy.txt").write_text(NOTES_TXT, encoding="utf-8")
    _, report = ingest(mem_engine, docs)
    assert report.added == 7
    assert [(Path(d.path).name, d.reason) for d in report.duplicates] == [
        ("notes.txt", f"same content as {docs / 'notes-copy.txt'}")
    ]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pelicans.txt").write_text(NOTES_TXT, encoding="utf-8")
    _, later = ingest(mem_engine, elsewhere)
    assert later.added == 0
    assert [(d.path, d.reason) for d in later.duplicates] == [
        (str(elsewhere / "pelicans.txt"), f"same content as {docs / 'notes-copy.txt'}")
    ]
    db = mem_engine.db
    assert (
        db.fetchone(
            "SELECT count(*) FROM documents WHERE content_hash = ?", [hashlib.sha256(NOTES_TXT.encode()).hexdigest()]
        )[0]
        == 1
    )
    assert db.fetchone("SELECT count(*) FROM chunks WHERE text LIKE '%pelican colony%'")[0] == 1
    assert len(mem_engine.search({"query": "pelican", "mode": "bm25"}).hits) == 1
    assert_consistent(mem_engine)


def test_a_duplicate_is_stored_once_its_original_changes(mem_engine: Engine, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(NOTES_TXT, encoding="utf-8")
    (docs / "b.txt").write_text(NOTES_TXT, encoding="utf-8")
    _, first = ingest(mem_engine, docs)
    assert first.added == 1 and [Path(d.path).name for d in first.duplicates] == ["b.txt"]
    (docs / "a.txt").write_text("Field notes: a cormorant dries its wings on the pier.\n", encoding="utf-8")
    _, second = ingest(mem_engine, docs)
    # a.txt no longer holds the pelican notes, so b.txt is the only copy and must be stored.
    assert (second.updated, second.added, second.duplicates) == (1, 1, [])
    assert hit_paths(mem_engine.search({"query": "pelican", "mode": "bm25"})) == [str(docs / "b.txt")]
    assert_consistent(mem_engine)


# ------------------------------------------------------ collections & docs


def test_collections_are_separate(mem_engine: Engine, tmp_path: Path):
    folder_a = tmp_path / "a"
    folder_a.mkdir()
    (folder_a / "orchard.md").write_text("# Orchard\n\nApple trees and pear trees in the orchard.\n", encoding="utf-8")
    (folder_a / "bees.txt").write_text("Bees pollinate the apple blossom in May.\n", encoding="utf-8")
    folder_b = tmp_path / "b"
    folder_b.mkdir()
    (folder_b / "engines.md").write_text("# Engines\n\nDiesel engines and apple cider presses.\n", encoding="utf-8")
    ingest(mem_engine, folder_a, collection="a")
    ingest(mem_engine, folder_b, collection="b")

    for mode in ("hybrid", "bm25", "vector"):
        paths = hit_paths(mem_engine.search({"query": "apple diesel engines", "collection": "a", "mode": mode}))
        assert paths and all(Path(p).parent == folder_a for p in paths), mode
    assert mem_engine.search({"query": "diesel", "collection": "a", "mode": "bm25"}).hits == []
    assert hit_paths(mem_engine.search({"query": "diesel", "collection": "b"})) == [str(folder_b / "engines.md")]

    chunks_a = assert_consistent(mem_engine, "a")
    chunks_b = assert_consistent(mem_engine, "b")
    assert [(c.name, c.documents, c.chunks) for c in mem_engine.list_collections()] == [
        ("a", 2, chunks_a),
        ("b", 1, chunks_b),
    ]
    docs_a = mem_engine.list_documents("a")
    assert [(d.collection, Path(d.path).name, d.kind, d.pinned) for d in docs_a] == [
        ("a", "bees.txt", "text", False),
        ("a", "orchard.md", "markdown", False),
    ]
    assert docs_a[1].title == "Orchard" and docs_a[1].size == (folder_a / "orchard.md").stat().st_size
    assert sum(d.chunk_count for d in docs_a) == chunks_a
    assert [Path(d.path).name for d in mem_engine.list_documents("b")] == ["engines.md"]
    assert mem_engine.list_documents("default") == []
    # The same file may live in two collections.
    _, report = ingest(mem_engine, folder_b / "engines.md", collection="a")
    assert report.added == 1 and report.duplicates == []


def test_remove_document(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    ingest(mem_engine, docs)
    before = assert_consistent(mem_engine)
    guide = doc_id(mem_engine, docs / "guide.md")
    guide_chunks = mem_engine.db.fetchone("SELECT chunk_count FROM documents WHERE id = ?", [guide])[0]
    mem_engine.remove_document("default", str(docs / "guide.md"))
    assert doc_id(mem_engine, docs / "guide.md") is None
    assert assert_consistent(mem_engine) == before - guide_chunks
    assert mem_engine.search({"query": "quasar", "mode": "bm25"}).hits == []
    with pytest.raises(NotFound, match="guide.md"):
        mem_engine.remove_document("default", str(docs / "guide.md"))
    with pytest.raises(NotFound):
        mem_engine.set_pinned("default", str(docs / "missing.md"), True)


# -------------------------------------------------------------------- pins


def test_pinned_document_is_always_in_the_hits(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    ingest(mem_engine, docs)
    policy = tmp_path / "pinned" / "policy.md"
    policy.parent.mkdir()
    policy.write_text("# House rules\n\nAlways answer in British English and cite sources.\n", encoding="utf-8")
    _, report = ingest(mem_engine, policy, pinned=True)
    assert report.added == 1
    assert [d.pinned for d in mem_engine.list_documents() if d.path == str(policy)] == [True]

    for mode in ("hybrid", "bm25"):
        hits = mem_engine.search({"query": "quasar", "top_k": 1, "mode": mode}).hits
        pinned = [h for h in hits if h.pinned]
        assert [Path(h.path) for h in pinned] == [policy], mode
        assert pinned[0].bm25_rank is None and pinned[0].vector_score is not None
        assert Path(next(h for h in hits if not h.pinned).path) == docs / "guide.md"
        assert len(hits) == 2 and [h.rank for h in hits] == [1, 2]
    unpinned = mem_engine.search({"query": "quasar", "top_k": 1, "include_pinned": False})
    assert hit_paths(unpinned) == [str(docs / "guide.md")] and not unpinned.hits[0].pinned

    # A pinned document the ranking already found is not repeated.
    found = mem_engine.search({"query": "British English house rules", "top_k": 3}).hits
    assert [h.path for h in found].count(str(policy)) == 1

    mem_engine.set_pinned("default", str(policy), False)
    assert str(policy) not in hit_paths(mem_engine.search({"query": "quasar", "top_k": 1}))
    mem_engine.set_pinned("default", str(docs / "table.csv"), True)
    hits = mem_engine.search({"query": "quasar", "top_k": 1}).hits
    assert [(Path(h.path).name, h.pinned) for h in hits] == [("table.csv", True), ("guide.md", False)]
    assert [d.path for d in mem_engine.list_documents() if d.pinned] == [str(docs / "table.csv")]


# ------------------------------------------------------------------ answer


def test_answer_cites_real_chunks(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    ingest(mem_engine, docs)
    response = mem_engine.answer({"question": "When was the quasar telescope finished?", "top_k": 3, "max_tokens": 200})
    assert response.model is not None and response.hits and response.text.strip()
    assert response.mode == "generated"  # the model's own sentences, not the extractive fallback
    assert Path(response.hits[0].path) == docs / "guide.md"
    # Every sentence ends with its citations.
    assert re.fullmatch(r"(?:[^\[\]]+ ?(?:\[\d+\])+ ?)+", response.text), response.text
    cited_in_text = {int(n) for n in re.findall(r"\[(\d+)\]", response.text)}
    numbers = [c.n for c in response.citations]
    assert cited_in_text and set(numbers) == cited_in_text and len(numbers) == len(set(numbers))
    for citation in response.citations:
        cited_hit = response.hits[citation.n - 1]  # [n] is the n-th passage given to the model
        assert (citation.n >= 1, cited_hit.chunk_id, cited_hit.path) == (True, citation.chunk_id, citation.source)
        row = mem_engine.db.fetchone(
            "SELECT d.path, c.ordinal, c.heading, c.start_line, c.end_line, c.text FROM chunks c "
            "JOIN documents d ON d.id = c.document_id WHERE c.id = ?",
            [citation.chunk_id],
        )
        assert row is not None, citation
        path, ordinal, heading, start_line, end_line, text = row
        assert citation.source == path
        assert (citation.ordinal, citation.heading, citation.start_line, citation.end_line) == (
            ordinal,
            heading,
            start_line,
            end_line,
        )
        assert text.startswith(citation.snippet) and citation.snippet
        assert response.hits[citation.n - 1].chunk_id == citation.chunk_id


def test_answer_without_a_matching_passage_says_so(mem_engine: Engine, tmp_path: Path):
    folder = tmp_path / "cooking"
    folder.mkdir()
    (folder / "soup.md").write_text("# Soup\n\nSimmer the leeks and potatoes, then blend.\n", encoding="utf-8")
    ingest(mem_engine, folder, collection="cooking")
    question = "Which quarterback threw the most touchdowns?"
    # Nothing matches: no term in common, and the closest chunk is far away in meaning.
    assert mem_engine.search({"query": question, "collection": "cooking", "mode": "bm25"}).hits == []
    closest = mem_engine.search({"query": question, "collection": "cooking", "mode": "vector"}).hits
    assert max(h.vector_score for h in closest) < 0.2
    response = mem_engine.answer({"question": question, "collection": "cooking", "max_tokens": 64})
    assert response.text == "No passage in the collection matches the question."
    assert response.citations == [] and response.hits == [] and response.model is None and response.mode == "none"


# ---------------------------------------------------------- index recovery


def test_corrupt_index_file_is_rebuilt_on_open(workbench_home: Path, embedder, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    with Engine(workbench_home, embedder=embedder) as engine:
        _, report = ingest(engine, docs)
        chunks = assert_consistent(engine)
        before = [(h.chunk_id, h.path) for h in engine.search({"query": "glacier ice telescope", "top_k": 8}).hits]
        documents = [(d.path, d.chunk_count) for d in engine.list_documents()]
    (index_file,) = (workbench_home / "indexes").glob("kb.default.*.hnsw")
    raw = bytearray(index_file.read_bytes())
    for offset in range(100, len(raw), 97):
        raw[offset] ^= 0xFF
    index_file.write_bytes(bytes(raw))

    with Engine(workbench_home, embedder=embedder) as engine:
        index = engine.index("kb.default")
        assert index.rebuilt_on_open
        assert index.count == chunks == report.chunks_written
        assert assert_consistent(engine) == chunks
        assert [(d.path, d.chunk_count) for d in engine.list_documents()] == documents
        after = [(h.chunk_id, h.path) for h in engine.search({"query": "glacier ice telescope", "top_k": 8}).hits]
        assert after == before
        assert hit_paths(engine.search({"query": "quasar"}))[0] == str(docs / "guide.md")
    # The rebuilt index was saved: the next open loads it.
    with Engine(workbench_home, embedder=embedder) as engine:
        assert not engine.index("kb.default").rebuilt_on_open
        assert engine.index("kb.default").count == chunks


def test_a_file_emptied_since_the_last_ingest_leaves_no_stale_text(mem_engine: Engine, tmp_path: Path):
    docs = write_corpus(tmp_path / "docs")
    ingest(mem_engine, docs)
    notes = docs / "notes.txt"
    notes.write_text("", encoding="utf-8")
    _, report = ingest(mem_engine, docs)
    assert [(s.path, s.reason) for s in report.skipped if s.path == str(notes)] == [(str(notes), "empty file")]
    # The file no longer says anything about pelicans; neither may the knowledge base.
    assert mem_engine.search({"query": "pelican", "mode": "bm25"}).hits == []
    assert doc_id(mem_engine, notes) is None
    assert_consistent(mem_engine)
