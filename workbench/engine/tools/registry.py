"""The tool registry: one place where every tool call is validated, bounded and audited.

Built-in tools and MCP tools are `Tool`s. Whoever calls a tool (an agent run,
the CLI, the API) goes through `ToolRegistry.execute`, which

* validates the arguments against the tool's JSON Schema,
* runs the tool with its timeout (a worker thread is the backstop; subprocess
  tools kill their own process groups earlier),
* caps the output it returns,
* records the call — tool, arguments, result or error, duration — in the
  `tool_audit` table, whatever the outcome: the row is written ("running")
  before the tool runs and completed after it, so a call the audit log cannot
  record is not run at all.

A call made by a workflow step carries the idempotency key `workflow_id:step_id`
into its audit row (`audit_key`), so a person can tell whether a step that was in
flight at a crash had already started its side effect.

Approval is not decided here: the agent runner asks a person before it calls
`execute` (see `workbench.engine.agents.approvals`).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from workbench.engine.errors import NotFound, StoreError, ToolError, WorkbenchError
from workbench.engine.schemas import AuditRecord, ToolExecution, ToolInfo, unpaired_surrogate
from workbench.engine.store.conversations import new_id
from workbench.engine.store.db import Database, utcnow
from workbench.engine.tools.base import Tool, ToolContext

log = logging.getLogger("workbench.tools")
#: the idempotency key the calls made in this context are audited with (a workflow step's)
_AUDIT_KEY: ContextVar[str | None] = ContextVar("workbench_audit_key", default=None)
_COLUMNS = (
    "id, run_id, agent_id, tool, permission, arguments, status, result, error, duration_ms, created_at, idempotency_key"
)
_SURROGATE = re.compile("[\ud800-\udfff]")

#: how much of a result or error the audit table keeps
AUDIT_TEXT_CHARS = 4000
#: how much of an argument object the audit table keeps (as JSON)
AUDIT_ARGS_CHARS = 8000


def render_output(value: Any) -> str:
    """A tool's return value as text for the model and the audit log."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... output truncated: {len(text) - limit} more characters]"


def _arguments_json(arguments: Any) -> str:
    """A call's arguments as the audit log keeps them (JSON, truncated past AUDIT_ARGS_CHARS)."""
    value = arguments if isinstance(arguments, dict) else {"value": arguments}
    args_json = _storable(json.dumps(value, ensure_ascii=False, default=str))
    if len(args_json) > AUDIT_ARGS_CHARS:
        args_json = json.dumps({"truncated": args_json[:AUDIT_ARGS_CHARS]})
    return args_json


def _storable(text: str) -> str:
    """`text` with unpaired surrogates (a model's "\\ud800", undecodable bytes a program printed) shown as
    U+FFFD, so that the database takes it and the audit log can be read back."""
    return _SURROGATE.sub("\ufffd", text)


@contextmanager
def audit_key(key: str | None) -> Iterator[None]:
    """Audit the tool calls made inside this block with the idempotency key `key` (e.g. `workflow_id:step_id`)."""
    token = _AUDIT_KEY.set(key)
    try:
        yield
    finally:
        _AUDIT_KEY.reset(token)


class ToolRegistry:
    """Every tool this engine can run, looked up by name."""

    def __init__(self, db: Database, providers: Iterable[tuple[str, Callable[[], list[Tool]]]]) -> None:
        self.db = db
        #: (name prefix, function returning tools); called on every listing, so
        #: MCP servers may change. A provider whose prefix no allowlist pattern
        #: starts with is not asked (MCP servers start only when needed).
        self._providers = list(providers)
        self._static: dict[str, Tool] | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tool")
        self._validators: dict[str, Any] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---------------------------------------------------------------- lookup

    def tools(self, patterns: list[str] | None = None) -> list[Tool]:
        """All tools (or those a provider could match `patterns` with), sorted by name; the first provider wins."""
        found: dict[str, Tool] = {}
        for prefix, provider in self._providers:
            if (
                patterns is not None
                and prefix
                and not any(p.startswith(prefix) or prefix.startswith(p.rstrip("*")) for p in patterns)
            ):
                continue
            for tool in provider():
                found.setdefault(tool.name, tool)
        return [found[name] for name in sorted(found)]

    def get(self, name: str) -> Tool:
        for tool in self.tools([name]):
            if tool.name == name:
                return tool
        raise NotFound(f"No tool named {name!r}; `workbench tools list` shows them.")

    def allowed(self, patterns: list[str]) -> list[Tool]:
        """The tools an allowlist admits (exact names or patterns like `mcp.time.*`)."""
        if not patterns:
            return []
        return [t for t in self.tools(patterns) if any(fnmatch.fnmatchcase(t.name, p) for p in patterns)]

    @staticmethod
    def info(tool: Tool) -> ToolInfo:
        return ToolInfo(
            name=tool.name,
            description=tool.description,
            permission=tool.permission,
            parameters=tool.parameters,
            source=tool.source,
            examples=tool.examples,
            warning=tool.warning,
        )

    # ------------------------------------------------------------ validation

    def validation_error(self, tool: Tool, arguments: Any) -> str | None:
        """Why `arguments` do not fit the tool's schema (one sentence), or None."""
        from jsonschema import Draft202012Validator

        if not isinstance(arguments, dict):
            return f"The arguments of {tool.name} must be a JSON object."
        where = unpaired_surrogate(arguments)
        if where is not None:  # a model's "\ud800" escape: no program, file or database takes such text
            return f"Invalid arguments for {tool.name}: {where}: is not valid Unicode text (an unpaired surrogate)."
        key = f"{tool.name}:{json.dumps(tool.parameters, sort_keys=True)}"
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = Draft202012Validator(tool.parameters)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.path))
        if not errors:
            return None
        error = errors[0]
        where = ".".join(str(p) for p in error.path) or "arguments"
        return f"Invalid arguments for {tool.name}: {where}: {error.message[:300]}."

    # ------------------------------------------------------------- execution

    def execute(
        self,
        tool: Tool,
        arguments: Any,
        context: ToolContext,
        *,
        run_id: str | None = None,
        agent_id: str | None = None,
    ) -> ToolExecution:
        """Validate, run with the tool's limits, cap the output, audit. Never raises for tool failures;
        raises `StoreError` (and does not run the tool) when the call cannot be written to the audit log."""
        started = time.perf_counter()
        problem = self.validation_error(tool, arguments)
        if problem is not None:
            return self._record(tool, arguments, "invalid", None, problem, started, run_id, agent_id)
        # Written before the tool runs: a call that cannot be audited (a full disk, a broken database) never runs.
        audit_id = self._start_record(tool, arguments, run_id, agent_id)
        call_context = ToolContext(
            roots=context.roots,
            allow_private_network=context.allow_private_network,
            engine=context.engine,
            agent_id=agent_id,
            run_id=run_id,
            timeout_s=tool.timeout_s,
            max_output_chars=tool.max_output_chars,
            protected=list(context.protected),
        )
        future = self._pool.submit(tool.run, arguments, call_context)
        try:
            value = future.result(timeout=tool.timeout_s + 5.0)
        except FutureTimeout:
            future.cancel()
            return self._finish(
                tool, audit_id, "timeout", None, f"{tool.name} did not finish within {tool.timeout_s:g} s.", started
            )
        except (ToolError, WorkbenchError) as exc:
            return self._finish(tool, audit_id, "error", None, str(exc), started)
        except Exception as exc:  # a bug in a tool: the run goes on, the log has the trace
            log.exception("tool %s failed", tool.name)
            return self._finish(
                tool, audit_id, "error", None, f"{tool.name} failed unexpectedly ({type(exc).__name__}).", started
            )
        output = cap(render_output(value), tool.max_output_chars)
        return self._finish(tool, audit_id, "ok", output, None, started)

    def record_refusal(
        self, tool: Tool, arguments: Any, status: str, reason: str, *, run_id: str | None, agent_id: str | None
    ) -> ToolExecution:
        """Audit a call that was not run: denied by a person, refused by a guardrail."""
        return self._record(tool, arguments, status, None, reason, time.perf_counter(), run_id, agent_id)

    def _start_record(self, tool: Tool, arguments: Any, run_id: str | None, agent_id: str | None) -> str:
        """Insert the call's audit row as "running"; its id. Raises `StoreError` when it cannot be written."""
        audit_id = new_id("aud")
        try:
            self.db.execute(
                f"INSERT INTO tool_audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 'running', NULL, NULL, 0, ?, ?)",
                [
                    audit_id,
                    run_id,
                    agent_id,
                    tool.name,
                    tool.permission,
                    _arguments_json(arguments),
                    utcnow(),
                    _AUDIT_KEY.get(),
                ],
            )
        except Exception as exc:
            reason = str(exc) if isinstance(exc, WorkbenchError) else type(exc).__name__
            raise StoreError(
                f"{tool.name} was not run: its call could not be written to the audit log ({reason})."
            ) from exc
        return audit_id

    def _finish(
        self, tool: Tool, audit_id: str, status: str, output: str | None, error: str | None, started: float
    ) -> ToolExecution:
        """Complete the call's audit row with its outcome (the tool has run: a failure here is only logged)."""
        duration_ms = (time.perf_counter() - started) * 1000
        # A listed file name that is not valid UTF-8 comes back surrogate-escaped: shown as U+FFFD.
        output = _storable(output) if output is not None else None
        error = _storable(error) if error else error
        try:
            self.db.execute(
                "UPDATE tool_audit SET status = ?, result = ?, error = ?, duration_ms = ? WHERE id = ?",
                [
                    status,
                    cap(output, AUDIT_TEXT_CHARS) if output is not None else None,
                    error[:AUDIT_TEXT_CHARS] if error else None,
                    duration_ms,
                    audit_id,
                ],
            )
        except Exception:
            log.exception("could not complete the audit record %s of %s", audit_id, tool.name)
        return ToolExecution(
            tool=tool.name,
            ok=status == "ok",
            status=status,
            output=output,
            error=error,
            duration_ms=round(duration_ms, 3),
            audit_id=audit_id,
        )

    def _record(
        self,
        tool: Tool,
        arguments: Any,
        status: str,
        output: str | None,
        error: str | None,
        started: float,
        run_id: str | None,
        agent_id: str | None,
    ) -> ToolExecution:
        duration_ms = (time.perf_counter() - started) * 1000
        audit_id = new_id("aud")
        self.db.execute(
            f"INSERT INTO tool_audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                audit_id,
                run_id,
                agent_id,
                tool.name,
                tool.permission,
                _arguments_json(arguments),
                status,
                _storable(cap(output, AUDIT_TEXT_CHARS)) if output is not None else None,
                _storable(error[:AUDIT_TEXT_CHARS]) if error else None,
                duration_ms,
                utcnow(),
                _AUDIT_KEY.get(),
            ],
        )
        return ToolExecution(
            tool=tool.name,
            ok=status == "ok",
            status=status,
            output=output,
            error=error,
            duration_ms=round(duration_ms, 3),
            audit_id=audit_id,
        )

    # ----------------------------------------------------------------- audit

    def audit(
        self,
        run_id: str | None = None,
        agent_id: str | None = None,
        tool: str | None = None,
        limit: int = 100,
        offset: int = 0,
        idempotency_key: str | None = None,
    ) -> list[AuditRecord]:
        """Recorded tool executions, newest first (`limit` and `offset` are validated by the API: `ops.Limit`)."""
        where, params = [], []
        for column, value in (
            ("run_id", run_id),
            ("agent_id", agent_id),
            ("tool", tool),
            ("idempotency_key", idempotency_key),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {_COLUMNS} FROM tool_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        rows = self.db.fetchall(sql, [*params, limit, offset])
        return [
            AuditRecord(
                id=r[0],
                run_id=r[1],
                agent_id=r[2],
                tool=r[3],
                permission=r[4],
                arguments=json.loads(r[5]),
                status=r[6],
                result=r[7],
                error=r[8],
                duration_ms=r[9],
                created_at=r[10],
                idempotency_key=r[11],
            )
            for r in rows
        ]
