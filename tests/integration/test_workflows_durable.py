"""Durable workflows on real DBOS (SQLite in the home), real tools, real processes killed with SIGKILL.

Each test runs `workbench workflows ...` in subprocesses against its own home and
reads progress in-process through `WorkflowService` without an engine (it reads
the workflow database only, as another terminal would).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env, wait_until

pytestmark = pytest.mark.timeout(240)


def _workspace(home: Path, tmp_path: Path) -> Path:
    from workbench.engine.engine import Engine

    root = tmp_path / "ws"
    root.mkdir()
    with Engine(home) as engine:
        engine.add_workspace_root(str(root))
    return root


def _cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=ROOT,
        timeout=timeout,
    )


def _start(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "workbench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(home),
        cwd=ROOT,
    )


def _service(home: Path):
    from workbench.engine.workflows.durable import WorkflowService

    return WorkflowService(home)


def _only_workflow(home: Path) -> str:
    flows = wait_until(lambda: _service(home).list() if _service(home).store.exists() else [], what="a workflow")
    assert len(flows) == 1
    return flows[0].id


def _step(home: Path, workflow_id: str, step_id: str):
    return next((s for s in _service(home).status(workflow_id).steps if s.id == step_id), None)


def _audit_counts(home: Path, workflow_id: str, steps: list[str]) -> dict[str, list[str]]:
    from workbench.engine.engine import Engine

    with Engine(home) as engine:
        return {
            step: sorted(r.status for r in engine.tools.audit(idempotency_key=f"{workflow_id}:{step}"))
            for step in steps
        }


CRASH_FLOW = """
name: five-writes
steps:
  - {id: s1, kind: tool, tool: write_file, arguments: {path: log.txt, content: "s1\\n", append: true}}
  - {id: s2, kind: tool, tool: write_file, arguments: {path: log.txt, content: "s2\\n", append: true}}
  - {id: s3, kind: tool, tool: run_command,
     arguments: {argv: [sh, -c, "echo s3 >> log.txt; if [ ! -e once ]; then touch once; sleep 4; fi"]}}
  - {id: look, kind: tool, tool: read_file, arguments: {path: log.txt}}
  - {id: s5, kind: tool, tool: write_file, arguments: {path: log.txt, content: "s5 after {{ steps.look.output | length }} chars\\n", append: true}}
"""


def test_a_killed_workflow_resumes_without_repeating_completed_steps_and_holds_the_in_flight_write(
    workbench_home: Path, tmp_path: Path
) -> None:
    ws = _workspace(workbench_home, tmp_path)
    flow = tmp_path / "flow.yaml"
    flow.write_text(CRASH_FLOW, encoding="utf-8")
    log = ws / "log.txt"

    first = _start(workbench_home, "workflows", "run", str(flow))
    try:
        # s3 has appended its line and sleeps: it is in flight. Kill the whole process, as a crash would.
        wait_until(lambda: log.exists() and "s3" in log.read_text(), what="step s3 to start")
        workflow_id = _only_workflow(workbench_home)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert log.read_text().splitlines() == ["s1", "s2", "s3"]
    assert _service(workbench_home).status(workflow_id).status == "interrupted"

    second = _start(workbench_home, "workflows", "resume", workflow_id)
    try:
        held = wait_until(
            lambda: (s := _step(workbench_home, workflow_id, "s3")) is not None and s.status == "needs_decision" and s,
            what="s3 to wait for a decision",
        )
        # What it was about to do, and that the audit log saw the call start but never finish.
        assert held.detail["tool"] == "run_command" and held.detail["arguments"]["argv"][0] == "sh"
        assert held.detail["idempotency_key"] == f"{workflow_id}:s3" and held.detail["audit"] == "running"
        assert _service(workbench_home).status(workflow_id).status == "needs_decision"
        # Nothing ran again while it waits: completed steps are not repeated, the in-flight one is held.
        assert log.read_text().splitlines() == ["s1", "s2", "s3"]

        # A person decides from another process: retry.
        decided = _cli(workbench_home, "workflows", "decide", workflow_id, "s3", "retry")
        assert decided.returncode == 0, decided.stderr
        again = _cli(workbench_home, "workflows", "decide", workflow_id, "s3", "skip")
        assert again.returncode == 1 and again.stderr.count("\n") == 1 and "not waiting for a decision" in again.stderr
        out, _ = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, out
    assert f"{workflow_id} completed." in out

    lines = log.read_text().splitlines()
    assert lines[:4] == ["s1", "s2", "s3", "s3"]  # s3 twice: the person chose retry
    assert len(lines) == 5 and lines[4].startswith("s5 after ")
    audit = _audit_counts(workbench_home, workflow_id, ["s1", "s2", "s3", "look", "s5"])
    assert audit == {"s1": ["ok"], "s2": ["ok"], "s3": ["ok", "running"], "look": ["ok"], "s5": ["ok"]}
    status = _service(workbench_home).status(workflow_id)
    assert status.status == "completed" and {s.id: s.attempt for s in status.steps}["s3"] == 2


FIVE_WRITES = "name: five\nsteps:\n" + "".join(
    f'  - {{id: w{n}, kind: tool, tool: write_file, arguments: {{path: log.txt, content: "w{n}\\n", append: true}}}}\n'
    for n in range(1, 6)
)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_killed_at_a_random_moment_every_write_happens_exactly_once(
    workbench_home: Path, tmp_path: Path, seed: int
) -> None:
    import random
    import time

    ws = _workspace(workbench_home, tmp_path)
    flow = tmp_path / "flow.yaml"
    flow.write_text(FIVE_WRITES, encoding="utf-8")
    log = ws / "log.txt"
    first = _start(workbench_home, "workflows", "run", str(flow))
    try:
        workflow_id = _only_workflow(workbench_home)
        wait_until(lambda: _step(workbench_home, workflow_id, "w1") is not None, what="the first step")
        time.sleep(random.Random(seed).uniform(0.0, 0.5))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    if _service(workbench_home).status(workflow_id).status != "completed":
        second = _start(workbench_home, "workflows", "resume", workflow_id)
        try:
            while second.poll() is None:
                status = _service(workbench_home).status(workflow_id)
                for step in status.steps:
                    if step.status == "needs_decision":
                        # What a person would do: look at the file the call was about to append to.
                        written = f"{step.id}" in (log.read_text().splitlines() if log.exists() else [])
                        choice = "skip" if written else "retry"
                        assert _cli(workbench_home, "workflows", "decide", workflow_id, step.id, choice).returncode == 0
                time.sleep(0.1)
            out = second.communicate(timeout=60)[0]
        finally:
            if second.poll() is None:
                second.kill()
        assert second.returncode == 0, out
    assert log.read_text().splitlines() == ["w1", "w2", "w3", "w4", "w5"]
    assert _service(workbench_home).status(workflow_id).status == "completed"


APPROVAL_FLOW = """
name: approve-then-write
steps:
  - {id: before, kind: tool, tool: write_file, arguments: {path: log.txt, content: "before\\n", append: true}}
  - {id: ok, kind: approval, prompt: "Publish {{ steps.before.output }}?", timeout_seconds: 3600, default: deny}
  - {id: after, kind: tool, tool: write_file, arguments: {path: log.txt, content: "after\\n", append: true}}
"""


def test_an_approval_survives_a_kill_and_is_given_from_another_process(workbench_home: Path, tmp_path: Path) -> None:
    ws = _workspace(workbench_home, tmp_path)
    flow = tmp_path / "flow.yaml"
    flow.write_text(APPROVAL_FLOW, encoding="utf-8")

    first = _start(workbench_home, "workflows", "run", str(flow))
    try:
        workflow_id = _only_workflow(workbench_home)
        wait_until(
            lambda: _service(workbench_home).status(workflow_id).status == "waiting_approval",
            what="the approval to wait",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()

    # Nobody runs it now; the approval is still pending and is given from a third process.
    status = _service(workbench_home).status(workflow_id)
    assert not status.active
    shown = _cli(workbench_home, "workflows", "status", workflow_id)
    assert "waits for approval" in shown.stdout and f"workbench workflows resume {workflow_id}" in shown.stdout
    assert status.waiting_on == ["ok"] and "Publish" in _step(workbench_home, workflow_id, "ok").detail["prompt"]
    approved = _cli(workbench_home, "workflows", "approve", workflow_id, "ok", "--reason", "looks right")
    assert approved.returncode == 0, approved.stderr
    twice = _cli(workbench_home, "workflows", "approve", workflow_id, "ok")
    assert twice.returncode == 1 and "not waiting for approval" in twice.stderr and twice.stderr.count("\n") == 1

    resumed = _cli(workbench_home, "workflows", "resume", workflow_id, "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = json.loads(resumed.stdout)
    assert final["status"] == "completed"
    ok = next(s for s in final["steps"] if s["id"] == "ok")
    assert ok["status"] == "approved" and ok["detail"]["by"] == "a person" and ok["detail"]["reason"] == "looks right"
    assert (ws / "log.txt").read_text().splitlines() == ["before", "after"]
    assert _audit_counts(workbench_home, workflow_id, ["before", "after"]) == {"before": ["ok"], "after": ["ok"]}

    # Finished: nothing to resume, nothing to approve.
    done = _cli(workbench_home, "workflows", "resume", workflow_id)
    assert done.returncode == 1 and "already finished" in done.stderr


def _deadline_recorded(home: Path, workflow_id: str) -> bool:
    from dbos import DBOSClient, DBOSPortableJSONSerializer

    from workbench.engine.workflows.durable import database_url

    client = DBOSClient(system_database_url=database_url(home), serializer=DBOSPortableJSONSerializer())
    try:
        return any(s["function_name"] == "DBOS.sleep" for s in client.list_workflow_steps(workflow_id))
    finally:
        client.destroy()


def test_an_approval_deadline_survives_a_kill_and_its_default_is_taken(workbench_home: Path, tmp_path: Path) -> None:
    import time

    ws = _workspace(workbench_home, tmp_path)
    flow = tmp_path / "flow.yaml"
    timeout = 6
    flow.write_text(
        "name: deadline\nsteps:\n"
        f"  - {{id: ok, kind: approval, timeout_seconds: {timeout}, default: approve}}\n"
        "  - {id: after, kind: tool, tool: write_file, arguments: {path: after.txt, content: x}}\n",
        encoding="utf-8",
    )
    first = _start(workbench_home, "workflows", "run", str(flow))
    try:
        workflow_id = _only_workflow(workbench_home)
        wait_until(lambda: _service(workbench_home).status(workflow_id).status == "waiting_approval", what="the wait")
        asked = _step(workbench_home, workflow_id, "ok").detail["waiting_since"]
        # Kill only once DBOS has recorded the wait's deadline (before that, the wait had not durably begun).
        wait_until(lambda: _deadline_recorded(workbench_home, workflow_id), what="the recorded deadline")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    time.sleep(max(0.0, asked + timeout - time.time()))  # the deadline passes while nobody runs it
    resumed = _cli(workbench_home, "workflows", "resume", workflow_id, "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    ok = next(s for s in json.loads(resumed.stdout)["steps"] if s["id"] == "ok")
    assert ok["status"] == "approved" and ok["detail"]["by"] == "its default"
    # the resumed wait ended at once: the deadline was the original one, not `timeout` seconds more
    from datetime import datetime

    ended = datetime.fromisoformat(ok["finished_at"]).timestamp()
    assert ended - ok["detail"]["waiting_since"] < timeout / 2
    assert (ws / "after.txt").read_text() == "x"


def test_bad_input_gets_one_sentence(workbench_home: Path, tmp_path: Path) -> None:
    _workspace(workbench_home, tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps: [{id: a, kind: tool, tool: no_such_tool}]\n", encoding="utf-8")
    needs = tmp_path / "needs.yaml"
    needs.write_text("name: x\ninputs: [topic]\nsteps: [{id: a, kind: tool, tool: read_file}]\n", encoding="utf-8")
    cases = [
        (("workflows", "validate", str(bad)), 1, "Step 'a', field 'tool'"),
        (("workflows", "run", str(needs)), 1, "needs the input(s) 'topic'"),
        (("workflows", "run", str(needs), "--input", "topic"), 1, "NAME=VALUE"),
        (("workflows", "status", "wf-000000000000"), 1, "No workflow"),
        (("workflows", "approve", "wf-000000000000", "ok"), 1, "No workflow"),
        (("workflows", "approve", "nonsense", "ok"), 1, "workflow_id"),
        (("workflows", "decide", "wf-000000000000", "s1", "maybe"), 2, "invalid choice"),
    ]
    for args, code, words in cases:
        result = _cli(workbench_home, *args)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        if code == 1:
            assert result.stderr.count("\n") == 1, result.stderr
    listing = _cli(workbench_home, "workflows", "list")
    assert listing.returncode == 0 and "No workflows yet" in listing.stdout


def test_in_process_parallel_group_overlaps_and_a_timed_out_approval_takes_its_default(engine, tmp_path: Path) -> None:
    from workbench.engine.workflows.durable import WorkflowService

    ws = tmp_path / "ws"
    ws.mkdir()
    engine.add_workspace_root(str(ws))
    flow = """
name: fan-out
steps:
  - id: group
    kind: parallel
    max_concurrency: 3
    steps:
      - {id: a, kind: tool, tool: run_command, arguments: {argv: [sleep, "2"]}}
      - {id: b, kind: tool, tool: run_command, arguments: {argv: [sleep, "2"]}}
      - {id: c, kind: tool, tool: run_command, arguments: {argv: [sleep, "2"]}}
  - {id: ok, kind: approval, timeout_seconds: 1, default: approve}
  - {id: gate, kind: condition, if: {step: ok, equals: approved}, then: write, else: end}
  - {id: write, kind: tool, tool: write_file, arguments: {path: done.txt, content: "{{ steps.ok.output }}"}}
"""
    broken_flow = """
name: broken
steps:
  - {id: ok, kind: approval, prompt: "{{ 1 // 0 }}", timeout_seconds: 1}
"""
    denied_flow = """
name: denied
steps:
  - {id: ok, kind: approval, timeout_seconds: 0.5, default: deny}
  - {id: never, kind: tool, tool: write_file, arguments: {path: never.txt, content: x}}
"""
    with WorkflowService(engine.home, engine) as service:
        started = service.start({"text": flow})
        final = service.wait(started.id, timeout=120)
        stopped = service.wait(service.start({"text": denied_flow}).id, timeout=60)
        broken = service.wait(service.start({"text": broken_flow}).id, timeout=60)
    assert final.status == "completed", final
    # a denial (here by timeout, the default) stops the workflow before its next step
    assert stopped.status == "stopped" and "'ok' was denied" in (stopped.error or "")
    assert [s.id for s in stopped.steps] == ["ok"] and not (ws / "never.txt").exists()
    # a failure at run time ends the workflow `failed` with its one sentence (never "running" forever)
    assert broken.status == "failed" and "failed to render" in (broken.error or "")
    steps = {s.id: s for s in final.steps}
    # the three 2-second steps ran together: each started before any of them finished
    assert max(steps[m].started_at for m in "abc") < min(steps[m].finished_at for m in "abc")
    assert steps["ok"].status == "approved" and steps["ok"].detail["by"] == "its default"
    assert steps["gate"].output == "true" and (ws / "done.txt").read_text() == "approved"
    # DBOS's banner and log went to the log file, recorded with our application version
    text = (engine.home / "workbench.log").read_text()
    assert "DBOS launched" in text and "workbench-" in text
    # the workflow database is private to its owner, like the rest of the home
    assert os.stat(engine.home / "workflows.sqlite").st_mode & 0o777 == 0o600


def test_agent_and_handoff_steps_run_the_real_default_model(mem_engine, tmp_path: Path) -> None:
    from workbench.engine.workflows.durable import WorkflowService

    ws = tmp_path / "ws"
    ws.mkdir()
    mem_engine.add_workspace_root(str(ws))
    mem_engine.create_agent({"id": "writer", "name": "Writer", "tools": [], "max_steps": 2})
    mem_engine.create_agent({"id": "editor", "name": "Editor", "tools": [], "max_steps": 2})
    flow = """
name: write-edit
inputs: [topic]
steps:
  - {id: draft, kind: agent, agent: writer, task: "Name one {{ inputs.topic }}."}
  - {id: edit, kind: handoff, from: writer, to: editor, task: "Repeat the answer in capitals.",
     context: "{{ steps.draft.output }}"}
  - {id: save, kind: tool, tool: write_file, arguments: {path: out.txt, content: "{{ steps.edit.output }}"}}
"""
    with WorkflowService(mem_engine.home, mem_engine) as service:
        final = service.wait(service.start({"text": flow, "inputs": {"topic": "fruit"}}).id, timeout=180)
    assert final.status == "completed", final
    steps = {s.id: s for s in final.steps}
    draft, edit = steps["draft"], steps["edit"]
    assert draft.output and edit.output
    # the handoff carried the draft as context, to the target agent, and each run is a recorded agent run
    assert edit.detail["context"] == draft.output and edit.detail["to"] == "editor"
    assert mem_engine.get_run(draft.detail["run_id"]).agent_id == "writer"
    handed = mem_engine.get_run(edit.detail["run_id"])
    assert handed.agent_id == "editor" and draft.output in handed.task
    assert (ws / "out.txt").read_text() == edit.output


def test_resume_refuses_a_workflow_of_another_version_or_one_a_live_process_runs(engine) -> None:
    from workbench.engine.errors import InvalidRequest
    from workbench.engine.workflows.durable import WorkflowService, app_version

    service = WorkflowService(engine.home, engine)
    definition = '{"name": "x", "steps": [{"id": "a", "kind": "tool", "tool": "read_file"}]}'
    service.store.create("wf-0000000000aa", "x", definition, {}, "workbench-0.0.1")
    with pytest.raises(InvalidRequest, match=r"started by workbench-0\.0\.1 and this is " + app_version()):
        service.resume("wf-0000000000aa")
    service.store.create("wf-0000000000bb", "x", definition, {}, app_version())
    other = subprocess.Popen(["sleep", "60"])
    try:
        service.store._run("UPDATE wb_workflows SET owner_pid = ? WHERE id = 'wf-0000000000bb'", (other.pid,))
        with pytest.raises(InvalidRequest, match=f"running in process {other.pid}"):
            service.resume("wf-0000000000bb")
        assert service.status("wf-0000000000bb").status == "running"
    finally:
        other.kill()
        other.wait()
    # its owner gone, the same workflow reads as interrupted (resumable)
    assert service.status("wf-0000000000bb").status == "interrupted"
    assert not service._launched  # refused before DBOS was started


def test_a_long_lived_process_resumes_interrupted_workflows_at_start(workbench_home: Path, tmp_path: Path) -> None:
    ws = _workspace(workbench_home, tmp_path)
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        APPROVAL_FLOW.replace("timeout_seconds: 3600, default: deny", "timeout_seconds: 1, default: approve")
    )
    first = _start(workbench_home, "workflows", "run", str(flow))
    try:
        workflow_id = _only_workflow(workbench_home)
        wait_until(lambda: _step(workbench_home, workflow_id, "ok") is not None, what="the approval")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()

    from workbench.engine.engine import Engine
    from workbench.engine.workflows.durable import WorkflowService

    with Engine(workbench_home) as engine, WorkflowService(workbench_home, engine) as service:
        assert service.resume_interrupted() == [workflow_id]
        final = service.wait(workflow_id, timeout=120)
        assert final.status == "completed", final  # (else a step waiting here would hold the process at exit)
        assert service.resume_interrupted() == []  # finished: nothing left
    assert final.status == "completed" and final.active is False
    assert (ws / "log.txt").read_text().splitlines() == ["before", "after"]
