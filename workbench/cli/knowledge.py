"""The knowledge base: `workbench ingest`, `search`, `answer`, `collections` and `docs`.

Standard library only at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.cli.common import open_engine, plain, terminal_safe


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    ingest = commands.add_parser(
        "ingest",
        help="add files and folders to the knowledge base",
        description="Add files and folders (.md .txt .html .pdf .json .csv and source code) to a collection. "
        "Re-ingesting a folder updates changed files and removes deleted ones.",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--collection", "-c", default="default", help="collection name (default: default)")
    ingest.add_argument("--pin", action="store_true", help="pin these documents: always part of search results")
    ingest.add_argument("--max-chars", type=int, default=1000, metavar="N", help="chunk size in characters")
    ingest.add_argument("--overlap", type=int, default=150, metavar="N", help="characters repeated between chunks")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")

    search = commands.add_parser(
        "search",
        help="hybrid search of a collection",
        description="Search a collection with BM25 and vectors; the fused score combines both.",
    )
    search.add_argument("query")
    search.add_argument("--collection", "-c", default="default")
    search.add_argument("--top-k", "-k", type=int, default=8, metavar="K", help="1 to 50")
    search.add_argument("--mode", choices=["hybrid", "bm25", "vector"], default="hybrid")
    search.add_argument(
        "--fusion",
        choices=["convex", "rrf"],
        help="how the two rankings are fused: normalised "
        "scores with weights (convex, default) or reciprocal rank fusion (rrf)",
    )
    search.add_argument(
        "--bm25-weight", type=float, metavar="W", help="BM25's weight in fusion (default 0.3, scaled by query coverage)"
    )
    search.add_argument("--vector-weight", type=float, metavar="W", help="the vector weight in fusion (default 0.7)")
    search.add_argument("--json", action="store_true", help="print JSON")

    answer = commands.add_parser(
        "answer",
        help="answer a question from a collection, with citations",
        description="Answer from a collection; each sentence cites passages as [n].",
    )
    answer.add_argument("question")
    answer.add_argument("--collection", "-c", default="default")
    answer.add_argument("--top-k", "-k", type=int, default=5, metavar="K", help="passages given to the model (1 to 20)")
    answer.add_argument("--model", "-m", help="model id (see `workbench models`)")
    answer.add_argument(
        "--max-tokens", type=int, default=400, metavar="N", help="tokens the model may write (16 to 4096, default 400)"
    )
    answer.add_argument(
        "--json",
        action="store_true",
        help='print JSON ("mode" is "extractive" when the model\'s answer was unusable and a passage '
        "sentence is quoted instead)",
    )

    collections = commands.add_parser("collections", help="list knowledge-base collections")
    collections.add_argument("--json", action="store_true", help="print JSON")
    docs = commands.add_parser("docs", help="list, pin, unpin or remove documents of a collection")
    docs.add_argument("action", nargs="?", choices=["list", "pin", "unpin", "remove"], default="list")
    docs.add_argument("path", nargs="?", help="the document's path (for pin, unpin, remove)")
    docs.add_argument("--collection", "-c", default="default")
    docs.add_argument("--json", action="store_true", help="print JSON")


def _progress_bar(done: int, total: int, message: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // total if total else width
    name = plain(message)[-40:]
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} files  {name:<40}")
    sys.stderr.flush()


def cmd_ingest(args: argparse.Namespace) -> int:
    from workbench.engine.schemas import IngestFinished, Progress

    request = {
        "paths": args.paths,
        "collection": args.collection,
        "pinned": args.pin,
        "max_chars": args.max_chars,
        "overlap_chars": args.overlap,
    }
    with open_engine(args) as engine:
        report = None
        for event in engine.ingest(request):
            if isinstance(event, Progress):
                _progress_bar(event.done, event.total, event.message)
            elif isinstance(event, IngestFinished):
                report = event.report
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    print(
        f"Collection {report.collection}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed; {report.chunks_written} chunks "
        f"in {report.seconds:.1f} s."
    )
    for item in report.duplicates:
        print(plain(f"  duplicate  {item.path}: {item.reason}"))
    for item in report.skipped:
        print(plain(f"  skipped    {item.path}: {item.reason}"))
    return 0


def _score(value: float | None, rank: int | None) -> str:
    return "-" if value is None else f"{value:.3f} (#{rank})"


def cmd_search(args: argparse.Namespace) -> int:
    request = {"query": args.query, "collection": args.collection, "top_k": args.top_k, "mode": args.mode}
    request.update(
        {
            k: v
            for k, v in (
                ("fusion", args.fusion),
                ("bm25_weight", args.bm25_weight),
                ("vector_weight", args.vector_weight),
            )
            if v is not None
        }
    )
    with open_engine(args) as engine:
        response = engine.search(request)
    if args.json:
        print(response.model_dump_json(indent=2))
        return 0
    if not response.hits:
        print("No matches.")
    for hit in response.hits:
        where = f"{hit.path}:{hit.start_line}-{hit.end_line}" + (f"  § {hit.heading}" if hit.heading else "")
        pin = "  [pinned]" if hit.pinned else ""
        print(plain(f"{hit.rank:>2}. {where}{pin}"))
        print(
            f"    fused {hit.fused_score:.4f}   bm25 {_score(hit.bm25_score, hit.bm25_rank)}   "
            f"vector {_score(hit.vector_score, hit.vector_rank)}"
        )
        snippet = " ".join(hit.text.split())
        print(plain(f"    {snippet[:200]}{'...' if len(snippet) > 200 else ''}"))
    print(f"({response.latency_ms:.1f} ms)")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    request = {
        "question": args.question,
        "collection": args.collection,
        "top_k": args.top_k,
        "model": args.model,
        "max_tokens": args.max_tokens,
    }
    with open_engine(args) as engine:
        response = engine.answer(request)
    if args.json:
        print(response.model_dump_json(indent=2))
        return 0
    if response.mode == "extractive":
        # Said first and plainly: this is a quote chosen by matching, not the model's answer.
        print("[extract] The model's answer was unusable; the passages' best-matching sentence:")
    print(terminal_safe(response.text, sys.stdout))
    if response.citations:
        print()
    for c in response.citations:
        heading = f" § {c.heading}" if c.heading else ""
        print(plain(f"[{c.n}] {c.source}:{c.start_line}-{c.end_line}{heading} (chunk {c.ordinal})"))
    return 0


def cmd_collections(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        collections = engine.list_collections()
    if args.json:
        print(json.dumps([c.model_dump() for c in collections], indent=2))
        return 0
    if not collections:
        print("No collections yet. Add documents with `workbench ingest PATH`.")
    for c in collections:
        print(plain(f"{c.name:<24} {c.documents:>6} documents {c.chunks:>8} chunks"))
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    with open_engine(args) as engine:
        if args.action != "list":
            if not args.path:
                raise InvalidRequest(f"`workbench docs {args.action}` needs the document's PATH.")
            if args.action == "remove":
                engine.remove_document(args.collection, args.path)
                print(f"Removed {plain(args.path)}.")
            else:
                engine.set_pinned(args.collection, args.path, args.action == "pin")
                print(f"{'Pinned' if args.action == 'pin' else 'Unpinned'} {plain(args.path)}.")
            return 0
        docs = engine.list_documents(args.collection)
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in docs], indent=2))
        return 0
    if not docs:
        print(f"No documents in {args.collection}.")
    for d in docs:
        pin = " [pinned]" if d.pinned else ""
        print(plain(f"{d.path}  {d.kind}  {d.chunk_count} chunks{pin}"))
    return 0


COMMANDS = {
    "ingest": cmd_ingest,
    "search": cmd_search,
    "answer": cmd_answer,
    "collections": cmd_collections,
    "docs": cmd_docs,
}
