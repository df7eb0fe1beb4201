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
    rrf = evaluate_retrieval(
        mem_engine.search,
        questions,
        "handbook",
        k=5,
        modes=["hybrid"],
        options={"fusion": "rrf", "bm25_weight": 1, "vector_weight": 1, "rrf_k": 60},
    )
    assert rrf.modes["hybrid"].hit_at_k < hybrid.hit_at_k
    assert set(report.splits) == {"test", "tune"}
    assert sum(s["hybrid"].questions for s in report.splits.values()) == len(questions)
    assert all(set(q.first_relevant) == {"bm25", "vector", "hybrid"} for q in report.questions)
    # The per-question best of the two parts is reported beside them, overall and per split.
    best = report.best_of_parts
    assert best is not None and best.questions == len(questions)
    assert best.hit_at_k >= max(lexical.hit_at_k, vector.hit_at_k) and best.mrr >= max(lexical.mrr, vector.mrr)
    assert set(report.best_of_parts_splits) == {"test", "tune"}
    assert report.bm25_ahead is not None and report.vector_ahead is not None
    assert report.bm25_ahead + report.vector_ahead <= len(questions)
    assert rrf.best_of_parts is None and rrf.bm25_ahead is None  # hybrid alone: no parts to compare


def test_best_of_parts_counts_the_questions_each_part_ranks_higher(mem_engine: Engine, tmp_path: Path):
    """A fault code only BM25 matches exactly, and a paraphrase only the vector gets right first."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in {
        "stars.md": "# Stars\n\nThe quasar telescope was finished in 1987.\n",
        "pumps.md": "# Pumps\n\nA pump that shows fault ZR-9 restarts on its own after a minute.\n",
        "faults.md": "# Telescope faults\n\nWhen the telescope mirror stops moving, the observatory crew resets "
        "the drive.\n",
        "food.md": "# Food\n\nSaffron rice is cooked with stock and butter.\n",
    }.items():
        (docs / name).write_text(text, encoding="utf-8")
    for _ in mem_engine.ingest({"paths": [str(docs)], "collection": "mini"}):
        pass
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "When was the telescope completed?", "expected": [{"path": "stars.md", '
        '"contains": "finished in 1987"}], "split": "a"}\n'
        '{"question": "What does fault ZR-9 on the telescope mean?", "expected": [{"path": "pumps.md", '
        '"contains": "ZR-9"}], "split": "b"}\n',
        encoding="utf-8",
    )
    report = evaluate_retrieval(mem_engine.search, load_questions(questions), "mini", k=3)
    ranks = [(q.first_relevant["bm25"], q.first_relevant["vector"]) for q in report.questions]
    assert ranks[0][1] == 1 and ranks[0][0] > 1, ranks  # the paraphrase: vector first, BM25 lower
    assert ranks[1][0] == 1 and ranks[1][1] > 1, ranks  # the code: BM25 first, vector lower
    assert (report.bm25_ahead, report.vector_ahead) == (1, 1)
    assert report.best_of_parts is not None and report.best_of_parts.mrr == 1.0
    assert max(report.modes["bm25"].mrr, report.modes["vector"].mrr) < 1.0
    assert {s: m.mrr for s, m in report.best_of_parts_splits.items()} == {"a": 1.0, "b": 1.0}


def test_eval_retrieval_command(workbench_home: Path, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "birds.md").write_text(
        "# Birds\n\nA pelican colony nests on the south island every spring.\n", encoding="utf-8"
    )
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
    result = json.loads(
        ok(workbench(workbench_home, "eval", "retrieval", str(questions), "-c", "mini", "--k", "3", "--json"))
    )
    assert result["k"] == 3 and result["collection"] == "mini"
    assert set(result["modes"]) == {"bm25", "vector", "hybrid"}
    for mode in ("vector", "hybrid"):
        # two of three questions answerable, both found first
        assert result["modes"][mode]["hit_at_k"] == 0.6667 and result["modes"][mode]["mrr"] == 0.6667
    assert [q["first_relevant"]["hybrid"] for q in result["questions"]] == [1, 1, None]
    assert result["questions"][2]["first_relevant"]["bm25"] is None
    assert set(result["splits"]) == {"test", "tune"}
    assert result["best_of_parts"]["hit_at_k"] == 0.6667
    assert result["bm25_ahead"] + result["vector_ahead"] <= 3

    text = ok(
        workbench(
            workbench_home,
            "eval",
            "retrieval",
            str(questions),
            "-c",
            "mini",
            "--mode",
            "hybrid",
            "--fusion",
            "rrf",
            "--show-misses",
        )
    )
    assert "Collection mini, 3 questions, top 5:" in text
    assert "  hybrid     0.667   0.667    0.667" in text and "bm25 " not in text
    assert "missed by hybrid: volcano" in text
    assert "best of bm25 and vector" not in text  # only hybrid was evaluated

    text = ok(workbench(workbench_home, "eval", "retrieval", str(questions), "-c", "mini", "--k", "3"))
    assert "best of bm25 and vector per question (a reference for fusion): hit@3 0.667" in text
    assert "bm25 ranks the expected passage above vector on " in text

    (tmp_path / "bad.jsonl").write_text('{"question": "no expected passages"}\n', encoding="utf-8")
    failed(
        workbench(workbench_home, "eval", "retrieval", str(tmp_path / "bad.jsonl"), "-c", "mini"),
        "bad.jsonl line 1 is not a question",
    )
