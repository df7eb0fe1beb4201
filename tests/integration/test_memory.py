"""Memory: remember / recall / forget / rag_retrieve with the real embedder and DuckDB."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from workbench.engine.engine import Engine
from workbench.engine.errors import InvalidRequest, NotFound

FACTS = {
    "pets": ("The user's dog is a border collie named Pixel.", {"category": "personal", "tags": ["pets", "family"]}),
    "lang": ("The user prefers answers in French.", {"category": "preferences", "tags": ["language"]}),
    "deploy": (
        "Production deploys run on Kubernetes every Friday.",
        {"category": "work", "tags": ["ops"], "team": "platform"},
    ),
    "coffee": ("Espresso with oat milk is the user's favourite coffee.", {"category": "personal", "tags": ["food"]}),
    "db": (
        "The analytics database is DuckDB, stored on the NAS.",
        {"category": "work", "tags": ["data"], "team": "data"},
    ),
}


def _remember_all(engine: Engine) -> None:
    for key, (text, metadata) in FACTS.items():
        engine.remember({"key": key, "value": text, "metadata": metadata})


def test_remember_and_recall_round_trip(mem_engine: Engine):
    result = mem_engine.remember(
        {"key": "user_prefs:u1", "value": {"theme": "dark", "language": "fr"}, "metadata": {"category": "prefs"}}
    )
    assert result.status == "stored"
    assert result.key == "user_prefs:u1" and result.namespace == "default" and result.kind == "episodic"
    assert result.vector_id.startswith("vec_") and result.embedding_dimensions == 384
    assert result.expires_at is None

    first = mem_engine.recall("user_prefs:u1")
    assert first.value == {"theme": "dark", "language": "fr"}
    assert first.metadata == {"category": "prefs"}
    assert first.accessed_count == 1 and first.last_accessed is not None
    second = mem_engine.recall("user_prefs:u1")
    assert second.accessed_count == 2 and second.last_accessed >= first.last_accessed

    updated = mem_engine.remember({"key": "user_prefs:u1", "value": {"theme": "light"}})
    assert updated.status == "updated" and updated.vector_id != result.vector_id
    record = mem_engine.recall("user_prefs:u1")
    assert record.value == {"theme": "light"}
    assert record.created_at == first.created_at and record.updated_at > first.created_at
    assert record.accessed_count == 3
    # The replaced vector is gone from the index: one live vector for one memory.
    assert mem_engine.index("memory").count == 1


def test_namespaces_keep_equal_keys_apart(mem_engine: Engine):
    mem_engine.remember({"key": "k", "value": "alpha", "namespace": "agent-a"})
    mem_engine.remember({"key": "k", "value": "beta", "namespace": "agent-b"})
    assert mem_engine.recall("k", "agent-a").value == "alpha"
    assert mem_engine.recall("k", "agent-b").value == "beta"
    with pytest.raises(NotFound):
        mem_engine.recall("k")


def test_access_statistics_survive_a_restart(workbench_home, embedder):
    with Engine(workbench_home, embedder=embedder) as engine:
        engine.remember({"key": "k", "value": "v"})
        for _ in range(3):
            engine.recall("k")
    with Engine(workbench_home, embedder=embedder) as engine:
        assert engine.recall("k").accessed_count == 4
        assert [m.key for m in engine.list_memories()] == ["k"]


def test_forget(mem_engine: Engine):
    mem_engine.remember({"key": "k", "value": "to be forgotten"})
    mem_engine.forget("k")
    with pytest.raises(NotFound):
        mem_engine.recall("k")
    with pytest.raises(NotFound):
        mem_engine.forget("k")
    assert mem_engine.index("memory").count == 0
    assert mem_engine.rag_retrieve({"query": "forgotten", "score_threshold": 0.0}).results == []


def test_ttl_expiry_removes_memory_and_vector(mem_engine: Engine):
    mem_engine.remember({"key": "short", "value": "a fleeting thought about tea", "ttl_seconds": 1})
    mem_engine.remember({"key": "long", "value": "a lasting thought about tea"})
    assert mem_engine.recall("short").value == "a fleeting thought about tea"
    time.sleep(1.2)
    with pytest.raises(NotFound):
        mem_engine.recall("short")
    keys = [r.key for r in mem_engine.rag_retrieve({"query": "thought about tea", "score_threshold": 0.0}).results]
    assert keys == ["long"]
    assert mem_engine.db.fetchone("SELECT count(*) FROM memories")[0] == 1
    assert mem_engine.index("memory").count == 1


def test_memory_kinds(mem_engine: Engine):
    convo = mem_engine.remember({"key": "turn-1", "value": {"role": "user", "content": "hi"}, "kind": "conversation"})
    assert convo.expires_at is not None
    ttl = convo.expires_at - convo.indexed_at
    assert timedelta(days=7) - timedelta(seconds=5) <= ttl <= timedelta(days=7)

    with pytest.raises(InvalidRequest, match="subject"):
        mem_engine.remember({"key": "bad", "value": "not a triple", "kind": "knowledge"})
    with pytest.raises(InvalidRequest, match="confidence"):
        mem_engine.remember(
            {
                "key": "bad",
                "kind": "knowledge",
                "value": {"subject": "a", "predicate": "b", "object": "c", "confidence": 3},
            }
        )
    fact = {
        "subject": "Ada Lovelace",
        "predicate": "wrote",
        "object": "the first published algorithm",
        "source": "biography.md",
        "confidence": 0.9,
    }
    assert mem_engine.remember({"key": "ada", "value": fact, "kind": "knowledge"}).kind == "knowledge"
    facts = mem_engine.retrieve_facts("ada lovelace", "wrote")
    assert [(f.value, f.source, f.confidence) for f in facts] == [
        ("the first published algorithm", "biography.md", 0.9)
    ]
    hit = mem_engine.rag_retrieve({"query": "who wrote the first algorithm", "filter": {"kind": "knowledge"}}).results
    assert [r.key for r in hit] == ["ada"]


def test_rag_retrieve_ranks_by_meaning(mem_engine: Engine):
    _remember_all(mem_engine)
    response = mem_engine.rag_retrieve({"query": "what kind of dog does the user have?", "top_k": 3})
    assert response.results[0].key == "pets"
    assert response.results[0].rank == 1 and 0.3 <= response.results[0].score <= 1.0
    assert [r.rank for r in response.results] == list(range(1, len(response.results) + 1))
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)
    assert response.sources == [r.key for r in response.results]
    assert response.total_results == len(response.results) and response.latency_ms > 0
    assert response.results[0].metadata == FACTS["pets"][1]
    assert response.answer is None


def test_rag_threshold_filters_and_metadata(mem_engine: Engine):
    _remember_all(mem_engine)
    assert mem_engine.rag_retrieve({"query": "dog", "score_threshold": 0.99}).results == []

    def keys(**flt):
        return {
            r.key
            for r in mem_engine.rag_retrieve(
                {"query": "things about the user", "top_k": 20, "score_threshold": 0.0, "filter": flt}
            ).results
        }

    assert keys(category="personal") == {"pets", "coffee"}
    assert keys(tags=["pets", "family"]) == {"pets"}
    assert keys(tags=["pets", "ops"]) == set()
    assert keys(category="work", team="data") == {"db"}  # seed-style extra key matches metadata
    assert keys(metadata={"team": "platform"}) == {"deploy"}
    assert keys(namespace="elsewhere") == set()
    bare = mem_engine.rag_retrieve({"query": "coffee", "include_metadata": False}).results
    assert bare and all(r.metadata is None for r in bare)


def test_selective_filter_finds_matches_far_from_the_query(mem_engine: Engine):
    for i in range(60):
        mem_engine.remember(
            {
                "key": f"noise-{i}",
                "value": f"Weather report {i}: sunny with light wind.",
                "metadata": {"category": "weather"},
            }
        )
    mem_engine.remember(
        {"key": "rare", "value": "Quarterly tax filing is due in April.", "metadata": {"category": "finance"}}
    )
    results = mem_engine.rag_retrieve(
        {"query": "sunny weather with wind", "top_k": 3, "score_threshold": 0.0, "filter": {"category": "finance"}}
    ).results
    assert [r.key for r in results] == ["rare"]


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"key": "", "value": "x"}, "key"),
        ({"key": "a\x1bb", "value": "x"}, "control"),
        ({"key": "k", "value": "x", "ttl_seconds": 0}, "ttl_seconds"),
        ({"key": "k", "value": "x", "namespace": "../etc"}, "namespace"),
        ({"key": "k", "value": "x", "metadata": {"tags": "notalist"}}, "tags"),
        ({"key": "k", "value": float("nan")}, "JSON"),
        ({"key": "k", "value": "x" * 1_100_000}, "larger"),
    ],
)
def test_remember_rejects_bad_input(mem_engine: Engine, request_, message):
    with pytest.raises(InvalidRequest, match=message):
        mem_engine.remember(request_)


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": 21}, "top_k"),
        ({"query": "x", "score_threshold": 1.5}, "score_threshold"),
        ({"query": ""}, "query"),
        ({"query": "x", "filter": {"color": ["red"]}}, "filter.color"),
    ],
)
def test_rag_rejects_bad_input(mem_engine: Engine, request_, message):
    with pytest.raises(InvalidRequest, match=message):
        mem_engine.rag_retrieve(request_)


def test_memories_survive_a_corrupt_index_file(workbench_home, embedder):
    with Engine(workbench_home, embedder=embedder) as engine:
        _remember_all(engine)
    for path in (workbench_home / "indexes").glob("memory.*.hnsw"):
        path.write_bytes(path.read_bytes()[:100])
    with Engine(workbench_home, embedder=embedder) as engine:
        assert engine.index("memory").rebuilt_on_open
        assert engine.rag_retrieve({"query": "what dog does the user have"}).results[0].key == "pets"


def test_rag_answer_cites_memories(mem_engine: Engine):
    _remember_all(mem_engine)
    response = mem_engine.rag_retrieve({"query": "What is the dog's name?", "top_k": 3, "answer": True})
    assert response.answer and response.citations
    for citation in response.citations:
        assert f"[{citation.n}]" in response.answer
        assert citation.source == f"default/{response.results[citation.n - 1].key}"


def test_remember_many_is_all_or_nothing(mem_engine: Engine):
    results = mem_engine.remember_many([{"key": f"k{i}", "value": f"note number {i}"} for i in range(50)])
    assert [r.status for r in results] == ["stored"] * 50
    assert len({r.vector_id for r in results}) == 50
    with pytest.raises(InvalidRequest):
        mem_engine.remember_many([{"key": "fine", "value": "ok"}, {"key": "bad", "value": "x", "kind": "knowledge"}])
    with pytest.raises(NotFound):
        mem_engine.recall("fine")
    assert mem_engine.memory.count() == 50 and mem_engine.index("memory").count == 50
