"""End-to-end agent tasks: set up their workspace and collection, run them, check the outcome.

The tasks, the workspace files, the collection and what success means are data
(`end_to_end` in data/tool_tasks.json). A task succeeds when its run finished,
the tool its check names ran without error at least once, and the outcome is
there: the answer names every word of each expected phrase (case-insensitive),
or the expected file holds exactly the expected content. Write approvals go
through the engine's real approval path (`resolve_approval`).

Used by tests/integration/test_agent_tool_tasks.py and benchmarks/agents.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASKS_FILE = ROOT / "data" / "tool_tasks.json"


def agent(tools: list[str]) -> dict[str, Any]:
    """The agent the tasks run with: default settings, the task collection, no memory, and a
    run-time limit raised for a shared, loaded machine (this measures success, not speed)."""
    return {
        "id": "e2e",
        "name": "E2E",
        "tools": tools,
        "knowledge_collections": [spec()["collection"]["name"]],
        "memory": {"enabled": False},
        "tripwires": {"max_run_seconds": 3600},
    }


def spec() -> dict[str, Any]:
    """The `end_to_end` section of data/tool_tasks.json."""
    return json.loads(TASKS_FILE.read_text())["end_to_end"]


def prepare(engine: Any, base: Path) -> Path:
    """Write the task workspace and ingest the task collection under `base`; the workspace root."""
    data = spec()
    workspace = base / "workspace"
    for name, text in data["workspace"].items():
        (workspace / name).parent.mkdir(parents=True, exist_ok=True)
        (workspace / name).write_text(text)
    documents = base / "collection"
    documents.mkdir(parents=True, exist_ok=True)
    for name, text in data["collection"]["documents"].items():
        (documents / name).write_text(text)
    for _ in engine.ingest({"paths": [str(documents)], "collection": data["collection"]["name"]}):
        pass
    engine.add_workspace_root(str(workspace))
    return workspace


@dataclass
class Outcome:
    task: str
    kind: str
    status: str
    answer: str | None
    error: str | None
    steps: int
    #: tool name and status of each call, in order
    calls: list[tuple[str, str]] = field(default_factory=list)
    #: why the outcome is not a success (empty: success)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(item: dict[str, Any], run: Any, calls: list[tuple[str, str]], workspace: Path) -> list[str]:
    """What is missing from the outcome of `item` (empty: the task succeeded)."""
    expected = item["check"]
    problems = []
    if run.status != "finished":
        problems.append(f"the run ended {run.status}: {run.error}")
    if (expected["tool"], "ok") not in calls:
        problems.append(f"{expected['tool']} never ran successfully")
    answer = run.answer or ""
    for phrase in expected.get("answer_includes", []):
        missing = [w for w in phrase.lower().split() if w not in answer.lower()]
        if missing:
            problems.append(f"the answer does not name {phrase!r}")
    if "file" in expected:
        path = workspace / expected["file"]
        if not path.is_file():
            problems.append(f"{expected['file']} was not written")
        elif path.read_text().rstrip("\n") != expected["content"]:
            problems.append(f"{expected['file']} holds {path.read_text()[:80]!r}, not {expected['content']!r}")
    return problems


def run_task(
    engine: Any,
    agent_id: str,
    item: dict[str, Any],
    workspace: Path,
    *,
    approve: tuple[str, ...] = ("write_file",),
    model: str | None = None,
) -> Outcome:
    """Run one task to its end and check its outcome; calls of the `approve` tools are
    approved through the engine, every other approval request is denied."""
    calls: list[tuple[str, str]] = []
    run = None
    request: dict[str, Any] = {"agent_id": agent_id, "task": item["task"]}
    if model is not None:
        request["model"] = model
    for event in engine.run_agent(request):
        if event.type == "approval_requested":
            engine.resolve_approval(event.approval.id, event.approval.tool in approve)
        elif event.type == "tool_result":
            calls.append((event.execution.tool, event.execution.status))
        elif event.type == "agent_run_finished":
            run = event.run
    assert run is not None, "the run stream ended without agent_run_finished"
    return Outcome(
        task=item["task"],
        kind=item["kind"],
        status=run.status,
        answer=run.answer,
        error=run.error,
        steps=run.steps,
        calls=calls,
        problems=check(item, run, calls, workspace),
    )


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """Success rate overall and per task kind, and each failure with its reasons."""
    kinds: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        kinds.setdefault(outcome.kind, []).append(outcome)
    return {
        "success_rate": round(sum(o.ok for o in outcomes) / len(outcomes), 3) if outcomes else None,
        "tasks": len(outcomes),
        "by_kind": {kind: round(sum(o.ok for o in group) / len(group), 3) for kind, group in kinds.items()},
        "statuses": [o.status for o in outcomes],
        "passed": [o.ok for o in outcomes],
        "failures": [
            {"task": o.task, "problems": o.problems, "answer": (o.answer or "")[:200], "calls": o.calls}
            for o in outcomes
            if not o.ok
        ],
    }
