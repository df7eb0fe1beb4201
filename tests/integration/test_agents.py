"""Agents: definitions in DuckDB, export/import, and the runner on the real default model."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.engine.errors import Conflict, InvalidRequest, NotFound

# ------------------------------------------------------------ definitions


def test_create_get_list_update_delete(engine) -> None:
    for i, name in enumerate(["Charlie", "alpha", "Bravo"]):
        engine.create_agent({"id": f"a{i}", "name": name, "tools": ["read_file"]})
    engine.create_agent({"id": "kid", "name": "Kid", "role": "child", "parent": "a0"})
    assert engine.get_agent("a1").name == "alpha"

    page = engine.list_agents(page=1, per_page=2, sort="name")
    assert page.total == 4 and [a.id for a in page.items] == ["a1", "a2"]
    assert [a.id for a in engine.list_agents(page=2, per_page=2, sort="name").items] == ["a0", "kid"]
    newest = engine.list_agents(sort="-created_at").items
    assert newest[0].id == "kid"
    assert [a.id for a in engine.list_agents(role="child").items] == ["kid"]
    assert [a.id for a in engine.list_agents(parent="a0").items] == ["kid"]
    assert [a.id for a in engine.list_agents(query="brav").items] == ["a2"]

    updated = engine.update_agent("a1", {"max_steps": 3, "routing": {"top_k": 2}})
    assert updated.max_steps == 3 and updated.routing.top_k == 2
    assert updated.routing.enabled is True  # nested settings merge
    assert updated.created_at == engine.get_agent("a1").created_at
    assert updated.updated_at >= updated.created_at

    with pytest.raises(InvalidRequest, match="cannot be changed"):
        engine.update_agent("a1", {"id": "other"})
    with pytest.raises(InvalidRequest, match="max_steps"):
        engine.update_agent("a1", {"max_steps": 0})
    with pytest.raises(Conflict, match="already exists"):
        engine.create_agent({"id": "a1", "name": "again"})
    with pytest.raises(Conflict, match="parent of kid"):
        engine.delete_agent("a0")
    engine.delete_agent("kid")
    engine.delete_agent("a0")
    with pytest.raises(NotFound):
        engine.get_agent("a0")
    with pytest.raises(NotFound):
        engine.delete_agent("a0")


@pytest.mark.parametrize(
    "definition, message",
    [
        ({"id": "-bad", "name": "x"}, "id"),
        ({"id": "a", "name": ""}, "name"),
        ({"id": "a", "name": "x", "parent": "a", "role": "child"}, "own parent"),
        ({"id": "a", "name": "x", "parent": "p"}, "parent agent has no parent"),
        ({"id": "a", "name": "x", "role": "child", "parent": "ghost"}, "does not exist"),
        ({"id": "a", "name": "x", "guardrails": {"deny_patterns": ["("]}}, "deny_patterns"),
        ({"id": "a", "name": "x", "surprise": 1}, "surprise"),
    ],
)
def test_invalid_definitions_are_refused(engine, definition, message) -> None:
    with pytest.raises(InvalidRequest, match=message):
        engine.create_agent(definition)


def test_micro_agents_cannot_have_children(engine) -> None:
    engine.create_agent({"id": "m", "name": "Micro", "role": "micro"})
    with pytest.raises(InvalidRequest, match="micro agent"):
        engine.create_agent({"id": "c", "name": "C", "role": "child", "parent": "m"})


def test_export_import_round_trip(engine, tmp_path: Path) -> None:
    template = tmp_path / "mine.yaml"
    template.write_text(
        "name: mine\nkind: basic\nvariables:\n"
        "  - {name: agent_name}\n  - {name: instructions, required: false, default: ''}\n"
        "  - {name: task}\n"
        "system: 'I am {{ agent_name }}. {{ instructions }}'\nuser: 'Do: {{ task }}'\n"
    )
    engine.create_agent(
        {
            "id": "exp",
            "name": "Exporter",
            "instructions": "Be brief.",
            "tools": ["read_file", "mcp.time.*"],
            "knowledge_collections": ["docs"],
            "template": str(template),
            "occupation": "Librarian",
            "generated_skills": [
                {"skill_id": "skill_1", "name": "Cataloguing", "description": "Orders books.", "category": "domain"}
            ],
        }
    )
    text = engine.export_agent("exp")
    assert "format: workbench-agent/1" in text and "Cataloguing" in text and "Do: {{ task }}" in text
    original = engine.get_agent("exp")
    engine.delete_agent("exp")
    template.unlink()  # the export is self-contained
    imported = engine.import_agent(text)
    assert imported.model_dump(exclude={"created_at", "updated_at", "template"}) == original.model_dump(
        exclude={"created_at", "updated_at", "template"}
    )
    assert Path(imported.template).is_file()
    with pytest.raises(Conflict):
        engine.import_agent(text)
    replaced = engine.import_agent(text.replace("Be brief.", "Be thorough."), replace=True)
    assert replaced.instructions == "Be thorough."
    with pytest.raises(InvalidRequest, match="not a Workbench agent export"):
        engine.import_agent("name: x\n")
    with pytest.raises(InvalidRequest, match="not valid YAML"):
        engine.import_agent("format: [unclosed\n")


# ----------------------------------------------------------------- runner


@pytest.fixture
def workspace(mem_engine, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "todo.md").write_text("- buy milk\n- call Bob\n")
    mem_engine.add_workspace_root(str(root))
    return root


def _drain(events, decide=None):
    seen = []
    for event in events:
        seen.append(event)
        if event.type == "approval_requested" and decide is not None:
            decide(event.approval)
    return seen


def test_run_reads_a_file_and_is_persisted(mem_engine, workspace: Path) -> None:
    mem_engine.create_agent({"id": "reader", "name": "Reader", "tools": ["read_file", "list_dir"], "max_steps": 3})
    events = _drain(
        mem_engine.run_agent({"agent_id": "reader", "task": "Open the file notes/todo.md and tell me what is on it."})
    )
    types = [e.type for e in events]
    assert types[0] == "agent_run_started" and types[-1] == "agent_run_finished"
    first_call = next(e for e in events if e.type == "tool_call_proposed")
    # routing + the first-step rule: the file tool is offered and called
    assert first_call.tool == "read_file"
    assert "approval_requested" not in types  # reading needs no approval by default
    result = next(e for e in events if e.type == "tool_result")
    run = events[-1].run
    assert run.steps >= 1 and run.prompt_tokens > 0 and run.duration_ms > 0
    if result.execution.ok:
        assert "buy milk" in result.execution.output

    # persisted: the run row, every event in order, the audit record
    assert mem_engine.get_run(run.id).status == run.status
    stored = mem_engine.run_events(run.id)
    assert [r.type for r in stored] == types
    assert [r.seq for r in stored] == list(range(1, len(types) + 1))
    assert any(r.id == run.id for r in mem_engine.list_runs(agent_id="reader"))
    audit = mem_engine.tool_audit(run_id=run.id)
    assert audit and audit[-1].tool == "read_file" and audit[-1].agent_id == "reader"
    step = next(e for e in events if e.type == "step_finished")
    assert step.model_ms > 0 and step.overhead_ms >= 0 and step.completion_tokens > 0


def _writer(engine, **extra):
    engine.create_agent({"id": "writer", "name": "Writer", "tools": ["write_file"], "max_steps": 2, **extra})
    return {"agent_id": "writer", "task": "Write 'buy milk' into the file shopping.txt."}


def test_write_waits_for_approval_and_runs_when_approved(mem_engine, workspace: Path) -> None:
    request = _writer(mem_engine)
    asked = []

    def approve(approval):
        asked.append(approval)
        assert mem_engine.pending_approvals()[0].id == approval.id
        mem_engine.resolve_approval(approval.id, True)

    events = _drain(mem_engine.run_agent(request), approve)
    assert asked and asked[0].tool == "write_file" and asked[0].permission == "write"
    proposed = next(e for e in events if e.type == "tool_call_proposed")
    assert asked[0].arguments == proposed.arguments  # the exact call is shown
    resolved = next(e for e in events if e.type == "approval_resolved")
    assert resolved.approval.status == "approved"
    execution = next(e for e in events if e.type == "tool_result").execution
    assert execution.status in ("ok", "error")
    if execution.ok:
        written = workspace / proposed.arguments["path"]
        assert written.resolve().is_relative_to(workspace.resolve()) and written.exists()
    assert mem_engine.pending_approvals() == []


def test_denied_write_is_reported_and_never_runs(mem_engine, workspace: Path) -> None:
    request = _writer(mem_engine)
    events = _drain(mem_engine.run_agent(request), lambda a: mem_engine.resolve_approval(a.id, False, "not now"))
    results = [e.execution for e in events if e.type == "tool_result"]
    # a denied call repeated is refused by the loop check without asking again
    assert results and results[0].status == "denied"
    assert {r.status for r in results} <= {"denied", "refused"}
    assert "denied" in results[0].error and "not now" in results[0].error
    assert not any(p.is_file() for p in workspace.rglob("*") if p.name != "todo.md")
    run_id = events[0].run_id
    statuses = {r.status for r in mem_engine.tool_audit(run_id=run_id)}
    assert "denied" in statuses and "ok" not in statuses
    with pytest.raises(InvalidRequest, match="already denied"):
        mem_engine.resolve_approval(mem_engine.approvals.list(run_id)[0].id, True)


def test_unanswered_approval_expires_as_a_denial(mem_engine, workspace: Path) -> None:
    request = _writer(mem_engine, approvals={"timeout_s": 0.5})
    events = _drain(mem_engine.run_agent(request))  # nobody answers
    resolved = [e for e in events if e.type == "approval_resolved"]
    assert resolved and resolved[0].approval.status == "expired"
    statuses = [e.execution.status for e in events if e.type == "tool_result"]
    # an expired approval is a denial; the same call proposed again is refused without asking
    assert statuses[0] == "denied" and set(statuses) <= {"denied", "refused"}
    assert not (workspace / "shopping.txt").exists()


def test_prompt_guardrail_blocks_before_any_model_call(mem_engine, workspace: Path) -> None:
    mem_engine.create_agent(
        {"id": "g", "name": "G", "tools": ["read_file"], "guardrails": {"deny_patterns": [r"id_rsa"]}}
    )
    events = _drain(mem_engine.run_agent({"agent_id": "g", "task": "Read ~/.ssh/id_rsa for me."}))
    assert [e.type for e in events] == ["agent_run_started", "guardrail", "agent_run_finished"]
    run = events[-1].run
    assert run.status == "blocked" and run.steps == 0 and run.prompt_tokens == 0
    assert "deny" in events[1].violation.rule


def test_secret_in_a_task_is_redacted_before_storage_and_the_model(mem_engine, workspace: Path) -> None:
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    mem_engine.create_agent({"id": "s", "name": "S", "tools": ["read_file"], "max_steps": 1})
    events = _drain(mem_engine.run_agent({"agent_id": "s", "task": f"Read notes/todo.md. My key is {secret}"}))
    rules = [e.violation.rule for e in events if e.type == "guardrail"]
    assert any(rule.startswith("secret:") for rule in rules)
    run_id = events[0].run_id
    assert secret not in mem_engine.get_run(run_id).task
    stored = " ".join(str(r.payload) for r in mem_engine.run_events(run_id))
    assert secret not in stored


def test_max_steps_and_cancellation(mem_engine, workspace: Path) -> None:
    mem_engine.create_agent({"id": "m", "name": "M", "tools": ["read_file"], "max_steps": 1})
    events = _drain(mem_engine.run_agent({"agent_id": "m", "task": "Open the file notes/todo.md."}))
    assert events[-1].run.status == "max_steps" and "1 steps" in events[-1].run.error

    stream = mem_engine.run_agent({"agent_id": "m", "task": "Open the file notes/todo.md."})
    first = next(stream)
    stream.close()
    assert mem_engine.get_run(first.run_id).status == "cancelled"


def test_tool_errors_and_refusals_are_fed_back_not_raised(mem_engine, workspace: Path) -> None:
    mem_engine.create_agent({"id": "t", "name": "T", "tools": ["read_file"]})
    bad = mem_engine.execute_tool({"tool": "read_file", "arguments": {"path": 3}})
    assert bad.status == "invalid" and "path" in bad.error
    outside = mem_engine.execute_tool({"tool": "read_file", "arguments": {"path": "../../etc/passwd"}})
    assert outside.status == "error" and not outside.ok
    ok = mem_engine.execute_tool({"tool": "read_file", "arguments": {"path": "notes/todo.md"}})
    assert ok.ok and "buy milk" in ok.output
    with pytest.raises(InvalidRequest, match="not allowed"):
        mem_engine.execute_tool({"tool": "write_file", "agent_id": "t", "arguments": {"path": "x.txt", "content": "x"}})
    with pytest.raises(NotFound):
        mem_engine.execute_tool({"tool": "no_such_tool"})
    statuses = [r.status for r in mem_engine.tool_audit(tool="read_file")]
    assert sorted(statuses) == ["error", "invalid", "ok"]


def test_a_run_in_a_chat_session_sees_its_turns_and_is_added_to_it(mem_engine, workspace: Path) -> None:
    mem_engine.create_agent(
        {
            "id": "c",
            "name": "C",
            "tools": ["read_file"],
            "max_steps": 1,
            "memory": {"enabled": False, "remember_runs": False},
        }
    )
    task = "Open the file notes/todo.md."
    alone = _drain(mem_engine.run_agent({"agent_id": "c", "task": task}))
    session = mem_engine.create_session("Errands")
    first = _drain(mem_engine.run_agent({"agent_id": "c", "task": task, "session_id": session.id}))
    assert first[0].session_id == session.id and alone[0].session_id is None
    run = first[-1].run
    user, answer = mem_engine.session_messages(session.id)
    assert (user.role, user.content, user.run_id) == ("user", task, run.id)
    expected = run.answer or f"The run ended: {run.status}." + (f" {run.error}" if run.error else "")
    assert (answer.role, answer.content, answer.run_id) == ("assistant", expected, run.id)
    assert [s.id for s in mem_engine.list_sessions()] == [session.id]  # a run without a session adds none

    # The same task again in the session: the earlier turn is now part of the prompt.
    again = _drain(mem_engine.run_agent({"agent_id": "c", "task": task, "session_id": session.id}))
    tokens = [next(e for e in events if e.type == "step_finished").prompt_tokens for events in (alone, first, again)]
    assert tokens[0] == tokens[1] < tokens[2]
    assert len(mem_engine.session_messages(session.id)) == 4
    assert mem_engine.get_session(session.id).message_count == 4

    with pytest.raises(NotFound):
        mem_engine.run_agent({"agent_id": "c", "task": task, "session_id": "ses_missing"})


def test_runs_left_running_by_a_dead_process_are_marked_interrupted(workbench_home: Path, embedder) -> None:
    from workbench.engine.engine import Engine

    with Engine(workbench_home, embedder=embedder) as engine:
        engine.create_agent({"id": "x", "name": "X"})
        engine.db.execute(
            "INSERT INTO agent_runs VALUES ('run_dead', 'x', 't', 'm', 'running', NULL, NULL, 0, 0, 0, "
            "now(), NULL, NULL)"
        )
        engine.approvals.request("run_dead", "x", "write_file", {"path": "a"}, "write")
    with Engine(workbench_home, embedder=embedder) as engine:
        assert engine.get_run("run_dead").status == "interrupted"
        assert engine.pending_approvals() == []
        assert engine.approvals.list("run_dead")[0].status == "expired"
