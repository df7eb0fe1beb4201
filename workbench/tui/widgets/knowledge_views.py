"""How the Knowledge screen words engine results (ingest report, scores, a hit's source) and finds a document's chunks.

`document_chunks` runs in a thread worker: it takes the engine and only calls `EngineAPI`.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from workbench.tui.safe import clean, plain
from workbench.tui.widgets.knowledge_files import human_size, short_path

#: how many searches may be spent finding a document's chunks (there is no EngineAPI call listing them)


def ingest_rows(
    files: list[str], report: Any, before: dict[str, Any], after: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """One (path, result, detail) per file the ingest saw.

    The report counts added/updated/unchanged files but names only skipped and
    duplicate ones, so the rest are told apart by comparing the collection's
    documents before and after the ingest (new path: added; new ingested_at:
    updated; same: unchanged).
    """
    skipped = {issue.path: issue.reason for issue in report.skipped}
    duplicates = {issue.path: issue.reason for issue in report.duplicates}
    paths = list(dict.fromkeys([*files, *skipped, *duplicates]))
    rows = []
    for path in paths:
        if path in skipped:
            rows.append((path, "skipped", skipped[path]))
        elif path in duplicates:
            rows.append((path, "duplicate", duplicates[path]))
        elif path in after:
            doc = after[path]
            detail = f"{doc.chunk_count} chunks, {human_size(doc.size)}, {doc.kind}"
            if path not in before:
                rows.append((path, "added", detail))
            elif before[path].ingested_at != doc.ingested_at:
                rows.append((path, "updated", detail))
            else:
                rows.append((path, "unchanged", detail))
        else:
            rows.append((path, "not indexed", ""))
    return rows


def ingest_summary(report: Any) -> str:
    parts = [
        f"{report.files_seen} files seen",
        f"{report.added} added",
        f"{report.updated} updated",
        f"{report.unchanged} unchanged",
        f"{len(report.skipped)} skipped",
        f"{len(report.duplicates)} duplicates",
    ]
    if report.removed:
        parts.append(f"{report.removed} removed (files gone)")
    return f"Collection {report.collection}: " + ", ".join(parts) + f"; {report.chunks_written} chunks written."


def score(value: float | None, rank: int | None = None) -> Text:
    """A score with its rank, or a dash when that retriever did not find the chunk."""
    if value is None:
        return Text("—", style="dim")
    return Text(f"{value:.4f}" + (f" #{rank}" if rank is not None else ""))


def hit_source(hit: Any, root: str) -> str:
    lines = f"lines {hit.start_line}-{hit.end_line}"
    heading = f" · {clean(hit.heading)}" if hit.heading else ""
    return f"{short_path(hit.path, root)} · chunk {hit.ordinal} · {lines}{heading}"


def hit_detail(hit: Any, root: str) -> Text:
    """The full text of a hit under its source and its three scores, all literal."""
    text = Text()
    text.append(clean(hit_source(hit, root)), style="bold")
    if hit.title:
        text.append("\ntitle: ")
        text.append(clean(hit.title))
    text.append("\npath: ")
    text.append(clean(hit.path))
    text.append(f"\nfused {hit.fused_score:.4f} · BM25 ")
    text.append_text(score(hit.bm25_score, hit.bm25_rank))
    text.append(" · vector ")
    text.append_text(score(hit.vector_score, hit.vector_rank))
    if hit.pinned:
        text.append(" · pinned", style="yellow")
    text.append("\n\n")
    text.append_text(plain(hit.text))
    return text
