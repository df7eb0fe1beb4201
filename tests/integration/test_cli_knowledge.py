"""Knowledge base, memory and graph commands of the `workbench` CLI, run as a
user would: in a subprocess against a temporary home. Each start loads the
embedder (~7 s), so every call checks several things."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.conftest import PYTHON, cli_env


def workbench(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "workbench", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=cli_env(home),
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("workbench: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr, result.stderr


def write_docs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "guide.md").write_text(
        "# Telescope guide\n\nThe quasar telescope was finished in 1987.\n\n## Care\n\nOil the gears twice a year.\n",
        encoding="utf-8",
    )
    (folder / "notes.txt").write_text("A pelican colony nests on the south island.\n", encoding="utf-8")
    (folder / "rules.md").write_text("# House rules\n\nAnswer in British English.\n", encoding="utf-8")
    (folder / "photo.xyz").write_text("not readable by us", encoding="utf-8")
    return folder


def test_ingest_search_collections_and_docs(workbench_home: Path, tmp_path: Path):
    docs = write_docs(tmp_path / "docs")
    first = ok(workbench(workbench_home, "ingest", str(docs)))
    summary = re.match(
        r"Collection default: 3 added, 0 updated, 0 unchanged, 0 removed; (\d+) chunks in [\d.]+ s\.\n", first
    )
    assert summary, first
    chunks = int(summary.group(1))
    assert chunks >= 3
    assert f"  skipped    {docs / 'photo.xyz'}: unsupported file type .xyz\n" in first

    again = ok(workbench(workbench_home, "ingest", str(docs), "--json"))
    report = json.loads(again)
    assert (report["added"], report["unchanged"], report["chunks_written"], report["files_seen"]) == (0, 3, 0, 4)
    assert report["skipped"] == [{"path": str(docs / "photo.xyz"), "reason": "unsupported file type .xyz"}]

    found = ok(workbench(workbench_home, "search", "quasar telescope"))
    lines = found.splitlines()
    assert lines[0].startswith(f" 1. {docs / 'guide.md'}:1-3  § Telescope guide")
    assert re.match(r"    fused \d\.\d{4}   bm25 \d+\.\d{3} \(#1\)   vector \d\.\d{3} \(#\d+\)$", lines[1]), lines[1]
    assert "The quasar telescope was finished in 1987." in lines[2]
    assert re.match(r"\([\d.]+ ms\)$", lines[-1])

    listing = ok(workbench(workbench_home, "collections"))
    assert re.fullmatch(rf"default\s+3 documents\s+{chunks} chunks\n", listing), listing

    pinned = ok(workbench(workbench_home, "docs", "pin", str(docs / "rules.md")))
    assert pinned == f"Pinned {docs / 'rules.md'}.\n"
    shown = ok(workbench(workbench_home, "docs")).splitlines()
    assert len(shown) == 3
    by_name = {Path(line.split("  ")[0]).name: line for line in shown}
    assert by_name["rules.md"].endswith("[pinned]") and "markdown" in by_name["rules.md"]
    assert not by_name["guide.md"].endswith("[pinned]") and not by_name["notes.txt"].endswith("[pinned]")
    assert re.search(r"  text  1 chunks$", by_name["notes.txt"])

    # A path that does not exist is an error, at once; a pinned document joins any search.
    missing = tmp_path / "nowhere" / "gone.md"
    failed(workbench(workbench_home, "ingest", str(missing)), f"No file or folder at {missing}.")

    searched = json.loads(ok(workbench(workbench_home, "search", "pelican", "-k", "1", "--json")))
    assert [(Path(h["path"]).name, h["pinned"]) for h in searched["hits"]] == [("rules.md", True), ("notes.txt", False)]


def test_search_errors_are_one_sentence(workbench_home: Path, tmp_path: Path):
    failed(workbench(workbench_home, "search", "anything"), "ingest")
    ok(workbench(workbench_home, "ingest", str(write_docs(tmp_path / "docs"))))
    failed(workbench(workbench_home, "search", "x", "-k", "0"), "top_k")
    as_json = workbench(workbench_home, "search", "quasar", "-c", "nope", "--json")
    failed(as_json, "No collection 'nope'")
    assert json.loads(as_json.stdout)["error"]["code"] == "not_found"


def test_memory_round_trip(workbench_home: Path):
    stored = ok(
        workbench(
            workbench_home,
            "remember",
            "pet",
            "The user's dog is a border collie named Pixel.",
            "--category",
            "personal",
            "--tag",
            "pets",
        )
    )
    assert re.fullmatch(r"Stored default/pet \(vec_\w+\)\.\n", stored), stored
    assert ok(workbench(workbench_home, "recall", "pet")) == "The user's dog is a border collie named Pixel.\n"
    found = ok(workbench(workbench_home, "recall", "--query", "what kind of dog does the user have", "--json"))
    results = json.loads(found)["results"]
    assert results[0]["key"] == "pet" and results[0]["score"] >= 0.3
    assert results[0]["metadata"] == {"category": "personal", "tags": ["pets"]}
    assert ok(workbench(workbench_home, "forget", "pet")) == "Forgot default/pet.\n"
    failed(workbench(workbench_home, "recall", "pet"), "No memory with key 'pet'")


def test_graph_facts_and_relations(workbench_home: Path):
    fact = ok(workbench(workbench_home, "graph", "fact", "Ada Lovelace", "born", "1815", "--source", "encyclopedia"))
    assert fact == "Ada Lovelace · born = 1815\n"
    facts = ok(workbench(workbench_home, "graph", "facts", "Ada Lovelace"))
    assert facts == "born: 1815  [1.00]  (encyclopedia)\n"
    related = ok(workbench(workbench_home, "graph", "relate", "Ada Lovelace", "worked_with", "Charles Babbage"))
    assert related == "Ada Lovelace -[worked_with]-> Charles Babbage\n"
    near = ok(workbench(workbench_home, "graph", "neighbours", "Ada Lovelace")).splitlines()
    assert len(near) == 1
    assert near[0].startswith("1  Charles Babbage (") and near[0].endswith("via worked_with")


def test_an_unusable_model_answer_is_labelled_extractive_and_quotes_the_best_sentence(
    workbench_home: Path, tmp_path: Path
):
    folder = tmp_path / "limits"
    folder.mkdir()
    (folder / "limits.md").write_text(
        "# Server limits\n\nThe server listens on localhost by default. Keys are stored hashed. "
        "The default rate limit is 60 requests per minute per key. Bursts above it get status 429.\n",
        encoding="utf-8",
    )
    ok(workbench(workbench_home, "ingest", str(folder), "-c", "limits"))
    question = "What is the default rate limit?"
    # 16 tokens cannot hold one complete cited sentence of the answer's JSON: the model's answer is unusable.
    data = json.loads(ok(workbench(workbench_home, "answer", question, "-c", "limits", "--max-tokens", "16", "--json")))
    assert data["mode"] == "extractive"
    # The best sentence for the question, not the first sentence of the top passage.
    assert data["text"] == "The default rate limit is 60 requests per minute per key. [1]"
    assert [c["n"] for c in data["citations"]] == [1] and data["citations"][0]["source"].endswith("limits.md")
    out = ok(workbench(workbench_home, "answer", question, "-c", "limits", "--max-tokens", "16"))
    assert out.splitlines()[0] == "[extract] The model's answer was unusable; the passages' best-matching sentence:"
    assert out.splitlines()[1] == data["text"]
