"""`run_python`: run a Python snippet in a separate, isolated interpreter.

The code runs as `sys.executable -I -c <code>` (isolated mode: no user site,
no PYTHON* variables, no current folder on `sys.path`) in a subprocess with a
minimal environment, the first workspace root as working directory, the
call's timeout and output cap. Like `run_command` it needs a workspace root
(and refuses a first root inside the workbench's home). It is never executed
in the workbench process.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from workbench.engine.errors import ToolError
from workbench.engine.tools.base import Tool, ToolContext, object_schema
from workbench.engine.tools.builtin.shell import process_outcome, run_process
from workbench.engine.tools.paths import working_dir

MAX_CODE_CHARS = 100_000


def _minimal_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": tempfile.gettempdir(),
    }


def _run(code: str, cwd: Path, ctx: ToolContext) -> dict[str, Any]:
    result = run_process(
        [sys.executable, "-I", "-c", code],
        cwd=cwd,
        timeout_s=ctx.timeout_s,
        max_output_chars=ctx.max_output_chars,
        env=_minimal_env(cwd),
    )
    return process_outcome(result, "The Python code", ctx.timeout_s)


def _run_python(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    code = args["code"]
    if not isinstance(code, str) or not code.strip():
        raise ToolError("The code is empty.")
    if "\x00" in code:
        raise ToolError("The code contains a NUL byte.")
    if len(code) > MAX_CODE_CHARS:
        raise ToolError(f"The code is longer than {MAX_CODE_CHARS:,} characters.")
    if not ctx.roots:
        raise ToolError("run_python needs a workspace root: add a folder to `workspace_roots` in the workbench config.")
    cwd = working_dir(None, ctx)
    return _run(code, cwd, ctx)


def tools() -> list[Tool]:
    return [
        Tool(
            name="run_python",
            description="Run a short Python program in a separate interpreter and return what it prints.",
            parameters=object_schema(
                {
                    "code": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_CODE_CHARS,
                        "description": "Python source code to run.",
                    }
                },
                required=["code"],
            ),
            permission="exec",
            run=_run_python,
            examples=[
                "calculate 2**100 with python",
                "run this python snippet and show the output",
                "use python to count the words in data.txt",
                "compute the average of 3, 7 and 12",
            ],
        )
    ]
