"""The agents, run, runs, tools, mcp and workspace commands of the `workbench`
CLI, run as a user would: in a subprocess against a per-test home, from the
repository root. State is checked again through the CLI, or by opening
`Engine(home)` once the subprocess has exited (one process owns the database
at a time). `run` uses the packaged default model (greedy, so repeatable); each
run is limited to one step to keep the slow machine time down."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PYTHON, ROOT, cli_env

TASK = "Write 'buy milk' into the file shopping.txt."
TIME_CMD = [PYTHON, "-m", "mcp_server_time", "--local-timezone", "UTC"]
RUN_TIMEOUT = 900


def workbench(
    home: Path, *args: str, stdin: str | None = None, devnull: bool = False, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "workbench", *args],
        capture_output=True,
        text=True,
        input=stdin,
        stdin=subprocess.DEVNULL if devnull else None,
        env=cli_env(home),
        cwd=ROOT,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def failed(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("workbench: error: "), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def as_json(result: subprocess.CompletedProcess) -> Any:
    return json.loads(ok(result))


def open_engine(home: Path):
    from workbench.engine.engine import Engine

    return Engine(home)


def without_times(agent: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in agent.items() if k not in ("created_at", "updated_at")}


# ------------------------------------------------------------------ agents


def test_agents_create_list_show_edit_delete(workbench_home: Path, tmp_path: Path):
    instructions = tmp_path / "instructions.md"
    instructions.write_text("Answer in one sentence.\nNever guess file names.\n", encoding="utf-8")
    created = as_json(
        workbench(
            workbench_home,
            "agents",
            "create",
            "helper",
            "--tool",
            "read_file",
            "--tool",
            "write_file",
            "--collection",
            "docs",
            "--max-steps",
            "4",
            "--instructions",
            f"@{instructions}",
            "--json",
        )
    )
    assert created["id"] == "helper" and created["name"] == "helper"  # the name defaults to the id
    assert created["tools"] == ["read_file", "write_file"]
    assert created["knowledge_collections"] == ["docs"]
    assert created["max_steps"] == 4
    assert created["instructions"] == "Answer in one sentence.\nNever guess file names.\n"
    assert created["status"] == "ready" and created["role"] == "parent"
    assert created["approvals"]["require"] == ["write", "exec", "network"]

    text = ok(workbench(workbench_home, "agents", "create", "alpha", "--instructions", "Be brief."))
    assert text.startswith("alpha  alpha  [parent, ready]\n")
    assert "  tools: (none)\n" in text and "  instructions: Be brief.\n" in text
    ok(workbench(workbench_home, "agents", "create", "zed", "--name", "zulu", "--tool", "list_dir"))

    listing = ok(workbench(workbench_home, "agents", "list"))
    lines = listing.splitlines()
    assert [line.split()[0] for line in lines] == ["zed", "alpha", "helper"]  # newest first by default
    assert lines[0].split()[1] == "zulu" and lines[2].endswith("tools: 2")

    page = as_json(workbench(workbench_home, "agents", "list", "--json"))
    assert page["total"] == 3 and page["page"] == 1 and page["per_page"] == 20
    assert [a["id"] for a in page["items"]] == ["zed", "alpha", "helper"]

    second = as_json(workbench(workbench_home, "agents", "list", "--per-page", "1", "--page", "2", "--json"))
    assert second["total"] == 3 and second["page"] == 2 and second["per_page"] == 1
    assert [a["id"] for a in second["items"]] == ["alpha"]
    second_text = ok(workbench(workbench_home, "agents", "list", "--per-page", "1", "--page", "2"))
    assert second_text.splitlines()[0].split()[0] == "alpha"
    assert "... page 2 of 3 (--page N)" in second_text
    beyond = as_json(workbench(workbench_home, "agents", "list", "--per-page", "2", "--page", "3", "--json"))
    assert beyond["items"] == [] and beyond["total"] == 3

    by_name = as_json(workbench(workbench_home, "agents", "list", "--sort", "name", "--json"))
    assert [a["name"] for a in by_name["items"]] == ["alpha", "helper", "zulu"]
    by_name_desc = as_json(workbench(workbench_home, "agents", "list", "--sort=-name", "--json"))
    assert [a["name"] for a in by_name_desc["items"]] == ["zulu", "helper", "alpha"]
    queried = as_json(workbench(workbench_home, "agents", "list", "--query", "ZUL", "--json"))
    assert [a["id"] for a in queried["items"]] == ["zed"]
    failed(workbench(workbench_home, "agents", "list", "--sort", "tools"), "sort must be one of")

    shown = ok(workbench(workbench_home, "agents", "show", "helper"))
    assert shown.startswith("helper  helper  [parent, ready]\n")
    assert "  model: (default)   max steps: 4   template: basic\n" in shown
    assert "  tools: read_file, write_file\n" in shown
    assert "  collections: docs\n" in shown
    assert "  approvals for: write, exec, network\n" in shown
    assert "  instructions: Answer in one sentence. Never guess file names.\n" in shown
    assert without_times(as_json(workbench(workbench_home, "agents", "show", "helper", "--json"))) == without_times(
        created
    )

    edited = as_json(
        workbench(
            workbench_home,
            "agents",
            "edit",
            "helper",
            "--name",
            "Helper Two",
            "--patch",
            '{"routing": {"top_k": 2}}',
            "--json",
        )
    )
    assert edited["name"] == "Helper Two"
    # the nested patch merges: only top_k changes, the other routing settings stay
    assert edited["routing"] == {**created["routing"], "top_k": 2}
    assert created["routing"]["top_k"] != 2
    assert edited["tools"] == created["tools"] and edited["instructions"] == created["instructions"]
    assert edited["created_at"] == created["created_at"]
    assert edited["updated_at"] > created["updated_at"]
    again = as_json(workbench(workbench_home, "agents", "show", "helper", "--json"))
    assert again == edited  # persisted as shown

    patch_file = tmp_path / "patch.json"
    patch_file.write_text('{"approvals": {"require": ["exec"]}, "max_steps": 9}', encoding="utf-8")
    patched = as_json(workbench(workbench_home, "agents", "edit", "helper", "--patch", f"@{patch_file}", "--json"))
    assert patched["approvals"] == {**created["approvals"], "require": ["exec"]}
    assert patched["max_steps"] == 9 and patched["routing"]["top_k"] == 2 and patched["name"] == "Helper Two"

    failed(workbench(workbench_home, "agents", "edit", "helper"), "Nothing to change")
    failed(workbench(workbench_home, "agents", "edit", "helper", "--patch", "{oops"), "--patch is not valid JSON")
    failed(workbench(workbench_home, "agents", "edit", "helper", "--patch", "[1]"), "--patch must be a JSON object")
    failed(workbench(workbench_home, "agents", "edit", "helper", "--patch", '{"id": "other"}'), "cannot be changed: id")
    failed(workbench(workbench_home, "agents", "edit", "helper", "--max-steps", "0"), "max_steps")

    assert ok(workbench(workbench_home, "agents", "delete", "zed")) == "Deleted agent zed.\n"
    failed(workbench(workbench_home, "agents", "show", "zed"), "No agent 'zed'")
    with open_engine(workbench_home) as engine:
        page = engine.list_agents()
        assert [a.id for a in page.items] == ["alpha", "helper"]
        helper = engine.get_agent("helper")
        assert helper.name == "Helper Two" and helper.routing.top_k == 2 and helper.max_steps == 9
        assert helper.approvals.require == ["exec"]


def test_agent_errors_are_one_clear_sentence(workbench_home: Path, tmp_path: Path):
    ok(workbench(workbench_home, "agents", "create", "solo"))
    duplicate = workbench(workbench_home, "agents", "create", "solo", "--name", "Another")
    failed(duplicate, "An agent with id 'solo' already exists.")
    for action in ("show", "edit", "delete", "export"):
        extra = ["--name", "x"] if action == "edit" else []
        failed(workbench(workbench_home, "agents", action, "ghost", *extra), "No agent 'ghost'")
    failed(workbench(workbench_home, "agents", "create", "bad id!"), "id: String should match pattern")
    failed(workbench(workbench_home, "agents", "create", "with/slash"), "id: String should match pattern")
    failed(workbench(workbench_home, "agents", "create", "a" * 65), "id")
    failed(workbench(workbench_home, "agents", "create", "steps", "--max-steps", "101"), "max_steps")
    failed(
        workbench(workbench_home, "agents", "create", "kid", "--role", "child", "--parent", "nobody"),
        "The parent agent 'nobody' does not exist.",
    )
    failed(
        workbench(workbench_home, "agents", "create", "notes", "--instructions", f"@{tmp_path / 'none.md'}"),
        "Cannot read",
    )
    as_error = workbench(workbench_home, "agents", "show", "ghost", "--json")
    assert as_error.returncode == 1
    assert json.loads(as_error.stdout)["error"]["code"] == "not_found"
    conflict = workbench(workbench_home, "agents", "create", "solo", "--json")
    assert conflict.returncode == 1 and json.loads(conflict.stdout)["error"]["code"] == "conflict"
    # nothing was created or changed by the failures
    with open_engine(workbench_home) as engine:
        page = engine.list_agents()
        assert [a.id for a in page.items] == ["solo"]
        assert page.items[0].name == "solo"


def test_export_delete_import_round_trip(workbench_home: Path, tmp_path: Path):
    ok(
        workbench(
            workbench_home,
            "agents",
            "create",
            "scribe",
            "--name",
            "Scribe",
            "--tool",
            "read_file",
            "--tool",
            "mcp.time.*",
            "--collection",
            "handbook",
            "--max-steps",
            "3",
            "--template",
            "xml",
            "--instructions",
            "Quote the handbook.\nCite every line.",
        )
    )
    ok(
        workbench(
            workbench_home,
            "agents",
            "edit",
            "scribe",
            "--patch",
            '{"routing": {"top_k": 1}, "guardrails": {"deny_patterns": ["secret"]}, "metadata": {"team": "docs"}}',
        )
    )
    before = as_json(workbench(workbench_home, "agents", "show", "scribe", "--json"))

    path = tmp_path / "scribe.yaml"
    exported = workbench(workbench_home, "agents", "export", "scribe", "--output", str(path))
    assert ok(exported) == ""
    assert exported.stderr == f"Wrote {path}.\n"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("format: workbench-agent/1\n")
    document = yaml.safe_load(text)
    assert document["agent"]["id"] == "scribe" and document["prompt_template"] == "xml"
    assert document["knowledge"]["collections"] == ["handbook"]
    assert "created_at" not in document["agent"]
    assert ok(workbench(workbench_home, "agents", "export", "scribe")) == text  # stdout holds the same YAML

    ok(workbench(workbench_home, "agents", "delete", "scribe"))
    failed(workbench(workbench_home, "agents", "show", "scribe"), "No agent 'scribe'")
    assert ok(workbench(workbench_home, "agents", "import", str(path))) == "Imported agent scribe.\n"
    after = as_json(workbench(workbench_home, "agents", "show", "scribe", "--json"))
    assert without_times(after) == without_times(before)

    failed(workbench(workbench_home, "agents", "import", str(path)), "An agent with id 'scribe' already exists.")

    document["agent"]["name"] = "Scribe Two"
    document["agent"]["max_steps"] = 5
    changed = tmp_path / "scribe-two.yaml"
    changed.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    assert ok(workbench(workbench_home, "agents", "import", str(changed), "--replace")) == "Imported agent scribe.\n"
    replaced = as_json(workbench(workbench_home, "agents", "show", "scribe", "--json"))
    assert replaced["name"] == "Scribe Two" and replaced["max_steps"] == 5
    assert replaced["created_at"] == after["created_at"]  # replacing keeps the agent's creation time
    assert without_times(replaced) == {**without_times(before), "name": "Scribe Two", "max_steps": 5}

    # import from standard input under a new id
    document["agent"]["id"] = "scribe-copy"
    piped = workbench(workbench_home, "agents", "import", "-", stdin=yaml.safe_dump(document))
    assert ok(piped) == "Imported agent scribe-copy.\n"

    not_export = tmp_path / "compose.yaml"
    not_export.write_text("services:\n  web:\n    image: nginx\n", encoding="utf-8")
    failed(
        workbench(workbench_home, "agents", "import", str(not_export)),
        "This is not a Workbench agent export (expected format: workbench-agent/1).",
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text("format: workbench-agent/1\nagent: [unclosed\n", encoding="utf-8")
    failed(workbench(workbench_home, "agents", "import", str(broken)), "The agent file is not valid YAML at line")
    failed(workbench(workbench_home, "agents", "import", str(tmp_path / "missing.yaml")), "Cannot read")
    bad_agent = tmp_path / "bad-agent.yaml"
    bad_agent.write_text("format: workbench-agent/1\nagent:\n  id: 'no spaces allowed'\n  name: x\n", encoding="utf-8")
    failed(workbench(workbench_home, "agents", "import", str(bad_agent)), "id")

    with open_engine(workbench_home) as engine:
        assert sorted(a.id for a in engine.list_agents().items) == ["scribe", "scribe-copy"]
        assert engine.get_agent("scribe-copy").name == "Scribe Two"


# --------------------------------------------------------------- workspace


def test_workspace_add_list_remove(workbench_home: Path, tmp_path: Path):
    empty = ok(workbench(workbench_home, "workspace", "list"))
    assert empty.startswith("No workspace roots:")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (tmp_path / "plain.txt").write_text("not a folder\n", encoding="utf-8")

    assert ok(workbench(workbench_home, "workspace", "add", str(first))) == f"{first.resolve()}\n"
    # a relative path with '..' is stored resolved
    ok(workbench(workbench_home, "workspace", "add", str(second / ".." / "second")))
    assert ok(workbench(workbench_home, "workspace", "list")) == f"{first.resolve()}\n{second.resolve()}\n"
    # adding again does not duplicate
    ok(workbench(workbench_home, "workspace", "add", str(first)))
    assert ok(workbench(workbench_home, "workspace", "list")).splitlines() == [
        str(second.resolve()),
        str(first.resolve()),
    ]

    failed(
        workbench(workbench_home, "workspace", "add", str(tmp_path / "plain.txt")),
        f"{tmp_path / 'plain.txt'} is not a folder.",
    )
    failed(workbench(workbench_home, "workspace", "add", str(tmp_path / "nowhere")), "is not a folder")
    failed(workbench(workbench_home, "workspace", "add", "/"), "The file-system root cannot be a workspace root.")

    assert ok(workbench(workbench_home, "workspace", "remove", str(first))) == f"{second.resolve()}\n"
    failed(workbench(workbench_home, "workspace", "remove", str(first)), "is not a workspace root")
    with open_engine(workbench_home) as engine:
        assert engine.workspace_roots() == [str(second.resolve())]
    assert ok(workbench(workbench_home, "workspace", "remove", str(second))).startswith("No workspace roots:")


# ------------------------------------------------------------------- tools


def test_tools_list_run_and_audit(workbench_home: Path, tmp_path: Path):
    listing = ok(workbench(workbench_home, "tools", "list"))
    rows = {line.split()[0]: line.split()[1] for line in listing.splitlines()}
    assert rows["read_file"] == "read" and rows["write_file"] == "write"
    assert rows["run_command"] == "exec" and rows["http_fetch"] == "network"
    tools = {t["name"]: t for t in as_json(workbench(workbench_home, "tools", "list", "--json"))}
    assert tools["read_file"]["permission"] == "read" and tools["read_file"]["source"] == "builtin"
    assert tools["read_file"]["parameters"]["required"] == ["path"]

    # no workspace root yet: the file tools refuse
    no_root = workbench(workbench_home, "tools", "run", "read_file", "--args", '{"path": "a.txt"}')
    assert no_root.returncode == 1 and "workspace root" in no_root.stderr and "Traceback" not in no_root.stderr

    root = tmp_path / "ws"
    root.mkdir()
    (root / "a.txt").write_text("alpha line\nbeta line\n", encoding="utf-8")
    (tmp_path / "x").write_text("outside the root\n", encoding="utf-8")
    ok(workbench(workbench_home, "workspace", "add", str(root)))

    read = workbench(workbench_home, "tools", "run", "read_file", "--args", '{"path": "a.txt"}')
    assert ok(read) == "alpha line\nbeta line\n\n"
    escaped = workbench(workbench_home, "tools", "run", "read_file", "--args", '{"path": "../x"}')
    assert escaped.returncode == 1 and escaped.stdout == ""
    assert escaped.stderr == "error: The path '../x' is outside the workspace roots.\n"
    as_result = json.loads(
        workbench(
            workbench_home, "tools", "run", "read_file", "--args", '{"path": "a.txt", "start_line": 2}', "--json"
        ).stdout
    )
    assert as_result["ok"] is True and as_result["status"] == "ok"
    assert as_result["output"].startswith("beta line\n") and "[showing lines 2-2 of 2]" in as_result["output"]
    invalid = workbench(workbench_home, "tools", "run", "read_file", "--args", '{"file": "a.txt"}')
    assert invalid.returncode == 1 and invalid.stderr.startswith("invalid: ")

    failed(workbench(workbench_home, "tools", "run", "no_such_tool"), "No tool named 'no_such_tool'")
    failed(workbench(workbench_home, "tools", "run", "read_file", "--args", "{nope"), "--args is not valid JSON")

    records = as_json(workbench(workbench_home, "tools", "audit", "--json"))
    assert [(r["tool"], r["status"]) for r in records] == [
        ("read_file", "invalid"),
        ("read_file", "ok"),
        ("read_file", "error"),
        ("read_file", "ok"),
        ("read_file", "error"),
    ]  # newest first: the wrong argument, start_line 2, '../x', a.txt, no root
    escaped_record = records[2]
    assert escaped_record["arguments"] == {"path": "../x"}
    assert escaped_record["permission"] == "read"
    assert escaped_record["error"] == "The path '../x' is outside the workspace roots."
    assert escaped_record["run_id"] is None and escaped_record["agent_id"] is None
    assert records[3]["arguments"] == {"path": "a.txt"} and records[3]["result"] == "alpha line\nbeta line\n"
    assert "outside the root" not in json.dumps(records)

    limited = as_json(workbench(workbench_home, "tools", "audit", "--limit", "2", "--json"))
    assert [r["id"] for r in limited] == [r["id"] for r in records[:2]]
    text = ok(workbench(workbench_home, "tools", "audit", "--tool", "read_file"))
    assert len(text.splitlines()) == 5 and '{"path": "../x"}' in text and " error " in text
    assert ok(workbench(workbench_home, "tools", "audit", "--tool", "write_file")) == "No tool executions recorded.\n"


# -------------------------------------------------------------------- runs


def _writer(home: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    ok(workbench(home, "workspace", "add", str(root)))
    ok(workbench(home, "agents", "create", "writer", "--tool", "write_file"))
    return root


def _only_run(home: Path) -> dict[str, Any]:
    runs = as_json(workbench(home, "runs", "list", "--json"))
    assert len(runs) == 1, runs
    return runs[0]


def _check_exit_code(result: subprocess.CompletedProcess, run: dict[str, Any]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == (0 if run["status"] == "finished" else 1), (run, result.stderr)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_run_denied_at_the_prompt_writes_nothing(workbench_home: Path, tmp_path: Path):
    root = _writer(workbench_home, tmp_path)
    result = workbench(workbench_home, "run", "writer", TASK, "--max-steps", "1", stdin="n\n", timeout=RUN_TIMEOUT)
    run = _only_run(workbench_home)
    _check_exit_code(result, run)
    assert run["status"] == "max_steps" and result.returncode == 1
    assert run["agent_id"] == "writer" and run["task"] == TASK and run["steps"] == 1
    assert "Approval needed: write_file (write)" in result.stderr
    assert "approval denied" in result.stderr
    assert f"run {run['id']} · writer on " in result.stderr
    assert _files(root) == []

    records = as_json(workbench(workbench_home, "tools", "audit", "--json"))
    assert records and all(r["run_id"] == run["id"] and r["agent_id"] == "writer" for r in records)
    assert [r["status"] for r in records] == ["denied"]
    assert records[0]["tool"] == "write_file" and records[0]["permission"] == "write"
    assert "denied at the prompt" in records[0]["error"]

    # the run's events, as the CLI shows them
    listed = ok(workbench(workbench_home, "runs", "list"))
    assert listed.startswith(f"{run['id']}  writer") and "max_steps" in listed and "Write 'buy milk'" in listed
    shown = as_json(workbench(workbench_home, "runs", "show", run["id"], "--json"))
    assert shown["run"] == run
    types = [e["type"] for e in shown["events"]]
    assert types[0] == "agent_run_started" and types[-1] == "agent_run_finished"
    assert [e["seq"] for e in shown["events"]] == list(range(1, len(types) + 1))
    for kind in (
        "step_started",
        "tool_call_proposed",
        "approval_requested",
        "approval_resolved",
        "tool_result",
        "step_finished",
    ):
        assert kind in types, types
    assert types.index("tool_call_proposed") < types.index("approval_requested") < types.index("approval_resolved")
    proposed = next(e["payload"] for e in shown["events"] if e["type"] == "tool_call_proposed")
    requested = next(e["payload"] for e in shown["events"] if e["type"] == "approval_requested")["approval"]
    resolved = next(e["payload"] for e in shown["events"] if e["type"] == "approval_resolved")["approval"]
    assert requested["tool"] == "write_file" and requested["status"] == "pending"
    assert requested["arguments"] == proposed["arguments"] == records[0]["arguments"]
    assert resolved["id"] == requested["id"] and resolved["status"] == "denied"
    assert resolved["reason"] == "denied at the prompt"
    shown_text = workbench(workbench_home, "runs", "show", run["id"])
    assert ok(shown_text).startswith(f"{run['id']}  writer  max_steps  1 step(s)")
    assert f"task: {TASK}" in shown_text.stdout
    failed(workbench(workbench_home, "runs", "show", "run_missing"), "No run 'run_missing'")


def test_run_approved_at_the_prompt_executes_the_call_inside_the_root(workbench_home: Path, tmp_path: Path):
    root = _writer(workbench_home, tmp_path)
    result = workbench(workbench_home, "run", "writer", TASK, "--max-steps", "1", stdin="y\n", timeout=RUN_TIMEOUT)
    run = _only_run(workbench_home)
    _check_exit_code(result, run)
    assert "Approval needed: write_file (write)" in result.stderr
    assert "approval approved" in result.stderr

    records = as_json(workbench(workbench_home, "tools", "audit", "--run", run["id"], "--json"))
    assert len(records) == 1, records
    (record,) = records
    assert record["tool"] == "write_file" and record["status"] in ("ok", "error"), record
    shown = as_json(workbench(workbench_home, "runs", "show", run["id"], "--json"))
    approvals = [e["payload"]["approval"] for e in shown["events"] if e["type"] == "approval_resolved"]
    assert [a["status"] for a in approvals] == ["approved"]
    assert approvals[0]["arguments"] == record["arguments"]  # what ran is exactly what was approved
    with open_engine(workbench_home) as engine:
        stored = engine.approvals.list(run["id"])
        assert [(a.tool, a.status) for a in stored] == [("write_file", "approved")]

    written = _files(root)
    if record["status"] == "ok":
        target = (root / record["arguments"]["path"]).resolve()
        assert target.is_relative_to(root.resolve())
        assert written == [target]
        assert target.read_text(encoding="utf-8") == record["arguments"]["content"]
        assert f"Wrote {len(record['arguments']['content'])} characters" in record["result"]
    else:
        assert written == [] and record["error"], record
    # nothing was written next to the root either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "ws"]


def test_run_without_anyone_to_ask_is_denied(workbench_home: Path, tmp_path: Path):
    root = _writer(workbench_home, tmp_path)
    result = workbench(
        workbench_home, "run", "writer", TASK, "--max-steps", "1", "--json", devnull=True, timeout=RUN_TIMEOUT
    )
    run = _only_run(workbench_home)
    _check_exit_code(result, run)
    assert result.returncode == 1 and run["status"] == "max_steps"
    assert "Approval needed: write_file (write)" in result.stderr
    assert "No terminal to ask: denied." in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "agent_run_started" and types[-1] == "agent_run_finished"
    assert "approval_requested" in types
    resolved = next(e for e in events if e["type"] == "approval_resolved")["approval"]
    assert resolved["status"] == "denied" and resolved["reason"] == "no one was there to approve"
    assert events[-1]["run"]["id"] == run["id"] and events[-1]["run"]["status"] == "max_steps"
    records = as_json(workbench(workbench_home, "tools", "audit", "--json"))
    assert [r["status"] for r in records] == ["denied"]
    assert _files(root) == []


def test_run_that_finishes_prints_the_answer_and_exits_zero(workbench_home: Path):
    ok(workbench(workbench_home, "agents", "create", "talker", "--instructions", "You greet people politely."))
    result = workbench(
        workbench_home, "run", "talker", "Say hello to Ada.", "--max-steps", "1", devnull=True, timeout=RUN_TIMEOUT
    )
    run = _only_run(workbench_home)
    _check_exit_code(result, run)
    assert run["status"] == "finished" and result.returncode == 0
    assert run["answer"] and result.stdout.strip() == run["answer"].strip()
    assert "step 1 · tools offered: none" in result.stderr
    assert "[finished · 1 step(s) · " in result.stderr
    assert "Approval needed" not in result.stderr
    assert as_json(workbench(workbench_home, "tools", "audit", "--json")) == []

    failed(workbench(workbench_home, "run", "ghost", "Say hello."), "No agent 'ghost'")
    failed(workbench(workbench_home, "run", "talker", "Say hello.", "--model", "no-such-model"), "Unknown model")
    failed(
        workbench(workbench_home, "run", "talker", "Say hello.", "--session", "ses_missing"),
        "No session with id 'ses_missing'",
    )
    assert len(as_json(workbench(workbench_home, "runs", "list", "--json"))) == 1  # failures started no run
    assert as_json(workbench(workbench_home, "runs", "list", "--agent", "nobody", "--json")) == []


# --------------------------------------------------------------------- mcp


def test_mcp_add_list_remove(workbench_home: Path):
    added = workbench(
        workbench_home, "mcp", "add", "--tool-permission", "get_current_time=read", "time", "--", *TIME_CMD
    )
    assert ok(added) == f"Added MCP server time: {' '.join(TIME_CMD)} (tools: exec).\n"
    config = json.loads((workbench_home / "mcp.json").read_text(encoding="utf-8"))
    assert config["servers"]["time"]["command"] == TIME_CMD
    assert config["servers"]["time"]["tool_permissions"] == {"get_current_time": "read"}

    listing = ok(workbench(workbench_home, "mcp", "list"))
    assert listing.startswith(f"time  [running, exec]  {' '.join(TIME_CMD)}\n"), listing
    assert "  mcp.time.get_current_time (read): " in listing
    assert "  mcp.time.convert_time (exec): " in listing
    assert "error:" not in listing

    tools = {t["name"]: t for t in as_json(workbench(workbench_home, "tools", "list", "--json"))}
    assert tools["mcp.time.get_current_time"]["permission"] == "read"
    assert tools["mcp.time.get_current_time"]["source"] == "mcp:time"
    assert tools["mcp.time.convert_time"]["permission"] == "exec"
    now = json.loads(
        workbench(
            workbench_home, "tools", "run", "mcp.time.get_current_time", "--args", '{"timezone": "UTC"}', "--json"
        ).stdout
    )
    assert now["ok"] is True and json.loads(now["output"])["timezone"] == "UTC"

    failed(workbench(workbench_home, "mcp", "add", "time", "--", *TIME_CMD), "already exists")
    failed(workbench(workbench_home, "mcp", "add", "other"), "Give the server's command after --")
    failed(workbench(workbench_home, "mcp", "add", "other", "--"), "Give the server's command after --")
    failed(
        workbench(workbench_home, "mcp", "add", "--tool-permission", "get_current_time", "other", "--", *TIME_CMD),
        "--tool-permission must look like KEY=VALUE",
    )
    failed(workbench(workbench_home, "mcp", "add", "Bad Name", "--", *TIME_CMD), "server name")

    assert ok(workbench(workbench_home, "mcp", "remove", "time")) == "Removed MCP server time.\n"
    assert ok(workbench(workbench_home, "mcp", "list")).startswith("No MCP servers.")
    assert not any(
        name.startswith("mcp.")
        for name in (t["name"] for t in as_json(workbench(workbench_home, "tools", "list", "--json")))
    )
    failed(workbench(workbench_home, "mcp", "remove", "time"), "There is no MCP server named 'time'")


def test_mcp_add_options_after_the_name_are_options(workbench_home: Path):
    result = workbench(workbench_home, "mcp", "add", "time", "--permission", "read", "--", *TIME_CMD, "--", "-x")
    config = json.loads((workbench_home / "mcp.json").read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr
    # everything after the first `--` is the server's, later `--` included
    assert config["servers"]["time"]["command"] == [*TIME_CMD, "--", "-x"]
    assert config["servers"]["time"]["permission"] == "read"


# -------------------------------------------------------------------- help


@pytest.mark.parametrize(
    "command, actions",
    [
        ("agents", ["create", "list", "show", "edit", "delete", "export", "import", "enrich"]),
        ("run", ["AGENT", "task", "--model", "--max-steps", "--json", "denied"]),
        ("runs", ["list", "show"]),
        ("tools", ["list", "run", "audit"]),
        ("mcp", ["add", "list", "remove", "accept"]),
        ("workspace", ["list", "add", "remove"]),
    ],
)
def test_help_lists_the_actions(workbench_home: Path, command: str, actions: list[str]):
    result = workbench(workbench_home, command, "--help")
    text = ok(result)
    assert text.startswith(f"usage: workbench {command}")
    for action in actions:
        assert action in text, (action, text)
    assert not workbench_home.exists()  # help does not open (or create) a home
