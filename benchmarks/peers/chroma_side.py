"""The ChromaDB half of `memory_vs_chromadb.py`, run by the benchmark environment's python.

Not imported by the product: it runs as a subprocess of `.bench-venv/bin/python`,
where chromadb is installed (`make bench-peers-env`). It reads the vectors and
queries the comparer wrote (.npy), stores them in an embedded `PersistentClient`
on a temporary folder with the collection's defaults except the cosine space,
times the inserts and one query at a time (k nearest, documents included as
chroma's `query` returns them by default), and prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help=".npy of unit float32 vectors to store")
    parser.add_argument("--queries", required=True, help=".npy of unit float32 query vectors")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)

    # Offline: no telemetry, and no default embedding function (it would fetch an ONNX model).
    os.environ["ANONYMIZED_TELEMETRY"] = "False"
    import chromadb
    import numpy as np
    from chromadb.config import Settings

    data = np.load(args.data)
    queries = np.load(args.queries)
    with tempfile.TemporaryDirectory(prefix="workbench-bench-chroma-") as folder:
        client = chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
        try:
            collection = client.create_collection(
                "bench", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
        except (TypeError, ValueError):
            collection = client.create_collection("bench", metadata={"hnsw:space": "cosine"}, embedding_function=None)
        batch = min(args.batch, client.get_max_batch_size())
        t0 = time.perf_counter()
        for start in range(0, len(data), batch):
            end = min(len(data), start + batch)
            collection.add(
                ids=[f"doc-{i:07d}" for i in range(start, end)],
                embeddings=data[start:end],
                documents=[f"doc {i}" for i in range(start, end)],
            )
            if (end // batch) % 20 == 0 or end == len(data):
                print(f"chromadb: {end:,}/{len(data):,} stored", file=sys.stderr, flush=True)
        insert_s = time.perf_counter() - t0
        assert collection.count() == len(data), "chromadb stored a different number of vectors"

        for q in queries[: args.warmup]:
            collection.query(query_embeddings=[q], n_results=args.k)
        found: list[list[int]] = []
        ms: list[float] = []
        for q in queries:
            t = time.perf_counter()
            result = collection.query(query_embeddings=[q], n_results=args.k)
            ms.append((time.perf_counter() - t) * 1000)
            found.append([int(i.split("-")[1]) for i in result["ids"][0]])
        try:
            config = collection.configuration_json
        except AttributeError:
            config = collection.metadata
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
    ms.sort()
    print(
        json.dumps(
            {
                "chromadb": version("chromadb"),
                "python": sys.version.split()[0],
                "insert_s": round(insert_s, 3),
                "insert_per_s": round(len(data) / insert_s, 1),
                "batch": batch,
                "query_ms": {
                    "p50": round(statistics.median(ms), 3),
                    "p95": round(ms[int(0.95 * (len(ms) - 1))], 3),
                    "max": round(ms[-1], 3),
                },
                "found": found,
                "disk_bytes": size,
                "collection_configuration": config,
            },
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
