"""Git tools: status, log, diff, add and commit on a repository inside the workspace.

Hardening, because arguments come from a model:

* the repository folder is confined to the roots and must be a git work tree;
* any user value that would land on git's command line and starts with `-` is
  refused, revisions follow `--end-of-options`, paths follow `--`, and
  `GIT_LITERAL_PATHSPECS=1` turns off pathspec magic; paths are confined too;
* the commit message goes through stdin (`--file=-`), so it is pure data;
* the repository's top folder must itself be inside the roots (a root that
  is a subfolder of a bigger repository does not expose the rest of it);
* git runs with `core.hooksPath=/dev/null`, `core.fsmonitor=false`,
  `commit.gpgSign=false`, `safe.bareRepository=explicit` (a folder the model
  wrote cannot pose as a bare repository with its own config),
  `--no-ext-diff`, `--no-textconv`, no pager,
  `GIT_CONFIG_NOSYSTEM=1`, `GIT_TERMINAL_PROMPT=0`, and without inherited
  `GIT_*` variables that could point it at another repository.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from workbench.engine.errors import ToolError
from workbench.engine.tools.base import Tool, ToolContext, object_schema
from workbench.engine.tools.builtin.shell import child_env, run_process
from workbench.engine.tools.paths import confine, is_inside, resolved_roots

_HARDENING = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "commit.gpgSign=false",
    "-c",
    "core.pager=cat",
    "-c",
    "color.ui=false",
    "-c",
    "safe.bareRepository=explicit",
]


def _git_binary() -> str:
    found = shutil.which("git")
    if found is None:
        raise ToolError("git is not installed or not on PATH.")
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in child_env().items() if not k.startswith("GIT_")}
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_LITERAL_PATHSPECS": "1",
            "GIT_PAGER": "cat",
            "PAGER": "cat",
            "GIT_OPTIONAL_LOCKS": "0",
        }
    )
    return env


def _no_dash(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"The {what} is empty.")
    if "\x00" in value:
        raise ToolError(f"The {what} contains a NUL byte.")
    if value.lstrip().startswith("-"):
        raise ToolError(f"The {what} may not start with '-'.")
    return value


def _git(repo: Path, args: list[str], ctx: ToolContext, *, stdin: bytes | None = None, check: bool = True) -> str:
    argv = [_git_binary(), "--no-pager", "-C", str(repo), *_HARDENING, *args]
    result = run_process(
        argv,
        cwd=repo,
        timeout_s=ctx.timeout_s,
        max_output_chars=ctx.max_output_chars,
        env=_env(),
        stdin_data=stdin,
    )
    if result.timed_out:
        raise ToolError(f"git did not finish within {ctx.timeout_s:g} seconds and was stopped.")
    if check and result.exit_code != 0:
        detail = (result.stderr.strip() or result.stdout.strip()).splitlines()
        last = detail[-1][:300] if detail else f"exit code {result.exit_code}"
        raise ToolError(f"git {args[0]} failed: {last}")
    text = result.stdout
    if result.truncated:
        text += "\n[output truncated]"
    return text


def _repo(args: dict[str, Any], ctx: ToolContext) -> Path:
    repo = confine(
        _no_dash(args.get("repo") or ".", "repository path"), ctx.roots, must_exist=True, protected=ctx.protected
    )
    if not repo.is_dir():
        raise ToolError("The repository path is not a folder.")
    out = _git(repo, ["rev-parse", "--is-inside-work-tree", "--show-toplevel"], ctx, check=False).splitlines()
    if not out or out[0].strip() != "true" or len(out) < 2:
        raise ToolError("The folder is not inside a git work tree.")
    # a root inside a bigger repository must not expose (or commit) the rest of it
    top = Path(os.path.realpath(out[1].strip()))
    if not is_inside(top, resolved_roots(ctx.roots)):
        raise ToolError("The git repository's top folder is outside the workspace roots.")
    return repo


def _pathspec(value: str, repo: Path, ctx: ToolContext) -> str:
    """A user path as a literal pathspec relative to `repo`, confined to the roots."""
    _no_dash(value, "path")
    candidate = value if os.path.isabs(value) else str(repo / value)
    real = confine(candidate, ctx.roots, must_exist=False, protected=ctx.protected)
    if not (real == repo or real.is_relative_to(repo)):
        raise ToolError(f"The path {value[:200]!r} is outside the repository.")
    if any(p.is_relative_to(real) for p in ctx.protected):  # e.g. `git add .` in a repo holding the home
        raise ToolError(
            f"The path {value[:200]!r} holds the workbench's own files (its home or the keyring), "
            "which tools never touch."
        )
    rel = real.relative_to(repo).as_posix()
    if rel in ("", "."):
        return "."
    if any(part.lower() == ".git" for part in Path(rel).parts):
        raise ToolError("Paths inside the .git folder are not allowed.")
    return rel


def _git_status(args: dict[str, Any], ctx: ToolContext) -> str:
    repo = _repo(args, ctx)
    out = _git(repo, ["status", "--short", "--branch", "--untracked-files=normal"], ctx)
    return out if out.strip() else "Nothing to report."


def _git_log(args: dict[str, Any], ctx: ToolContext) -> str:
    repo = _repo(args, ctx)
    count = int(args.get("max_count") or 20)
    if not 1 <= count <= 100:
        raise ToolError("max_count must be between 1 and 100.")
    argv = [
        "log",
        f"--max-count={count}",
        "--no-ext-diff",
        "--no-textconv",
        "--date=short",
        "--format=%h %ad %an: %s",
    ]
    ref = args.get("ref")
    if ref is not None:
        argv += ["--end-of-options", _no_dash(ref, "ref")]
    elif not _git(repo, ["rev-parse", "--verify", "--quiet", "HEAD"], ctx, check=False).strip():
        return "No commits yet."
    argv.append("--")
    out = _git(repo, argv, ctx)
    return out if out.strip() else "No commits yet."


def _git_diff(args: dict[str, Any], ctx: ToolContext) -> str:
    repo = _repo(args, ctx)
    argv = ["diff", "--no-ext-diff", "--no-textconv", "--no-color", "--stat", "--patch"]
    ref = args.get("ref")
    if ref is not None:
        argv += ["--end-of-options", _no_dash(ref, "ref")]
    argv.append("--")
    path = args.get("path")
    if path is not None:
        argv.append(_pathspec(path, repo, ctx))
    out = _git(repo, argv, ctx)
    return out if out.strip() else "No differences."


def _git_add(args: dict[str, Any], ctx: ToolContext) -> str:
    repo = _repo(args, ctx)
    paths = args.get("paths")
    if not isinstance(paths, list) or not paths:
        raise ToolError("paths must be a non-empty list.")
    specs = [_pathspec(p, repo, ctx) for p in paths]
    _git(repo, ["add", "--", *specs], ctx)
    staged = _git(repo, ["diff", "--cached", "--name-status", "--no-ext-diff", "--no-textconv"], ctx)
    return "Staged changes:\n" + staged if staged.strip() else "Nothing new to stage."


def _git_commit(args: dict[str, Any], ctx: ToolContext) -> str:
    repo = _repo(args, ctx)
    message = args.get("message")
    if not isinstance(message, str) or not message.strip():
        raise ToolError("The commit message is empty.")
    if "\x00" in message:
        raise ToolError("The commit message contains a NUL byte.")
    # the message is read from stdin: it never becomes a command-line argument
    out = _git(
        repo,
        ["commit", "--no-verify", "--cleanup=strip", "--file=-"],
        ctx,
        stdin=message.encode("utf-8"),
    )
    return out.strip() or "Committed."


def _repo_prop() -> dict[str, Any]:
    return {"type": "string", "description": 'Repository folder inside the workspace (default ".").'}


def tools() -> list[Tool]:
    return [
        Tool(
            name="git_status",
            description="Show the git status of a repository in the workspace: branch, changed, staged and untracked files.",
            parameters=object_schema({"repo": _repo_prop()}, required=[]),
            permission="read",
            run=_git_status,
            examples=[
                "what files have I changed?",
                "show the git status",
                "is my working tree clean?",
            ],
        ),
        Tool(
            name="git_log",
            description="Show recent commits (hash, date, author, subject) of a git repository, optionally from a branch or ref.",
            parameters=object_schema(
                {
                    "repo": _repo_prop(),
                    "max_count": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 100,
                        "description": "How many commits (default 20).",
                    },
                    "ref": {"type": "string", "description": "Branch, tag or commit to start from."},
                },
                required=[],
            ),
            permission="read",
            run=_git_log,
            examples=[
                "show the last 5 commits",
                "what changed recently in git history?",
                "list the commits on the main branch",
            ],
        ),
        Tool(
            name="git_diff",
            description="Show the changes in a git repository as a diff, against the last commit or a given ref, optionally for one path.",
            parameters=object_schema(
                {
                    "repo": _repo_prop(),
                    "ref": {
                        "type": "string",
                        "description": "Commit, branch or tag to compare with (default: the index).",
                    },
                    "path": {"type": "string", "description": "Only show changes to this file or folder."},
                },
                required=[],
            ),
            permission="read",
            run=_git_diff,
            examples=[
                "show me the diff of my changes",
                "what did I change in src/app.py?",
                "diff the working tree against HEAD~1",
            ],
        ),
        Tool(
            name="git_add",
            description="Stage files in a git repository so they are part of the next commit.",
            parameters=object_schema(
                {
                    "repo": _repo_prop(),
                    "paths": {
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "minItems": 1,
                        "maxItems": 200,
                        "description": "Files or folders to stage.",
                    },
                },
                required=["paths"],
            ),
            permission="write",
            run=_git_add,
            examples=[
                "stage README.md",
                "git add the new files in src/",
                "add notes.txt to the next commit",
            ],
        ),
        Tool(
            name="git_commit",
            description="Commit the staged changes of a git repository with a message.",
            parameters=object_schema(
                {
                    "repo": _repo_prop(),
                    "message": {"type": "string", "minLength": 1, "description": "The commit message."},
                },
                required=["message"],
            ),
            permission="write",
            run=_git_commit,
            examples=[
                "commit the staged changes with message 'fix typo'",
                "make a git commit saying 'add tests'",
                "save my staged work as a commit",
            ],
        ),
    ]
