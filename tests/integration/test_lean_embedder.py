"""The lean default embedder (issue 16, item 2): all-MiniLM-L6-v2 through ONNX Runtime.

Its vectors match sentence-transformers' (the reference, the same packaged
weights), the default path never imports torch, collections written by either
side stay readable by the other, and a missing export falls back to
sentence-transformers with one sentence. Load time and throughput are measured
in benchmarks/embedder.py, not here.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PYTHON, cli_env
from tests.embedder_texts import varied_texts
from workbench.engine.errors import ModelNotFound
from workbench.engine.memory import embedder as embedder_module
from workbench.engine.memory.embedder import (
    DEFAULT_EMBEDDER_ID,
    LEAN_FILES,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    default_embedder,
    lean_folder,
    lean_metadata,
)


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers on the packaged weights: what the lean embedder must reproduce."""
    model = SentenceTransformerEmbedder()
    model.start_loading()
    yield model
    model.close()


def test_the_install_step_made_the_export_and_it_is_the_default(embedder):
    # `make deps` runs lean_build; without its export every user would pay torch's load.
    assert lean_metadata(lean_folder()) is not None, f"no export at {lean_folder()}: run `make deps`"
    assert isinstance(embedder, OnnxEmbedder)
    assert embedder.model_id == DEFAULT_EMBEDDER_ID == "all-MiniLM-L6-v2"
    assert embedder.known_dimensions == embedder.dimensions == 384


def test_vectors_match_sentence_transformers_on_varied_texts(embedder, reference):
    texts = varied_texts(120)
    lean, ref = embedder.embed(texts), reference.embed(texts)
    assert lean.shape == ref.shape == (120, 384) and lean.dtype == np.float32
    cosines = (lean * ref).sum(axis=1)
    worst = int(np.argmin(cosines))
    assert cosines.min() >= 0.999, f"cosine {cosines[worst]:.5f} on text {worst}: {texts[worst][:80]!r}"
    assert np.allclose(np.linalg.norm(lean, axis=1), 1.0, atol=1e-5)


def test_long_texts_are_truncated_at_256_tokens_like_sentence_transformers(embedder, reference):
    words = " ".join(f"w{i}" for i in range(400))  # each "wN" is several word pieces: far over 256 tokens
    longer = words + " an ending that falls past the truncation point and must change nothing"
    lean = embedder.embed([words, longer])
    assert float(lean[0] @ lean[1]) > 0.99999  # the tail is cut off
    assert float(lean[0] @ reference.embed([words])[0]) >= 0.999


def test_the_default_path_never_imports_torch(workbench_home: Path):
    code = (
        "import json, sys\nfrom pathlib import Path\nfrom workbench.engine.engine import Engine\n"
        "with Engine(Path(sys.argv[1])) as engine:\n"
        "    engine.remember({'key': 'user:lang', 'value': 'The user prefers French.'})\n"
        "    hits = engine.rag_retrieve({'query': 'which language does the user like?'})\n"
        "    kind = type(engine.embedder).__name__\n"
        "print(json.dumps({'kind': kind, 'hits': len(hits.results),\n"
        "    'heavy': sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)}))\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", code, str(workbench_home)],
        capture_output=True,
        text=True,
        env=cli_env(workbench_home),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"kind": "OnnxEmbedder", "hits": 1, "heavy": []}, done.stderr


def test_collections_written_by_sentence_transformers_keep_working(workbench_home: Path, embedder, reference):
    from workbench.engine.engine import Engine

    docs = workbench_home.parent / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Deploys\n\nDeploys happen on Tuesdays after the review.\n", encoding="utf-8")
    (docs / "b.md").write_text("# Leave\n\nAnnual leave is 25 days, booked in the HR tool.\n", encoding="utf-8")
    query = {"query": "how many holiday days do I get", "collection": "kb", "mode": "vector", "top_k": 2}
    with Engine(workbench_home, embedder=reference) as engine:  # written before the lean embedder existed
        list(engine.ingest({"paths": [str(docs)], "collection": "kb"}))
        engine.remember({"key": "user:lang", "value": "The user prefers French."})
        before = [(h.path, round(h.vector_score or 0.0, 4)) for h in engine.search(query).hits]
    with Engine(workbench_home, embedder=embedder) as engine:  # the lean default opens it: same identity
        after = [(h.path, round(h.vector_score or 0.0, 4)) for h in engine.search(query).hits]
        recalled = engine.rag_retrieve({"query": "what language does the user prefer"})
    assert after == before and before[0][0].endswith("b.md")
    assert "French" in recalled.results[0].model_dump_json()


def test_a_missing_export_falls_back_to_sentence_transformers_with_one_sentence(monkeypatch, caplog):
    monkeypatch.setattr(embedder_module, "LEAN_FOLDER", Path("no-such-export"))
    with caplog.at_level(logging.WARNING, logger="workbench.engine"):
        chosen = default_embedder()
    assert isinstance(chosen, SentenceTransformerEmbedder) and chosen.model_id == DEFAULT_EMBEDDER_ID
    (message,) = [r.getMessage() for r in caplog.records if "ONNX export" in r.getMessage()]
    assert "no-such-export" in message and "lean_build" in message and "\n" not in message
    chosen.close()


def test_incomplete_or_stale_exports_are_not_loaded(tmp_path: Path):
    partial = tmp_path / "partial"
    shutil.copytree(lean_folder(), partial, ignore=shutil.ignore_patterns("model.onnx.data"))
    assert lean_metadata(partial) is None
    with pytest.raises(ModelNotFound) as info:
        OnnxEmbedder(partial)
    assert str(partial) in str(info.value) and "\n" not in str(info.value)

    stale = tmp_path / "stale"
    stale.mkdir()
    for name in LEAN_FILES:
        (stale / name).symlink_to(lean_folder() / name)
    meta = json.loads((lean_folder() / "lean.json").read_text(encoding="utf-8"))
    (stale / "lean.json").write_text(json.dumps({**meta, "source_size": meta["source_size"] + 1}), encoding="utf-8")
    assert lean_metadata(stale) is None  # made from other weights than the installed package's
    (stale / "lean.json").write_text(json.dumps(meta), encoding="utf-8")
    assert lean_metadata(stale) == meta


def test_lean_build_exports_offline_and_is_a_no_op_when_up_to_date(tmp_path: Path, embedder):
    target = tmp_path / "export"
    done = subprocess.run(
        [PYTHON, "-m", "workbench.engine.memory.lean_build", "--target", str(target)],
        capture_output=True,
        text=True,
        env={**cli_env(tmp_path), "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "exported" in done.stdout and lean_metadata(target) is not None
    assert json.loads((target / "lean.json").read_text(encoding="utf-8"))["check_min_cosine"] >= 0.999
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".lean-")]  # no staging folder left
    fresh = OnnxEmbedder(target)
    texts = ["The cat sat on the mat.", "東京は日本の首都です。"]
    assert np.allclose(fresh.embed(texts), embedder.embed(texts), atol=1e-5)
    fresh.close()
    again = subprocess.run(
        [
            PYTHON,
            "-c",
            "import sys\nfrom workbench.engine.memory.lean_build import main\nmain(['--target', sys.argv[1]])\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))",
            str(target),
        ],
        capture_output=True,
        text=True,
        env=cli_env(tmp_path),
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout and again.stdout.strip().endswith("[]")


def test_a_command_that_ends_while_the_embedder_loads_exits_cleanly(workbench_home: Path, tmp_path: Path):
    # An ingest with nothing new ends before the background load does; exiting under ONNX Runtime's
    # session set-up aborted the process (status -6) in 3 to 6 of 8 runs before the exit waited for it.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("# Note\n\nQuasars are bright.\n", encoding="utf-8")

    def ingest() -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "-m", "workbench", "ingest", str(docs), "--json"],
            capture_output=True,
            text=True,
            env=cli_env(workbench_home),
            timeout=300,
        )

    assert ingest().returncode == 0
    for _ in range(5):
        again = ingest()
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["unchanged"] == 1
