"""Knowledge base: ingest files into collections; hybrid BM25 + vector search.

Each document is written in one DuckDB transaction with all of its chunks,
BM25 postings and vectors, so after a crash a document is either wholly
present or wholly absent, and the vector index catches up on open. Several
small documents share one embedding batch and one transaction; their chunks
are embedded together because batching is what makes the embedder fast.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.errors import InvalidRequest, NotFound
from workbench.engine.knowledge import bm25
from workbench.engine.knowledge.chunking import Chunk, chunk_document
from workbench.engine.knowledge.fusion import fuse
from workbench.engine.knowledge.loaders import LoadedDocument, LoadError, iter_files, load_file
from workbench.engine.memory.embedder import Embedder
from workbench.engine.memory.index import VectorIndex, sql_int_list
from workbench.engine.schemas import (
    ChunkInfo,
    CollectionInfo,
    DocumentInfo,
    FileIssue,
    IngestEvent,
    IngestFinished,
    IngestReport,
    IngestRequest,
    Progress,
    SearchHit,
    SearchRequest,
    SearchResponse,
    unpaired_surrogate,
)
from workbench.engine.store.db import Database, utcnow

#: chunks committed together; they are embedded in length order, in slices
#: of EMBED_SLICE, so that the embedder pads little (one call per slice gives
#: progress reports without losing that)
BATCH_CHUNKS = 1024
EMBED_SLICE = 256
#: candidates taken from each retriever before fusion
CANDIDATES = 50


def index_name(collection: str) -> str:
    return f"kb.{collection}"


def embed_text(chunk: Chunk) -> str:
    """What is embedded and indexed for a chunk: its heading path, then its text."""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text


@dataclass
class _Pending:
    path: str
    content_hash: str
    size: int
    doc: LoadedDocument
    chunks: list[Chunk]
    existing_id: int | None


class KnowledgeBase:
    """Collections of ingested documents and their searchable chunks."""

    def __init__(self, db: Database, embedder: Embedder, index_for: Callable[[str], VectorIndex]) -> None:
        self.db = db
        self.embedder = embedder
        self.index_for = index_for

    # --------------------------------------------------------------- ingest

    def ingest(self, request: IngestRequest, within: list[str] | None = None) -> Iterator[IngestEvent]:
        """Ingest files and folders, yielding `Progress` and finally `IngestFinished`.

        Unchanged files (same path, same content hash) are skipped; changed
        ones are replaced; documents under a given folder whose files are
        gone are removed; a file whose content is already in the collection
        under another path is reported as a duplicate. A file that cannot be
        read or parsed is reported and skipped (the batch goes on), and an
        earlier version of it is removed: the collection never answers with
        text its files no longer hold.
        """
        started = time.perf_counter()
        collection = request.collection
        report = IngestReport(collection=collection)
        roots = [Path(os.path.abspath(os.path.expanduser(p))) for p in request.paths]
        files = list(iter_files(roots))
        report.files_seen = len(files)
        # A name that is not valid UTF-8 reaches Python surrogate-escaped: no database or answer can hold
        # it, so it is reported (its bad bytes shown as U+FFFD) and skipped like an unreadable file.
        for file in [f for f in files if unpaired_surrogate(str(f))]:
            shown = os.fsencode(file).decode("utf-8", "replace")
            report.skipped.append(FileIssue(path=shown, reason="its name is not valid UTF-8"))
        files = [f for f in files if not unpaired_surrogate(str(f))]
        if within is not None:
            # Judged by the real path: a symlink inside a root that points outside it stays outside.
            allowed = [os.path.realpath(r).rstrip(os.sep) for r in within]
            inside = lambda f: any(  # noqa: E731
                os.path.realpath(f) == r or os.path.realpath(f).startswith(r + os.sep) for r in allowed
            )
            for file in [f for f in files if not inside(f)]:
                report.skipped.append(FileIssue(path=str(file), reason="outside the workspace roots"))
            files = [f for f in files if inside(f)]
        existing = {
            row[0]: (row[1], row[2])
            for row in self.db.fetchall(
                "SELECT path, id, content_hash FROM documents WHERE collection = ?", [collection]
            )
        }
        hashes = {h: p for p, (_, h) in existing.items()}
        index = self.index_for(index_name(collection))

        # Documents whose files are gone: under a folder that was given, or given themselves.
        seen = {str(f) for f in files}
        gone = [
            doc_id
            for path, (doc_id, _) in existing.items()
            if path not in seen
            and not os.path.exists(path)
            and any(path == str(root) or path.startswith(str(root).rstrip(os.sep) + os.sep) for root in roots)
        ]
        if gone:
            with self.db.transaction() as conn:
                self._delete_documents(conn, index, gone)
            index.apply()
            report.removed = len(gone)
            for path in [p for p, (i, _) in existing.items() if i in gone]:
                hashes.pop(existing.pop(path)[1], None)

        # Hash every file first, so that duplicates are judged against what the
        # collection will hold after this run, not against content being replaced.
        digests: dict[str, tuple[str, int] | str] = {}
        for file in files:
            try:
                data = file.read_bytes()
                digests[str(file)] = (hashlib.sha256(data).hexdigest(), len(data))
            except OSError as exc:
                digests[str(file)] = f"unreadable: {exc.strerror or type(exc).__name__}"
        for path, state in digests.items():
            if path in existing and (isinstance(state, str) or state[0] != existing[path][1]):
                if hashes.get(existing[path][1]) == path:
                    del hashes[existing[path][1]]

        total = len(files)
        done = 0
        pending: list[_Pending] = []
        pending_chunks = 0
        stale: list[int] = []  # documents whose file can no longer be indexed
        yield Progress(stage="ingest", done=0, total=total, message=f"{total} files")
        for file in files:
            path = str(file)
            state = digests[path]
            done += 1
            if isinstance(state, str):
                report.skipped.append(FileIssue(path=path, reason=state))
                if path in existing:
                    stale.append(existing.pop(path)[0])
                continue
            digest, size = state
            if path in existing and existing[path][1] == digest:
                report.unchanged += 1
                continue
            original = hashes.get(digest)
            if original is not None and original != path:
                report.duplicates.append(FileIssue(path=path, reason=f"same content as {original}"))
                if path in existing:
                    stale.append(existing.pop(path)[0])
                continue
            try:
                doc = load_file(file)
                chunks = chunk_document(doc, request.max_chars, request.overlap_chars)
                if not chunks:
                    raise LoadError("no text to index")
            except LoadError as exc:
                report.skipped.append(FileIssue(path=path, reason=str(exc)))
                if path in existing:
                    stale.append(existing.pop(path)[0])
                continue
            hashes[digest] = path
            pending.append(_Pending(path, digest, size, doc, chunks, existing.get(path, (None, None))[0]))
            pending_chunks += len(chunks)
            if pending_chunks >= BATCH_CHUNKS:
                yield from self._commit(collection, index, pending, request.pinned, report, done, total)
                pending, pending_chunks = [], 0
                yield Progress(stage="ingest", done=done, total=total, message=path)
            elif done % 100 == 0:
                yield Progress(stage="ingest", done=done, total=total, message=path)
        if pending:
            yield from self._commit(collection, index, pending, request.pinned, report, done, total)
        if stale:
            with self.db.transaction() as conn:
                self._delete_documents(conn, index, stale)
            index.apply()
            report.removed += len(stale)
        index.save()
        report.seconds = round(time.perf_counter() - started, 3)
        yield Progress(stage="ingest", done=total, total=total, message="done")
        yield IngestFinished(report=report)

    def _embed_in_length_order(self, texts: list[str], done: int, total: int) -> Iterator[Progress | Any]:
        """Yield `Progress` per slice, then the (len(texts), d) vectors in input order."""
        import numpy as np

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.zeros((len(texts), self.embedder.dimensions), dtype=np.float32)
        for start in range(0, len(order), EMBED_SLICE):
            part = order[start : start + EMBED_SLICE]
            vectors[part] = self.embedder.embed([texts[i] for i in part])
            yield Progress(
                stage="embedding",
                done=done,
                total=total,
                message=f"{min(start + EMBED_SLICE, len(texts))}/{len(texts)} chunks embedded",
            )
        yield vectors

    def _commit(
        self,
        collection: str,
        index: VectorIndex,
        batch: list[_Pending],
        pinned: bool,
        report: IngestReport,
        done: int,
        total: int,
    ) -> Iterator[Progress]:
        """Embed a batch of documents (reporting progress) and write it in one transaction."""
        texts = [embed_text(c) for item in batch for c in item.chunks]
        vectors: Any = None
        for event in self._embed_in_length_order(texts, done, total):
            if isinstance(event, Progress):
                yield event
            else:
                vectors = event
        now = utcnow()
        with self.db.transaction() as conn:
            new_ids = [
                int(r[0])
                for r in conn.execute(
                    f"SELECT nextval('vector_id_seq') FROM range({len(texts) + len(batch)})"
                ).fetchall()
            ]
            chunk_ids, doc_ids = new_ids[: len(texts)], new_ids[len(texts) :]
            replaced = [item.existing_id for item in batch if item.existing_id is not None]
            if replaced:
                self._delete_chunks(conn, index, replaced)
            owners: list[int] = []
            for item, new_doc_id in zip(batch, doc_ids):
                n = len(item.chunks)
                if item.existing_id is None:
                    doc_id = new_doc_id
                    conn.execute(
                        "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            doc_id,
                            collection,
                            item.path,
                            item.content_hash,
                            item.size,
                            item.doc.kind,
                            item.doc.title,
                            pinned,
                            n,
                            now,
                        ],
                    )
                else:
                    doc_id = item.existing_id
                    conn.execute(
                        "UPDATE documents SET content_hash = ?, size = ?, kind = ?, title = ?, chunk_count = ?, "
                        "ingested_at = ?, pinned = pinned OR ? WHERE id = ?",
                        [item.content_hash, item.size, item.doc.kind, item.doc.title, n, now, pinned, doc_id],
                    )
                owners.extend([doc_id] * n)
            lengths = bm25.stage_postings(conn, collection, chunk_ids, texts)
            self._stage_chunks(conn, collection, batch, chunk_ids, owners, lengths)
            index.stage_add(conn, chunk_ids, vectors)
        index.apply()
        index.maybe_save()
        for item in batch:
            if item.existing_id is None:
                report.added += 1
            else:
                report.updated += 1
        report.chunks_written += len(texts)

    def _stage_chunks(
        self, conn: Any, collection: str, batch: list[_Pending], ids: list[int], owners: list[int], lengths: list[int]
    ) -> None:
        import numpy as np

        chunks = [c for item in batch for c in item.chunks]
        staged = {  # noqa: F841 - read by DuckDB's replacement scan below
            "id": np.asarray(ids, dtype=np.int64),
            "document_id": np.asarray(owners, dtype=np.int64),
            "ordinal": np.asarray([c.ordinal for c in chunks], dtype=np.int32),
            "heading": np.asarray([c.heading for c in chunks], dtype=object),
            "text": np.asarray([c.text for c in chunks], dtype=object),
            "start_line": np.asarray([c.start_line for c in chunks], dtype=np.int32),
            "end_line": np.asarray([c.end_line for c in chunks], dtype=np.int32),
            "length": np.asarray(lengths, dtype=np.int32),
        }
        conn.execute(
            "INSERT INTO chunks SELECT id, document_id, ?, ordinal, heading, text, start_line, end_line, length FROM staged",
            [collection],
        )

    def _delete_chunks(self, conn: Any, index: VectorIndex, doc_ids: list[int]) -> None:
        docs = sql_int_list(doc_ids)
        ids = [r[0] for r in conn.execute(f"SELECT id FROM chunks WHERE document_id IN ({docs})").fetchall()]
        if ids:
            id_list = sql_int_list(ids)
            conn.execute(f"DELETE FROM postings WHERE chunk_id IN ({id_list})")
            conn.execute(f"DELETE FROM chunks WHERE id IN ({id_list})")
            index.stage_delete(conn, ids)

    def _delete_documents(self, conn: Any, index: VectorIndex, doc_ids: list[int]) -> None:
        self._delete_chunks(conn, index, doc_ids)
        conn.execute(f"DELETE FROM documents WHERE id IN ({sql_int_list(doc_ids)})")

    # ------------------------------------------------------------ documents

    def collections(self) -> list[CollectionInfo]:
        rows = self.db.fetchall(
            "SELECT collection, count(*), sum(chunk_count) FROM documents GROUP BY collection ORDER BY collection"
        )
        return [CollectionInfo(name=r[0], documents=r[1], chunks=int(r[2] or 0)) for r in rows]

    def documents(self, collection: str) -> list[DocumentInfo]:
        rows = self.db.fetchall(
            "SELECT id, collection, path, title, kind, size, chunk_count, pinned, ingested_at "
            "FROM documents WHERE collection = ? ORDER BY path",
            [collection],
        )
        return [
            DocumentInfo(
                id=r[0],
                collection=r[1],
                path=r[2],
                title=r[3],
                kind=r[4],
                size=r[5],
                chunk_count=r[6],
                pinned=r[7],
                ingested_at=r[8],
            )
            for r in rows
        ]

    def chunks(self, collection: str, path: str, limit: int, offset: int) -> list[ChunkInfo]:
        doc_id = self._document_id(collection, path)
        rows = self.db.fetchall(
            "SELECT c.id, c.document_id, c.collection, d.path, c.ordinal, c.heading, c.start_line, c.end_line, c.text "
            "FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.document_id = ? "
            "ORDER BY c.ordinal LIMIT ? OFFSET ?",
            [doc_id, limit, offset],
        )
        return [
            ChunkInfo(
                id=r[0],
                document_id=r[1],
                collection=r[2],
                path=r[3],
                ordinal=r[4],
                heading=r[5],
                start_line=r[6],
                end_line=r[7],
                text=r[8],
            )
            for r in rows
        ]

    def _document_id(self, collection: str, path: str) -> int:
        resolved = os.path.abspath(os.path.expanduser(path))
        row = self.db.fetchone(
            "SELECT id FROM documents WHERE collection = ? AND (path = ? OR path = ?)", [collection, path, resolved]
        )
        if row is None:
            raise NotFound(f"No document {path!r} in collection {collection!r}.")
        return row[0]

    def set_pinned(self, collection: str, path: str, pinned: bool) -> None:
        doc_id = self._document_id(collection, path)
        self.db.execute("UPDATE documents SET pinned = ? WHERE id = ?", [pinned, doc_id])

    def remove_document(self, collection: str, path: str) -> None:
        doc_id = self._document_id(collection, path)
        index = self.index_for(index_name(collection))
        with self.db.transaction() as conn:
            self._delete_documents(conn, index, [doc_id])
        index.apply()

    # --------------------------------------------------------------- search

    def search(self, request: SearchRequest) -> SearchResponse:
        """Hybrid retrieval: BM25 and vector candidates fused (see `fusion.fuse`: normalised scores, convex weights)."""
        started = time.perf_counter()
        collection = request.collection
        known = self.db.fetchone("SELECT count(*) FROM documents WHERE collection = ?", [collection])[0]
        if not known:
            if not self.db.fetchone("SELECT count(*) FROM documents")[0]:
                raise NotFound("The knowledge base is empty; ingest documents first (workbench ingest PATH).")
            raise NotFound(f"No collection {collection!r}; see `workbench collections`.")
        index = self.index_for(index_name(collection))
        wants_vector = request.mode in ("hybrid", "vector") and request.vector_weight > 0
        wants_bm25 = request.mode in ("hybrid", "bm25") and request.bm25_weight > 0
        if not (wants_vector or wants_bm25):
            raise InvalidRequest("At least one of bm25_weight and vector_weight must be above 0 for this mode.")
        pool = max(CANDIDATES, request.top_k * 4)
        query_vector = self.embedder.embed([request.query])[0] if wants_vector or request.include_pinned else None
        vector_hits = index.search(query_vector, pool) if wants_vector else []
        bm25_hits = bm25.search(self.db, collection, request.query, pool) if wants_bm25 else []

        covered = 1.0
        if request.fusion == "convex" and bm25_hits and vector_hits:
            covered = bm25.coverage(self.db, collection, request.query, bm25_hits[0][0])
        ranked = fuse(
            bm25_hits,
            vector_hits,
            method=request.fusion,
            bm25_weight=request.bm25_weight,
            vector_weight=request.vector_weight,
            rrf_k=request.rrf_k,
            bm25_coverage=covered,
        )[: request.top_k]

        pinned_hits: list[tuple[int, dict[str, Any]]] = []
        if request.include_pinned:
            pinned_hits = self._pinned(index, collection, query_vector, {cid for cid, _ in ranked})
        chosen = pinned_hits + ranked
        rows = self._chunk_rows([cid for cid, _ in chosen])
        hits = []
        for chunk_id, info in chosen:
            row = rows.get(chunk_id)
            if row is None:
                continue
            hits.append(
                SearchHit(
                    rank=len(hits) + 1,
                    chunk_id=chunk_id,
                    document_id=row[0],
                    path=row[1],
                    title=row[2],
                    heading=row[3],
                    ordinal=row[4],
                    start_line=row[5],
                    end_line=row[6],
                    text=row[7],
                    fused_score=round(info["fused"], 6),
                    bm25_rank=info.get("bm25_rank"),
                    bm25_score=info.get("bm25_score"),
                    vector_rank=info.get("vector_rank"),
                    vector_score=info.get("vector_score"),
                    pinned=info.get("pinned", False),
                )
            )
        latency = (time.perf_counter() - started) * 1000
        return SearchResponse(
            query=request.query, collection=collection, mode=request.mode, hits=hits, latency_ms=round(latency, 3)
        )

    def _pinned(
        self, index: VectorIndex, collection: str, query_vector: Any, taken: set[int]
    ) -> list[tuple[int, dict[str, Any]]]:
        """The best chunk of every pinned document the ranking did not already include."""
        rows = self.db.fetchall(
            "SELECT c.document_id, list(c.id) FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE d.collection = ? AND d.pinned GROUP BY c.document_id ORDER BY c.document_id",
            [collection],
        )
        result = []
        for _, ids in rows:
            if taken.intersection(ids):
                continue
            best = index.search(query_vector, 1, allowed=set(ids))
            if best:
                result.append((best[0][0], {"fused": 0.0, "vector_score": round(best[0][1], 6), "pinned": True}))
        return result

    def _chunk_rows(self, chunk_ids: list[int]) -> dict[int, tuple]:
        if not chunk_ids:
            return {}
        rows = self.db.fetchall(
            "SELECT c.id, c.document_id, d.path, d.title, c.heading, c.ordinal, c.start_line, c.end_line, c.text "
            f"FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({sql_int_list(chunk_ids)})"
        )
        return {r[0]: r[1:] for r in rows}
