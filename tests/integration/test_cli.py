"""The `workbench` command line, run as a user would: in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env

GREEDY = ["--temperature", "0", "--seed", "7", "--max-tokens", "24"]


def workbench(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=cli_env(home),
        timeout=300,
    )


def test_ask_streams_the_answer_and_json_matches_it(workbench_home: Path):
    streamed = workbench(workbench_home, "ask", "Name a color.", *GREEDY)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.strip()
    as_json = workbench(workbench_home, "ask", "Name a color.", *GREEDY, "--json")
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["text"].strip() == streamed.stdout.strip()  # deterministic with temperature 0
    assert result["usage"]["total_tokens"] == result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]
    assert result["finish_reason"] in ("stop", "length") and result["latency_ms"] > 0
    assert result["params"] == {"temperature": 0.0, "seed": 7, "max_tokens": 24}
    listing = workbench(workbench_home, "sessions", "list", "--json")
    assert len(json.loads(listing.stdout)) == 2


def test_ask_with_schema_prints_valid_json(workbench_home: Path):
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["color"],
    }
    result = workbench(workbench_home, "ask", "Pick a color.", "--schema", json.dumps(schema), "--json")
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)["parsed"]
    assert parsed["color"] in ("red", "green", "blue")


def test_bad_input_gives_one_sentence_and_no_traceback(workbench_home: Path, tmp_path: Path):
    cases = [
        (["ask", "hi", "--max-tokens", "-1"], "max_tokens"),
        (["ask", "hi", "--top-k", "-5"], "top_k"),
        (["ask", "hi", "--model", "nope"], "Unknown model"),
        (["ask", "hi", "--model", str(tmp_path / "gone.gguf")], "No model file"),
        (["ask", "hi", "--schema", "{oops"], "--schema is not valid JSON"),
        (["ask", "hi", "--session", "ses_missing"], "No session"),
        (["sessions", "show", "ses_missing"], "No session"),
        (["providers", "add", "Bad Name", "--kind", "openai", "--base-url", "http://x"], "provider name"),
        (["providers", "add", "ok", "--kind", "openai", "--base-url", "ftp://x"], "http"),
    ]
    for args, expected in cases:
        result = workbench(workbench_home, *args)
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert expected in result.stderr, (args, result.stderr)
        assert result.stderr.startswith("workbench: error: ")
    as_json = workbench(workbench_home, "ask", "hi", "--max-tokens", "0", "--json")
    assert json.loads(as_json.stdout)["error"]["code"] == "invalid_request"


def test_chat_repl_persists_and_resumes(workbench_home: Path):
    first = workbench(workbench_home, "chat", *GREEDY, stdin="Hello there.\n/session\n")
    assert first.returncode == 0, first.stderr
    session_id = re.search(r"ses_[0-9a-f]{20}", first.stdout).group(0)
    resumed = workbench(workbench_home, "chat", "--session", session_id, *GREEDY, stdin="And again.\n/exit\n")
    assert resumed.returncode == 0, resumed.stderr
    assert "you> Hello there." in resumed.stdout  # history is shown on resume
    shown = workbench(workbench_home, "sessions", "show", session_id, "--json")
    roles = [m["role"] for m in json.loads(shown.stdout)]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_no_command_without_a_terminal_says_the_tui_needs_one(workbench_home: Path):
    # With a terminal, no command opens the TUI (tests/tui/test_terminal_smoke.py runs it in tmux).
    result = workbench(workbench_home, stdin="")
    assert result.returncode == 2
    assert result.stderr == "workbench: error: the TUI needs a terminal; see `workbench --help` for the commands.\n"
    assert not (workbench_home / "workbench.duckdb").exists()


def test_models_lists_the_packaged_default(workbench_home: Path):
    result = workbench(workbench_home, "models", "--json")
    models = json.loads(result.stdout)
    default = [m for m in models if m["is_default"]]
    assert len(default) == 1 and default[0]["source"] == "package" and default[0]["location"].endswith(".gguf")


def test_model_output_cannot_drive_the_terminal():
    import io

    from workbench.cli.common import terminal_safe

    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    evil = "ok\x1b]0;pwned\x07\x1b[2J\tline\nnext"
    assert terminal_safe(evil, FakeTTY()) == "ok]0;pwned[2J\tline\nnext"
    assert terminal_safe(evil, io.StringIO()) == evil  # pipes get the bytes unchanged


def test_version_is_one_line_naming_the_package_version(workbench_home: Path):
    from workbench import __version__

    result = workbench(workbench_home, "--version")
    assert result.returncode == 0 and result.stderr == ""
    # From a venv: the bare version (the offline executable adds its build: tests_dist/).
    assert result.stdout == f"workbench {__version__}\n"
