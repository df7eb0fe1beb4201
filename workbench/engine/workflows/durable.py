"""Workflows run on DBOS Transact: every step checkpointed, a crash resumed without repeating side effects.

One DBOS workflow (`workbench_flow`) interprets a definition; each agent, tool
and handoff step is a DBOS step whose output DBOS checkpoints in
`<home>/workflows.sqlite`, so a workflow resumed after a crash skips every
completed step. Exactly once, not at least once, for side effects:

* a read-class tool step, an agent or a handoff step found in flight runs again
  (reading twice, or asking a model twice, harms nothing);
* a write, exec or network tool step found in flight (its row says "running"
  but DBOS holds no output) does not run again by itself: it becomes
  `needs_decision`, showing what it was about to do (and whether the audit log
  saw the call start), and waits for a person to choose retry, skip or fail;
* every tool call is audited with the idempotency key `workflow_id:step_id`.

Approval steps wait with `DBOS.recv` (durable: the wait and its deadline
survive restarts); a person answers from any process through `DBOSClient.send`.

DBOS is imported only here, and only when a workflow starts or resumes. It runs
embedded: SQLite, no Conductor, no OpenTelemetry export, its log in our log
file; each process is its own executor, so a launch never picks up another
process's workflows behind anyone's back: `resume` does that, explicitly.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from workbench.engine.errors import InvalidRequest, NotFound, WorkbenchError
from workbench.engine.workflows import definition as defs
from workbench.engine.workflows.models import (
    ApproveRequest,
    DecideRequest,
    StartRequest,
    ValidateRequest,
    ValidateResponse,
    WorkflowStatus,
    WorkflowSummary,
    validate,
)
from workbench.engine.workflows.store import DATABASE_FILE, WorkflowStore, pid_alive

log = logging.getLogger("workbench.workflows")

APP_NAME = "workbench"
#: how long a needs_decision step waits for a person before the workflow fails
DECISION_TIMEOUT_S = 30 * 24 * 3600.0
READ_ONLY = ("read",)


def app_version() -> str:
    """The version recorded with every workflow: one started by another version is not resumed silently."""
    from workbench import __version__

    return f"workbench-{__version__}"


class EngineLike(Protocol):
    """What running steps needs of the engine (the in-process `Engine` has all of it)."""

    def execute_tool(self, request: Any) -> Any: ...

    def run_agent(self, request: Any) -> Iterator[Any]: ...

    def get_agent(self, agent_id: str) -> Any: ...

    def list_tools(self) -> list[Any]: ...


class EngineCatalog:
    """The `definition.Catalog` of an engine: its agents and tools."""

    def __init__(self, engine: EngineLike) -> None:
        self.engine = engine
        self._tools: dict[str, str] | None = None

    def has_agent(self, agent_id: str) -> bool:
        try:
            self.engine.get_agent(agent_id)
        except (NotFound, InvalidRequest):
            return False
        return True

    def tool_permission(self, name: str) -> str | None:
        if self._tools is None:
            self._tools = {t.name: t.permission for t in self.engine.list_tools()}
        return self._tools.get(name)


# ------------------------------------------------------------------ runtime

_ACTIVE: WorkflowService | None = None
_registered: dict[str, Any] = {}
_runtime_lock = threading.Lock()


def _route_dbos_log(home: Path) -> None:
    """DBOS logs to the `dbos` logger: into this home's log file (added before DBOS would add its console
    handler, which prints a banner naming its hosted console), never to the terminal."""
    logger = logging.getLogger("dbos")
    logger.propagate = False
    path = str((home / "workbench.log").resolve())
    for old in list(logger.handlers):
        if old.name == "__dbos_console_log_handler__" or (
            isinstance(old, logging.FileHandler) and old.baseFilename != path
        ):
            logger.removeHandler(old)
            old.close()
    if not logger.handlers:
        handler: logging.Handler
        try:
            handler = logging.FileHandler(path, encoding="utf-8")
            from workbench.engine.config import make_private

            make_private(Path(path))
        except OSError:
            handler = logging.NullHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.handleError = lambda record: None  # type: ignore[method-assign]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _workflow_function() -> Any:
    """The one DBOS workflow, registered once per process (before launch)."""
    if "flow" not in _registered:
        from dbos import DBOS

        _registered["flow"] = DBOS.workflow(name="workbench_flow", max_recovery_attempts=1000)(_run_flow)
    return _registered["flow"]


def _serializer() -> Any:
    from dbos import DBOSPortableJSONSerializer

    return DBOSPortableJSONSerializer()


def database_url(home: Path) -> str:
    return f"sqlite:///{Path(home) / DATABASE_FILE}"


# --------------------------------------------------------------- the flow


class _Stop(Exception):
    """The workflow ends early with `status` (failed, stopped)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def _run_flow(definition_json: str, inputs: dict[str, str]) -> dict[str, Any]:
    """The body of `workbench_flow`: walk the steps (re-run from the top on recovery; DBOS replays outputs)."""
    from dbos import DBOS

    service = _service()
    workflow_id = DBOS.workflow_id
    assert workflow_id is not None
    definition = defs.WorkflowDefinition.model_validate(json.loads(definition_json))
    flow = _Flow(service, workflow_id, definition, inputs)
    try:
        flow.run()
    except _Stop as stop:
        service.store.finish(workflow_id, stop.status, str(stop))
        return {"status": stop.status, "error": str(stop)}
    except WorkbenchError as exc:  # e.g. a template that fails to render with the outputs it got
        service.store.finish(workflow_id, "failed", str(exc))
        return {"status": "failed", "error": str(exc)}
    except Exception as exc:  # a bug or a broken database: say so instead of showing "running" forever
        log.exception("workflow %s failed unexpectedly", workflow_id)
        service.store.finish(workflow_id, "failed", f"failed unexpectedly ({type(exc).__name__}); see workbench.log")
        raise
    service.store.finish(workflow_id, "completed")
    return {"status": "completed", "outputs": {k: v["output"] for k, v in flow.outputs.items()}}


class _Flow:
    def __init__(
        self, service: WorkflowService, workflow_id: str, definition: defs.WorkflowDefinition, inputs: dict[str, str]
    ) -> None:
        self.service = service
        self.store = service.store
        self.id = workflow_id
        self.definition = definition
        self.inputs = inputs
        self.outputs: dict[str, dict[str, Any]] = {}

    def run(self) -> None:
        steps = self.definition.steps
        position = 0
        while position < len(steps):
            step = steps[position]
            target = self.run_step(step)
            if target == defs.END:
                for skipped in steps[position + 1 :]:
                    self._skip(skipped)
                return
            if target is not None:
                destination = self.definition.index(target)
                for skipped in steps[position + 1 : destination]:
                    self._skip(skipped)
                position = destination
            else:
                position += 1

    def _skip(self, step: Any) -> None:
        self.outputs.setdefault(step.id, {"output": "", "status": "skipped"})
        self.store.set_step(self.id, step.id, step.kind, "skipped", unless_final=True)

    def run_step(self, step: Any) -> str | None:
        """Run one top-level step; where to go next (a step id, "end", or None for the next one)."""
        if isinstance(step, defs.ConditionStep):
            test = step.test
            value = (
                self.outputs.get(test.step, {}).get("output", "")
                if test.step
                else self.inputs.get(test.input or "", "")
            )
            holds = test.holds(str(value))
            branch = step.then if holds else step.else_
            self.outputs[step.id] = {"output": "true" if holds else "false", "status": "completed"}
            self.store.set_step(
                self.id, step.id, "condition", "completed", output="true" if holds else "false", detail={"next": branch}
            )
            return branch or step.next
        if isinstance(step, defs.ApprovalStep):
            self.approval(step)
            return step.next
        if isinstance(step, defs.ParallelStep):
            self.parallel(step)
            self.outputs[step.id] = {
                "output": "\n\n".join(self.outputs[m.id]["output"] for m in step.steps),
                "status": "completed",
            }
            self.store.set_step(
                self.id, step.id, "parallel", "completed", detail={"members": [m.id for m in step.steps]}
            )
            return step.next
        self.leaf(step)
        return step.next

    # ------------------------------------------------------------- leaves

    def _options(self, step: Any, attempt: int) -> Any:
        return {"name": f"{step.kind}:{step.id}#{attempt}"}

    def leaf(self, step: Any) -> None:
        """Run an agent, tool or handoff step as a DBOS step."""
        from dbos import DBOS

        self.settle(step, 1, DBOS.run_step(self._options(step, 1), _leaf_body, self.id, step.id, 1))

    def settle(self, step: Any, attempt: int, result: dict[str, Any]) -> None:
        """Record a leaf's result; for one found in flight, ask a person and retry, skip or fail."""
        from dbos import DBOS

        while result.get("in_flight"):
            choice = self.decide(step, attempt, result)
            if choice == "skip":
                self.outputs[step.id] = {"output": "", "status": "skipped"}
                self.store.set_step(self.id, step.id, step.kind, "skipped", attempt=attempt)
                return
            if choice != "retry":
                self.store.set_step(self.id, step.id, step.kind, "failed", attempt=attempt, error="failed by a person")
                raise _Stop("failed", f"Step {step.id!r} was in flight at a crash and a person chose to fail it.")
            attempt += 1
            result = DBOS.run_step(self._options(step, attempt), _leaf_body, self.id, step.id, attempt)
        self.finish_leaf(step, attempt, result)

    def finish_leaf(self, step: Any, attempt: int, result: dict[str, Any]) -> None:
        status = "completed" if result.get("ok") else "failed"
        self.outputs[step.id] = {"output": result.get("output") or "", "status": status}
        row = self.store.step_row(self.id, step.id)
        detail = dict(row["detail"]) if row else {}
        detail.update({k: result[k] for k in ("run_id", "audit_id") if result.get(k)})
        self.store.set_step(
            self.id,
            step.id,
            step.kind,
            status,
            attempt=attempt,
            output=result.get("output"),
            error=result.get("error"),
            detail=detail,
        )
        if status == "failed":
            raise _Stop("failed", f"Step {step.id!r} failed: {result.get('error') or 'no output'}")

    def decide(self, step: Any, attempt: int, result: dict[str, Any]) -> str:
        """Wait for a person to choose retry, skip or fail for an in-flight side-effecting step."""
        from dbos import DBOS

        self.store.set_step(
            self.id, step.id, step.kind, "needs_decision", attempt=attempt, detail=result.get("detail") or {}
        )
        message = DBOS.recv(topic=f"decide:{step.id}:{attempt}", timeout_seconds=DECISION_TIMEOUT_S)
        choice = message.get("choice") if isinstance(message, dict) else None
        return choice if choice in ("retry", "skip", "fail") else "fail"

    def parallel(self, group: defs.ParallelStep) -> None:
        """Members' first attempts run concurrently (at most `max_concurrency`), each a DBOS step at a step id
        reserved in order; results are then settled one by one, in order (replay stays deterministic)."""
        from dbos import DBOS

        reservations = [DBOS.reserve_step() for _ in group.steps]
        for member in group.steps:
            self.store.set_step(self.id, member.id, member.kind, "pending", unless_final=True)

        def first(member: Any, reservation: Any) -> dict[str, Any]:
            result: dict[str, Any] = reservation.run(self._options(member, 1), _leaf_body, self.id, member.id, 1)
            return result

        with ThreadPoolExecutor(max_workers=group.max_concurrency, thread_name_prefix="wf-parallel") as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, first, member, reservation)
                for member, reservation in zip(group.steps, reservations, strict=True)
            ]
            results = [future.result() for future in futures]
        for member, result in zip(group.steps, results, strict=True):
            self.settle(member, 1, result)

    # ----------------------------------------------------------- approval

    def approval(self, step: defs.ApprovalStep) -> None:
        from dbos import DBOS

        prompt = defs.render(step.prompt, self.outputs, self.inputs)
        detail = {
            "prompt": prompt,
            "timeout_seconds": step.timeout_seconds,
            "default": step.default,
            # when this process began to wait (a resumed wait keeps the original deadline: DBOS records it)
            "waiting_since": time.time(),
        }
        self.store.set_step(self.id, step.id, "approval", "waiting_approval", detail=detail, unless_final=True)
        message = DBOS.recv(topic=f"approval:{step.id}", timeout_seconds=step.timeout_seconds)
        if isinstance(message, dict):
            approved = bool(message.get("approve"))
            reason = message.get("reason") or None
            by = "a person"
        else:
            approved, reason, by = step.default == "approve", "timed out", "its default"
        outcome = "approved" if approved else "denied"
        self.outputs[step.id] = {"output": outcome, "status": outcome}
        self.store.set_step(
            self.id,
            step.id,
            "approval",
            outcome,
            output=outcome,
            error=None,
            detail={**detail, "by": by, "reason": reason},
        )
        if not approved and step.on_deny == "stop":
            raise _Stop("stopped", f"Step {step.id!r} was denied ({reason or by}).")


def _leaf_body(workflow_id: str, step_id: str, attempt: int) -> dict[str, Any]:
    """The DBOS step of an agent, tool or handoff step (its return value is the checkpoint)."""
    service = _service()
    flow_row = service.store.workflow_row(workflow_id)
    assert flow_row is not None
    definition = defs.WorkflowDefinition.model_validate(json.loads(flow_row["definition"]))
    step = definition.step(step_id)
    outputs = service.rendered_outputs(workflow_id, definition)
    inputs = flow_row["inputs"]
    try:
        if isinstance(step, defs.ToolStep):
            return service.run_tool_step(workflow_id, step, attempt, outputs, inputs)
        return service.run_agent_step(workflow_id, step, attempt, outputs, inputs)
    except WorkbenchError as exc:
        service.store.set_step(workflow_id, step_id, step.kind, "failed", attempt=attempt, error=str(exc))
        return {"ok": False, "error": str(exc)}


def _service() -> WorkflowService:
    if _ACTIVE is None:
        raise RuntimeError("no workflow service is running in this process")
    return _ACTIVE


# ---------------------------------------------------------------- service


class WorkflowService:
    """Start, watch, resume and answer durable workflows of one home.

    `engine` is needed to run steps (`start`, `resume`); `status`, `list`,
    `approve` and `decide` work without it, from any process. One service runs
    workflows per process (DBOS is a process-wide runtime).
    """

    def __init__(self, home: Path | str, engine: EngineLike | None = None) -> None:
        self.home = Path(home)
        self.engine = engine
        self.store = WorkflowStore(self.home)
        self._launched = False

    # --------------------------------------------------------- lifecycle

    def _launch(self) -> None:
        """Start DBOS in this process (once): SQLite in the home, log to our file, no Conductor."""
        global _ACTIVE
        if self._launched:
            return
        if self.engine is None:
            raise InvalidRequest("Running workflow steps needs the workbench engine in this process.")
        with _runtime_lock:
            if _ACTIVE is not None and _ACTIVE is not self:
                raise InvalidRequest("Another workflow service already runs in this process.")
            self.home.mkdir(parents=True, exist_ok=True)
            _route_dbos_log(self.home)
            from dbos import DBOS

            _workflow_function()
            config: dict[str, Any] = {
                "name": APP_NAME,
                "system_database_url": database_url(self.home),
                "application_version": app_version(),
                # Its own executor id: a launch recovers only its own executor's workflows (none), so nothing
                # resumes unless someone asks (`resume`); two processes never run one workflow.
                "executor_id": f"wb-{os.getpid()}-{secrets.token_hex(4)}",
                "enable_otlp": False,
                "log_level": "INFO",
                "notification_listener_polling_interval_sec": 0.2,
                "serializer": _serializer(),
            }
            DBOS(config=config)  # type: ignore[arg-type]
            DBOS.launch()
            _ACTIVE = self
            self._launched = True
            log.info("workflows: DBOS launched on %s (%s)", database_url(self.home), app_version())

    def close(self) -> None:
        """Stop DBOS in this process (running workflows stay resumable)."""
        global _ACTIVE
        if not self._launched:
            return
        from dbos import DBOS

        try:
            DBOS.destroy(workflow_completion_timeout_sec=0)
        finally:
            _ACTIVE = None
            self._launched = False

    def __enter__(self) -> WorkflowService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------- definitions

    def _catalog(self) -> EngineCatalog | None:
        return EngineCatalog(self.engine) if self.engine is not None else None

    def _definition(self, request: ValidateRequest) -> defs.WorkflowDefinition:
        if request.path is not None:
            return defs.load(request.path, self._catalog())
        assert request.text is not None
        return defs.check(defs.loads(request.text), self._catalog())

    def validate(self, request: ValidateRequest | dict[str, Any]) -> ValidateResponse:
        """Check a definition (against this workbench's agents and tools when the engine is here)."""
        req = validate(ValidateRequest, request)
        definition = self._definition(req)
        return ValidateResponse(
            name=definition.name,
            steps=[s.id for s in definition.all_steps()],
            inputs={name: spec.default for name, spec in definition.inputs.items()},
        )

    # --------------------------------------------------------------- run

    def start(self, request: StartRequest | dict[str, Any]) -> WorkflowStatus:
        """Validate a definition and its inputs, then start it in the background; its first status."""
        req = validate(StartRequest, request)
        definition = self._definition(req)
        inputs = definition.render_inputs(req.inputs)
        self._launch()
        from dbos import DBOS, SetWorkflowID

        workflow_id = f"wf-{secrets.token_hex(6)}"
        self.store.create(workflow_id, definition.name, defs.dumps(definition), inputs, app_version())
        with SetWorkflowID(workflow_id):
            DBOS.start_workflow(_workflow_function(), defs.dumps(definition), inputs)
        return self.status(workflow_id)

    def resume(self, workflow_id: str) -> WorkflowStatus:
        """Continue a workflow no process runs (after a crash or a stop), from its last completed step."""
        row = self._row(workflow_id)
        if row["status"] in ("completed", "failed", "stopped"):
            raise InvalidRequest(f"Workflow {workflow_id} has already finished ({row['status']}); nothing to resume.")
        if row["owner_pid"] not in (None, os.getpid()) and pid_alive(row["owner_pid"]):
            raise InvalidRequest(
                f"Workflow {workflow_id} is running in process {row['owner_pid']}; answer it from here instead "
                "(`workbench workflows status`)."
            )
        if row["app_version"] != app_version():
            raise InvalidRequest(
                f"Workflow {workflow_id} was started by {row['app_version']} and this is {app_version()}; "
                "its steps may have changed meaning, so it is not resumed (start it again)."
            )
        self._launch()
        from dbos import DBOS

        status = DBOS.get_workflow_status(workflow_id)
        if status is None:
            raise NotFound(f"Workflow {workflow_id} was never started by DBOS; start it again.")
        if status.status in ("SUCCESS", "ERROR"):
            # DBOS finished it but our row was not told (a crash between the two): settle ours from DBOS's.
            output = status.output if isinstance(status.output, dict) else {}
            final = output.get("status", "completed") if status.status == "SUCCESS" else "failed"
            self.store.finish(workflow_id, final, output.get("error") or (str(status.error) if status.error else None))
            return self.status(workflow_id)
        self.store.claim(workflow_id)
        DBOS.resume_workflow(workflow_id)
        return self.status(workflow_id)

    def resume_interrupted(self) -> list[str]:
        """Resume every unfinished workflow of this version that no live process runs (for a long-lived
        process to call at start: the server, the TUI); the ids resumed. Others' versions are left, logged."""
        resumed = []
        for summary in self.list(limit=1000):
            row = self.store.workflow_row(summary.id)
            if row is None or row["status"] != "running" or pid_alive(row["owner_pid"]):
                continue
            if row["app_version"] != app_version():
                log.warning(
                    "workflow %s was started by %s; not resumed by %s", row["id"], row["app_version"], app_version()
                )
                continue
            self.resume(summary.id)
            resumed.append(summary.id)
        return resumed

    def wait(
        self, workflow_id: str, timeout: float | None = None, on_change: Callable[[WorkflowStatus], None] | None = None
    ) -> WorkflowStatus:
        """Block until the workflow finishes (or `timeout` passes); `on_change` sees each new status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            status = self.status(workflow_id)
            shape = (status.status, tuple((s.id, s.status, s.attempt) for s in status.steps))
            if shape != last and on_change is not None:
                on_change(status)
            last = shape
            if status.status in ("completed", "failed", "stopped"):
                return status
            if deadline is not None and time.monotonic() > deadline:
                return status
            time.sleep(0.1)

    # ------------------------------------------------------------ reading

    def _row(self, workflow_id: str) -> dict[str, Any]:
        row = self.store.workflow_row(workflow_id) if self.store.exists() else None
        if row is None:
            raise NotFound(f"No workflow {workflow_id!r}; `workbench workflows list` shows them.")
        return row

    def status(self, workflow_id: str) -> WorkflowStatus:
        """A workflow's state and every step's."""
        self._row(workflow_id)
        status = self.store.status(workflow_id)
        assert status is not None
        return status

    def list(self, limit: int = 50, offset: int = 0) -> list[WorkflowSummary]:
        """Workflows, newest first."""
        if not 1 <= limit <= 1000 or offset < 0:
            raise InvalidRequest("limit must be 1..1000 and offset at least 0.")
        return self.store.list(limit, offset)

    def rendered_outputs(self, workflow_id: str, definition: defs.WorkflowDefinition) -> dict[str, dict[str, Any]]:
        """`steps` for templates: the outputs of the steps that finished (inside a step, from our table)."""
        status = self.store.status(workflow_id)
        assert status is not None
        return {s.id: {"output": s.output or "", "status": s.status} for s in status.steps}

    # ----------------------------------------------------------- answers

    def _send(self, workflow_id: str, message: dict[str, Any], topic: str) -> None:
        from dbos import DBOSClient

        client = DBOSClient(system_database_url=database_url(self.home), serializer=_serializer())
        try:
            client.send(workflow_id, message, topic)
        finally:
            client.destroy()

    def approve(self, request: ApproveRequest | dict[str, Any]) -> WorkflowStatus:
        """Approve or deny a waiting approval step (from any process)."""
        req = validate(ApproveRequest, request)
        row = self._row(req.workflow_id)
        step = self.store.step_row(req.workflow_id, req.step)
        if row["status"] != "running":
            raise InvalidRequest(
                f"Workflow {req.workflow_id} has finished ({row['status']}); there is nothing to approve."
            )
        if step is None or step["kind"] != "approval":
            raise NotFound(f"Workflow {req.workflow_id} has no approval step {req.step!r} waiting.")
        if not self.store.transition(req.workflow_id, req.step, "waiting_approval", "answered"):
            raise InvalidRequest(
                f"Step {req.step!r} of {req.workflow_id} is {step['status']}, not waiting for approval."
            )
        try:
            self._send(req.workflow_id, {"approve": req.approve, "reason": req.reason}, f"approval:{req.step}")
        except Exception:
            self.store.transition(req.workflow_id, req.step, "answered", "waiting_approval")
            raise
        return self.status(req.workflow_id)

    def decide(self, request: DecideRequest | dict[str, Any]) -> WorkflowStatus:
        """Retry, skip or fail a step that was in flight at a crash (from any process)."""
        req = validate(DecideRequest, request)
        self._row(req.workflow_id)
        step = self.store.step_row(req.workflow_id, req.step)
        if step is None or step["status"] != "needs_decision":
            state = "has no such step" if step is None else f"step {req.step!r} is {step['status']}"
            raise InvalidRequest(f"Workflow {req.workflow_id} is not waiting for a decision on {req.step!r} ({state}).")
        if not self.store.transition(req.workflow_id, req.step, "needs_decision", "decided"):
            raise InvalidRequest(f"Step {req.step!r} of {req.workflow_id} was decided already.")
        try:
            self._send(req.workflow_id, {"choice": req.choice}, f"decide:{req.step}:{step['attempt']}")
        except Exception:
            self.store.transition(req.workflow_id, req.step, "decided", "needs_decision")
            raise
        return self.status(req.workflow_id)

    # -------------------------------------------------------- step bodies

    def run_tool_step(
        self, workflow_id: str, step: defs.ToolStep, attempt: int, outputs: dict[str, Any], inputs: dict[str, str]
    ) -> dict[str, Any]:
        from workbench.engine.schemas import ToolExecuteRequest
        from workbench.engine.tools.registry import audit_key

        assert self.engine is not None
        key = f"{workflow_id}:{step.id}"
        arguments = defs.render_value(step.arguments, outputs, inputs)
        permission = EngineCatalog(self.engine).tool_permission(step.tool) or "exec"
        detail = {"tool": step.tool, "arguments": arguments, "permission": permission, "idempotency_key": key}
        previous = self.store.step_row(workflow_id, step.id)
        if (
            permission not in READ_ONLY
            and previous is not None
            and previous["status"] == "running"
            and previous["attempt"] == attempt
        ):
            # This body ran before and never returned: the call may or may not have happened.
            detail["audit"] = self._audit_state(key)
            return {"in_flight": True, "detail": detail}
        self.store.set_step(workflow_id, step.id, "tool", "running", attempt=attempt, detail=detail)
        with audit_key(key):
            result = self.engine.execute_tool(
                ToolExecuteRequest(tool=step.tool, arguments=arguments, agent_id=step.agent)
            )
        return {"ok": bool(result.ok), "output": result.output, "error": result.error, "audit_id": result.audit_id}

    def _audit_state(self, key: str) -> str:
        """Whether the audit log saw the in-flight call start ("running"), finish (its status) or not at all."""
        tools = getattr(self.engine, "tools", None)
        if tools is None or not hasattr(tools, "audit"):
            return "unknown"
        rows = tools.audit(idempotency_key=key, limit=1)
        return rows[0].status if rows else "not started"

    def run_agent_step(
        self, workflow_id: str, step: Any, attempt: int, outputs: dict[str, Any], inputs: dict[str, str]
    ) -> dict[str, Any]:
        from workbench.engine.schemas import AgentRunFinished, RunRequest

        assert self.engine is not None
        task = defs.render(step.task, outputs, inputs)
        if isinstance(step, defs.HandoffStep):
            context = defs.render(step.context, outputs, inputs)
            agent = step.to
            detail = {"from": step.from_agent, "to": step.to, "context": context, "task": task}
            if context:
                task = f"Context handed over{f' by {step.from_agent}' if step.from_agent else ''}:\n{context}\n\nTask: {task}"
            request = RunRequest(agent_id=agent, task=task[:20_000])
        else:
            detail = {"agent": step.agent, "task": task}
            request = RunRequest(agent_id=step.agent, task=task[:20_000], model=step.model, max_steps=step.max_steps)
        self.store.set_step(workflow_id, step.id, step.kind, "running", attempt=attempt, detail=detail)
        finished = None
        for event in self.engine.run_agent(request):
            if isinstance(event, AgentRunFinished) or getattr(event, "type", None) == "agent_run_finished":
                finished = event.run
        if finished is None:
            return {"ok": False, "error": "the agent run ended without a result"}
        ok = finished.status == "finished"
        return {
            "ok": ok,
            "output": finished.answer or "",
            "error": None if ok else (finished.error or f"the agent run ended {finished.status}"),
            "run_id": finished.id,
        }
