"""MCP client: tools from Model Context Protocol servers, run over stdio.

Servers are configured in `<home>/mcp.json`::

    {"servers": {"time": {"command": ["python", "-m", "mcp_server_time"],
                          "env": {}, "cwd": null, "permission": "exec",
                          "tool_permissions": {"get_current_time": "read"},
                          "timeout_s": 30}}}

`MCPManager` starts a server the first time its tools are asked for, keeps it
running, and turns each of its tools into a `Tool` named `mcp.<server>.<tool>`.

The MCP SDK is asyncio (anyio). The manager owns one event loop in a daemon
thread; each server lives in one long-lived task that enters *and* exits the
SDK's `stdio_client` and `ClientSession` context managers (anyio cancel scopes
must be exited by the task that entered them). Callers on any thread submit
coroutines with `asyncio.run_coroutine_threadsafe(...).result(timeout)`.

Tool poisoning and rug pulls: the first time a tool is listed its description
and a sha256 of its input schema are pinned in the `mcp_pins` table. When a
later listing differs, the tool carries a `warning` and the pin stays as it was
until a person reviews the change and calls `accept_changes`.

A server's stderr goes to `<home>/logs/mcp-<name>.log`. It starts with only the
SDK's small safe environment (PATH, HOME, ...) plus the `env` of its config, so
the workbench's own environment (provider keys) does not leak into it.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.engine.config import private_opener
from workbench.engine.errors import InvalidRequest, NotFound, ToolError, WorkbenchError
from workbench.engine.schemas import TOOL_NAME_PATTERN, MCPServerInfo
from workbench.engine.tools.base import DEFAULT_TIMEOUT_S, Permission, Tool, ToolContext

if TYPE_CHECKING:
    from workbench.engine.store.db import Database

__all__ = [
    "CONFIG_FILE",
    "MCPConfig",
    "MCPManager",
    "MCPServerConfig",
    "load_config",
    "save_config",
    "schema_hash",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "mcp.json"
SERVER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_TOOL_NAME_RE = re.compile(TOOL_NAME_PATTERN)
#: a server that failed to start is retried by `tools()` (all servers) after this long;
#: `tools(server)` naming it retries at once
RETRY_AFTER_S = 10.0
#: time a server gets to shut down (the SDK closes stdin, waits 2 s, SIGTERM, 2 s, SIGKILL)
_STOP_TIMEOUT_S = 15.0
_MAX_LIST_PAGES = 100
# JSON-RPC error codes the SDK uses for its own transport failures
_CONNECTION_CLOSED = -32000
_REQUEST_TIMEOUT = -32001


# ------------------------------------------------------------------ config


def _check_text(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"{what} is empty")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character")
    return value


class MCPServerConfig(BaseModel):
    """How to run one MCP server (a stdio subprocess)."""

    model_config = ConfigDict(extra="forbid")

    #: argv list, never a shell string
    command: list[str] = Field(min_length=1)
    #: extra environment variables for the server
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    #: default permission of the server's tools; "exec" since an MCP tool can do anything
    permission: Permission = "exec"
    #: per-tool permission (bare MCP tool name -> permission)
    tool_permissions: dict[str, Permission] = Field(default_factory=dict)
    #: start-up, listing and per-call timeout
    timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=3600)

    @field_validator("command")
    @classmethod
    def _command(cls, argv: list[str]) -> list[str]:
        for i, arg in enumerate(argv):
            _check_text(arg, "the program" if i == 0 else f"argument {i}")
        return argv

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            _check_text(key, "an environment variable name")
            if "=" in key:
                raise ValueError(f"environment variable name {key!r} contains '='")
            if "\x00" in value:
                raise ValueError(f"environment variable {key!r} contains a NUL character")
        return env

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, cwd: str | None) -> str | None:
        return None if cwd is None else _check_text(cwd, "the working directory")

    @field_validator("tool_permissions")
    @classmethod
    def _tool_permissions(cls, perms: dict[str, Permission]) -> dict[str, Permission]:
        for key in perms:
            _check_text(key, "a tool name in tool_permissions")
        return perms


class MCPConfig(BaseModel):
    """The whole `mcp.json`."""

    model_config = ConfigDict(extra="forbid")

    servers: dict[str, MCPServerConfig] = Field(default_factory=dict)

    @field_validator("servers", mode="before")
    @classmethod
    def _names(cls, servers: Any) -> Any:
        if isinstance(servers, dict):
            for name in servers:
                _check_server_name(name)
        return servers


def _check_server_name(name: Any) -> str:
    if not isinstance(name, str) or not SERVER_NAME_RE.match(name):
        raise ValueError(
            f"server name {name!r} must be 1-32 characters of lowercase letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _describe(exc: ValidationError) -> str:
    """The first problem of a pydantic error, as `where: what`."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err.get("loc", ()))
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def load_config(home: Path) -> MCPConfig:
    """Read `<home>/mcp.json` (missing file = no servers); a broken file -> InvalidRequest."""
    path = home / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return MCPConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The MCP config {path} cannot be read: {exc}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The MCP config {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest(f'The MCP config {path} must be a JSON object with a "servers" object.')
    try:
        return MCPConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"The MCP config {path} is invalid: {_describe(exc)}.") from None


def save_config(home: Path, config: MCPConfig) -> None:
    """Write `<home>/mcp.json` atomically: temp file, fsync, rename, fsync the folder."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / CONFIG_FILE
    text = json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".mcp.", suffix=".tmp", dir=home)
    try:
        # the config may hold tokens in `env`: owner-only
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(home, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def schema_hash(schema: dict[str, Any] | None) -> str:
    """sha256 of a JSON schema in canonical form (sorted keys, no spaces)."""
    canonical = json.dumps(schema or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ runtime


@dataclass
class _Server:
    """One server's runtime state. Mutated from caller threads under the manager lock,
    except `session`, which the server's task sets and clears."""

    name: str
    config: MCPServerConfig
    life: concurrent.futures.Future | None = None
    stop_event: asyncio.Event | None = None
    session: Any = None
    #: the latest listing: MCP tool name -> mcp_types.Tool
    listed: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failed_at: float | None = None
    #: held while the server starts or stops
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def running(self) -> bool:
        return self.session is not None and self.life is not None and not self.life.done()


class MCPManager:
    """Configured MCP servers, started lazily, and their tools."""

    def __init__(self, home: Path, db: Database) -> None:
        self.home = Path(home)
        self.db = db
        self.config_path = self.home / CONFIG_FILE
        self.log_dir = self.home / "logs"
        self._lock = threading.RLock()
        self._servers: dict[str, _Server] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sdk_log: logging.Handler | None = None
        self._closed = False
        # a weak reference: the exit hook must not keep a forgotten manager alive
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    def __enter__(self) -> MCPManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ config

    def add_server(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        permission: Permission = "exec",
        tool_permissions: dict[str, Permission] | None = None,
        cwd: str | Path | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> MCPServerInfo:
        """Add a server to `mcp.json` (it starts when its tools are first needed)."""
        try:
            _check_server_name(name)
            config = MCPServerConfig(
                command=list(command) if isinstance(command, (list, tuple)) else command,
                env=dict(env or {}),
                cwd=None if cwd is None else str(cwd),
                permission=permission,
                tool_permissions=dict(tool_permissions or {}),
                timeout_s=timeout_s,
            )
        except ValueError as exc:  # ValidationError is a ValueError
            detail = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
            raise InvalidRequest(f"The MCP server {name!r} cannot be added: {detail}.") from None
        with self._lock:
            current = load_config(self.home)
            if name in current.servers:
                raise InvalidRequest(
                    f"An MCP server named {name!r} already exists in {self.config_path}; "
                    "remove it first or pick another name."
                )
            current.servers[name] = config
            save_config(self.home, current)
            return self._info(name, config)

    def remove_server(self, name: str) -> None:
        """Stop a server, drop it from `mcp.json` and forget its pins."""
        with self._lock:
            current = load_config(self.home)
            if name not in current.servers:
                raise NotFound(f"There is no MCP server named {name!r} in {self.config_path}.")
            srv = self._servers.pop(name, None)
            if srv is not None:
                self._stop(srv)
            del current.servers[name]
            save_config(self.home, current)
            self.db.execute("DELETE FROM mcp_pins WHERE server = ?", [name])

    def list_servers(self) -> list[MCPServerInfo]:
        with self._lock:
            config = self._sync()
            return [self._info(name, cfg) for name, cfg in config.servers.items()]

    def _info(self, name: str, cfg: MCPServerConfig) -> MCPServerInfo:
        srv = self._servers.get(name)
        running = bool(srv and srv.running)
        return MCPServerInfo(
            name=name,
            command=list(cfg.command),
            permission=cfg.permission,
            running=running,
            tools=[f"mcp.{name}.{t}" for t in srv.listed] if srv and running else [],
            error=srv.error if srv else None,
        )

    def _sync(self) -> MCPConfig:
        """Reload `mcp.json`; stop servers removed from it or whose config changed."""
        config = load_config(self.home)
        for name, srv in list(self._servers.items()):
            if config.servers.get(name) != srv.config:
                self._servers.pop(name)
                self._stop(srv)
        for name, cfg in config.servers.items():
            self._servers.setdefault(name, _Server(name, cfg))
        return config

    # ------------------------------------------------------------- tools

    def tools(self, server: str | None = None) -> list[Tool]:
        """The tools of one server, or of every server that starts.

        Naming a server raises `ToolError` if it cannot start or list its tools;
        without a name, a failing server is skipped and its error shows in
        `list_servers()`.
        """
        with self._lock:
            self._check_open()
            config = self._sync()
            if server is not None and server not in config.servers:
                raise NotFound(f"There is no MCP server named {server!r} in {self.config_path}.")
            names = [server] if server is not None else list(config.servers)
            now = time.monotonic()
            wanted = [
                self._servers[n]
                for n in names
                if server is not None
                or self._servers[n].failed_at is None
                or now - self._servers[n].failed_at >= RETRY_AFTER_S
            ]
        failures = self._ensure_all(wanted)
        result: list[Tool] = []
        for srv in wanted:
            try:
                if srv.name in failures:
                    raise failures[srv.name]
                listed = self._list(srv)
            except ToolError:
                if server is not None:
                    raise
                continue
            result.extend(self._make_tools(srv, listed))
        return result

    def call_tool(
        self, server: str, tool: str, arguments: dict[str, Any] | None = None, timeout_s: float | None = None
    ) -> str:
        """Call one MCP tool and return its content as text; failures -> ToolError."""
        with self._lock:
            self._check_open()
            config = self._sync()
            if server not in config.servers:
                raise ToolError(f"There is no MCP server named {server!r}.")
            srv = self._servers[server]
        self._ensure_running(srv)
        timeout = timeout_s if timeout_s is not None else srv.config.timeout_s
        session = srv.session
        if session is None:
            raise ToolError(f"The MCP server {server!r} is not running.")
        try:
            result = self._submit(session.call_tool(tool, arguments or {}, read_timeout_seconds=timeout), timeout + 5)
        except concurrent.futures.TimeoutError:
            raise ToolError(
                f"The MCP tool {tool!r} of server {server!r} did not answer within {timeout:g} s."
            ) from None
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one sentence
            if self._note_failure(srv, exc):
                raise ToolError(
                    f"The MCP server {server!r} closed its connection during the call to {tool!r}; "
                    "it restarts on next use."
                ) from None
            if getattr(_leaf(exc), "code", None) == _REQUEST_TIMEOUT:
                raise ToolError(
                    f"The MCP tool {tool!r} of server {server!r} did not answer within {timeout:g} s."
                ) from None
            raise ToolError(f"The MCP tool {tool!r} of server {server!r} failed: {_reason(exc)}.") from None
        text = _result_text(result)
        if getattr(result, "is_error", False):
            raise ToolError(text or f"The MCP tool {tool!r} of server {server!r} reported an error.")
        return text

    def _make_tools(self, srv: _Server, listed: dict[str, Any]) -> list[Tool]:
        pins = self._check_pins(srv.name, listed)
        tools: list[Tool] = []
        for tool_name, mtool in listed.items():
            full = f"mcp.{srv.name}.{tool_name}"
            if not _TOOL_NAME_RE.match(full):
                log.warning("MCP server %r: skipping tool %r (its name is not usable)", srv.name, tool_name)
                continue
            schema = dict(mtool.input_schema or {})
            if not schema:
                schema = {"type": "object"}
            tools.append(
                Tool(
                    name=full,
                    description=mtool.description or f"The tool {tool_name!r} of the MCP server {srv.name!r}.",
                    parameters=schema,
                    permission=srv.config.tool_permissions.get(tool_name, srv.config.permission),
                    run=self._runner(srv.name, tool_name),
                    timeout_s=srv.config.timeout_s,
                    source=f"mcp:{srv.name}",
                    warning=pins.get(tool_name),
                )
            )
        return tools

    def _runner(self, server: str, tool: str):
        def run(args: dict[str, Any], ctx: ToolContext | None = None) -> str:
            timeout = ctx.timeout_s if ctx is not None else None
            return self.call_tool(server, tool, args, timeout_s=timeout)

        run.__name__ = f"mcp_{server}_{tool}"
        return run

    # -------------------------------------------------------------- pins

    def _check_pins(self, server: str, listed: dict[str, Any]) -> dict[str, str]:
        """Pin new tools; return a warning per tool whose listing differs from its pin."""
        rows = self.db.fetchall(
            "SELECT tool, description, schema_hash, pinned_at FROM mcp_pins WHERE server = ?", [server]
        )
        pinned = {row[0]: row[1:] for row in rows}
        warnings: dict[str, str] = {}
        new: list[list[Any]] = []
        for tool_name, mtool in listed.items():
            desc = mtool.description or ""
            digest = schema_hash(mtool.input_schema)
            if tool_name not in pinned:
                new.append([server, tool_name, desc, digest, _utcnow()])
                continue
            old_desc, old_hash, pinned_at = pinned[tool_name]
            warning = _change_warning(f"mcp.{server}.{tool_name}", old_desc, desc, old_hash != digest, pinned_at)
            if warning:
                warnings[tool_name] = warning
        if new:
            with self.db.transaction() as conn:
                for row in new:
                    conn.execute("INSERT OR IGNORE INTO mcp_pins VALUES (?, ?, ?, ?, ?)", row)
        return warnings

    def pins(self, server: str) -> list[dict[str, Any]]:
        """The pins of a server, for display; `changed` compares with the latest listing
        (None if the server has not been listed in this process)."""
        rows = self.db.fetchall(
            "SELECT tool, description, schema_hash, pinned_at FROM mcp_pins WHERE server = ? ORDER BY tool",
            [server],
        )
        with self._lock:
            srv = self._servers.get(server)
            listed = dict(srv.listed) if srv else {}
        out = []
        for tool_name, desc, digest, pinned_at in rows:
            current = listed.get(tool_name)
            changed = None
            if current is not None:
                changed = (current.description or "") != desc or schema_hash(current.input_schema) != digest
            out.append(
                {
                    "server": server,
                    "tool": tool_name,
                    "name": f"mcp.{server}.{tool_name}",
                    "description": desc,
                    "schema_hash": digest,
                    "pinned_at": pinned_at.isoformat() if hasattr(pinned_at, "isoformat") else str(pinned_at),
                    "changed": changed,
                }
            )
        return out

    def accept_changes(self, server: str, tool: str | None = None) -> list[str]:
        """Re-pin a server's tools (or one tool) to what it lists now; returns the re-pinned names.

        `tool` is the bare MCP name (`git_status`) or the full one (`mcp.git.git_status`).
        """
        with self._lock:
            self._check_open()
            config = self._sync()
            if server not in config.servers:
                raise NotFound(f"There is no MCP server named {server!r} in {self.config_path}.")
            srv = self._servers[server]
        self._ensure_running(srv)
        listed = self._list(srv)
        if tool is not None:
            bare = tool.removeprefix(f"mcp.{server}.")
            if bare not in listed:
                raise NotFound(f"The MCP server {server!r} has no tool named {bare!r}.")
            listed = {bare: listed[bare]}
        now = _utcnow()
        with self.db.transaction() as conn:
            for tool_name, mtool in listed.items():
                conn.execute(
                    "INSERT OR REPLACE INTO mcp_pins VALUES (?, ?, ?, ?, ?)",
                    [server, tool_name, mtool.description or "", schema_hash(mtool.input_schema), now],
                )
        return [f"mcp.{server}.{t}" for t in listed]

    # ---------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop every server and the event loop. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            servers = list(self._servers.values())
            self._servers.clear()
            for srv in servers:
                self._request_stop(srv)
            for srv in servers:
                self._wait_stopped(srv)
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        atexit.unregister(self._atexit)
        if self._sdk_log is not None:
            logging.getLogger("mcp").removeHandler(self._sdk_log)
            self._sdk_log.close()
            self._sdk_log = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=5)
            if not loop.is_running():
                with contextlib.suppress(RuntimeError):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

    def _check_open(self) -> None:
        if self._closed:
            raise WorkbenchError("The MCP manager is closed.")

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            self._check_open()
            if self._loop is None:
                self._capture_sdk_log()
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="workbench-mcp", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _capture_sdk_log(self) -> None:
        """The SDK's own warnings (e.g. a server printing junk on stdout) go to
        `<home>/logs/mcp.log`; without a handler Python would print them on the terminal."""
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_dir / "mcp.log", encoding="utf-8", delay=True)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("mcp").addHandler(handler)
        self._sdk_log = handler

    def _submit(self, coro: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._event_loop())
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _ensure_running(self, srv: _Server) -> None:
        """Start `srv` if it is not running; failures -> ToolError (and `srv.error`)."""
        asked_at = time.monotonic()
        with srv.lock:
            self._check_open()
            if srv.running:
                return
            if srv.failed_at is not None and srv.failed_at >= asked_at and srv.error:
                # another thread just tried while this one waited for the lock
                raise ToolError(srv.error)
            if srv.life is not None:  # a dead session: wind it down first
                self._stop(srv)
            loop = self._event_loop()
            ready: concurrent.futures.Future = concurrent.futures.Future()
            srv.stop_event = asyncio.Event()
            srv.life = asyncio.run_coroutine_threadsafe(self._serve(srv, ready), loop)
            try:
                # the SDK's own request timeout fires first; this is a backstop
                srv.listed = ready.result(timeout=srv.config.timeout_s + _STOP_TIMEOUT_S)
            except concurrent.futures.TimeoutError:
                self._stop(srv)
                self._fail(srv, f"it did not answer within {srv.config.timeout_s:g} s")
            except Exception as exc:  # noqa: BLE001
                self._stop(srv)
                self._fail(srv, _start_reason(exc, srv.config))
            srv.error = None
            srv.failed_at = None

    def _ensure_all(self, servers: list[_Server]) -> dict[str, ToolError]:
        """Start several servers in parallel; returns the failures by server name."""
        failures: dict[str, ToolError] = {}
        idle = [srv for srv in servers if not srv.running]
        if len(idle) <= 1:
            for srv in idle:
                try:
                    self._ensure_running(srv)
                except ToolError as exc:
                    failures[srv.name] = exc
            return failures
        with concurrent.futures.ThreadPoolExecutor(len(idle), thread_name_prefix="workbench-mcp-start") as pool:
            futures = {srv.name: pool.submit(self._ensure_running, srv) for srv in idle}
            for name, future in futures.items():
                try:
                    future.result()
                except ToolError as exc:
                    failures[name] = exc
        return failures

    def _fail(self, srv: _Server, reason: str) -> None:
        srv.error = (
            f"The MCP server {srv.name!r} could not start: {reason}; its log is {self.log_dir / f'mcp-{srv.name}.log'}."
        )
        srv.failed_at = time.monotonic()
        raise ToolError(srv.error)

    def _list(self, srv: _Server) -> dict[str, Any]:
        """List the server's tools now (a listing can change while it runs)."""
        session = srv.session
        if session is None:
            raise ToolError(f"The MCP server {srv.name!r} is not running.")
        try:
            listed = self._submit(_list_all(session), srv.config.timeout_s + 5)
        except Exception as exc:  # noqa: BLE001
            self._note_failure(srv, exc)
            srv.error = f"The MCP server {srv.name!r} could not list its tools: {_reason(exc)}."
            srv.failed_at = time.monotonic()
            raise ToolError(srv.error) from None
        srv.listed = listed
        return listed

    def _note_failure(self, srv: _Server, exc: BaseException) -> bool:
        """After a closed connection, wind the server down so the next use restarts it."""
        leaf = _leaf(exc)
        if getattr(leaf, "code", None) != _CONNECTION_CLOSED:
            return False
        srv.error = f"The MCP server {srv.name!r} closed its connection; it restarts on next use."
        srv.session = None  # not running any more, whatever its task has done so far
        with self._lock:
            self._request_stop(srv)
        return True

    async def _serve(self, srv: _Server, ready: concurrent.futures.Future) -> None:
        """The server's whole life, in one task: start, list, wait for stop, shut down."""
        from mcp import ClientSession, StdioServerParameters, stdio_client

        cfg = srv.config
        params = StdioServerParameters(command=cfg.command[0], args=cfg.command[1:], env=cfg.env or None, cwd=cfg.cwd)
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        stop_event = srv.stop_event
        assert stop_event is not None
        with open(self.log_dir / f"mcp-{srv.name}.log", "a", encoding="utf-8", opener=private_opener) as errlog:
            errlog.write(f"--- {_utcnow().isoformat()} starting {cfg.command!r}\n")
            errlog.flush()
            try:
                async with stdio_client(params, errlog=errlog) as (read, write):
                    async with ClientSession(read, write, read_timeout_seconds=cfg.timeout_s) as session:
                        await session.initialize()
                        listed = await _list_all(session)
                        srv.session = session
                        ready.set_result(listed)
                        try:
                            await stop_event.wait()
                        finally:
                            srv.session = None
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(_leaf(exc))
                errlog.write(f"--- {_utcnow().isoformat()} stopped: {_reason(exc)}\n")
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                return
            errlog.write(f"--- {_utcnow().isoformat()} stopped\n")

    def _request_stop(self, srv: _Server) -> None:
        loop = self._loop
        if srv.stop_event is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(srv.stop_event.set)

    def _wait_stopped(self, srv: _Server) -> None:
        life = srv.life
        if life is None:
            return
        try:
            life.result(timeout=_STOP_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            life.cancel()
            with contextlib.suppress(Exception):
                life.result(timeout=5)
        except BaseException:  # noqa: BLE001 - the task records its own failure
            pass
        srv.life = None
        srv.session = None

    def _stop(self, srv: _Server) -> None:
        self._request_stop(srv)
        self._wait_stopped(srv)


# ------------------------------------------------------------------ helpers


def _close_at_exit(ref: weakref.ref) -> None:
    manager = ref()
    if manager is not None:
        manager.close()


async def _list_all(session: Any) -> dict[str, Any]:
    from mcp.types import PaginatedRequestParams

    tools: dict[str, Any] = {}
    cursor = None
    for _ in range(_MAX_LIST_PAGES):
        params = PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        for tool in page.tools:
            tools[tool.name] = tool
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        inner = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (inner or list(exc.exceptions))[0]
    return exc


def _reason(exc: BaseException) -> str:
    leaf = _leaf(exc)
    text = str(leaf).strip().splitlines()[0] if str(leaf).strip() else type(leaf).__name__
    return text.rstrip(".")


def _start_reason(exc: BaseException, cfg: MCPServerConfig) -> str:
    leaf = _leaf(exc)
    if isinstance(leaf, FileNotFoundError):
        if cfg.cwd is not None and not Path(cfg.cwd).is_dir():
            return f"its working directory {cfg.cwd} does not exist"
        return f"the program {cfg.command[0]!r} was not found"
    if isinstance(leaf, PermissionError):
        return f"the program {cfg.command[0]!r} cannot be executed (permission denied)"
    code = getattr(leaf, "code", None)
    if code == _CONNECTION_CLOSED:
        return "it exited or closed its connection during start-up"
    if code == _REQUEST_TIMEOUT:
        return f"it did not answer within {cfg.timeout_s:g} s"
    return _reason(leaf)


def _result_text(result: Any) -> str:
    """A CallToolResult's content as text; non-text blocks are summarised."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {block.mime_type}]")
        elif kind == "resource_link":
            parts.append(f"[resource link: {block.uri}]")
        elif kind == "resource":
            res = block.resource
            text = getattr(res, "text", None)
            if text is not None:
                parts.append(text)
            else:
                parts.append(f"[resource: {res.uri} ({getattr(res, 'mime_type', None) or 'binary'})]")
        else:
            parts.append(f"[{kind or 'unknown'} content]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _snippet(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _change_warning(full: str, old: str, new: str, schema_changed: bool, pinned_at: Any) -> str | None:
    """One sentence describing how a tool differs from its pin, or None."""
    desc_changed = old != new
    if not desc_changed and not schema_changed:
        return None
    when = pinned_at.strftime("%Y-%m-%d") if hasattr(pinned_at, "strftime") else str(pinned_at)
    details = []
    if desc_changed:
        # the differing middle, after the common prefix and suffix (linear, unlike difflib)
        start = 0
        limit = min(len(old), len(new))
        while start < limit and old[start] == new[start]:
            start += 1
        end = 0
        while end < limit - start and old[len(old) - 1 - end] == new[len(new) - 1 - end]:
            end += 1
        old_mid, new_mid = old[start : len(old) - end], new[start : len(new) - end]
        details.append(
            f"description {len(old)} -> {len(new)} characters, {_snippet(old_mid)!r} became {_snippet(new_mid)!r}"
        )
    if schema_changed:
        details.append("input schema changed")
    what = (
        "description and input schema"
        if desc_changed and schema_changed
        else ("description" if desc_changed else "input schema")
    )
    return (
        f"The {what} of {full} changed since it was pinned on {when} ({'; '.join(details)}); "
        "review it and accept the change before trusting this tool."
    )


def _utcnow():
    from datetime import datetime

    return datetime.now(UTC)
