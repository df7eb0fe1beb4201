"""Retrieval evaluation: hit@k, MRR and nDCG@k of each search mode over a question set.

A question set is JSON Lines, one question a line:

    {"question": "...", "expected": [{"path": "guide/setup.md", "contains": "a phrase"}], "split": "test"}

An expected passage is named by its document path (a suffix of the ingested
path, compared by whole path segments) and a phrase from its text, not by
chunk ids, so that re-chunking or re-ingesting does not invalidate the set.
A retrieved chunk is relevant when its document matches and its text (with
its heading) contains the phrase, compared casefolded with whitespace
collapsed. `split` is free-form (e.g. "tune"/"test") and reported per split,
so that fusion can be tuned on one half and judged on the other.

When both single modes are evaluated, the report also gives their per-question
best (`best_of_parts`: for each question the better of BM25's and vector's
scores, as if an oracle chose the right retriever) and how often each ranks
the expected passage above the other. Fusion reorders the two candidate
lists, so it gains over a single mode mostly on questions where the other
one ranks the passage higher: when `bm25_ahead` is 0, BM25 never ranks an
expected passage above the vector, and hybrid can beat vector only by
demoting chunks the vector ranks too high (not a strict bound, but a good
reference for how much a fusion can win on a question set).

The evaluation takes a `search` callable (a local `Engine.search` or a remote
client's), so it works the same in-process, through the API or the CLI.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from workbench.engine.errors import InvalidRequest
from workbench.engine.schemas import SearchRequest, SearchResponse

MODES = ("bm25", "vector", "hybrid")
MAX_QUESTIONS = 5000


class ExpectedPassage(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    contains: str = Field(min_length=1, max_length=2000)


class RetrievalQuestion(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    expected: list[ExpectedPassage] = Field(min_length=1, max_length=50)
    split: str | None = None


class ModeMetrics(BaseModel):
    """Means over the questions of one mode (and optionally one split)."""

    questions: int
    hit_at_k: float
    mrr: float
    ndcg_at_k: float


class QuestionResult(BaseModel):
    question: str
    split: str | None
    #: rank (1-based) of the first relevant chunk per mode, None when none is in the top k
    first_relevant: dict[str, int | None]


class RetrievalEvaluation(BaseModel):
    collection: str
    k: int
    modes: dict[str, ModeMetrics]
    #: split name -> mode -> metrics (empty when the set has no splits)
    splits: dict[str, dict[str, ModeMetrics]] = {}
    questions: list[QuestionResult]
    #: per question the better of bm25 and vector (None unless both were evaluated); per split below
    best_of_parts: ModeMetrics | None = None
    best_of_parts_splits: dict[str, ModeMetrics] = {}
    #: questions whose expected passage BM25 ranks above vector (a miss ranks below any hit), and the reverse
    bm25_ahead: int | None = None
    vector_ahead: int | None = None


# ---------------------------------------------------------------- metrics


def hit_at_k(relevance: list[bool], k: int) -> float:
    """1.0 when any of the first k results is relevant."""
    return 1.0 if any(relevance[:k]) else 0.0


def reciprocal_rank(relevance: list[bool], k: int) -> float:
    """1 / rank of the first relevant result among the first k, else 0."""
    for rank, relevant in enumerate(relevance[:k], 1):
        if relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(gains: list[float], k: int, ideal_count: int) -> float:
    """Normalised discounted cumulative gain with binary gains.

    `gains[i]` is 1 when result i+1 is the first to satisfy some expected
    passage (a passage found twice counts once); the ideal ranking puts all
    `ideal_count` expected passages first.
    """
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(ideal_count, k)))
    return dcg / ideal if ideal else 0.0


# ------------------------------------------------------------- matching


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _path_matches(hit_path: str, expected: str) -> bool:
    hit = hit_path.replace(os.sep, "/")
    want = expected.replace(os.sep, "/").strip("/")
    return hit == want or hit.endswith("/" + want)


def judge(hits: list[tuple[str, str]], expected: list[ExpectedPassage]) -> tuple[list[bool], list[float]]:
    """Relevance and nDCG gains of ranked (path, text) results against the expected passages."""
    wanted = [(e.path, _norm(e.contains)) for e in expected]
    found: set[int] = set()
    relevance: list[bool] = []
    gains: list[float] = []
    for path, text in hits:
        body = _norm(text)
        matched = {i for i, (p, c) in enumerate(wanted) if c in body and _path_matches(path, p)}
        relevance.append(bool(matched))
        gains.append(1.0 if matched - found else 0.0)
        found |= matched
    return relevance, gains


# ------------------------------------------------------------ questions


def load_questions(path: str | Path) -> list[RetrievalQuestion]:
    """Read a JSON Lines question set; a bad line raises `InvalidRequest` naming it."""
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InvalidRequest(f"No question file {str(file)!r}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Cannot read the question file {str(file)!r}: {exc}.") from None
    questions: list[RetrievalQuestion] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            questions.append(RetrievalQuestion.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else exc.msg
            raise InvalidRequest(
                f"{file.name} line {number} is not a question "
                f'({{"question": ..., "expected": [{{"path": ..., "contains": ...}}]}}): {reason}.'
            ) from None
        if len(questions) > MAX_QUESTIONS:
            raise InvalidRequest(f"A question set holds at most {MAX_QUESTIONS} questions.")
    if not questions:
        raise InvalidRequest(f"{file.name} holds no questions.")
    return questions


# ------------------------------------------------------------ evaluate


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else 0.0


def _metrics(rows: list[tuple[float, float, float]]) -> ModeMetrics:
    return ModeMetrics(
        questions=len(rows),
        hit_at_k=_mean(r[0] for r in rows),
        mrr=_mean(r[1] for r in rows),
        ndcg_at_k=_mean(r[2] for r in rows),
    )


def evaluate_retrieval(
    search: Callable[[dict[str, Any]], SearchResponse],
    questions: list[RetrievalQuestion],
    collection: str,
    k: int = 5,
    modes: Iterable[str] = MODES,
    options: dict[str, Any] | None = None,
) -> RetrievalEvaluation:
    """Run every question in every mode and score the top k.

    `options` are extra `SearchRequest` fields (weights, fusion) applied to
    every search; pinned documents are left out, since they are not ranked.
    """
    modes = list(modes)
    if not 1 <= k <= 50:
        raise InvalidRequest("k must be between 1 and 50.")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise InvalidRequest(f"Unknown search mode {unknown[0]!r}; use {', '.join(MODES)}.")
    scores: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    by_split: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
    results: list[QuestionResult] = []
    for question in questions:
        first: dict[str, int | None] = {}
        for mode in modes:
            request = SearchRequest(
                query=question.question,
                collection=collection,
                top_k=k,
                mode=mode,
                include_pinned=False,
                **(options or {}),
            )
            response = search(request.model_dump())
            ranked = [(hit.path, f"{hit.heading}\n{hit.text}") for hit in response.hits][:k]
            relevance, gains = judge(ranked, question.expected)
            row = (hit_at_k(relevance, k), reciprocal_rank(relevance, k), ndcg_at_k(gains, k, len(question.expected)))
            scores[mode].append(row)
            if question.split:
                by_split.setdefault(question.split, {m: [] for m in modes})[mode].append(row)
            first[mode] = relevance.index(True) + 1 if any(relevance) else None
        results.append(QuestionResult(question=question.question, split=question.split, first_relevant=first))
    report = RetrievalEvaluation(
        collection=collection,
        k=k,
        modes={m: _metrics(rows) for m, rows in scores.items()},
        splits={s: {m: _metrics(rows) for m, rows in per.items()} for s, per in sorted(by_split.items())},
        questions=results,
    )
    if "bm25" in scores and "vector" in scores:
        _add_best_of_parts(report, scores["bm25"], scores["vector"])
    return report


def _ahead(first: int | None, other: int | None) -> bool:
    return first is not None and (other is None or first < other)


def _add_best_of_parts(
    report: RetrievalEvaluation,
    lexical: list[tuple[float, float, float]],
    vector: list[tuple[float, float, float]],
) -> None:
    """Fill in the per-question best of the two single modes and who is ahead how often."""
    best = [tuple(max(a, b) for a, b in zip(x, y)) for x, y in zip(lexical, vector)]
    report.best_of_parts = _metrics(best)  # type: ignore[arg-type]
    splits: dict[str, list[tuple[float, float, float]]] = {}
    for question, row in zip(report.questions, best):
        if question.split:
            splits.setdefault(question.split, []).append(row)  # type: ignore[arg-type]
    report.best_of_parts_splits = {s: _metrics(rows) for s, rows in sorted(splits.items())}
    ranks = [(q.first_relevant["bm25"], q.first_relevant["vector"]) for q in report.questions]
    report.bm25_ahead = sum(_ahead(b, v) for b, v in ranks)
    report.vector_ahead = sum(_ahead(v, b) for b, v in ranks)
