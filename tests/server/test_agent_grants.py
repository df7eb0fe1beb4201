"""`write:agents` alone cannot make an agent that runs commands (or writes, or calls out) unasked.

Real server (`live`), real engine, real agent runs: the model is a real
OpenAI-wire server on 127.0.0.1 scripted to call `run_command` with `touch`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.wire_servers import WireServer, add_model

WRITER_SCOPES = ["write:agents", "execute:agents", "read:agents", "read:runs"]
NO_APPROVALS = {"require": []}


def _agent(agent_id: str, **extra) -> dict:
    return {"id": agent_id, "name": agent_id, **extra}


@pytest.fixture
def writer(live) -> str:
    return live.engine.api_keys.create("writer", WRITER_SCOPES)[1]


@pytest.fixture
def admin(live) -> str:
    return live.engine.api_keys.create("admin", [*WRITER_SCOPES, "admin:agents"])[1]


def _run_touch(live, key: str, agent: dict, target: Path) -> list[str]:
    """Create `agent` with `key`, run it on a model that calls `touch target`; the run's event types."""
    with WireServer() as wire:
        wire.tool_calls = [("run_command", {"argv": ["touch", str(target)]})]
        model = add_model(live.engine, wire, "openai")
        with live.client(key) as http:
            created = http.post("/workbench/v1/agents", json={**agent, "model": model})
            if created.status_code != 200:
                return [f"refused {created.status_code}: {created.text}"]
            with http.stream(
                "POST", "/workbench/v1/runs", json={"agent_id": agent["id"], "task": "make the file"}, timeout=60
            ) as stream:
                types = [line[7:] for line in stream.iter_lines() if line.startswith("event: ")]
    return types


def test_an_agent_without_approvals_needs_admin_to_run_commands(live, writer, admin, tmp_path: Path) -> None:
    live.engine.add_workspace_root(str(tmp_path))
    target = tmp_path / "touched"
    agent = _agent("runner", tools=["run_command"], approvals=NO_APPROVALS, max_steps=1, routing={"enabled": False})
    refused = _run_touch(live, writer, agent, target)
    assert refused[0].startswith("refused 403") and "admin:agents" in refused[0]
    assert not target.exists()
    # with the admin scope it is the person's choice, and the command runs
    events = _run_touch(live, admin, agent, target)
    assert target.exists() and "approval_requested" not in events, events


@pytest.mark.parametrize(
    "agent",
    [
        _agent("a1", tools=["run_command"]),  # exec tool, approvals on
        _agent("a2", tools=["write_file"]),
        _agent("a3", tools=["http_fetch"]),
        _agent("a4", tools=["*"]),  # a pattern may match anything
        _agent("a5", tools=["mcp.shell.*"]),
        _agent("a6", approvals=NO_APPROVALS),  # approvals off, no tool yet
        _agent("a7", approvals={"require": ["write", "network"]}),
    ],
)
def test_creating_a_powerful_agent_needs_admin(live, writer, admin, agent: dict) -> None:
    with live.client(writer) as http:
        refused = http.post("/workbench/v1/agents", json=agent)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE"
        assert http.get(f"/workbench/v1/agents/{agent['id']}").status_code == 404
    with live.client(admin) as http:
        assert http.post("/workbench/v1/agents", json=agent).status_code == 200


def test_write_agents_keeps_read_only_tools_and_plain_edits(live, writer) -> None:
    with live.client(writer) as http:
        made = http.post(
            "/workbench/v1/agents",
            json=_agent(
                "reader",
                tools=["read_file", "search_files"],
                approvals={"require": ["write", "exec", "network", "read"]},
            ),
        )
        assert made.status_code == 200, made.text
        assert (
            http.patch("/workbench/v1/agents/reader", json={"name": "Reader", "tools": ["read_file"]}).status_code
            == 200
        )
        for changes in (
            {"tools": ["read_file", "run_python"]},
            {"approvals": {"require": ["exec"]}},
            {"tools": ["git_commit"], "name": "x"},
        ):
            refused = http.patch("/workbench/v1/agents/reader", json=changes)
            assert refused.status_code == 403, (changes, refused.text)
    agent = live.engine.get_agent("reader")
    assert agent.tools == ["read_file"] and set(agent.approvals.require) >= {"write", "exec", "network"}


def test_an_admin_made_agent_stays_editable_by_writers(live, writer) -> None:
    """What the agent already has is not granted again: a writer may rename it or take tools away."""
    live.engine.create_agent(_agent("ops", tools=["run_command", "read_file"], approvals=NO_APPROVALS))
    with live.client(writer) as http:
        assert http.patch("/workbench/v1/agents/ops", json={"name": "Ops", "tools": ["run_command"]}).status_code == 200
        assert http.patch("/workbench/v1/agents/ops", json={"tools": ["run_command", "write_file"]}).status_code == 403


def test_import_and_role_model_routes_apply_the_same_rule(live, writer) -> None:
    live.engine.create_agent(_agent("exported", tools=["run_command"], approvals=NO_APPROVALS))
    text = live.engine.export_agent("exported")
    live.engine.delete_agent("exported")
    with live.client(writer) as http:
        imported = http.post("/workbench/v1/agents/import", json={"text": text})
        assert imported.status_code == 403, imported.text
        built = http.post(
            "/workbench/v1/agents/from-role-model",
            json={
                "agent_id": "rm",
                "role_model": {"name": "Sam", "occupation": "admin"},
                "overrides": {"tools": ["run_command"]},
            },
        )
        assert built.status_code == 403, built.text
    assert live.engine.list_agents().total == 0


def test_chrysalis_routes_apply_the_same_rule(live, writer) -> None:
    with live.client(writer) as http:
        created = http.post(
            "/api/v1/agents",
            json={"agent_id": "chry", "role_model": {"name": "Ann", "occupation": "ops"}, "tools": ["run_command"]},
        )
        assert created.status_code == 403, created.text
        assert created.json()["error"]["code"] == "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE"
    live.engine.create_agent(_agent("chry2", tools=["read_file"]))
    with live.client(writer) as http:
        patched = http.patch("/api/v1/agents/chry2", json={"tools": ["read_file", "http_fetch"]})
        assert patched.status_code == 403, patched.text
        assert http.patch("/api/v1/agents/chry2", json={"tools": ["read_file", "list_dir"]}).status_code == 200
