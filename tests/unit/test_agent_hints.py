"""Aids for small models (agents/hints.py): path choices from the workspace, write
arguments from the task, summarised results; and the runner's test for an answer
that only repeats its own instructions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.engine.agents import hints
from workbench.engine.agents.runner import _echoes_harness
from workbench.engine.agents.step import step_schema
from workbench.engine.inference.grammar import check_schema
from workbench.engine.tools.builtin import files, knowledge


@pytest.fixture
def listing(tmp_path: Path) -> hints.Listing:
    for name, text in {
        "README.md": "# Demo project\nA small project.\n",
        "notes/todo.md": "- buy milk\n",
        "docs/guide.md": "# Install guide\n",
        ".git/config": "[core]\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return hints.workspace_listing([tmp_path])


def test_the_listing_holds_existing_relative_paths_without_vcs_folders(listing) -> None:
    assert listing.files == ["README.md", "docs/guide.md", "notes/todo.md"]
    assert listing.dirs == ["docs", "notes"] and listing.complete


@pytest.mark.parametrize(
    "tool, task, expected",
    [
        # the files a task names, else every file
        ("read_file", "list the files in the workspace and summarise README.md", {"path": ["README.md"]}),
        ("read_file", "Summarise the file docs/guide.md.", {"path": ["docs/guide.md"]}),
        ("read_file", "Show me a file.", {"path": ["README.md", "docs/guide.md", "notes/todo.md"]}),
        # the folders a task names and the workspace, else the workspace (never a file)
        ("list_dir", "list the files in the workspace and summarise README.md", {"path": ["."]}),
        ("list_dir", "What is in the notes folder?", {"path": ["notes", "."]}),
        # a write: the file names of the task, and its one quoted text as the content
        (
            "write_file",
            "Write 'buy milk' into the file shopping.txt.",
            {"path": ["shopping.txt"], "content": ["buy milk"]},
        ),
        (
            "write_file",
            "Save the text 'meeting on Friday' to notes/meeting.txt.",
            {"path": ["notes/meeting.txt"], "content": ["meeting on Friday"]},
        ),
        # quotes inside code are not the content; no file name: nothing is narrowed
        ("write_file", "Create a file hello.py containing print('hello').", {"path": ["hello.py"]}),
        ("write_file", "Write a poem about the sea.", {}),
        ("search_knowledge", "Search our documents.", {"collection": ["docs"]}),
        ("run_command", "Run ls in notes.", {}),
    ],
)
def test_choices(listing, tool, task, expected) -> None:
    assert hints.choices(tool, "builtin", task, listing, ["docs"]) == expected


def test_no_choices_for_mcp_tools_or_a_cut_off_listing_the_task_does_not_name(listing) -> None:
    assert hints.choices("read_file", "mcp:files", "Summarise README.md", listing, []) == {}
    listing.complete = False
    assert hints.choices("read_file", "builtin", "Show me a file.", listing, []) == {}
    assert hints.choices("read_file", "builtin", "Summarise README.md", listing, []) == {"path": ["README.md"]}
    assert hints.choices("search_knowledge", "builtin", "Search.", listing, []) == {}


def test_choices_become_enums_the_grammar_accepts(listing) -> None:
    tools = {t.name: t for t in files.tools() + knowledge.tools()}
    offered = [tools["read_file"], tools["list_dir"], tools["search_knowledge"]]
    task = "Summarise README.md"
    choices = {t.name: hints.choices(t.name, t.source, task, listing, ["docs"]) for t in offered}
    schema = step_schema(offered, choices=choices)
    check_schema(schema)
    arguments = [option["properties"]["arguments"]["properties"] for option in schema["anyOf"][:3]]
    assert arguments[0]["path"]["enum"] == ["README.md"]
    assert arguments[1]["path"]["enum"] == ["."]
    assert arguments[2]["collection"]["enum"] == ["docs"]
    assert "enum" not in arguments[0]["start_line"]
    # the tools' own schemas are untouched
    assert "enum" not in tools["read_file"].parameters["properties"]["path"]


def test_results_are_summarised_faithfully() -> None:
    listed = json.dumps(
        {
            "path": ".",
            "entries": [{"name": "README.md", "type": "file", "size": 9}, {"name": "docs", "type": "dir"}],
            "total": 2,
            "truncated": False,
        }
    )
    assert (
        hints.summarise("list_dir", {}, listed)
        == "The workspace folder (.) holds 2 entries: README.md (file), docs (folder)."
    )
    one = json.dumps({"path": "docs", "entries": [{"name": "guide.md", "type": "file"}], "total": 1})
    assert hints.summarise("list_dir", {}, one) == "The folder docs holds 1 entry: guide.md (file)."
    # a short file in the shape of an answer: its title and all its lines, no labels or line counts
    read = hints.summarise("read_file", {"path": "notes/todo.md"}, '# Todo\n- buy "milk"\n\n- call Bob\n')
    assert read == 'notes/todo.md is titled Todo. It says: buy "milk"; call Bob'
    assert (
        hints.summarise("read_file", {"path": "a.txt"}, "Install with make.\n") == "a.txt: it says: Install with make."
    )
    long = hints.summarise("read_file", {"path": "b.md"}, "# B\n" + "".join(f"line {i}\n" for i in range(30)))
    assert long.startswith("b.md is titled B. It starts: line 0; line 1;") and long.endswith("line 11 ...")
    passages = json.dumps([{"n": 1, "source": "/kb/support.md", "text": "# Support\nWrite to help@demo.example."}])
    assert hints.summarise("search_knowledge", {}, passages) == "[1] support.md: Support. Write to help@demo.example."
    assert hints.summarise("write_file", {}, "Wrote 8 characters to a.txt.") == "Wrote 8 characters to a.txt."


PASSAGES = [
    {"n": 1, "source": "/kb/refunds.md", "text": "# Refund policy\nReturn any item within 30 days."},
    {"n": 2, "source": "/kb/shipping.md", "text": "# Shipping\nOrders ship within two business days."},
    {"n": 3, "source": "/kb/support.md", "text": "# Support\nWrite to help@demo.example; we answer in a day."},
]


@pytest.mark.parametrize(
    "task, kept",
    [
        # the passages sharing most content words with the task, best first (plurals count)
        ("Look up the support email address in the knowledge base.", [3]),
        ("How many days do customers have to return an item?", [1]),
        ("Which orders ship, and how do I get support?", [2, 3]),
        # no shared word: the search's own first passage
        ("What is the capital of France?", [1]),
    ],
)
def test_search_results_are_narrowed_to_the_passages_the_task_is_about(task, kept) -> None:
    assert [p["n"] for p in hints.relevant_passages(task, PASSAGES)] == kept
    summary = hints.summarise("search_knowledge", {}, json.dumps(PASSAGES), task=task)
    assert [line.split("]")[0] for line in summary.splitlines()] == [f"[{n}" for n in kept]


def test_a_passage_source_is_shown_by_its_file_name() -> None:
    assert hints.source_name("/tmp/wb-x1y2/collection/refunds.md") == "refunds.md"
    assert hints.source_name("C:\\docs\\a.md") == "a.md"
    assert hints.source_name("") == ""


@pytest.mark.parametrize(
    "task, tools",
    [
        # a folder the task names: list it
        ("What is in the notes folder?", ["list_dir"]),
        # a new file with one quoted text: write it (its folder is not named on its own)
        ("Save the text 'meeting on Friday' to notes/meeting.txt.", ["write_file"]),
        ("Write 'buy milk' into the file shopping.txt.", ["write_file"]),
        # an existing file is read, not written; no quoted text or no file: nothing
        ("Put 'x' into README.md.", []),
        ("Create a file hello.py containing print('hello').", []),
        ("Summarise README.md", []),
        ("What is the time?", []),
    ],
)
def test_the_paths_a_task_names_call_for_file_tools(listing, task, tools) -> None:
    assert hints.path_tools(task, listing) == tools


@pytest.mark.parametrize(
    "answer",
    [
        # answers the 135M model gave before this check (benchmarks/agents.py, end_to_end)
        "You already called list_dir with these arguments and got the result above. Use it: answer now.",
        "You already called list_dir with these arguments and got the result above. Use it again to answer this task.",
        "You already called search_knowledge with this result and got the answer above.",
        "If this result answers the task, give the final answer now; otherwise call the next tool.",
        "No, call the next tool.",
        "Answer the task from this result now.",
    ],
)
def test_an_answer_repeating_the_runners_instructions_is_caught(answer) -> None:
    assert _echoes_harness(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "The workspace holds README.md, docs and notes.",
        'README.md is titled "Demo project".',
        "I could not read the file: it does not exist.",
    ],
)
def test_real_answers_are_not_taken_for_echoes(answer) -> None:
    assert not _echoes_harness(answer)
