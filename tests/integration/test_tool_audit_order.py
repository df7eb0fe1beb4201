"""The audit row of a tool call is written before the tool runs: a call the audit log cannot record
does not run; one that runs is recorded "running", then completed."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workspace(engine, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    engine.add_workspace_root(str(root))
    return root


def test_a_call_the_audit_log_cannot_record_does_not_run(engine, workspace: Path) -> None:
    from workbench.engine.errors import StoreError

    # A real database that cannot take the audit row (as on a full disk): the tool must not run.
    engine.db.execute("ALTER TABLE tool_audit RENAME TO tool_audit_away")
    try:
        with pytest.raises(StoreError, match="run_command was not run.*audit log"):
            engine.execute_tool({"tool": "run_command", "arguments": {"argv": ["touch", "ran"]}})
        assert not (workspace / "ran").exists()
    finally:
        engine.db.execute("ALTER TABLE tool_audit_away RENAME TO tool_audit")
    done = engine.execute_tool({"tool": "run_command", "arguments": {"argv": ["touch", "ran"]}})
    assert done.ok and (workspace / "ran").exists()
    (record,) = engine.tool_audit(tool="run_command")
    assert record.id == done.audit_id and record.status == "ok" and record.duration_ms > 0


def test_the_audit_row_says_running_while_the_tool_runs(engine, workspace: Path) -> None:
    # The command waits for a file that the test writes once it has seen the audit log.
    import threading
    import time

    gate = workspace / "go"
    result: list = []
    worker = threading.Thread(
        target=lambda: result.append(
            engine.execute_tool(
                {"tool": "run_command", "arguments": {"argv": ["sh", "-c", "while [ ! -f go ]; do sleep 0.05; done"]}}
            )
        )
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not engine.tool_audit(tool="run_command") and time.monotonic() < deadline:
            time.sleep(0.05)
        (running,) = engine.tool_audit(tool="run_command")
        assert running.status == "running"
    finally:
        gate.write_text("")
        worker.join(timeout=60)
    (done,) = engine.tool_audit(tool="run_command")
    assert result[0].ok and done.status == "ok" and done.id == result[0].audit_id


def test_undecodable_tool_arguments_are_refused_and_still_audited(engine, workspace: Path) -> None:
    from workbench.engine.tools.base import ToolContext

    tool = engine.tools.get("run_command")
    # As a model's JSON "\udcff" escape reaches the registry (an agent run skips the request models).
    outcome = engine.tools.execute(
        tool,
        {"argv": ["touch", "ran", "x\udcff"]},
        ToolContext(roots=[str(workspace)], allow_private_network=False, engine=engine),
    )
    assert outcome.status == "invalid" and "not valid Unicode" in outcome.error
    assert not (workspace / "ran").exists()
    (record,) = engine.tool_audit(tool="run_command")
    assert record.status == "invalid" and record.arguments["argv"][2] == "x\ufffd"


def test_a_file_name_that_is_not_utf8_does_not_break_a_tool_or_its_audit(engine, workspace: Path) -> None:
    import os

    fd = os.open(os.fsencode(workspace) + b"/bad\xff.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    listed = engine.execute_tool({"tool": "list_dir", "arguments": {}})
    assert listed.ok and "bad\ufffd.txt" in listed.output
    (record,) = engine.tool_audit(tool="list_dir")
    assert record.status == "ok" and "bad\ufffd.txt" in record.result


def test_a_call_made_under_an_audit_key_carries_it_into_its_audit_row(engine, workspace: Path) -> None:
    from workbench.engine.tools.registry import audit_key

    with audit_key("wf-1:save"):
        done = engine.execute_tool({"tool": "run_command", "arguments": {"argv": ["touch", "keyed"]}})
        # a call refused by validation is audited with the key too
        bad = engine.execute_tool({"tool": "run_command", "arguments": {"argv": "not a list"}})
    plain = engine.execute_tool({"tool": "run_command", "arguments": {"argv": ["touch", "plain"]}})
    keyed = engine.tools.audit(idempotency_key="wf-1:save")
    assert {r.id for r in keyed} == {done.audit_id, bad.audit_id}
    assert all(r.idempotency_key == "wf-1:save" for r in keyed)
    (unkeyed,) = [r for r in engine.tool_audit(tool="run_command") if r.id == plain.audit_id]
    assert unkeyed.idempotency_key is None
