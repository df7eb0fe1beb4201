"""The 50 tool-use tasks on the real default model.

Every proposed tool call must parse and fit the chosen tool's schema (the step
grammar guarantees it); no step may crash; selection accuracy is reported with
and without routing (the figures benchmarks/agents.py prints come from the same
tasks)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests import agent_e2e
from tests.wire_servers import WireServer, add_model

ROOT = Path(__file__).resolve().parents[2]
TASKS = json.loads((ROOT / "data" / "tool_tasks.json").read_text())["tasks"]
BUILTINS = sorted({t["tool"] for t in TASKS})


def test_the_task_set_names_real_tools(engine) -> None:
    names = {t.name for t in engine.list_tools()}
    assert len(TASKS) == 50
    assert set(BUILTINS) <= names
    assert len(BUILTINS) == 16


@pytest.mark.slow
def test_every_proposed_call_is_valid_and_routing_helps(mem_engine, tmp_path: Path) -> None:
    mem_engine.add_workspace_root(str(tmp_path))
    routed = mem_engine.create_agent(
        {"id": "routed", "name": "Routed", "tools": BUILTINS, "memory": {"enabled": False}}
    )
    plain = mem_engine.create_agent(
        {"id": "plain", "name": "Plain", "tools": BUILTINS, "memory": {"enabled": False}, "routing": {"enabled": False}}
    )
    tools = {t.name: t for t in mem_engine.tools.allowed(BUILTINS)}
    accuracy = {}
    for agent in (routed, plain):
        correct = calls = 0
        for item in TASKS:
            plan = mem_engine.runner.plan_step(agent, item["task"])
            assert plan.proposal.error is None, (item["task"], plan.raw)
            if plan.proposal.action != "final_answer":
                calls += 1
                assert plan.proposal.action in plan.offered
                schema = tools[plan.proposal.action].parameters
                errors = list(Draft202012Validator(schema).iter_errors(plan.proposal.arguments))
                assert not errors, (item["task"], plan.raw, errors[0].message)
            correct += plan.proposal.action == item["tool"]
        accuracy[agent.id] = correct / len(TASKS)
        print(f"{agent.id}: selection accuracy {accuracy[agent.id]:.2f}, tool calls {calls}/{len(TASKS)}")
    assert accuracy["routed"] > accuracy["plain"]


# ------------------------------------------------------------- end to end

E2E = agent_e2e.spec()["tasks"]


def test_the_end_to_end_tasks_are_well_formed(engine) -> None:
    names = {t.name for t in engine.list_tools()}
    assert {t["kind"] for t in E2E} == {"list", "summary", "write", "fact"}
    for item in E2E:
        assert item["check"]["tool"] in names
        assert item["remote_call"]["tool"] == item["check"]["tool"]
        assert "answer_includes" in item["check"] or "file" in item["check"]


@pytest.fixture
def wire():
    with WireServer(api_key=f"sk-wire-{uuid.uuid4().hex}") as server:
        yield server


def _e2e_agent(engine, **extra) -> str:
    return engine.create_agent({**agent_e2e.agent(BUILTINS), **extra}).id


def test_every_end_to_end_task_succeeds_through_the_wire_fake(mem_engine, wire, tmp_path: Path) -> None:
    """The harness half of the remote figure: a scripted model makes the call a capable
    model would make; every task must then reach its outcome (writes approved through
    the engine's approval path). It measures the runner, not a model."""
    workspace = agent_e2e.prepare(mem_engine, tmp_path)
    model = add_model(mem_engine, wire, "openai")
    agent = _e2e_agent(mem_engine)
    outcomes = []
    for item in E2E:
        wire.tool_calls = [(item["remote_call"]["tool"], item["remote_call"]["arguments"])]
        outcomes.append(agent_e2e.run_task(mem_engine, agent, item, workspace, model=model))
    failures = [(o.task, o.problems) for o in outcomes if not o.ok]
    assert failures == []
    # every write went through an approval that was asked and granted
    approvals = mem_engine.approvals.list(limit=100)
    assert sorted(a.tool for a in approvals) == ["write_file"] * 3
    assert {a.status for a in approvals} == {"approved"}


def test_search_knowledge_defaults_to_the_agents_collections(mem_engine, tmp_path: Path) -> None:
    agent_e2e.prepare(mem_engine, tmp_path)
    mem_engine.create_agent(
        {"id": "librarian", "name": "Librarian", "tools": ["search_knowledge"], "knowledge_collections": ["docs"]}
    )
    mem_engine.create_agent({"id": "plain", "name": "Plain", "tools": ["search_knowledge"]})
    query = {"query": "support email address"}

    found = mem_engine.execute_tool({"tool": "search_knowledge", "agent_id": "librarian", "arguments": query})
    assert found.ok, found.error
    passages = json.loads(found.output)
    assert passages[0]["collection"] == "docs" and "help@demo.example" in passages[0]["text"]
    # an explicit collection still wins; without the agent's own, "default" as before
    missing = mem_engine.execute_tool(
        {"tool": "search_knowledge", "agent_id": "librarian", "arguments": {**query, "collection": "default"}}
    )
    assert missing.status == "error" and "No collection 'default'" in missing.error
    plain = mem_engine.execute_tool({"tool": "search_knowledge", "agent_id": "plain", "arguments": query})
    assert plain.status == "error" and "No collection 'default'" in plain.error


def test_a_repeated_failing_call_ends_the_run_failed_with_the_reason(mem_engine, wire, tmp_path: Path) -> None:
    """A model stuck on a call that failed: the run is `failed`, not `finished`, and says why."""
    agent_e2e.prepare(mem_engine, tmp_path)
    model = add_model(mem_engine, wire, "openai")
    agent = _e2e_agent(mem_engine)
    wire.tool_calls = [("read_file", {"path": "missing.txt"})]
    wire.repeat_tool_calls = True
    events = list(mem_engine.run_agent({"agent_id": agent, "task": "Read missing.txt.", "model": model}))
    run = events[-1].run
    assert run.status == "failed" and run.answer is None and run.steps == 2
    assert "repeated a call that had failed" in run.error and "does not exist" in run.error
    assert [e.execution.status for e in events if e.type == "tool_result"] == ["error", "refused"]
    assert mem_engine.get_run(run.id).status == "failed"


#: end-to-end tasks the default model finishes at temperature 0: the grammar's choices fix
#: their arguments (the workspace; the file name and quoted text of the task), the answer
#: is the model's own. The last three failed before the file tools a task's paths call for
#: were offered beside routing (a folder: list_dir; a new file with a quoted text: write_file)
#: and results were summarised in the shape of an answer (a file's title and its lines).
DETERMINISTIC = [
    "List the files in the workspace.",
    "Write 'buy milk' into the file shopping.txt.",
    "What is in the notes folder?",
    "Save the text 'meeting on Friday' to notes/meeting.txt.",
    "Read notes/todo.md and tell me what is on it.",
]


@pytest.mark.slow
def test_small_end_to_end_tasks_finish_on_the_default_model(mem_engine, tmp_path: Path) -> None:
    workspace = agent_e2e.prepare(mem_engine, tmp_path)
    agent = _e2e_agent(mem_engine)
    items = [item for item in E2E if item["task"] in DETERMINISTIC]
    assert len(items) == len(DETERMINISTIC)
    for item in items:
        outcome = agent_e2e.run_task(mem_engine, agent, item, workspace)
        assert outcome.ok, (outcome.task, outcome.problems, outcome.answer, outcome.calls)
