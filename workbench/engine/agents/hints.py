"""Aids for small local models: argument choices the step grammar enforces, the
workspace in the prompt, worked examples, and tool results summarised.

Measured on the 135M default: it invents paths (`/Users/.../Desktop/notes.txt`),
passes a file to `list_dir`, and cannot read a JSON listing back. So, for the
built-in tools only:

* path arguments are an `enum` of paths that exist under the workspace roots
  (a bounded breadth-first walk): for `read_file` the files the task names,
  else every file listed; for `list_dir` the folders the task names and the
  workspace itself, else the workspace itself. When the walk was cut off and
  the task names no existing path, the argument stays free: the model must
  still be able to reach a file the listing did not show;
* a `write_file` path is one of the file names the task gives, and its content
  the one quoted text of the task, when the task has exactly those; otherwise
  free;
* `search_knowledge`'s collection is one of the agent's own collections;
* while an existing file the task names is unread, the step must call a tool
  and `read_file` is offered (the runner does this with `named_files`);
* the step prompt lists the workspace and shows one worked example per
  offered tool;
* a tool result is fed back summarised (a listing as names, a file as its
  title and first lines, passages as source and text), labelled as a summary
  of that result: the full output stays in the run's events and the audit.

Nothing here writes an answer: the model does, from the result it is shown.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: entries of the workspace offered as path choices and shown in the prompt
LISTING_LIMIT = 200
#: entries looked at to find the paths a task names (deeper than the listing)
SCAN_LIMIT = 5000
#: entries named in the step prompt
PROMPT_ENTRIES = 40
#: first lines of a file fed back after read_file
SUMMARY_LINES = 12
SUMMARY_CHARS = 800
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache",
             ".pytest_cache", ".ruff_cache", ".tox"}

#: a file name or path in a task: a word with an extension (notes/todo.md, hello.txt)
_FILE_NAME = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.[A-Za-z0-9]{1,8})(?![\w/-])")
#: text quoted on its own ('buy milk' but not print('hello'))
_QUOTED = re.compile(r"""(?:^|(?<=\s))(['"])(.+?)\1(?=[\s.,;:!?]|$)""")


@dataclass
class Listing:
    """What a bounded walk of the workspace roots found, as paths the file tools accept."""

    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    #: every entry the walk saw (to match the paths a task names), up to SCAN_LIMIT
    seen: list[tuple[str, bool]] = field(default_factory=list)
    #: the walk saw every entry, and the listing holds them all
    complete: bool = True


def workspace_listing(roots: list[Path]) -> Listing:
    """Files and folders under the roots, breadth first: relative to the first root, absolute under the others."""
    listing = Listing()
    for index, root in enumerate(roots):
        base = Path(os.path.realpath(root))
        queue = [base]
        while queue:
            folder = queue.pop(0)
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                continue
            for name in names:
                if len(listing.seen) >= SCAN_LIMIT:
                    listing.complete = False
                    return listing
                path = folder / name
                is_dir = path.is_dir() and not path.is_symlink()
                if is_dir and name in SKIP_DIRS:
                    continue
                shown = path.relative_to(base).as_posix() if index == 0 else str(path)
                listing.seen.append((shown, is_dir))
                if is_dir:
                    queue.append(path)
                if len(listing.files) + len(listing.dirs) < LISTING_LIMIT:
                    (listing.dirs if is_dir else listing.files).append(shown)
                else:
                    listing.complete = False
    return listing


def _names(task: str, path: str) -> bool:
    """Whether `task` names `path` (the whole path, or its last part as a word)."""
    text = task.lower()
    for candidate in {path.lower(), path.rsplit("/", 1)[-1].lower()}:
        if len(candidate) >= 3 and re.search(rf"(?<![\w.-]){re.escape(candidate)}(?![\w-])", text):
            return True
    return False


def _first(named: list[str], rest: list[str]) -> list[str]:
    return list(dict.fromkeys([*named, *rest]))


def named_files(task: str, listing: Listing | None) -> list[str]:
    """The existing files `task` names (paths the listing saw)."""
    if listing is None:
        return []
    return [p for p, is_dir in listing.seen if not is_dir and _names(task, p)]


def choices(tool_name: str, source: str, task: str, listing: Listing | None,
            collections: list[str]) -> dict[str, list[str]]:
    """The values the grammar allows for some arguments of a built-in tool (empty: no change)."""
    if source != "builtin":
        return {}
    if tool_name == "write_file":
        out: dict[str, list[str]] = {}
        names = list(dict.fromkeys(m.group(1) for m in _FILE_NAME.finditer(task)))
        quoted = [m.group(2) for m in _QUOTED.finditer(task)]
        if names:
            out["path"] = names
        if len(quoted) == 1 and names:
            out["content"] = quoted
        return out
    if tool_name == "search_knowledge":
        return {"collection": list(collections)} if collections else {}
    if listing is None or tool_name not in ("read_file", "list_dir", "search_files"):
        return {}
    named = named_files(task, listing)
    named_dirs = [p for p, is_dir in listing.seen if is_dir and _names(task, p)]
    if not listing.complete and not (named or named_dirs):
        return {}
    if tool_name == "read_file":
        # A task that names files means those; otherwise any file of the listing.
        files = named or listing.files
        return {"path": files} if files else {}
    if tool_name == "list_dir":
        # A task that names no folder means the workspace itself (measured: offered
        # every folder, the 135M model lists the first one it sees).
        return {"path": [*named_dirs, "."] if named_dirs else ["."]}
    return {"path": _first([*named, *named_dirs, "."], [*listing.dirs, *listing.files])}


def describe_listing(listing: Listing) -> str:
    """The workspace as one prompt line: folders end in '/'."""
    entries = [p + "/" for p in listing.dirs] + listing.files
    entries.sort()
    shown = entries[:PROMPT_ENTRIES]
    more = "" if len(entries) <= PROMPT_ENTRIES and listing.complete else ", ..."
    return "Files in the workspace: " + (", ".join(shown) if shown else "none") + more


#: one worked example per built-in tool: a task, the call, what a result looks like, the answer
EXAMPLES: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "list_dir": ("What is in the src folder?", {"path": "src"},
                 "The folder src holds 2 entries: app.py (file), lib (folder).",
                 "The src folder holds app.py and the folder lib."),
    "read_file": ("Summarise plan.md.", {"path": "plan.md"},
                  "Title: Launch plan. The file plan.md has 3 lines. It starts with: ...",
                  "plan.md is titled Launch plan; it lists the launch steps."),
    "write_file": ("Write 'hi' into the file a.txt.", {"path": "a.txt", "content": "hi"},
                   "Wrote 2 characters to a.txt.", "I wrote 'hi' into a.txt."),
    "search_knowledge": ("Search our documents for the office address.", {"query": "office address"},
                         "[1] offices.md: Our office is at 5 Main Street.",
                         "The office is at 5 Main Street (offices.md)."),
}


def worked_examples(tool_names: list[str]) -> str:
    """Worked examples for the offered built-in tools that have one ('' when none do)."""
    lines = []
    for name in tool_names:
        if name not in EXAMPLES:
            continue
        task, arguments, result, answer = EXAMPLES[name]
        call = json.dumps({"action": name, "arguments": arguments})
        final = json.dumps({"action": "final_answer", "answer": answer})
        lines.append(f"Task: {task}\nReply: {call}\nResult of {name}: {result}\nReply: {final}")
    return ("Examples (other workspaces):\n" + "\n\n".join(lines)) if lines else ""


def _title(text: str) -> str | None:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            return stripped.lstrip("#").strip() or None
    return None


def summarise(tool_name: str, arguments: dict[str, Any], output: str) -> str:
    """A built-in tool's result as a small model can use it: labelled, faithful, short."""
    try:
        value: Any = json.loads(output)
    except ValueError:
        value = output
    if tool_name == "list_dir" and isinstance(value, dict) and isinstance(value.get("entries"), list):
        names = [f"{e.get('name')} ({'folder' if e.get('type') == 'dir' else e.get('type')})"
                 for e in value["entries"] if isinstance(e, dict)]
        more = ", ..." if value.get("truncated") else ""
        path = value.get("path", ".")
        where = "The workspace folder (.)" if path == "." else f"The folder {path}"
        return (f"{where} holds {value.get('total', len(names))} entries: "
                + ", ".join(names) + more + ".")
    if tool_name == "read_file" and isinstance(value, str):
        lines = value.splitlines()
        head = "\n".join(lines[:SUMMARY_LINES])[:SUMMARY_CHARS]
        title = _title(value)
        # No quotation marks: a small model copies them into its JSON answer, where a bare
        # `"` ends the string (measured: answers cut at 'its title is ').
        # The title first: a small model often copies only the first sentence.
        named = f"Title: {title}. " if title else ""
        return f"{named}The file {arguments.get('path', '')} has {len(lines)} lines. It starts with:\n{head}"
    if tool_name == "search_knowledge" and isinstance(value, list):
        return "\n".join(f"[{p.get('n')}] {p.get('source')}: {' '.join(str(p.get('text', '')).split())[:400]}"
                         for p in value if isinstance(p, dict))
    return output
