"""Session search and rename, and choosing the default model (used by the TUI's chat and settings)."""

from __future__ import annotations

from datetime import UTC

import pytest

from workbench.engine.errors import InvalidRequest, NotFound


def test_search_matches_titles_and_messages_literally(engine):
    planning = engine.create_session("Planning 100% done_x")
    other = engine.create_session("Other")
    assert [s.id for s in engine.list_sessions(query="100%")] == [planning.id]
    assert [s.id for s in engine.list_sessions(query="E_X")] == [planning.id]
    # LIKE wildcards are literal: "%" alone matches only titles containing "%".
    assert [s.id for s in engine.list_sessions(query="%")] == [planning.id]
    assert engine.list_sessions(query="nothing like it") == []
    # A word only in a message of the other session finds that session.
    from datetime import datetime

    from workbench.engine.schemas import ChatMessage, GenerationResult, Usage

    result = GenerationResult(
        id="gen_1",
        session_id=other.id,
        model="m",
        provider="llama.cpp",
        text="The quokka lives on Rottnest.",
        finish_reason="stop",
        usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        latency_ms=1.0,
        created_at=datetime.now(UTC),
    )
    engine.conversations.record_turn(other.id, [ChatMessage(role="user", content="Where?")], result, None)
    assert [s.id for s in engine.list_sessions(query="QUOKKA")] == [other.id]
    assert {s.id for s in engine.list_sessions(query="  ")} == {planning.id, other.id}
    with pytest.raises(InvalidRequest):
        engine.list_sessions(query="x" * 201)


def test_rename_session(engine):
    session = engine.create_session("Old")
    renamed = engine.rename_session(session.id, "  New\n title ")
    assert renamed.title == "New title"
    assert engine.get_session(session.id).title == "New title"
    with pytest.raises(InvalidRequest):
        engine.rename_session(session.id, "   ")
    with pytest.raises(NotFound):
        engine.rename_session("ses_missing", "x")


def test_set_default_model_is_saved(engine, workbench_home):
    from workbench.engine.engine import Engine
    from workbench.engine.errors import ModelNotFound

    target = engine.list_models()[0].id
    assert engine.set_default_model(target).is_default
    with pytest.raises(ModelNotFound):
        engine.set_default_model("no-such-model")
    engine.close()
    with Engine(workbench_home) as reopened:
        assert [m.id for m in reopened.list_models() if m.is_default] == [target]


def test_huge_offsets_and_pages_are_refused_not_crashes(engine):
    # 2**63 does not fit DuckDB's BIGINT: refused with a sentence before any query (found by the fuzzer).
    for call in (
        lambda: engine.list_sessions(offset=2**63),
        lambda: engine.list_memories(offset=2**63),
        lambda: engine.tool_audit(offset=2**63),
        lambda: engine.list_runs(offset=2**63),
        lambda: engine.list_agents(page=2**63),
    ):
        with pytest.raises(InvalidRequest):
            call()


def test_an_empty_metadata_key_in_a_retrieval_filter_is_refused(mem_engine):
    # '$.""' is no JSON path DuckDB accepts: refused with a sentence (found by the fuzzer).
    mem_engine.remember({"key": "k", "value": "a note", "metadata": {"a": 1}})
    with pytest.raises(InvalidRequest, match="metadata keys"):
        mem_engine.rag_retrieve({"query": "note", "filter": {"metadata": {"": False}}})
    with pytest.raises(InvalidRequest, match="metadata keys"):
        mem_engine.rag_retrieve({"query": "note", "filter": {"": "x"}})
    assert [
        r.key
        for r in mem_engine.rag_retrieve(
            {"query": "a note", "filter": {"metadata": {"a": 1}}, "score_threshold": 0.0}
        ).results
    ] == ["k"]


def test_stored_answers_carry_their_generation_and_models_their_context(engine):
    result = engine.generate({"messages": [{"role": "user", "content": "Say hello."}], "params": {"max_tokens": 8}})
    user, answer = engine.session_messages(result.session_id)
    assert user.role == "user" and user.generation is None and user.run_id is None
    g = answer.generation
    assert answer.generation_id == result.id and g is not None
    assert (g.model, g.provider, g.finish_reason) == (result.model, result.provider, result.finish_reason)
    assert (g.prompt_tokens, g.completion_tokens) == (result.usage.prompt_tokens, result.usage.completion_tokens)
    assert g.latency_ms == pytest.approx(result.latency_ms)

    # A local model's context window is the configured n_ctx; a remote provider decides its own.
    local = [m for m in engine.list_models() if m.provider == "llama.cpp"]
    assert local and {m.n_ctx for m in local} == {engine.config.n_ctx}
    engine.add_provider("acme", "openai", "https://api.acme.example/v1", ["big"])
    assert [m.n_ctx for m in engine.list_models() if m.id == "acme:big"] == [None]
