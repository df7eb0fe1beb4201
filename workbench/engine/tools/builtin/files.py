"""File tools: read, write, list and search files inside the workspace roots.

Every path goes through `confine` (symlinks followed, whole-component
comparison with the roots). Writes are atomic (temporary file in the same
folder, fsync, `os.replace`) and never land inside a `.git` folder, because a
written `.git/config` or hook would turn a write permission into code
execution by the git tools.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from workbench.engine.errors import ToolError
from workbench.engine.tools.base import Tool, ToolContext, object_schema
from workbench.engine.tools.paths import (
    confine,
    display_path,
    is_inside,
    is_protected,
    refuse_protected,
    resolved_roots,
)

DEFAULT_MAX_LINES = 400
MAX_LINES_LIMIT = 5000
MAX_LIST_ENTRIES = 500
MAX_SEARCH_MATCHES = 200
MAX_SEARCH_FILE_BYTES = 2 * 1024 * 1024
MAX_LINE_CHARS_SHOWN = 300
MAX_WRITE_CHARS = 5_000_000
SKIP_DIRS = {
    ".git",
    ".hg",
    ".svn",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
}


def _looks_binary(sample: bytes) -> bool:
    return b"\x00" in sample


def _open_nofollow(path: Path) -> int:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        raise ToolError("The file does not exist.") from None
    except IsADirectoryError:
        raise ToolError("The path is a folder, not a file.") from None
    except PermissionError:
        raise ToolError("The file cannot be read (permission denied).") from None
    except OSError:
        raise ToolError("The file cannot be opened.") from None


# --------------------------------------------------------------------------- read_file


def _read_file(args: dict[str, Any], ctx: ToolContext) -> str:
    path = confine(args["path"], ctx.roots, must_exist=True, protected=ctx.protected)
    if path.is_dir():
        raise ToolError("The path is a folder, not a file: use list_dir for folders.")
    if not path.is_file():
        raise ToolError("The path is not a regular file.")
    start = int(args.get("start_line") or 1)
    max_lines = int(args.get("max_lines") or DEFAULT_MAX_LINES)
    if start < 1:
        raise ToolError("start_line must be 1 or more.")
    if not 1 <= max_lines <= MAX_LINES_LIMIT:
        raise ToolError(f"max_lines must be between 1 and {MAX_LINES_LIMIT}.")
    fd = _open_nofollow(path)
    with os.fdopen(fd, "rb") as fh:
        if _looks_binary(fh.read(8192)):
            raise ToolError("The file looks binary; only text files can be read.")
        fh.seek(0)
        lines: list[str] = []
        total = 0
        chars = 0
        cut_chars = False
        for raw in fh:
            total += 1
            if total < start or len(lines) >= max_lines or cut_chars:
                continue
            line = raw.decode("utf-8", errors="replace")
            if chars + len(line) > ctx.max_output_chars:
                lines.append(line[: max(0, ctx.max_output_chars - chars)])
                cut_chars = True
                continue
            lines.append(line)
            chars += len(line)
    if total and start > total:
        raise ToolError(f"The file has only {total} lines; start_line {start} is past the end.")
    text = "".join(lines)
    shown_end = start + len(lines) - 1
    if cut_chars or start > 1 or shown_end < total:
        if text and not text.endswith("\n"):
            text += "\n"
        why = " (output size limit reached)" if cut_chars else ""
        text += f"[showing lines {start}-{shown_end} of {total}{why}]"
    return text


# -------------------------------------------------------------------------- write_file


def _refuse_git_internals(path: Path, roots: list[Path]) -> None:
    for root in resolved_roots(roots):
        if path == root or path.is_relative_to(root):
            if any(part.lower() == ".git" for part in path.relative_to(root).parts):
                raise ToolError("Writing inside a .git folder is not allowed.")


def _write_file(args: dict[str, Any], ctx: ToolContext) -> str:
    content = args["content"]
    if not isinstance(content, str):
        raise ToolError("content must be a string.")
    if len(content) > MAX_WRITE_CHARS:
        raise ToolError(f"content is larger than {MAX_WRITE_CHARS:,} characters.")
    append = bool(args.get("append", False))
    path = confine(args["path"], ctx.roots, must_exist=False, protected=ctx.protected)
    _refuse_git_internals(path, ctx.roots)
    if path.is_dir():
        raise ToolError("The path is a folder; give a file path.")
    if path.exists() and not path.is_file():
        raise ToolError("The path exists and is not a regular file.")
    parent = path.parent
    real_roots = resolved_roots(ctx.roots)
    if not is_inside(parent, real_roots):  # the root itself is never a file, but be explicit
        raise ToolError("The file's folder is outside the workspace roots.")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ToolError("A file is in the way of the folder to create.") from None
    except OSError:
        raise ToolError("The folder for the file could not be created.") from None
    # re-check after creating folders: nothing may have redirected them outside
    real_parent = Path(os.path.realpath(parent))
    if not is_inside(real_parent, real_roots):
        raise ToolError("The file's folder is outside the workspace roots.")
    refuse_protected(real_parent / path.name, ctx.protected, args["path"])

    data = content.encode("utf-8")
    mode: int | None = None
    if path.exists():
        st = path.stat()
        mode = stat.S_IMODE(st.st_mode)
        if append:
            fd = _open_nofollow(path)
            with os.fdopen(fd, "rb") as fh:
                data = fh.read() + data
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name[:50]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ToolError("The file could not be written.") from None
    try:
        dir_fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    verb = "Appended" if append else "Wrote"
    return f"{verb} {len(content)} characters to {display_path(path, ctx.roots)}."


# ---------------------------------------------------------------------------- list_dir


def _entry_type(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def _list_dir(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    path = confine(args.get("path") or ".", ctx.roots, must_exist=True, protected=ctx.protected)
    if not path.is_dir():
        raise ToolError("The path is not a folder: use read_file for files.")
    try:
        names = sorted(os.listdir(path))
    except PermissionError:
        raise ToolError("The folder cannot be listed (permission denied).") from None
    entries: list[dict[str, Any]] = []
    for name in names[:MAX_LIST_ENTRIES]:
        try:
            st = os.lstat(path / name)
        except OSError:
            continue
        kind = _entry_type(st.st_mode)
        entry: dict[str, Any] = {"name": name, "type": kind}
        if kind == "file":
            entry["size"] = st.st_size
        entries.append(entry)
    return {
        "path": display_path(path, ctx.roots),
        "entries": entries,
        "total": len(names),
        "truncated": len(names) > MAX_LIST_ENTRIES,
    }


# ------------------------------------------------------------------------- search_files


def _search_files(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    query = args["query"]
    if not isinstance(query, str) or not query:
        raise ToolError("The search query is empty.")
    if "\x00" in query:
        raise ToolError("The search query contains a NUL byte.")
    ignore_case = bool(args.get("ignore_case", False))
    if args.get("regex", False):
        try:
            pattern = re.compile(query, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise ToolError(f"The regular expression is invalid ({exc.msg}).") from None
        matches_line = pattern.search
    else:
        needle = query.lower() if ignore_case else query
        if ignore_case:

            def matches_line(text: str) -> bool:  # noqa: E306
                return needle in text.lower()
        else:

            def matches_line(text: str) -> bool:  # noqa: E306
                return needle in text

    base = confine(args.get("path") or ".", ctx.roots, must_exist=True, protected=ctx.protected)
    real_roots = resolved_roots(ctx.roots)
    deadline = time.monotonic() + max(ctx.timeout_s, 0.1)
    results: list[str] = []
    chars = 0
    files_scanned = 0
    truncated = False

    def scan(file_path: Path) -> bool:
        """Search one file; return False when the caps are reached."""
        nonlocal chars, files_scanned, truncated
        try:
            st = os.lstat(file_path)
        except OSError:
            return True
        if stat.S_ISLNK(st.st_mode):
            real = Path(os.path.realpath(file_path))
            if not is_inside(real, real_roots) or not real.is_file() or is_protected(real, ctx.protected):
                return True  # never follow a link out of the roots (nor to folders, nor into our files)
            file_path = real
            try:
                st = os.stat(real)
            except OSError:
                return True
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SEARCH_FILE_BYTES:
            return True
        if is_protected(Path(os.path.realpath(file_path)), ctx.protected):
            return True
        try:
            fd = os.open(file_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return True
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_SEARCH_FILE_BYTES + 1)
        if _looks_binary(data[:8192]):
            return True
        files_scanned += 1
        shown = display_path(file_path, ctx.roots)
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if matches_line(line[:10_000]):
                text = line.strip()
                if len(text) > MAX_LINE_CHARS_SHOWN:
                    text = text[: MAX_LINE_CHARS_SHOWN - 3] + "..."
                row = f"{shown}:{number}: {text}"
                if len(results) >= MAX_SEARCH_MATCHES or chars + len(row) + 1 > ctx.max_output_chars:
                    truncated = True
                    return False
                results.append(row)
                chars += len(row) + 1
        return True

    if base.is_file():
        scan(base)
    else:
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIP_DIRS and not is_protected(Path(dirpath, d), ctx.protected)
            )
            if time.monotonic() > deadline:
                truncated = True
                break
            stop = False
            for name in sorted(filenames):
                if not scan(Path(dirpath) / name):
                    stop = True
                    break
            if stop:
                break
    return {
        "matches": results,
        "count": len(results),
        "files_scanned": files_scanned,
        "truncated": truncated,
    }


# ---------------------------------------------------------------------------- registry


def tools() -> list[Tool]:
    return [
        Tool(
            name="read_file",
            description="Read a text file from the workspace and return its contents, optionally a range of lines.",
            parameters=object_schema(
                {
                    "path": {"type": "string", "description": "File path, relative to the workspace."},
                    "start_line": {"type": "integer", "minimum": 1, "description": "First line to return (1-based)."},
                    "max_lines": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LINES_LIMIT,
                        "description": f"How many lines to return (default {DEFAULT_MAX_LINES}).",
                    },
                },
                required=["path"],
            ),
            permission="read",
            run=_read_file,
            examples=[
                "open the file notes/todo.md",
                "show me what README.md says",
                "read lines 100 to 150 of src/app.py",
                "what is in config.toml?",
            ],
        ),
        Tool(
            name="write_file",
            description="Create or overwrite a text file in the workspace, or append text to it.",
            parameters=object_schema(
                {
                    "path": {"type": "string", "description": "File path, relative to the workspace."},
                    "content": {"type": "string", "description": "The text to write."},
                    "append": {
                        "type": "boolean",
                        "description": "Add to the end instead of replacing (default false).",
                    },
                },
                required=["path", "content"],
            ),
            permission="write",
            run=_write_file,
            examples=[
                "save this summary to notes/summary.md",
                "create a file hello.py that prints hello",
                "append a line to todo.txt",
                "write the meeting minutes into minutes.txt",
            ],
        ),
        Tool(
            name="list_dir",
            description="List the files and folders in a workspace folder, with their type and size.",
            parameters=object_schema(
                {"path": {"type": "string", "description": 'Folder path (default ".", the workspace root).'}},
                required=[],
            ),
            permission="read",
            run=_list_dir,
            examples=[
                "what files are in the docs folder?",
                "list the contents of the project",
                "show me the directory src/",
            ],
        ),
        Tool(
            name="search_files",
            description="Search the text files of a workspace folder for a word, phrase or regular expression and return the matching lines.",
            parameters=object_schema(
                {
                    "query": {"type": "string", "minLength": 1, "description": "Text (or regex) to look for."},
                    "path": {"type": "string", "description": 'Folder or file to search (default ".").'},
                    "regex": {"type": "boolean", "description": "Treat the query as a regular expression."},
                    "ignore_case": {"type": "boolean", "description": "Match regardless of case."},
                },
                required=["query"],
            ),
            permission="read",
            run=_search_files,
            examples=[
                "find where TODO appears in the code",
                "search the notes for 'budget'",
                "which files mention the function parse_config?",
                "grep for lines matching def test_.* in tests/",
            ],
        ),
    ]
