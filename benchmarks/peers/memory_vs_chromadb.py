"""Our memory store against ChromaDB's embedded `PersistentClient` on the same vectors.

    .venv/bin/python benchmarks/peers/memory_vs_chromadb.py [--n 100000] [--queries 200] [--k 10]
                                                           [--data mixture|uniform] [--quick]
                                                           [--bench-python .bench-venv/bin/python]

Both sides get the same `--n` unit vectors of dimension 384 (by default the
clustered Gaussian mixture of `benchmarks/memory.py`, calibrated against real
all-MiniLM-L6-v2 embeddings; `--data uniform` for points spread uniformly on the
sphere, the worst case for any HNSW index), stored in batches of `--batch`,
then `--queries` held-out queries asked one at a time for the k nearest.

* Ours: a fresh `Engine` on a temporary home whose embedder is a lookup table of
  the precomputed vectors (so no model is timed): `Engine.remember_many` (the
  real DuckDB rows and HNSW index) and `Engine.rag_retrieve` with `top_k=k`,
  `score_threshold=0` (the memories come back with their values, as chroma's
  `query` returns documents). `index_search_ms` is the vector index's own
  `search` under it.
* ChromaDB: `benchmarks/peers/chroma_side.py` in the benchmark environment's
  python (`make bench-peers-env`), chromadb from the registry, collection
  defaults but the cosine space; `add` in the same batches, `query` one at a time.

Recall@k of both is against exact search (numpy brute force). The sides run one
after the other, never together (2 cores). One JSON object on stdout, progress
on stderr. Goal: ours ahead on query p50 at equal or better recall.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_busy, cpu_model, other_load, package_version  # noqa: E402

DEFAULT_BENCH_PYTHON = ROOT / ".bench-venv" / "bin" / "python"
SEED = 20261203


def log(message: str) -> None:
    print(f"[memory_vs_chromadb] {message}", file=sys.stderr, flush=True)


def summary(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {
        "p50": round(statistics.median(ms), 3),
        "p95": round(ms[int(0.95 * (len(ms) - 1))], 3),
        "max": round(ms[-1], 3),
    }


def recall(found: list[list[int]], truth: Any, k: int) -> float:
    hits = sum(len(set(f[:k]) & set(int(t) for t in row[:k])) for f, row in zip(found, truth))
    return round(hits / (k * len(found)), 4)


def make_vectors(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    from memory import MixtureSampler, uniform_sphere

    if args.data == "uniform":
        data = uniform_sphere(args.n, args.dim, SEED)
        queries = uniform_sphere(args.queries, args.dim, SEED + 1)
        return data, queries, {"kind": "uniform_sphere", "seed": SEED}
    mixture = MixtureSampler(args.dim, args.centers, SEED)
    data = mixture.sample(args.n, SEED + 1)
    queries = mixture.sample(args.queries, SEED + 2)  # held out: drawn the same way, not stored
    return data, queries, {**mixture.describe(), "seed": SEED}


class LookupEmbedder:
    """An `Embedder` whose vectors were computed beforehand: text -> row of a table."""

    model_id = "bench-precomputed"

    def __init__(self, rows: dict[str, Any], dim: int) -> None:
        self.rows = rows
        self.dim = dim

    @property
    def dimensions(self) -> int:
        return self.dim

    @property
    def known_dimensions(self) -> int | None:
        return self.dim

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        return np.stack([self.rows[t] for t in texts])

    def embed_one(self, text: str) -> Any:
        return self.rows[text]

    def start_loading(self) -> None:
        pass

    def close(self) -> None:
        pass


def run_ours(args: argparse.Namespace, data: Any, queries: Any) -> dict[str, Any]:
    from workbench.engine.engine import Engine
    from workbench.engine.memory.embedder import Embedder
    from workbench.engine.memory.store import MEMORY_COLLECTION

    Embedder.register(LookupEmbedder)
    rows = {f"doc {i}": data[i] for i in range(len(data))}
    rows.update({f"query {j}": queries[j] for j in range(len(queries))})
    embedder = LookupEmbedder(rows, data.shape[1])
    with tempfile.TemporaryDirectory(prefix="workbench-bench-peer-memory-") as home:
        engine = Engine(home=home, embedder=embedder)  # type: ignore[arg-type]
        try:
            t0 = time.perf_counter()
            for start in range(0, len(data), args.batch):
                end = min(len(data), start + args.batch)
                engine.remember_many(
                    [{"key": f"doc-{i:07d}", "value": {"content": f"doc {i}"}} for i in range(start, end)]
                )
                if (end // args.batch) % 20 == 0 or end == len(data):
                    log(f"ours: {end:,}/{len(data):,} stored")
            insert_s = time.perf_counter() - t0
            assert engine.memory.count() == len(data), "our store holds a different number of memories"

            def ask(j: int) -> Any:
                return engine.rag_retrieve({"query": f"query {j}", "top_k": args.k, "score_threshold": 0.0})

            for j in range(min(args.warmup, len(queries))):
                ask(j)
            found, ms = [], []
            for j in range(len(queries)):
                t = time.perf_counter()
                response = ask(j)
                ms.append((time.perf_counter() - t) * 1000)
                found.append([int(r.key.split("-")[1]) for r in response.results])
            index = engine.index(MEMORY_COLLECTION)
            index_ms = []
            for q in queries:
                t = time.perf_counter()
                index.search(q, args.k)
                index_ms.append((time.perf_counter() - t) * 1000)
            params = {
                "m": index.m,
                "ef_construction": index.ef_construction,
                "ef_search": index._ef_for(len(data), args.k),
            }
        finally:
            engine.close()
        size = sum(p.stat().st_size for p in Path(home).rglob("*") if p.is_file())
    return {
        "insert_s": round(insert_s, 3),
        "insert_per_s": round(len(data) / insert_s, 1),
        "batch": args.batch,
        "query_ms": summary(ms),
        "index_search_ms": summary(index_ms),
        "found": found,
        "disk_bytes": size,
        "hnsw": params,
    }


def run_chroma(args: argparse.Namespace, data: Any, queries: Any, folder: str) -> dict[str, Any]:
    import numpy as np

    np.save(f"{folder}/data.npy", data)
    np.save(f"{folder}/queries.npy", queries)
    command = [
        str(args.bench_python),
        str(Path(__file__).with_name("chroma_side.py")),
        "--data",
        f"{folder}/data.npy",
        "--queries",
        f"{folder}/queries.npy",
        "--k",
        str(args.k),
        "--batch",
        str(args.batch),
        "--warmup",
        str(args.warmup),
    ]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the chromadb side failed (exit {done.returncode}); see its output above")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=None, help="stored vectors (default 100000; --quick 10000)")
    parser.add_argument("--queries", type=int, default=None, help="held-out queries (default 200; --quick 50)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=1000, help="vectors per insert call on both sides")
    parser.add_argument("--warmup", type=int, default=10, help="untimed queries first, on both sides")
    parser.add_argument("--data", choices=["mixture", "uniform"], default="mixture")
    parser.add_argument("--centers", type=int, default=1000, help="clusters of the mixture")
    parser.add_argument("--quick", action="store_true", help="10,000 vectors and 50 queries")
    parser.add_argument("--bench-python", type=Path, default=DEFAULT_BENCH_PYTHON, help="python with chromadb")
    args = parser.parse_args(argv)
    args.n = args.n or (10_000 if args.quick else 100_000)
    args.queries = args.queries or (50 if args.quick else 200)
    if not args.bench_python.exists():
        print(f"{args.bench_python} does not exist: run `make bench-peers-env` first.", file=sys.stderr)
        return 2

    started = time.perf_counter()
    from memory import exact_one, exact_topk

    log(f"making {args.n:,} {args.data} vectors of dimension {args.dim} and {args.queries} queries")
    data, queries, description = make_vectors(args)
    truth, _ = exact_topk(data, queries, args.k)
    exact_ms = []
    for q in queries:
        t = time.perf_counter()
        exact_one(data, q, args.k)
        exact_ms.append((time.perf_counter() - t) * 1000)

    report: dict[str, Any] = {"benchmark": "memory_vs_chromadb", "quick": args.quick, "n": args.n}
    report["data"] = {"dimensions": args.dim, "queries": args.queries, "k": args.k, **description}
    log("ours: Engine.remember_many, then Engine.rag_retrieve")
    busy = cpu_busy()
    ours = run_ours(args, data, queries)
    ours["recall_at_k"] = recall(ours.pop("found"), truth, args.k)
    ours["other_processes_busy_cpus"] = other_load(busy)
    log(f"ours: {ours['insert_per_s']:,.0f}/s, p50 {ours['query_ms']['p50']} ms, recall {ours['recall_at_k']}")
    log("chromadb: PersistentClient add, then query")
    busy = cpu_busy()
    with tempfile.TemporaryDirectory(prefix="workbench-bench-peer-vectors-") as folder:
        chroma = run_chroma(args, data, queries, folder)
    chroma["recall_at_k"] = recall(chroma.pop("found"), truth, args.k)
    chroma["other_processes_busy_cpus"] = other_load(busy)
    log(
        f"chromadb: {chroma['insert_per_s']:,.0f}/s, p50 {chroma['query_ms']['p50']} ms, recall {chroma['recall_at_k']}"
    )

    report["exact_numpy_query_ms"] = summary(exact_ms)
    report["ours"] = ours
    report["chromadb"] = chroma
    report["comparison"] = {
        # > 1: ours faster
        "query_p50_chroma_over_ours": round(chroma["query_ms"]["p50"] / ours["query_ms"]["p50"], 3),
        "insert_per_s_ours_over_chroma": round(ours["insert_per_s"] / chroma["insert_per_s"], 3),
        "recall_ours_minus_chroma": round(ours["recall_at_k"] - chroma["recall_at_k"], 4),
    }
    report["met"] = {
        "query_p50_ahead_at_equal_or_better_recall": report["comparison"]["query_p50_chroma_over_ours"] >= 1.0
        and ours["recall_at_k"] >= chroma["recall_at_k"],
    }
    report["machine"] = {
        "cpu_count": os.cpu_count(),
        "processor": cpu_model(),
        "numpy": package_version("numpy"),
        "duckdb": package_version("duckdb"),
        "hnswlib": package_version("hnswlib"),
    }
    report["runtime_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
