"""Fusing the BM25 and vector candidate lists into one ranking.

Two methods:

* `convex` (default): each list's scores are normalised to [0, 1], then
  combined as `a * bm25 + (1 - a) * vector` with
  `a = bm25_weight / (bm25_weight + vector_weight)`; a chunk missing from a
  list scores 0 there. BM25 is divided by the best score (0 already means
  "no query term", and a chunk matching half as well keeps half the score);
  cosine similarity has no such zero, so it is min-max normalised over the
  candidates (best 1, weakest 0). Unlike rank fusion this keeps how far ahead
  a hit is: a chunk far ahead in one list is not sunk below chunks that are
  merely middling in both.
* `rrf`: weighted reciprocal rank fusion, `sum(weight / (rrf_k + rank))`,
  the earlier behaviour (equal weights, k = 60), kept for comparison.

BM25's weight is also scaled by its coverage: the share of the query's terms
(those the collection knows) that the best BM25 hit contains. A long question
of which the top BM25 chunk matches one word gets little say; a keyword query
matched in full gets its whole weight.

The normalisations, the coverage scaling and the default weights (BM25 0.3,
vector 0.7) were chosen on the "tune" half of the question sets in
data/corpus/ (best hit@5 summed over both corpora, then nDCG@5);
benchmarks/retrieval_eval.py reports the held-out "test" half separately.
"""

from __future__ import annotations

from typing import Any

FUSIONS = ("convex", "rrf")


def _by_max(hits: list[tuple[int, float]]) -> dict[int, float]:
    top = max((s for _, s in hits), default=0.0)
    return {chunk_id: s / top if top > 0 else 0.0 for chunk_id, s in hits}


def _minmax(hits: list[tuple[int, float]]) -> dict[int, float]:
    if not hits:
        return {}
    scores = [s for _, s in hits]
    high, low = max(scores), min(scores)
    if high <= low:
        return {chunk_id: 1.0 for chunk_id, _ in hits}
    return {chunk_id: (s - low) / (high - low) for chunk_id, s in hits}


def fuse(
    bm25_hits: list[tuple[int, float]],
    vector_hits: list[tuple[int, float]],
    *,
    method: str = "convex",
    bm25_weight: float = 0.3,
    vector_weight: float = 0.7,
    rrf_k: int = 60,
    bm25_coverage: float = 1.0,
) -> list[tuple[int, dict[str, Any]]]:
    """Rank the union of both candidate lists (each best first), best first.

    Each entry is (chunk_id, info) with `fused` and, where the chunk was a
    candidate there, `bm25_rank`/`bm25_score` and `vector_rank`/`vector_score`.
    A retriever that returned nothing (not asked, or no match) leaves the
    other's weight at 1, so a single mode's fused score is its normalised score.
    `bm25_coverage` (see `bm25.coverage`) scales BM25's weight in convex fusion.
    """
    fused: dict[int, dict[str, Any]] = {}
    for rank, (chunk_id, score) in enumerate(vector_hits, 1):
        fused.setdefault(chunk_id, {"fused": 0.0}).update(vector_rank=rank, vector_score=round(score, 6))
    for rank, (chunk_id, score) in enumerate(bm25_hits, 1):
        fused.setdefault(chunk_id, {"fused": 0.0}).update(bm25_rank=rank, bm25_score=round(score, 6))
    if method == "rrf":
        for info in fused.values():
            if "vector_rank" in info:
                info["fused"] += vector_weight / (rrf_k + info["vector_rank"])
            if "bm25_rank" in info:
                info["fused"] += bm25_weight / (rrf_k + info["bm25_rank"])
    elif method == "convex":
        bm25_weight *= max(0.0, min(1.0, bm25_coverage))
        total = (bm25_weight if bm25_hits else 0.0) + (vector_weight if vector_hits else 0.0)
        a_bm25 = bm25_weight / total if bm25_hits and total else 0.0
        a_vector = vector_weight / total if vector_hits and total else 0.0
        norm_bm25, norm_vector = _by_max(bm25_hits), _minmax(vector_hits)
        for chunk_id, info in fused.items():
            info["fused"] = a_bm25 * norm_bm25.get(chunk_id, 0.0) + a_vector * norm_vector.get(chunk_id, 0.0)
    else:
        raise ValueError(f"unknown fusion {method!r}")
    return sorted(fused.items(), key=lambda item: (-item[1]["fused"], item[0]))
