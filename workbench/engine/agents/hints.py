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
  and `read_file` is offered (the runner does this with `named_files`); a
  folder the task names adds `list_dir`, a new file it gives one quoted text
  for adds `write_file` (`path_tools`), whatever routing by meaning offered;
* the step prompt lists the workspace and shows one worked example per
  offered tool, whose answer restates its result;
* a tool result is fed back summarised in the shape of an answer (a listing
  as names, a file as its title and lines, a search as the passages the task
  is about, sources by file name): the full output stays in the run's events
  and the audit.

Nothing here writes an answer: the model does, from the result it is shown.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.engine.knowledge.answer import STOPWORDS
from workbench.engine.tools.builtin.files import SKIP_DIRS

#: entries of the workspace offered as path choices and shown in the prompt
LISTING_LIMIT = 200
#: entries looked at to find the paths a task names (deeper than the listing)
SCAN_LIMIT = 5000
#: entries named in the step prompt
PROMPT_ENTRIES = 40
#: first lines of a file fed back after read_file
SUMMARY_LINES = 12
SUMMARY_CHARS = 800

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
        # (a folder named only as part of a file path, notes/a.txt, is not named itself)
        if len(candidate) >= 3 and re.search(rf"(?<![\w.-]){re.escape(candidate)}(?![\w-]|/[\w.-])", text):
            return True
    return False


def _first(named: list[str], rest: list[str]) -> list[str]:
    return list(dict.fromkeys([*named, *rest]))


def named_files(task: str, listing: Listing | None) -> list[str]:
    """The existing files `task` names (paths the listing saw)."""
    if listing is None:
        return []
    return [p for p, is_dir in listing.seen if not is_dir and _names(task, p)]


def named_dirs(task: str, listing: Listing | None) -> list[str]:
    """The existing folders `task` names (paths the listing saw)."""
    if listing is None:
        return []
    return [p for p, is_dir in listing.seen if is_dir and _names(task, p)]


def write_request(task: str, listing: Listing | None) -> tuple[str, str] | None:
    """(path, content) when `task` reads as a write: it names one file that does not exist
    yet and quotes one text (`Save 'x' to notes/a.txt`); None otherwise."""
    names = list(dict.fromkeys(m.group(1) for m in _FILE_NAME.finditer(task)))
    quoted = [m.group(2) for m in _QUOTED.finditer(task)]
    if len(names) != 1 or len(quoted) != 1:
        return None
    seen = {p for p, _ in listing.seen} if listing is not None else set()
    return None if names[0] in seen else (names[0], quoted[0])


def path_tools(task: str, listing: Listing | None) -> list[str]:
    """Built-in tools the paths a task names call for, beside what routing by meaning offers.

    Measured on the 135M default: "What is in the notes folder?" was routed to
    read_file alone, and "Save the text '...' to notes/meeting.txt" to remember
    alone. A folder the task names is listed with list_dir; a new file the task
    gives a quoted text for is written with write_file. (An existing file the
    task names is read: the runner keeps read_file offered while it is unread.)
    """
    tools = []
    if named_dirs(task, listing):
        tools.append("list_dir")
    if write_request(task, listing) is not None:
        tools.append("write_file")
    return tools


def choices(
    tool_name: str, source: str, task: str, listing: Listing | None, collections: list[str]
) -> dict[str, list[str]]:
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
    dirs = named_dirs(task, listing)
    if not listing.complete and not (named or dirs):
        return {}
    if tool_name == "read_file":
        # A task that names files means those; otherwise any file of the listing.
        files = named or listing.files
        return {"path": files} if files else {}
    if tool_name == "list_dir":
        # A task that names no folder means the workspace itself (measured: offered
        # every folder, the 135M model lists the first one it sees).
        return {"path": [*dirs, "."] if dirs else ["."]}
    return {"path": _first([*named, *dirs, "."], [*listing.dirs, *listing.files])}


def describe_listing(listing: Listing) -> str:
    """The workspace as one prompt line: folders end in '/'."""
    entries = [p + "/" for p in listing.dirs] + listing.files
    entries.sort()
    shown = entries[:PROMPT_ENTRIES]
    more = "" if len(entries) <= PROMPT_ENTRIES and listing.complete else ", ..."
    return "Files in the workspace: " + (", ".join(shown) if shown else "none") + more


#: one worked example per built-in tool: a task, the call, what a result looks like, the answer
EXAMPLES: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "list_dir": (
        "What is in the src folder?",
        {"path": "src"},
        "The folder src holds 2 entries: app.py (file), lib (folder).",
        "The folder src holds 2 entries: app.py (file), lib (folder).",
    ),
    "read_file": (
        "Summarise plan.md.",
        {"path": "plan.md"},
        "plan.md is titled Launch plan. It says: book the hall; send the invites.",
        "plan.md is titled Launch plan. It says: book the hall; send the invites.",
    ),
    "write_file": (
        "Write 'hi' into the file a.txt.",
        {"path": "a.txt", "content": "hi"},
        "Wrote 2 characters to a.txt.",
        "Wrote 2 characters to a.txt.",
    ),
    "search_knowledge": (
        "Search our documents for the office address.",
        {"query": "office address"},
        "[1] offices.md: Our office is at 5 Main Street.",
        "The office is at 5 Main Street (offices.md).",
    ),
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


def source_name(path: Any) -> str:
    """A passage's source as a small model is shown it: the file name alone.

    The absolute path adds tokens that carry nothing for the answer, and it made
    the same task give different answers from different folders (a temporary
    folder's random name changed greedy output); the passage number cites it.
    """
    text = str(path or "")
    return text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or text


#: words that say nothing about which passage answers a task: the cited answers' stopwords and
#: the words a task uses to ask for a search
_STOPWORDS = STOPWORDS | frozenset(
    {
        "about",
        "any",
        "base",
        "document",
        "documents",
        "find",
        "has",
        "have",
        "knowledge",
        "look",
        "me",
        "my",
        "not",
        "our",
        "search",
        "show",
        "tell",
        "that",
        "their",
        "them",
        "there",
        "these",
        "up",
        "us",
        "was",
        "we",
        "will",
    }
)


def _words(text: str) -> set[str]:
    """Content words of `text`, crudely stemmed (a plural `s` dropped)."""
    words = set()
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word not in _STOPWORDS and (len(word) >= 3 or word.isdigit()):
            words.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return words


def relevant_passages(task: str, passages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The passages a small model should answer `task` from, best first.

    Measured on the 135M default: shown every passage a search returned, it
    mixed them (a refund period given as the answer about a support address).
    Kept: the passages sharing at least half as many content words with the
    task as the best one does, most shared first (search order on ties); when
    none shares a word, the search's first passage.
    """
    if not passages:
        return []
    wanted = _words(task)
    scored = [
        (len(wanted & _words(f"{p.get('heading') or ''} {p.get('text', '')}")), i, p) for i, p in enumerate(passages)
    ]
    best = max(score for score, _, _ in scored)
    if best == 0:
        return passages[:1]
    kept = [item for item in scored if item[0] * 2 >= best]
    return [p for _, _, p in sorted(kept, key=lambda item: (-item[0], item[1]))]


def _plain(line: str) -> str:
    """A Markdown line as plain text: no heading marks or bullets."""
    return line.strip().lstrip("#").strip().lstrip("-*+").strip()


def _passage_text(text: str) -> str:
    """A passage on one line: a heading becomes a sentence of its own."""
    parts = []
    for line in text.splitlines():
        if line.strip():
            plain = _plain(line)
            parts.append(plain + "." if line.lstrip().startswith("#") and not plain.endswith(".") else plain)
    return " ".join(parts)


def summarise(tool_name: str, arguments: dict[str, Any], output: str, task: str = "") -> str:
    """A built-in tool's result as a small model can use it: labelled, faithful, short.

    Each summary is one or two plain sentences in the shape of an answer (the
    worked examples show the same shape), because the 135M model copies what
    it is shown: given labels (`Title:`, `The whole file ...:`) or line counts,
    it answered with those.
    """
    try:
        value: Any = json.loads(output)
    except ValueError:
        value = output
    if tool_name == "list_dir" and isinstance(value, dict) and isinstance(value.get("entries"), list):
        names = [
            f"{e.get('name')} ({'folder' if e.get('type') == 'dir' else e.get('type')})"
            for e in value["entries"]
            if isinstance(e, dict)
        ]
        more = ", ..." if value.get("truncated") else ""
        path = value.get("path", ".")
        where = "The workspace folder (.)" if path == "." else f"The folder {path}"
        total = value.get("total", len(names))
        return f"{where} holds {total} {'entry' if total == 1 else 'entries'}: " + ", ".join(names) + more + "."
    if tool_name == "read_file" and isinstance(value, str):
        path = arguments.get("path", "")
        lines = [line for line in value.splitlines() if line.strip()]
        # A Markdown heading on the first line is the file's title.
        title = _plain(lines[0]) if lines and lines[0].lstrip().startswith("#") else None
        body = [_plain(line) for line in (lines[1:] if title else lines)]
        text = "; ".join(line for line in body[:SUMMARY_LINES] if line)
        cut = len(body) > SUMMARY_LINES or len(text) > SUMMARY_CHARS
        text = text[:SUMMARY_CHARS] + (" ..." if cut else "")
        # No quotation marks: a small model copies them into its JSON answer, where a bare
        # `"` ends the string (measured: answers cut at 'its title is ').
        named = f"{path} is titled {title}. " if title else f"{path}: "
        says = ("It starts: " if cut else "It says: ") if title else ("it starts: " if cut else "it says: ")
        return f"{named}{says}{text}" if text else f"{named}It is otherwise empty."
    if tool_name == "search_knowledge" and isinstance(value, list):
        passages = relevant_passages(task, [p for p in value if isinstance(p, dict)]) if task else value
        return "\n".join(
            f"[{p.get('n')}] {source_name(p.get('source'))}: {_passage_text(str(p.get('text', '')))[:400]}"
            for p in passages
            if isinstance(p, dict)
        )
    return output
