"""Commands that need no vector never load the embedder; `n_threads` is configurable;
missing ingest paths, extension-less text files and empty prompts are handled
(issue 13, items 5 and 7). Timing lives in benchmarks/cold_cli.py, not here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, cli_env
from workbench.engine.errors import InvalidRequest
from workbench.engine.memory.embedder import dimensions_from_metadata

# Runs CLI commands in one fresh interpreter, then reports which heavy modules got imported.
_PROBE = """
import json, sys
from workbench.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps({"codes": codes, "heavy": sorted(m for m in ("torch", "sentence_transformers", "llama_cpp")
                                                     if m in sys.modules)}))
"""


def probe(home: Path, *commands: list[str]) -> dict:
    done = subprocess.run(
        [PYTHON, "-c", _PROBE, json.dumps(list(commands))],
        capture_output=True,
        text=True,
        env=cli_env(home),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_key_lookups_and_listings_never_load_the_embedder(mem_engine, workbench_home: Path, tmp_path: Path):
    mem_engine.remember({"key": "user:lang", "value": "The user prefers French."})
    mem_engine.store_fact("Ada Lovelace", "occupation", "mathematician")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nSome text about quasars.\n", encoding="utf-8")
    list(mem_engine.ingest({"paths": [str(docs)], "collection": "kb"}))
    mem_engine.create_session("a chat")
    mem_engine.close()

    result = probe(
        workbench_home,
        ["recall", "user:lang"],
        ["sessions", "list"],
        ["collections"],
        ["docs", "-c", "kb"],
        ["graph", "facts", "Ada Lovelace"],
        ["forget", "user:lang"],
        ["models"],
        ["agents", "list"],
    )
    assert result == {"codes": [0] * 8, "heavy": []}


def test_embedder_dimensions_come_from_metadata_without_torch():
    code = (
        "import sys\nfrom workbench.engine.memory.embedder import SentenceTransformerEmbedder\n"
        "e = SentenceTransformerEmbedder()\nprint(e.dimensions, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["384", "False"], done.stderr


def test_metadata_dimensions_follow_dense_and_pooling_layers(tmp_path: Path):
    def folder(modules: list[tuple[str, str, dict]]) -> Path:
        root = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        root.mkdir()
        listing = []
        for i, (kind, sub, config) in enumerate(modules):
            (root / sub).mkdir(exist_ok=True)
            (root / sub / "config.json").write_text(json.dumps(config), encoding="utf-8")
            listing.append({"idx": i, "name": str(i), "path": sub, "type": f"sentence_transformers.models.{kind}"})
        (root / "modules.json").write_text(json.dumps(listing), encoding="utf-8")
        return root

    transformer = ("Transformer", "", {"hidden_size": 768})
    pooling = (
        "Pooling",
        "1_Pooling",
        {
            "word_embedding_dimension": 768,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": True,
            "pooling_mode_cls_token": False,
        },
    )
    assert (
        dimensions_from_metadata(
            folder(
                [transformer, pooling, ("Dense", "2_Dense", {"out_features": 256}), ("Normalize", "3_Normalize", {})]
            )
        )
        == 256
    )
    assert dimensions_from_metadata(folder([transformer, pooling])) == 1536
    assert dimensions_from_metadata(folder([transformer])) == 768
    assert dimensions_from_metadata(folder([transformer, ("Custom", "2_Custom", {"size": 5})])) is None
    assert dimensions_from_metadata(tmp_path / "nowhere") is None


def test_the_loaded_model_agrees_with_its_metadata(embedder):
    assert embedder.embed(["x"]).shape == (1, embedder.dimensions) == (1, 384)
    assert embedder.known_dimensions == 384


def test_n_threads_comes_from_config(workbench_home: Path):
    from workbench.engine.config import load_config
    from workbench.engine.engine import Engine
    from workbench.engine.inference.llama import default_threads, physical_cores

    workbench_home.mkdir(parents=True, exist_ok=True)
    (workbench_home / "config.json").write_text('{"n_threads": 1}', encoding="utf-8")
    assert load_config(workbench_home).n_threads == 1
    with Engine(workbench_home) as engine:
        assert engine.models.chat_model(None).load().n_threads == 1
    (workbench_home / "config.json").write_text("{}", encoding="utf-8")
    with Engine(workbench_home) as engine:  # the same loaded weights, switched to the default
        assert engine.models.chat_model(None).load().n_threads == default_threads() == max(1, physical_cores() - 1)
    (workbench_home / "config.json").write_text('{"n_threads": 0}', encoding="utf-8")
    with pytest.raises(InvalidRequest, match="invalid at n_threads"):
        load_config(workbench_home)


def test_a_missing_ingest_path_fails_at_once(workbench_home: Path, tmp_path: Path):
    missing = tmp_path / "does-not-exist"
    done = subprocess.run(
        [PYTHON, "-m", "workbench", "ingest", str(missing)],
        capture_output=True,
        text=True,
        env=cli_env(workbench_home),
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"workbench: error: No file or folder at {missing}.\n",
    )
    # "At once": the refusal comes before the embedder starts loading (it took 10 s before).
    assert probe(workbench_home, ["ingest", str(missing)]) == {"codes": [1], "heavy": []}


def test_reingesting_a_deleted_file_still_removes_its_document(mem_engine, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    gone = docs / "gone.md"
    gone.write_text("# Gone\n\nSoon deleted.\n", encoding="utf-8")
    list(mem_engine.ingest({"paths": [str(gone)], "collection": "kb"}))
    gone.unlink()
    report = list(mem_engine.ingest({"paths": [str(gone)], "collection": "kb"}))[-1].report
    assert report.removed == 1 and mem_engine.list_documents("kb") == []
    with pytest.raises(InvalidRequest, match="No file or folder at"):
        mem_engine.ingest({"paths": [str(gone)], "collection": "kb"})


def test_extensionless_text_files_are_ingested_and_unchanged_on_reingest(mem_engine, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "NOTES").write_text("The lighthouse keeper logs every storm.\n", encoding="utf-8")
    (docs / "Makefile").write_text("all:\n\techo build\n", encoding="utf-8")
    (docs / "program").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(64))
    (docs / "guide.md").write_text("# Guide\n\nRead the NOTES.\n", encoding="utf-8")
    first = list(mem_engine.ingest({"paths": [str(docs)], "collection": "kb"}))[-1].report
    assert first.added == 3 and first.duplicates == []
    assert [(Path(s.path).name, s.reason) for s in first.skipped] == [("program", "no extension and not UTF-8 text")]
    kinds = {Path(d.path).name: d.kind for d in mem_engine.list_documents("kb")}
    assert kinds == {"NOTES": "text", "Makefile": "text", "guide.md": "markdown"}
    hits = mem_engine.search({"query": "lighthouse keeper storm", "collection": "kb", "mode": "bm25"}).hits
    assert Path(hits[0].path).name == "NOTES"

    again = list(mem_engine.ingest({"paths": [str(docs)], "collection": "kb"}))[-1].report
    assert (again.added, again.unchanged, again.duplicates) == (0, 3, [])
    assert [Path(s.path).name for s in again.skipped] == ["program"]


@pytest.mark.parametrize(
    "argv, stdin, where",
    [
        (["ask", ""], None, "the prompt is"),
        (["ask", "   \n"], None, "the prompt is"),
        (["ask", "-"], "", "standard input was"),
        (["ask", "-", "--json"], " \n\t\n", "standard input was"),
    ],
)
def test_an_empty_prompt_is_refused(workbench_home: Path, argv: list[str], stdin: str | None, where: str):
    done = subprocess.run(
        [PYTHON, "-m", "workbench", *argv],
        capture_output=True,
        text=True,
        input=stdin,
        env=cli_env(workbench_home),
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"workbench: error: {where} empty; give the question to ask.\n"
    listed = subprocess.run(
        [PYTHON, "-m", "workbench", "sessions", "list", "--json"],
        capture_output=True,
        text=True,
        env=cli_env(workbench_home),
        timeout=60,
    )
    assert json.loads(listed.stdout) == []  # nothing was sent or saved


def test_key_lookup_with_a_remote_embedder_needs_no_embedding_server(workbench_home: Path):
    import threading
    from http.server import ThreadingHTTPServer

    from tests.integration.test_embedder import _EmbeddingsHandler
    from workbench.engine.engine import Engine
    from workbench.engine.errors import ProviderUnreachable

    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmbeddingsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    workbench_home.mkdir(parents=True, exist_ok=True)
    (workbench_home / "config.json").write_text(
        json.dumps({"providers": {"wire": {"kind": "openai", "base_url": url, "models": ["m"]}}, "embedder": "wire:m"})
    )
    try:
        with Engine(workbench_home) as engine:
            engine.set_provider_key("wire", _EmbeddingsHandler.key)
            engine.remember({"key": "user:lang", "value": "French"})
    finally:
        server.shutdown()
        server.server_close()
    with Engine(workbench_home) as engine:  # the embedding server is gone
        assert engine.recall("user:lang").value == "French"
        assert [m.key for m in engine.list_memories()] == ["user:lang"]
        with pytest.raises(ProviderUnreachable):
            engine.rag_retrieve({"query": "language"})
