"""The Embedder port: the real packaged MiniLM model, and the OpenAI-compatible wire format."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from workbench.engine.errors import InvalidRequest, ModelLoadError, ProviderAuthError, ProviderUnreachable
from workbench.engine.memory.embedder import OpenAICompatEmbedder, SentenceTransformerEmbedder


def test_default_embedder_is_384_dimensional_and_normalised(embedder):
    vectors = embedder.embed(["The cat sat on the mat.", "A feline rested on a rug.", "Quarterly revenue grew 5%."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.4 > unrelated
    assert embedder.dimensions == 384 and embedder.model_id == "all-MiniLM-L6-v2"


def test_batches_match_single_texts(embedder):
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(150)]  # > one batch
    batch = embedder.embed(texts)
    singles = np.stack([embedder.embed_one(t) for t in texts[:5]])
    assert batch.shape == (150, 384)
    assert np.allclose(batch[:5], singles, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_bad_input_is_rejected(embedder):
    with pytest.raises(InvalidRequest):
        embedder.embed("not a list")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="at most"):
        embedder.embed(["x" * 200_000])


def test_unloadable_model_folder_gives_one_sentence(tmp_path: Path):
    (tmp_path / "modules.json").write_text("[]")
    broken = SentenceTransformerEmbedder(path=tmp_path)
    with pytest.raises(ModelLoadError) as info:
        broken.embed(["hi"])
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


class _EmbeddingsHandler(BaseHTTPRequestHandler):
    """OpenAI's /v1/embeddings wire format: deterministic 8-dim vectors, shuffled order."""

    key = "sk-embed-secret"

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get("Authorization") != f"Bearer {self.key}":
            return self._send(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
            )
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text) + k) for k in range(8)]}
            for i, text in enumerate(body["input"])
        ]
        self._send(
            200,
            {
                "object": "list",
                "data": list(reversed(data)),
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            },
        )

    def _send(self, status: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def embeddings_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_embeddings(embeddings_server):
    remote = OpenAICompatEmbedder("wire", "text-embedding-wire", embeddings_server, _EmbeddingsHandler.key)
    try:
        vectors = remote.embed(["a", "bbbb"])
        assert vectors.shape == (2, 8) and remote.dimensions == 8
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
        expected = np.arange(8, dtype=np.float32) + 1  # "a": len 1, restored to input order
        assert np.allclose(vectors[0], expected / np.linalg.norm(expected))
    finally:
        remote.close()


def test_openai_compatible_embeddings_errors(embeddings_server):
    wrong = OpenAICompatEmbedder("wire", "m", embeddings_server, "sk-wrong-key")
    with pytest.raises(ProviderAuthError) as info:
        wrong.embed(["a"])
    assert "sk-wrong-key" not in str(info.value) and "workbench keys set-provider wire" in str(info.value)
    unreachable = OpenAICompatEmbedder("wire", "m", "http://127.0.0.1:9/v1", "k", timeout_s=2)
    with pytest.raises(ProviderUnreachable, match="Cannot reach"):
        unreachable.embed(["a"])


def test_configured_remote_embedder_and_collection_guard(embeddings_server, workbench_home, embedder):
    from workbench.engine.engine import Engine
    from workbench.engine.errors import StoreError

    with Engine(workbench_home) as engine:
        engine.add_provider("wire", "openai", embeddings_server, ["text-embedding-wire"])
        engine.set_provider_key("wire", _EmbeddingsHandler.key)
        engine.settings.save(embedder="wire:text-embedding-wire")
    with Engine(workbench_home) as engine:
        assert engine.embedder.model_id == "wire:text-embedding-wire"
        stored = engine.remember({"key": "k", "value": "remote vectors"})
        assert stored.embedding_dimensions == 8
        assert [r.key for r in engine.rag_retrieve({"query": "remote vectors", "score_threshold": 0.9}).results] == [
            "k"
        ]
    # The memory collection was written by the remote embedder: the default one may not mix in.
    with Engine(workbench_home, embedder=embedder) as engine:
        with pytest.raises(StoreError, match="was embedded with wire:text-embedding-wire"):
            engine.remember({"key": "k2", "value": "local vectors"})
        engine.index("kb.other")  # a new collection takes the current embedder


def test_configured_embedder_must_be_an_openai_provider(workbench_home):
    from workbench.engine.engine import Engine
    from workbench.engine.errors import InvalidRequest, ModelNotFound

    with Engine(workbench_home) as engine:
        engine.settings.save(embedder="nowhere:model")
    with Engine(workbench_home) as engine:
        with pytest.raises(ModelNotFound, match="nowhere:model"):
            _ = engine.embedder
    with Engine(workbench_home) as engine:
        engine.add_provider("claude", "anthropic", "https://api.anthropic.com", ["claude-x"])
        engine.settings.save(embedder="claude:claude-x")
    with Engine(workbench_home) as engine:
        with pytest.raises(InvalidRequest, match="no embeddings API"):
            _ = engine.embedder
