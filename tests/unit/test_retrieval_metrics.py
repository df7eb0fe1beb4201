"""Retrieval metrics, relevance judging, question loading and fusion on crafted inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from workbench.engine.errors import InvalidRequest
from workbench.engine.knowledge.evaluate import (
    ExpectedPassage,
    hit_at_k,
    judge,
    load_questions,
    ndcg_at_k,
    reciprocal_rank,
)
from workbench.engine.knowledge.fusion import fuse


def test_hit_at_k_and_reciprocal_rank():
    ranking = [False, False, True, False, True]
    assert hit_at_k(ranking, 5) == 1.0
    assert hit_at_k(ranking, 2) == 0.0
    assert reciprocal_rank(ranking, 5) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranking, 2) == 0.0
    assert reciprocal_rank([True], 5) == 1.0
    assert hit_at_k([], 5) == 0.0 and reciprocal_rank([], 5) == 0.0


def test_ndcg_with_binary_gains():
    assert ndcg_at_k([1, 0, 0], 5, 1) == 1.0
    assert ndcg_at_k([0, 1, 0], 5, 1) == pytest.approx(1 / math.log2(3))
    # two expected passages, found at ranks 1 and 3: (1 + 1/log2(4)) / (1 + 1/log2(3))
    assert ndcg_at_k([1, 0, 1], 5, 2) == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k([0, 0, 0, 0, 0, 1], 5, 1) == 0.0  # beyond k
    assert ndcg_at_k([1, 1], 5, 0) == 0.0


def test_judge_matches_path_suffix_and_phrase_and_counts_a_passage_once():
    expected = [ExpectedPassage(path="handbook/travel.md", contains="Per  DIEM is 45 EUR")]
    hits = [
        ("/data/handbook/expenses.md", "the per diem is 45 EUR"),  # wrong document
        ("/data/other-handbook/travel.md", "the per diem is 45 EUR"),  # path suffix, not a whole segment
        ("/data/handbook/travel.md", "Hotels are capped."),  # right document, other chunk
        ("/data/handbook/travel.md", "The per diem\nis 45 EUR for a full day"),  # the passage
        ("/data/handbook/travel.md", "again: the per diem is 45 EUR"),  # found twice: no second gain
    ]
    relevance, gains = judge(hits, expected)
    assert relevance == [False, False, False, True, True]
    assert gains == [0, 0, 0, 1, 0]


def test_load_questions_names_the_bad_line(tmp_path: Path):
    good = '{"question": "q?", "expected": [{"path": "a.md", "contains": "x"}], "split": "test"}'
    file = tmp_path / "q.jsonl"
    file.write_text(good + "\n\n" + good + "\n", encoding="utf-8")
    questions = load_questions(file)
    assert [q.split for q in questions] == ["test", "test"]
    file.write_text(good + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="q.jsonl line 2 is not a question"):
        load_questions(file)
    file.write_text('{"question": "q?", "expected": []}\n', encoding="utf-8")
    with pytest.raises(InvalidRequest, match="line 1 is not a question"):
        load_questions(file)
    file.write_text("\n", encoding="utf-8")
    with pytest.raises(InvalidRequest, match="holds no questions"):
        load_questions(file)
    with pytest.raises(InvalidRequest, match="No question file"):
        load_questions(tmp_path / "missing.jsonl")


def test_convex_fusion_keeps_a_strong_single_list_hit_on_top():
    # The issue's case: chunk 1 is BM25's clear top hit but not a vector candidate;
    # chunks 2-5 are middling in both lists; chunk 6 is the vector's top hit only.
    bm25 = [(1, 12.0), (2, 6.0), (3, 5.5), (4, 5.0), (5, 4.5)]
    vector = [(6, 0.80), (2, 0.52), (3, 0.51), (4, 0.50), (5, 0.49), (7, 0.30)]
    rrf = [c for c, _ in fuse(bm25, vector, method="rrf", bm25_weight=1, vector_weight=1, rrf_k=60)]
    assert rrf[:4] == [2, 3, 4, 5]  # both single-list leaders sink below everything found twice
    ranked = fuse(bm25, vector, bm25_weight=1, vector_weight=1)
    assert {c for c, _ in ranked[:2]} == {1, 6}
    info = dict(ranked)
    # 0.5 * bm25 / best bm25 + 0.5 * min-max(cosine)
    assert info[1]["fused"] == pytest.approx(0.5)
    assert info[2]["fused"] == pytest.approx(0.5 * 6 / 12 + 0.5 * (0.52 - 0.30) / 0.50)
    assert info[7]["fused"] == pytest.approx(0.0)
    assert info[1]["bm25_rank"] == 1 and "vector_rank" not in info[1]
    assert info[2] == {
        "fused": info[2]["fused"],
        "bm25_rank": 2,
        "bm25_score": 6.0,
        "vector_rank": 2,
        "vector_score": 0.52,
    }


def test_fusion_weights_and_single_lists():
    bm25 = [(1, 3.0), (2, 1.0)]
    vector = [(2, 0.9), (3, 0.5), (1, 0.1)]
    assert [c for c, _ in fuse(bm25, [])] == [1, 2]
    assert dict(fuse(bm25, []))[1]["fused"] == 1.0  # one list: its own normalised score
    assert [c for c, _ in fuse([], vector)] == [2, 3, 1]
    assert [c for c, _ in fuse(bm25, vector, bm25_weight=10, vector_weight=0.01)][:2] == [1, 2]
    assert [c for c, _ in fuse(bm25, vector, bm25_weight=0.01, vector_weight=10)] == [2, 3, 1]
    rrf = dict(fuse(bm25, vector, method="rrf", bm25_weight=2, vector_weight=1, rrf_k=10))
    assert rrf[2]["fused"] == pytest.approx(2 / 12 + 1 / 11)
    # BM25's weight follows its coverage of the query: none leaves the vector order.
    assert [c for c, _ in fuse(bm25, vector, bm25_weight=10, vector_weight=0.01, bm25_coverage=0.0)] == [2, 3, 1]
    half = dict(fuse(bm25, vector, bm25_weight=1, vector_weight=1, bm25_coverage=0.5))
    assert half[1]["fused"] == pytest.approx(0.5 / 1.5 * 1.0 + 1 / 1.5 * 0.0)
    assert fuse([], []) == []
    with pytest.raises(ValueError):
        fuse(bm25, vector, method="magic")
