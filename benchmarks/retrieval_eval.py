"""Retrieval quality: hit@k, MRR and nDCG@k per search mode on the shipped corpora.

    .venv/bin/python benchmarks/retrieval_eval.py [--k 5] [--corpus handbook,packages]

Ingests each corpus of data/corpus/ into a fresh temporary data folder (real
embedder, real DuckDB), then runs its QUESTIONS.jsonl through
`evaluate_retrieval` twice: `before` is the earlier fusion (reciprocal rank
fusion, k = 60, equal weights), `after` the current default (convex
combination of min-max normalised scores). bm25 and vector do not depend on
the fusion, so they are identical in both. Metrics are given for all
questions and for each split ("tune": used to choose the fusion and its
weights; "test": held out), and `best_of_parts`: per question the better of
bm25 and vector, with how many questions each ranks above the other (fusion
can gain over vector only where bm25 is ahead). Prints one JSON object;
progress goes to stderr.
The lead's benchmarks/quality.py imports `run()` for its `retrieval` section.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "data" / "corpus"
BEFORE = {"fusion": "rrf", "bm25_weight": 1.0, "vector_weight": 1.0, "rrf_k": 60}


def _table(report: Any) -> dict[str, Any]:
    def metrics(table: dict[str, Any]) -> dict[str, Any]:
        return {mode: {"hit@k": m.hit_at_k, "mrr": m.mrr, "ndcg@k": m.ndcg_at_k} for mode, m in table.items()}

    def one(m: Any) -> dict[str, Any]:
        return {"hit@k": m.hit_at_k, "mrr": m.mrr, "ndcg@k": m.ndcg_at_k}

    table = {
        "all": metrics(report.modes),
        **{f"split_{s}": metrics(t) for s, t in report.splits.items()},
        "questions": len(report.questions),
    }
    if report.best_of_parts is not None:
        # the per-question better of bm25 and vector: the reference hybrid is measured against
        table["best_of_parts"] = {
            "all": one(report.best_of_parts),
            **{f"split_{s}": one(m) for s, m in report.best_of_parts_splits.items()},
            "bm25_ahead": report.bm25_ahead,
            "vector_ahead": report.vector_ahead,
        }
    return table


def run(k: int = 5, corpora: list[str] | None = None) -> dict[str, Any]:
    """Ingest each corpus and evaluate it before/after; returns the JSON-ready result."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from workbench.engine.engine import Engine
    from workbench.engine.knowledge.evaluate import evaluate_retrieval, load_questions

    names = corpora or sorted(p.name for p in CORPORA.iterdir() if (p / "QUESTIONS.jsonl").is_file())
    result: dict[str, Any] = {"k": k, "before": BEFORE, "after": "defaults (convex, bm25 0.3 x coverage, vector 0.7)"}
    with tempfile.TemporaryDirectory() as home, Engine(Path(home)) as engine:
        for name in names:
            folder = CORPORA / name
            started = time.perf_counter()
            for _ in engine.ingest({"paths": [str(folder)], "collection": name}):
                pass
            print(f"{name}: ingested in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            questions = load_questions(folder / "QUESTIONS.jsonl")
            before = evaluate_retrieval(engine.search, questions, name, k=k, options=BEFORE)
            after = evaluate_retrieval(engine.search, questions, name, k=k)
            result[name] = {"before": _table(before), "after": _table(after)}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--corpus", help="comma-separated corpus names under data/corpus (default: all)")
    args = parser.parse_args()
    print(json.dumps(run(args.k, args.corpus.split(",") if args.corpus else None), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
