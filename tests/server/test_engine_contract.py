"""One contract for the EngineAPI, run twice: on the in-process engine and on a RemoteEngine.

`api` is parametrized: "local" is `mem_engine` itself; "remote" is a
`RemoteEngine` talking to a real uvicorn server (127.0.0.1, ephemeral port)
over that same engine. Every test asserts the same results, event sequences
and error classes for both, with the real default model and embedder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.server.conftest import start_server
from workbench.engine import secrets
from workbench.engine.api import EngineAPI
from workbench.engine.errors import Conflict, InvalidRequest, ModelNotFound, NotFound, WorkbenchError
from workbench.engine.schemas import (
    AgentDefinition,
    AgentPage,
    ApprovalRecord,
    ChatRequest,
    GenerationResult,
    IngestFinished,
    Progress,
    RunFinished,
    RunStarted,
    Session,
    TokenDelta,
    validate,
)

MCP_TIME = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]


@pytest.fixture
def served(mem_engine):
    """A RemoteEngine over a live server of `mem_engine` (rate limit out of the way)."""
    from workbench.remote import RemoteEngine

    server, thread, sock, port = start_server(mem_engine, rate_limit_per_minute=100_000)
    _, key = mem_engine.api_keys.create("contract", ["*"])
    try:
        with RemoteEngine(f"http://127.0.0.1:{port}", key) as remote:
            yield remote
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(params=["local", "remote"])
def api(request, mem_engine):
    if request.param == "local":
        yield mem_engine
    else:
        yield request.getfixturevalue("served")


# ----------------------------------------------------------- models, sessions


def test_version(api) -> None:
    from workbench import __version__
    from workbench.engine.store.migrations import MIGRATIONS

    info = api.version()
    assert info.package == __version__
    assert info.schema_version == max(m.version for m in MIGRATIONS)
    assert info.default_model == next(m.id for m in api.list_models() if m.is_default)
    assert info.embedder  # the embedder's identity, e.g. the packaged all-MiniLM-L6-v2


def test_models_and_sessions(api) -> None:
    assert isinstance(api, EngineAPI)
    models = api.list_models()
    default = next(m for m in models if m.is_default)
    assert default.provider == "llama.cpp" and default.n_ctx == 8192
    assert api.set_default_model(default.id).id == default.id

    session = api.create_session("Contract chat", system="Be brief.")
    assert isinstance(session, Session) and session.title == "Contract chat" and session.system_prompt == "Be brief."
    assert session.id in [s.id for s in api.list_sessions()]
    assert api.get_session(session.id) == session
    assert api.session_messages(session.id) == []
    renamed = api.rename_session(session.id, "Renamed   chat")
    assert renamed.title == "Renamed chat"
    assert [s.id for s in api.list_sessions(query="Renamed")] == [session.id]
    assert api.list_sessions(query="no such title") == []
    api.delete_session(session.id)
    with pytest.raises(NotFound, match=session.id):
        api.get_session(session.id)
    with pytest.raises(NotFound):
        api.delete_session(session.id)
    with pytest.raises(InvalidRequest, match="limit: Input should be greater than or equal to 1"):
        api.list_sessions(limit=0)


def test_chat_streams_tokens_and_stores_the_turn(api) -> None:
    request = {
        "messages": [{"role": "user", "content": "Say hello."}],
        "title": "Hello",
        "params": {"max_tokens": 8, "temperature": 0, "seed": 1},
    }
    events = list(api.chat(request))
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    tokens = [e.text for e in events if isinstance(e, TokenDelta)]
    result = events[-1].result
    assert tokens and "".join(tokens) == result.text
    assert result.finish_reason in ("stop", "length") and result.usage.completion_tokens <= 8
    assert result.session_id == events[0].session_id and result.model == events[0].model
    messages = api.session_messages(result.session_id)
    assert [m.role for m in messages] == ["user", "assistant"] and messages[1].content == result.text
    assert messages[1].generation.completion_tokens == result.usage.completion_tokens

    generated = api.generate(
        {
            "messages": [{"role": "user", "content": "Count: 1 2 3"}],
            "persist": False,
            "params": {"max_tokens": 4, "temperature": 0},
        }
    )
    assert isinstance(generated, GenerationResult) and generated.session_id is None
    assert generated.finish_reason in ("stop", "length") and generated.usage.completion_tokens <= 4


def test_closing_a_chat_stream_cancels_the_generation(api, mem_engine) -> None:
    stream = api.chat(
        {
            "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
            "params": {"max_tokens": 400, "temperature": 0},
        }
    )
    started = next(stream)
    assert isinstance(started, RunStarted)
    assert isinstance(next(stream), TokenDelta)
    stream.close()

    def finish_reason() -> str | None:
        row = mem_engine.db.fetchone(
            "SELECT finish_reason, completion_tokens FROM generations WHERE id = ?", [started.run_id]
        )
        return row

    row = wait_until(finish_reason, what="the cancelled turn to be stored")
    assert row[0] == "cancelled" and row[1] < 400
    # the model is free again
    again = api.generate(
        {"messages": [{"role": "user", "content": "Hi"}], "persist": False, "params": {"max_tokens": 2}}
    )
    assert again.text is not None and again.finish_reason in ("stop", "length")


def test_chat_errors_are_raised_at_the_call(api) -> None:
    bad = {"messages": [{"role": "user", "content": "x"}], "params": {"max_tokens": 0}}
    with pytest.raises(InvalidRequest) as local_error:
        validate(ChatRequest, bad)
    with pytest.raises(InvalidRequest) as raised:
        api.chat(bad)
    assert str(raised.value) == str(local_error.value) and "max_tokens" in str(raised.value)
    with pytest.raises(NotFound, match="ses_missing"):
        api.chat({"messages": [{"role": "user", "content": "x"}], "session_id": "ses_missing"})
    with pytest.raises(ModelNotFound):
        api.generate({"messages": [{"role": "user", "content": "x"}], "model": "no-such-model.gguf"})


# ------------------------------------------------------------------ providers


def test_providers_and_their_keys(api) -> None:
    info = api.add_provider("acme", "openai", "http://127.0.0.1:9/v1", ["m1", "m2"])
    assert (info.name, info.kind, info.models, info.has_key) == ("acme", "openai", ["m1", "m2"], False)
    assert api.set_provider_key("acme", "sk-contract-123") is None
    assert secrets.get_provider_key("acme") == "sk-contract-123"
    assert [(p.name, p.has_key) for p in api.list_providers()] == [("acme", True)]
    assert {"acme:m1", "acme:m2"} <= {m.id for m in api.list_models()}
    api.remove_provider("acme")
    assert api.list_providers() == [] and secrets.get_provider_key("acme") is None
    with pytest.raises(NotFound, match="acme"):
        api.remove_provider("acme")
    with pytest.raises(NotFound, match="add it first"):
        api.set_provider_key("acme", "sk-x")
    with pytest.raises(InvalidRequest):
        api.add_provider("bad", "openai", "not a url", [])
    # Models are optional (a provider used only by PROVIDER:MODEL specs), as the HTTP body always allowed.
    assert api.add_provider("bare", "openai", "http://127.0.0.1:9/v1").models == []
    api.remove_provider("bare")


# ---------------------------------------------------------------------- memory


def test_memory_remember_recall_retrieve_forget(api) -> None:
    odd_key = "notes/2024?draft#1 .. %20"
    stored = api.remember(
        {
            "key": "fav-colour",
            "value": "My favourite colour is teal.",
            "namespace": "ct",
            "metadata": {"category": "prefs", "tags": ["colour"]},
        }
    )
    assert (stored.key, stored.namespace, stored.status, stored.embedding_dimensions) == (
        "fav-colour",
        "ct",
        "stored",
        384,
    )
    batch = api.remember_many(
        [
            {"key": odd_key, "value": {"text": "The meeting moved to Thursday."}, "namespace": "ct"},
            {"key": "..", "value": "Dots are a key too.", "namespace": "ct"},
        ]
    )
    assert [r.key for r in batch] == [odd_key, ".."]
    assert api.recall(odd_key, "ct").value == {"text": "The meeting moved to Thursday."}
    assert api.recall("..", "ct").value == "Dots are a key too."
    record = api.recall("fav-colour", "ct")
    assert record.metadata["category"] == "prefs" and record.kind == "episodic"
    assert sorted(m.key for m in api.list_memories("ct")) == sorted(["fav-colour", odd_key, ".."])

    found = api.rag_retrieve(
        {
            "query": "What colour do I like?",
            "top_k": 2,
            "score_threshold": 0.0,
            "filter": {"namespace": "ct", "tags": ["colour"]},
        }
    )
    assert [r.key for r in found.results] == ["fav-colour"] and found.sources == ["fav-colour"]

    api.forget(odd_key, "ct")
    with pytest.raises(NotFound):
        api.recall(odd_key, "ct")
    with pytest.raises(NotFound):
        api.forget(odd_key, "ct")
    with pytest.raises(InvalidRequest, match="key"):
        api.remember({"key": "", "value": "x"})


# ------------------------------------------------------------------- knowledge


@pytest.fixture
def docs(tmp_path: Path, mem_engine) -> Path:
    # Over HTTP, ingestion reads only inside the workspace roots (test_remote_engine.py checks the refusal).
    mem_engine.add_workspace_root(str(tmp_path))
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "volcanoes.md").write_text(
        "# Volcanoes\n\nMount Etna is an active volcano on Sicily. "
        "It erupts often and its lava flows are studied by geologists.\n"
    )
    (folder / "baking.md").write_text(
        "# Baking\n\nSourdough bread needs a starter culture, flour, water and salt, and a long slow fermentation.\n"
    )
    return folder


def test_knowledge_ingest_search_answer_and_documents(api, docs: Path) -> None:
    events = list(api.ingest({"paths": [str(docs)], "collection": "kb"}))
    assert isinstance(events[-1], IngestFinished) and all(isinstance(e, Progress) for e in events[:-1])
    report = events[-1].report
    assert (report.collection, report.files_seen, report.added) == ("kb", 2, 2)
    assert [(c.name, c.documents) for c in api.list_collections()] == [("kb", 2)]
    documents = {Path(d.path).name: d for d in api.list_documents("kb")}
    assert sorted(documents) == ["baking.md", "volcanoes.md"]

    hits = api.search({"query": "active volcano Sicily", "collection": "kb", "top_k": 2}).hits
    assert Path(hits[0].path).name == "volcanoes.md" and hits[0].bm25_rank == 1

    answer = api.answer({"question": "Where is Mount Etna?", "collection": "kb", "top_k": 1, "max_tokens": 48})
    assert Path(answer.hits[0].path).name == "volcanoes.md" and answer.model is not None
    assert answer.text

    baking = documents["baking.md"].path
    (chunk,) = api.document_chunks("kb", baking)
    assert (chunk.ordinal, chunk.path, chunk.document_id) == (0, baking, documents["baking.md"].id)
    assert "Sourdough bread needs a starter culture" in chunk.text
    assert api.document_chunks("kb", baking, limit=5, offset=1) == []
    with pytest.raises(NotFound):
        api.document_chunks("kb", str(docs / "missing.md"))
    with pytest.raises(InvalidRequest):
        api.document_chunks("kb", baking, limit=0)
    api.set_pinned("kb", baking, True)
    assert {Path(d.path).name: d.pinned for d in api.list_documents("kb")} == {"baking.md": True, "volcanoes.md": False}
    api.remove_document("kb", baking)
    assert [Path(d.path).name for d in api.list_documents("kb")] == ["volcanoes.md"]
    with pytest.raises(NotFound):
        api.remove_document("kb", baking)
    with pytest.raises(InvalidRequest, match="overlap_chars"):
        api.ingest({"paths": [str(docs)], "max_chars": 200, "overlap_chars": 150})


def test_ingest_refuses_a_missing_path_at_once(api, tmp_path: Path, mem_engine) -> None:
    mem_engine.add_workspace_root(str(tmp_path))
    missing = tmp_path / "nowhere.md"
    with pytest.raises(InvalidRequest, match=f"^No file or folder at {missing}\\.$"):
        api.ingest({"paths": [str(missing)], "collection": "kb"})


# ----------------------------------------------------------------------- graph


def test_graph_facts_relations_entities_and_knowledge(api) -> None:
    fact = api.store_fact("Ada Lovelace", "occupation", "mathematician", source="encyclopedia", confidence=0.9)
    assert (fact.entity, fact.attribute, fact.value, fact.source, fact.confidence) == (
        "Ada Lovelace",
        "occupation",
        "mathematician",
        "encyclopedia",
        0.9,
    )
    assert [f.value for f in api.retrieve_facts("Ada Lovelace", "occupation")] == ["mathematician"]
    relation = api.create_relationship("Ada Lovelace", "Charles Babbage", "worked_with", {"since": 1833})
    assert relation.properties == {"since": 1833} and relation.relation_type == "worked_with"
    near = api.neighbours("Ada Lovelace", max_hops=1)
    assert [(n.entity.name, n.hops, n.via) for n in near] == [("Charles Babbage", 1, ["worked_with"])]
    assert api.neighbours("Charles Babbage", direction="out") == []
    hits = api.search_entities("Babbage", limit=1)
    assert hits[0].entity.name == "Charles Babbage"
    result = api.generate_knowledge({"identifier": "Ada Lovelace", "entity_type": "Person", "deepening_cycles": 0})
    assert (result.identifier, result.cycles_run, result.items) == ("Ada Lovelace", 0, [])
    assert api.list_knowledge("Ada Lovelace") == []
    with pytest.raises(InvalidRequest, match="identifier"):
        api.generate_knowledge({"identifier": "", "entity_type": "Person"})


# ----------------------------------------------------------------------- tools


def test_tools_workspace_and_audit(api, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "todo.md").write_text("- buy milk\n")
    assert "read_file" in {t.name for t in api.list_tools()}
    assert api.add_workspace_root(str(root)) == [str(root.resolve())]
    assert api.workspace_roots() == [str(root.resolve())]
    execution = api.execute_tool({"tool": "read_file", "arguments": {"path": "todo.md"}})
    assert execution.ok and "buy milk" in execution.output
    audit = api.tool_audit(tool="read_file")
    assert [(a.id, a.status) for a in audit] == [(execution.audit_id, "ok")]
    with pytest.raises(NotFound):
        api.execute_tool({"tool": "no_such_tool"})
    assert api.remove_workspace_root(str(root)) == []
    with pytest.raises(NotFound):
        api.remove_workspace_root(str(root))
    with pytest.raises(InvalidRequest, match="not a folder"):
        api.add_workspace_root(str(root / "todo.md"))


def test_mcp_servers(api) -> None:
    info = api.add_mcp_server("time", MCP_TIME, permission="read")
    assert (info.name, info.command, info.permission) == ("time", MCP_TIME, "read")
    assert [s.name for s in api.list_mcp_servers()] == ["time"]
    assert api.accept_mcp_changes("time") is None
    assert "mcp.time.get_current_time" in next(s for s in api.list_mcp_servers() if s.name == "time").tools
    api.remove_mcp_server("time")
    assert api.list_mcp_servers() == []
    with pytest.raises(NotFound):
        api.remove_mcp_server("time")
    with pytest.raises(NotFound):
        api.accept_mcp_changes("time")


# ---------------------------------------------------------------------- agents


def test_agents_crud_export_import_and_builders(api) -> None:
    created = api.create_agent(
        {
            "id": "helper",
            "name": "Helper",
            "instructions": "Be brief.",
            "tools": ["read_file"],
            "occupation": "Librarian",
        }
    )
    assert isinstance(created, AgentDefinition) and created.created_at is not None
    assert api.get_agent("helper") == created
    page = api.list_agents(query="Help")
    assert isinstance(page, AgentPage) and [a.id for a in page.items] == ["helper"] and page.total == 1
    updated = api.update_agent("helper", {"max_steps": 3, "routing": {"top_k": 2}})
    assert (updated.max_steps, updated.routing.top_k, updated.routing.enabled) == (3, 2, True)
    capabilities = api.capabilities("helper")
    assert (capabilities.agent_id, capabilities.tools, capabilities.occupation) == (
        "helper",
        ["read_file"],
        "Librarian",
    )

    text = api.export_agent("helper")
    assert "format: workbench-agent/1" in text and "Be brief." in text
    api.delete_agent("helper")
    with pytest.raises(NotFound):
        api.get_agent("helper")
    imported = api.import_agent(text)
    assert imported.id == "helper" and imported.max_steps == 3
    with pytest.raises(Conflict):
        api.import_agent(text)
    assert api.import_agent(text.replace("Be brief.", "Be thorough."), replace=True).instructions == "Be thorough."
    with pytest.raises(Conflict):
        api.create_agent({"id": "helper", "name": "Again"})
    with pytest.raises(InvalidRequest, match="own parent"):
        api.create_agent({"id": "selfish", "name": "S", "role": "child", "parent": "selfish"})

    skills = api.generate_skills({"occupation": "Librarian", "deepening_cycles": 0})
    assert all(s.skill_id and s.name for s in skills)
    built = api.create_agent_from_role_model(
        {"agent_id": "curator", "deepening_cycles": 0, "role_model": {"name": "Cora", "occupation": "Museum curator"}}
    )
    assert (built.id, built.name, built.occupation) == ("curator", "Cora", "Museum curator")
    assert built.status in ("ready", "failed") and api.get_agent("curator").status == built.status
    with pytest.raises(NotFound):
        api.enrich_agent("nobody")
    with pytest.raises(InvalidRequest, match="additional_cycles"):
        api.enrich_agent("curator", additional_cycles=0)


# ------------------------------------------------------------ runs, approvals


@pytest.fixture
def workspace(mem_engine, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "todo.md").write_text("- buy milk\n- call Bob\n")
    mem_engine.add_workspace_root(str(root))
    return root


def test_agent_run_with_an_approval(api, workspace: Path) -> None:
    api.create_agent({"id": "writer", "name": "Writer", "tools": ["write_file"], "max_steps": 2})
    asked: list[ApprovalRecord] = []
    events = []
    session = api.create_session("Errands")
    task = "Write 'buy milk' into the file shopping.txt."
    for event in api.run_agent({"agent_id": "writer", "task": task, "session_id": session.id}):
        events.append(event)
        if event.type == "approval_requested":
            pending = api.pending_approvals(event.run_id)
            assert [p.id for p in pending] == [event.approval.id]
            asked.append(api.resolve_approval(event.approval.id, True, "fine"))
    types = [e.type for e in events]
    assert types[0] == "agent_run_started" and types[-1] == "agent_run_finished"
    assert asked and asked[0].status == "approved" and asked[0].tool == "write_file"
    resolved = next(e for e in events if e.type == "approval_resolved")
    assert resolved.approval.id == asked[0].id and resolved.approval.status == "approved"
    run = events[-1].run
    assert api.get_run(run.id) == run
    assert run.id in [r.id for r in api.list_runs(agent_id="writer")]
    assert [r.type for r in api.run_events(run.id)] == types
    assert "write_file" in {a.tool for a in api.tool_audit(run_id=run.id)}
    assert api.pending_approvals() == []
    assert events[0].session_id == session.id
    assert [(m.role, m.run_id) for m in api.session_messages(session.id)] == [("user", run.id), ("assistant", run.id)]
    assert api.cancel_run(run.id) is False
    with pytest.raises(InvalidRequest, match="already approved"):
        api.resolve_approval(asked[0].id, False)


def test_closing_a_run_stream_cancels_the_run(api, workspace: Path) -> None:
    api.create_agent({"id": "reader", "name": "Reader", "tools": ["read_file"], "max_steps": 3})
    stream = api.run_agent({"agent_id": "reader", "task": "Open the file notes/todo.md."})
    first = next(stream)
    assert first.type == "agent_run_started"
    stream.close()
    status = wait_until(
        lambda: api.get_run(first.run_id).status != "running" and api.get_run(first.run_id).status,
        what="the run to stop",
    )
    assert status == "cancelled"


def test_run_errors(api) -> None:
    with pytest.raises(NotFound):
        api.run_agent({"agent_id": "ghost", "task": "Anything."})
    api.create_agent({"id": "idle", "name": "Idle"})
    with pytest.raises(NotFound, match="ses_missing"):
        api.run_agent({"agent_id": "idle", "task": "Anything.", "session_id": "ses_missing"})
    with pytest.raises(NotFound):
        api.get_run("run_missing")
    with pytest.raises(NotFound):
        api.run_events("run_missing")
    with pytest.raises(InvalidRequest, match="limit: Input should be greater than or equal to 1"):
        api.list_runs(limit=0)
    with pytest.raises(NotFound):
        api.resolve_approval("apr_missing", True)


# ------------------------------------------------------ errors, side by side


def test_errors_are_the_same_class_and_sentence_locally_and_remotely(mem_engine, served) -> None:
    mem_engine.create_agent({"id": "dup", "name": "Dup"})
    calls = [
        lambda e: e.get_session("ses_nope"),
        lambda e: e.recall("missing", "default"),
        lambda e: e.get_agent("nope"),
        lambda e: e.create_agent({"id": "dup", "name": "Dup"}),
        lambda e: e.create_agent({"id": "bad id!", "name": "X"}),
        lambda e: e.remember({"key": "k", "value": 1, "ttl_seconds": 0}),
        lambda e: e.search({"query": "x", "top_k": 99}),
        lambda e: e.create_session(model="missing-model.gguf"),
        lambda e: e.set_default_model("missing-model"),
        lambda e: e.remove_provider("none"),
        lambda e: e.execute_tool({"tool": "nope"}),
        lambda e: e.run_events("run_nope"),
        lambda e: e.list_runs(limit=5000),
    ]
    for call in calls:
        with pytest.raises(WorkbenchError) as local:
            call(mem_engine)
        with pytest.raises(WorkbenchError) as remote:
            call(served)
        assert type(remote.value) is type(local.value), (local.value, remote.value)
        assert remote.value.code == local.value.code
        if not isinstance(local.value, ModelNotFound):  # over HTTP, model files are not named
            assert str(remote.value) == str(local.value)
