"""BM25 over our own DuckDB postings table.

DuckDB's fts extension builds a static index that must be rebuilt after every
write; postings written in the same transaction as their chunk are always
current and roll back with it. Scores are Okapi BM25 (k1 = 1.2, b = 0.75) with
the Lucene idf, computed in one SQL query over the query's terms.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

K1 = 1.2
B = 0.75
MAX_TERM_CHARS = 64
_WORD = re.compile(r"\w+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)


def _stem(term: str) -> str:
    """A light plural stemmer: 'documents' and 'document' match; 'class' stays."""
    if len(term) > 4 and term.endswith("ies"):
        return term[:-3] + "y"
    if len(term) > 3 and term.endswith("s") and not term.endswith(("ss", "us", "is")):
        return term[:-1]
    return term


def tokenize(text: str) -> list[str]:
    """Search terms of a text: casefolded words without stopwords, identifiers also split."""
    terms: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text)):
        parts = [word]
        if "_" in word or (not word.islower() and not word.isupper()):
            pieces = [p for chunk in word.split("_") for p in _CAMEL.findall(chunk)]
            if len(pieces) > 1:
                parts.extend(pieces)
        for part in parts:
            term = part.casefold()[:MAX_TERM_CHARS]
            if term in STOPWORDS or (len(term) < 2 and not term.isdigit()):
                continue
            terms.append(_stem(term))
    return terms


def stage_postings(conn: Any, collection: str, chunk_ids: list[int], texts: list[str]) -> list[int]:
    """Insert the postings of new chunks inside the caller's transaction; returns their lengths."""
    import numpy as np

    terms: list[str] = []
    ids: list[int] = []
    tfs: list[int] = []
    lengths: list[int] = []
    doc_lengths: list[int] = []
    for chunk_id, text in zip(chunk_ids, texts):
        tokens = tokenize(text)
        counts = Counter(tokens)
        lengths.append(len(tokens))
        for term, tf in counts.items():
            terms.append(term)
            ids.append(chunk_id)
            tfs.append(tf)
            doc_lengths.append(len(tokens))
    if terms:
        staged = {  # noqa: F841 - read by DuckDB's replacement scan below
            "term": np.asarray(terms, dtype=object),
            "chunk_id": np.asarray(ids, dtype=np.int64),
            "tf": np.asarray(tfs, dtype=np.int32),
            "length": np.asarray(doc_lengths, dtype=np.int32),
        }
        conn.execute("INSERT INTO postings SELECT ?, term, chunk_id, tf, length FROM staged", [collection])
    return lengths


def search(db: Any, collection: str, query: str, k: int) -> list[tuple[int, float]]:
    """The k best chunks for `query` by BM25, best first, as (chunk_id, score)."""
    terms = sorted(set(tokenize(query)))
    if not terms:
        return []
    rows = db.fetchall(
        f"""
        WITH stats AS (
            SELECT count(*) AS n, avg(length) AS avgdl FROM chunks WHERE collection = $collection
        ),
        df AS (
            SELECT term, count(*) AS df FROM postings
            WHERE collection = $collection AND list_contains($terms, term) GROUP BY term
        )
        SELECT p.chunk_id,
               sum(ln(1 + (stats.n - df.df + 0.5) / (df.df + 0.5))
                   * p.tf * ({K1} + 1) / (p.tf + {K1} * (1 - {B} + {B} * p.length / stats.avgdl))) AS score
        FROM postings p JOIN df ON p.term = df.term, stats
        WHERE p.collection = $collection AND list_contains($terms, p.term)
        GROUP BY p.chunk_id
        ORDER BY score DESC, p.chunk_id
        LIMIT {int(k)}
        """,
        {"collection": collection, "terms": terms},
    )
    return [(int(chunk_id), float(score)) for chunk_id, score in rows]


def coverage(db: Any, collection: str, query: str, chunk_id: int) -> float:
    """The share of the query's terms known to the collection that the chunk contains (0 to 1).

    Fusion trusts BM25 in proportion to it: when even the best BM25 hit
    matches only one word of a long question, its lead means little.
    """
    terms = sorted(set(tokenize(query)))
    if not terms:
        return 0.0
    row = db.fetchone(
        "SELECT count(DISTINCT term) FILTER (WHERE chunk_id = $chunk), count(DISTINCT term) FROM postings "
        "WHERE collection = $collection AND list_contains($terms, term)",
        {"collection": collection, "terms": terms, "chunk": int(chunk_id)},
    )
    return float(row[0]) / row[1] if row and row[1] else 0.0
