"""Retrieval evaluation: the shipped question set scored through the real engine
(real embedder, DuckDB), and `workbench eval retrieval` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli_knowledge import failed, ok, workbench
from workbench.engine.engine import Engine
from workbench.engine.knowledge import bm25
from workbench.engine.knowledge.evaluate import evaluate_retrieval, load_questions

HANDBOOK = Path(__file__).resolve().parents[2] / "data" / "corpus" / "handbook"


def test_hybrid_beats_or_matches_each_single_mode_on_the_shipped_handbook(mem_engine: Engine):
    for _ in mem_engine.ingest({"paths": [str(HANDBOOK)], "collection": "handbook"}):
        pass
    # Coverage: of the query's terms the collection knows ("zebra" it does not), the share in the chunk.
    top = bm25.search(mem_engine.db, "handbook", "London onboarding zebra", 1)[0][0]
    assert bm25.coverage(mem_engine.db, "handbook", "London onboarding zebra", top) == 0.5
    assert bm25.coverage(mem_engine.db, "handbook", "zebra", top) == 0.0
    questions = load_questions(HANDBOOK / "QUESTIONS.jsonl")
    assert len(questions) >= 30 and {q.split for q in questions} == {"tune", "test"}
    report = evaluate_retrieval(mem_engine.search, questions, "handbook", k=5)
    lexical, vector, hybrid = (report.modes[m] for m in ("bm25", "vector", "hybrid"))
    assert hybrid.hit_at_k >= max(lexical.hit_at_k, vector.hit_at_k), report.modes
    assert hybrid.mrr > lexical.mrr and hybrid.ndcg_at_k > lexical.ndcg_at_k, report.modes
    assert hybrid.hit_at_k >= 0.9
    # The earlier fusion (equal-weight RRF) is measurably worse on the same set.
    rrf = evaluate_retrieval(mem_engine.search, questions, "handbook", k=5, modes=["hybrid"],
                             options={"fusion": "rrf", "bm25_weight": 1, "vector_weight": 1, "rrf_k": 60})
    assert rrf.modes["hybrid"].hit_at_k < hybrid.hit_at_k
    assert set(report.splits) == {"test", "tune"}
    assert sum(s["hybrid"].questions for s in report.splits.values()) == len(questions)
    assert all(set(q.first_relevant) == {"bm25", "vector", "hybrid"} for q in report.questions)


def test_eval_retrieval_command(workbench_home: Path, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "birds.md").write_text("# Birds\n\nA pelican colony nests on the south island every spring.\n",
                                   encoding="utf-8")
    (docs / "stars.md").write_text("# Stars\n\nThe quasar telescope was finished in 1987.\n", encoding="utf-8")
    (docs / "food.md").write_text("# Food\n\nSaffron rice is cooked with stock and butter.\n", encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "pelican colony", "expected": [{"path": "docs/birds.md", "contains": "south island"}], '
        '"split": "tune"}\n'
        '{"question": "When was the telescope completed?", "expected": [{"path": "stars.md", '
        '"contains": "finished in 1987"}], "split": "test"}\n'
        '{"question": "volcano", "expected": [{"path": "nowhere.md", "contains": "lava"}]}\n',
        encoding="utf-8",
    )
    ok(workbench(workbench_home, "ingest", str(docs), "-c", "mini"))
    result = json.loads(ok(workbench(workbench_home, "eval", "retrieval", str(questions), "-c", "mini",
                                     "--k", "3", "--json")))
    assert result["k"] == 3 and result["collection"] == "mini"
    assert set(result["modes"]) == {"bm25", "vector", "hybrid"}
    for mode in ("vector", "hybrid"):
        # two of three questions answerable, both found first
        assert result["modes"][mode]["hit_at_k"] == 0.6667 and result["modes"][mode]["mrr"] == 0.6667
    assert [q["first_relevant"]["hybrid"] for q in result["questions"]] == [1, 1, None]
    assert result["questions"][2]["first_relevant"]["bm25"] is None
    assert set(result["splits"]) == {"test", "tune"}

    text = ok(workbench(workbench_home, "eval", "retrieval", str(questions), "-c", "mini", "--mode", "hybrid",
                        "--fusion", "rrf", "--show-misses"))
    assert "Collection mini, 3 questions, top 5:" in text
    assert "  hybrid     0.667   0.667    0.667" in text and "bm25 " not in text
    assert "missed by hybrid: volcano" in text

    (tmp_path / "bad.jsonl").write_text('{"question": "no expected passages"}\n', encoding="utf-8")
    failed(workbench(workbench_home, "eval", "retrieval", str(tmp_path / "bad.jsonl"), "-c", "mini"),
           "bad.jsonl line 1 is not a question")
