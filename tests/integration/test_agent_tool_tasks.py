"""The 50 tool-use tasks on the real default model.

Every proposed tool call must parse and fit the chosen tool's schema (the step
grammar guarantees it); no step may crash; selection accuracy is reported with
and without routing (the figures benchmarks/agents.py prints come from the same
tasks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

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
    routed = mem_engine.create_agent({"id": "routed", "name": "Routed", "tools": BUILTINS,
                                      "memory": {"enabled": False}})
    plain = mem_engine.create_agent({"id": "plain", "name": "Plain", "tools": BUILTINS,
                                     "memory": {"enabled": False}, "routing": {"enabled": False}})
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
