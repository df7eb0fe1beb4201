"""`workbench eval`: measure the product against question sets.

`eval retrieval FILE -c C` scores each search mode (bm25, vector, hybrid) on a
JSON Lines question set (format in `workbench/engine/knowledge/evaluate.py`):
hit@k, MRR and nDCG@k, overall and per split, and (with both single modes) the
per-question best of bm25 and vector, the reference a fusion is measured
against. `workbench.cli.app` registers it.
Standard library only at module level.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.cli.common import open_engine


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    evaluate = commands.add_parser(
        "eval",
        help="evaluate retrieval against a question set",
        description="Evaluate the product against a question set.",
    )
    kinds = evaluate.add_subparsers(dest="eval_command", metavar="KIND")
    retrieval = kinds.add_parser(
        "retrieval",
        help="hit@k, MRR and nDCG@k of bm25, vector and hybrid search",
        description='Run every question of FILE (JSON Lines: {"question": ..., "expected": [{"path": ..., '
        '"contains": ...}], "split": ...}) through each search mode and print hit@k, MRR and nDCG@k per '
        "mode (and per split), then the per-question best of bm25 and vector and how often each ranks the "
        "expected passage above the other (fusion wins mostly where one of them is ahead). An expected passage is a chunk of a document whose path ends with `path` "
        "and whose text contains `contains`.",
    )
    retrieval.add_argument("file", metavar="FILE", help="the question set (.jsonl)")
    retrieval.add_argument("--collection", "-c", default="default", help="collection to search (default: default)")
    retrieval.add_argument(
        "--k", "-k", type=int, default=5, metavar="K", help="results judged per question (1 to 50, default 5)"
    )
    retrieval.add_argument(
        "--mode",
        action="append",
        choices=["bm25", "vector", "hybrid"],
        help="evaluate only this mode (repeatable; default all three)",
    )
    retrieval.add_argument("--fusion", choices=["convex", "rrf"], help="hybrid fusion method (default convex)")
    retrieval.add_argument("--bm25-weight", type=float, metavar="W", help="BM25 weight in fusion (default 0.3)")
    retrieval.add_argument("--vector-weight", type=float, metavar="W", help="vector weight in fusion (default 0.7)")
    retrieval.add_argument("--rrf-k", type=int, metavar="K", help="RRF constant (with --fusion rrf; default 60)")
    retrieval.add_argument("--show-misses", action="store_true", help="list the questions hybrid search missed")
    retrieval.add_argument("--json", action="store_true", help="print JSON (with each question's first relevant rank)")


def cmd_eval(args: argparse.Namespace) -> int:
    if args.eval_command != "retrieval":
        print(
            "workbench eval: choose what to evaluate: `workbench eval retrieval FILE -c COLLECTION`.", file=sys.stderr
        )
        return 2
    from workbench.engine.knowledge.evaluate import MODES, evaluate_retrieval, load_questions

    questions = load_questions(args.file)
    options = {
        name: value
        for name, value in (
            ("fusion", args.fusion),
            ("bm25_weight", args.bm25_weight),
            ("vector_weight", args.vector_weight),
            ("rrf_k", args.rrf_k),
        )
        if value is not None
    }
    modes = args.mode or list(MODES)
    with open_engine(args) as engine:
        report = evaluate_retrieval(
            _patient(engine.search), questions, args.collection, k=args.k, modes=modes, options=options
        )
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    k = report.k
    print(f"Collection {report.collection}, {len(report.questions)} questions, top {k}:")
    header = f"  {'mode':<8} {'hit@' + str(k):>7} {'MRR':>7} {'nDCG@' + str(k):>8}"
    for title, table in [("all", report.modes)] + [(f"split {s}", t) for s, t in report.splits.items()]:
        print(f" {title} ({next(iter(table.values())).questions} questions)")
        print(header)
        for mode, m in table.items():
            print(f"  {mode:<8} {m.hit_at_k:>7.3f} {m.mrr:>7.3f} {m.ndcg_at_k:>8.3f}")
    if report.best_of_parts is not None:
        best = report.best_of_parts
        print(
            f" best of bm25 and vector per question (a reference for fusion): hit@{k} {best.hit_at_k:.3f}, "
            f"MRR {best.mrr:.3f}, nDCG@{k} {best.ndcg_at_k:.3f}"
        )
        print(
            f" bm25 ranks the expected passage above vector on {report.bm25_ahead} questions, "
            f"vector above bm25 on {report.vector_ahead}"
        )
    if args.show_misses:
        missed = [q for q in report.questions if "hybrid" in q.first_relevant and q.first_relevant["hybrid"] is None]
        for q in missed:
            print(f"  missed by hybrid: {q.question}")
    return 0


def _patient(search: Any) -> Any:
    """`search`, waiting out a server's rate limit: a question set makes many searches a minute."""
    import time

    from workbench.engine.errors import RateLimited

    def call(request: Any) -> Any:
        for _ in range(20):
            try:
                return search(request)
            except RateLimited as exc:
                wait = min(exc.retry_after or 10, 60)
                print(f"workbench: the server's rate limit is reached; waiting {wait} s", file=sys.stderr)
                time.sleep(wait)
        return search(request)

    return call


COMMANDS = {"eval": cmd_eval}
