"""`run_command`: run one program from an argv list, confined to the workspace.

No shell is ever involved: `argv[0]` is looked up with `shutil.which` (or taken
as a path when it contains a slash) and the list goes to `subprocess.Popen`
as is, so `;`, `$(...)`, `|` and friends are plain characters. A model *can*
still ask for `["sh", "-c", "..."]`: that is an explicit request to run a
shell, which is why this tool has the `exec` permission and asks for approval.

`run_process` is the one subprocess helper of the built-in tools (git and
python use it too): argv list, new session, whole process group killed on
timeout, output read concurrently and capped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.engine.errors import ToolError
from workbench.engine.tools.base import Tool, ToolContext, object_schema
from workbench.engine.tools.paths import working_dir

#: bytes read and thrown away past the cap before the process is stopped as a flood
FLOOD_LIMIT_BYTES = 8 * 1024 * 1024
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)


@dataclass
class ProcessResult:
    exit_code: int | None
    stdout: str
    stderr: str
    truncated: bool
    timed_out: bool
    flooded: bool
    duration_s: float


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours, minus anything that looks like a secret."""
    env = {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}
    env.update(extra or {})
    return env


class _Reader(threading.Thread):
    def __init__(self, stream: Any, cap_bytes: int, on_flood: Any) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.cap = cap_bytes
        self.data = bytearray()
        self.dropped = 0
        self.on_flood = on_flood

    def run(self) -> None:
        try:
            while True:
                chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
                if not chunk:
                    break
                room = self.cap - len(self.data)
                if room > 0:
                    self.data += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.dropped += len(chunk)
                    if self.dropped > FLOOD_LIMIT_BYTES:
                        self.on_flood()
                        break
        except (OSError, ValueError):
            pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except OSError:
        pass


def _decode(data: bytes, cap_chars: int) -> tuple[str, bool]:
    text = data.decode("utf-8", errors="replace")
    if len(text) > cap_chars:
        return text[:cap_chars], True
    return text, False


def run_process(
    argv: list[str],
    *,
    cwd: Path | str,
    timeout_s: float,
    max_output_chars: int,
    env: dict[str, str] | None = None,
    stdin_data: bytes | None = None,
) -> ProcessResult:
    """Run `argv` (never through a shell) and collect capped stdout/stderr.

    The child gets its own session, so on timeout (or an output flood) the
    whole process group is killed. stdout may use `max_output_chars`; stderr
    a quarter of it (at least 2,000 characters).
    """
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ToolError("The command must be a non-empty list of strings.")
    if any("\x00" in a for a in argv):
        raise ToolError("A command argument contains a NUL byte.")
    out_cap = max(1, max_output_chars)
    err_cap = min(out_cap, max(2000, out_cap // 4))
    started = time.monotonic()
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv list, never a shell
            argv,
            cwd=str(cwd),
            env=env if env is not None else child_env(),
            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            shell=False,
        )
    except FileNotFoundError:
        raise ToolError(f"The program {argv[0][:100]!r} was not found.") from None
    except PermissionError:
        raise ToolError(f"The program {argv[0][:100]!r} is not executable.") from None
    except OSError as exc:
        raise ToolError(f"The program could not be started ({exc.strerror or 'OS error'}).") from None

    flooded = threading.Event()

    def on_flood() -> None:
        flooded.set()
        _kill_group(proc)

    # 4 bytes per character at most in UTF-8: read enough to fill the char cap
    readers = [_Reader(proc.stdout, out_cap * 4, on_flood), _Reader(proc.stderr, err_cap * 4, on_flood)]
    for reader in readers:
        reader.start()
    if stdin_data is not None and proc.stdin is not None:
        try:
            proc.stdin.write(stdin_data)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
    timed_out = False
    try:
        proc.wait(timeout=max(timeout_s, 0.01))
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    # the group is gone or finished; give the readers a moment to drain the pipes.
    # A grandchild that escaped the group could keep a pipe open: don't wait for it.
    for reader in readers:
        reader.join(timeout=2.0)
    if any(r.is_alive() for r in readers):
        _kill_group(proc)
        for pipe in (proc.stdout, proc.stderr):
            try:
                pipe.close()  # type: ignore[union-attr]
            except (OSError, ValueError):
                pass
    stdout, cut_out = _decode(bytes(readers[0].data), out_cap)
    stderr, cut_err = _decode(bytes(readers[1].data), err_cap)
    truncated = cut_out or cut_err or readers[0].dropped > 0 or readers[1].dropped > 0
    return ProcessResult(
        exit_code=None if timed_out else proc.returncode,
        stdout=stdout,
        stderr=stderr,
        truncated=truncated,
        timed_out=timed_out,
        flooded=flooded.is_set(),
        duration_s=round(time.monotonic() - started, 3),
    )


def resolve_program(name: str, cwd: Path) -> str:
    """The executable `name` names: a path (relative to `cwd`) or a PATH lookup."""
    if not name or not name.strip():
        raise ToolError("The program name (argv[0]) is empty.")
    if "\x00" in name:
        raise ToolError("The program name contains a NUL byte.")
    if "/" in name:
        candidate = Path(name) if os.path.isabs(name) else cwd / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise ToolError(f"The program {name[:100]!r} does not exist or is not executable.")
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"The program {name[:100]!r} was not found on PATH.")
    return found


def _run_command(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    argv = args.get("argv")
    if not isinstance(argv, list) or not argv:
        raise ToolError("argv must be a non-empty list of strings.")
    for item in argv:
        if not isinstance(item, str):
            raise ToolError("Every argv item must be a string.")
        if "\x00" in item:
            raise ToolError("A command argument contains a NUL byte.")
    if not ctx.roots:
        raise ToolError(
            "run_command needs a workspace root: add a folder to `workspace_roots` in the workbench config."
        )
    cwd = working_dir(args.get("cwd"), ctx)
    program = resolve_program(argv[0], cwd)
    result = run_process(
        [program, *argv[1:]],
        cwd=cwd,
        timeout_s=ctx.timeout_s,
        max_output_chars=ctx.max_output_chars,
    )
    return process_outcome(result, "The command", ctx.timeout_s)


def tools() -> list[Tool]:
    return [
        Tool(
            name="run_command",
            description=(
                "Run one program with its arguments (an argv list, no shell) in the workspace "
                "and return its exit code, output and errors."
            ),
            parameters=object_schema(
                {
                    "argv": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "maxItems": 256,
                        "description": 'Program and arguments, e.g. ["ls", "-l"].',
                    },
                    "cwd": {
                        "type": "string",
                        "description": "Working directory inside the workspace (default: the first root).",
                    },
                },
                required=["argv"],
            ),
            permission="exec",
            run=_run_command,
            examples=[
                "run the tests with pytest",
                "list the files with ls -la",
                "run make build in the project folder",
                "check which python version is installed",
            ],
        )
    ]


def process_outcome(result: Any, what: str, timeout_s: float) -> dict[str, Any]:
    """A finished process as a tool result; a timeout or an output flood is a `ToolError`."""
    if result.timed_out:
        raise ToolError(f"{what} did not finish within {timeout_s:g} seconds and was stopped.")
    if result.flooded:
        raise ToolError(f"{what} produced far more output than allowed and was stopped.")
    return {
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "truncated": result.truncated,
    }
