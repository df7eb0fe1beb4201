"""A real terminal: tmux runs `workbench`, we type a question, and the pane shows the streamed answer.

`make test` installs tmux where it can (see the Makefile); without it this
test is skipped with that reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import PYTHON

WORKBENCH = str(Path(PYTHON).parent / "workbench")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True, timeout=30).stdout


def pane(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def flat(text: str) -> str:
    """Pane text as one line of words: borders and bars removed, wrapped lines joined."""
    return " ".join(re.sub(r"[▕▏█▊▎▔▁│]", " ", text).split())


def unmarked(text: str) -> str:
    """Text without the Markdown marks the chat log renders away or as other glyphs (emphasis, code,
    headings, list bullets)."""
    return " ".join(w for w in re.sub(r"[*_`#]", "", text).split() if w not in ("-", "+", "•", "▪"))


def wait_for_text(session: str, predicate, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = pane(session)
        if predicate(text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; the pane shows:\n{text}")


@pytest.mark.slow
def test_workbench_in_tmux_streams_an_answer(workbench_home: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (make test installs it where the system allows)")
    from workbench.engine.engine import Engine

    session = f"wb-smoke-{uuid.uuid4().hex[:8]}"
    env = {
        "WORKBENCH_HOME": str(workbench_home),
        "PYTHON_KEYRING_BACKEND": os.environ["PYTHON_KEYRING_BACKEND"],
        "XDG_DATA_HOME": os.environ["XDG_DATA_HOME"],
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TERM": "xterm-256color",
    }
    command = " ".join(f"{k}={v}" for k, v in env.items()) + f" {WORKBENCH}"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "36", command)
    try:
        wait_for_text(session, lambda t: "Ready" in t, 120, "the engine to be ready")
        tmux("send-keys", "-t", session, "-l", "Name one colour of the sky.")
        tmux("send-keys", "-t", session, "Enter")
        # The prompt, then the streamed answer and its turn line ("N tokens out, M in · ...").
        shown = wait_for_text(
            session,
            lambda t: "Name one colour of the sky." in flat(t) and "tokens out" in flat(t),
            120,
            "the streamed answer",
        )
        # the turn line can be painted a moment before the answer's final re-render: wait for a still pane
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.5)
            again = pane(session)
            if again == shown:
                break
            shown = again
        tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _alive(session):
            time.sleep(0.2)
        assert not _alive(session), "workbench did not quit on Ctrl+Q"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    with Engine(workbench_home) as engine:
        (stored,) = engine.list_sessions()
        messages = engine.session_messages(stored.id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].content == "Name one colour of the sky."
    # What the model said (stored) is what the terminal showed. The log follows the stream, so a long
    # answer's first lines may have scrolled away: its last words, rendered from Markdown, are in view.
    # (only the chat column, right of the sidebar, whose own lines would interleave)
    column = "\n".join(line.split("▕", 1)[1] for line in shown.splitlines() if "▕" in line)
    words = unmarked(messages[1].content).split()[-3:]
    assert words and " ".join(words) in unmarked(flat(column)), (words, shown)


def _alive(session: str) -> bool:
    result = subprocess.run(["tmux", "has-session", "-t", session], capture_output=True)
    return result.returncode == 0
