"""Cancellation, threads, pipes and hostile input around the real default model."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import cli_env
from workbench.engine.engine import Engine
from workbench.engine.errors import InvalidRequest, ModelBusy, SecretsError
from workbench.engine.schemas import RunFinished

LONG = {
    "messages": [{"role": "user", "content": "Write a long essay about the history of ships."}],
    "params": {"temperature": 0, "max_tokens": 120},
}


def test_a_stream_may_be_stepped_from_different_threads(engine: Engine):
    events = engine.chat(LONG)
    seen: list = []

    def step(count: int) -> None:
        for _ in range(count):
            seen.append(next(events))

    for _ in range(3):  # each step on a new thread, as a web server's pool does
        worker = threading.Thread(target=step, args=(3,))
        worker.start()
        worker.join()
    rest = threading.Thread(target=lambda: seen.extend(events))
    rest.start()
    rest.join()
    assert isinstance(seen[-1], RunFinished)
    # the model lock was released: another thread generates normally
    results: list = []
    worker = threading.Thread(
        target=lambda: results.append(
            engine.generate({"messages": [{"role": "user", "content": "hi"}], "params": {"max_tokens": 4}})
        )
    )
    worker.start()
    worker.join(timeout=120)
    assert results and results[0].text


def test_a_second_stream_on_the_same_thread_is_refused_not_deadlocked(engine: Engine):
    first = engine.chat(LONG)
    next(first), next(first)  # RunStarted, first token: the model is held
    with pytest.raises(ModelBusy, match="busy"):
        engine.generate({"messages": [{"role": "user", "content": "hi"}], "params": {"max_tokens": 4}})
    tail = list(first)
    assert isinstance(tail[-1], RunFinished)


def test_ctrl_c_during_ask_keeps_the_partial_answer(workbench_home: Path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench",
            "ask",
            "Write a long essay about the sea.",
            "--max-tokens",
            "400",
            "--temperature",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(workbench_home),
    )
    assert proc.stdout.read(20)  # the answer is streaming
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 130
    with Engine(workbench_home) as engine:
        (session,) = engine.list_sessions()
        messages = engine.session_messages(session.id)
        assert messages[-1].role == "assistant" and messages[-1].content
        assert engine.conversations.generation(messages[-1].generation_id)["finish_reason"] == "cancelled"


def test_ask_into_a_closed_pipe_is_quiet_and_keeps_the_turn(workbench_home: Path):
    result = subprocess.run(
        f"'{sys.executable}' -m workbench ask 'Write a long essay about the sea.' --max-tokens 200 | head -c 5",
        shell=True,
        capture_output=True,
        text=True,
        env=cli_env(workbench_home),
        timeout=120,
    )
    assert len(result.stdout) == 5
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
    with Engine(workbench_home) as engine:
        assert len(engine.list_sessions()) == 1


def test_schema_beyond_the_grammar_is_refused_before_generation(engine: Engine):
    request = {
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {
            "type": "json_object",
            "schema": {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(?=a)b$"}}},
        },
    }
    with pytest.raises(InvalidRequest, match="cannot enforce this JSON Schema"):
        engine.chat(request)
    assert engine.list_sessions() == []


def test_constraints_beyond_the_grammar_are_met_by_sampling_again(engine: Engine):
    schema = {
        "type": "object",
        "properties": {
            "pair": {
                "type": "array",
                "items": {"enum": ["red", "green", "blue", "cyan"]},
                "minItems": 2,
                "maxItems": 2,
                "uniqueItems": True,
            }
        },
        "required": ["pair"],
    }
    for seed in range(8):
        result = engine.generate(
            {
                "messages": [{"role": "user", "content": "Pick two colors."}],
                "params": {"temperature": 1.0, "seed": seed, "max_tokens": 40},
                "response_format": {"type": "json_object", "schema": schema},
                "persist": False,
            }
        )
        assert result.parse_error is None, result.text
        assert len(set(result.parsed["pair"])) == 2


def test_keys_must_be_printable_ascii(engine: Engine):
    engine.add_provider("p", "openai", "http://127.0.0.1:9/v1", ["m"])
    for bad in ("sk-abc\u2019def", "sk-\u200bzero", "sk-a\nb"):
        with pytest.raises(SecretsError, match="printable ASCII"):
            engine.set_provider_key("p", bad)


def test_provider_errors_and_titles_carry_no_control_characters(engine: Engine):
    from workbench.engine.inference.http import clause

    assert clause("bad\x1b]0;pwned\x07 thing\x1b[2J.") == "bad]0;pwned thing[2J"
    result = engine.generate(
        {"messages": [{"role": "user", "content": "hi\x1b[2J there"}], "params": {"max_tokens": 3}}
    )
    assert engine.get_session(result.session_id).title == "hi[2J there"


def test_keyless_provider_works_without_a_keyring(workbench_home: Path):
    from tests.wire_servers import WireServer

    with WireServer() as wire:
        env = cli_env(workbench_home)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "workbench",
                "providers",
                "add",
                "local",
                "--kind",
                "openai",
                "--base-url",
                wire.openai_base_url,
                "--model",
                "m",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
        result = subprocess.run(
            [sys.executable, "-m", "workbench", "ask", "hello", "--model", "local:m"],
            env=env,
            capture_output=True,
            text=True,
        )
    # The wire server wants a key: the failure is the provider's 401 with the hint, not a keyring error.
    assert result.returncode == 1
    assert "keyring" not in result.stderr and "workbench keys set-provider local" in result.stderr


@pytest.mark.parametrize("kind", ["not-utf8", "directory", "top-level-list"])
def test_unreadable_config_gives_one_sentence(workbench_home: Path, kind: str):
    workbench_home.mkdir(parents=True)
    config = workbench_home / "config.json"
    if kind == "not-utf8":
        config.write_bytes(b"\xff\xfe{}")
    elif kind == "directory":
        config.mkdir()
    else:
        config.write_text("[]")
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "models"], env=cli_env(workbench_home), capture_output=True, text=True
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "config.json" in result.stderr


def test_home_that_is_a_file_gives_one_sentence(tmp_path: Path, workbench_home: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "sessions", "list", "--home", str(blocker / "sub")],
        env=cli_env(workbench_home),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "Cannot use" in result.stderr


def test_resumed_chat_with_a_system_prompt_stays_in_its_session(workbench_home: Path):
    first = subprocess.run(
        [sys.executable, "-m", "workbench", "chat", "--max-tokens", "5"],
        input="Hello.\n/session\n",
        env=cli_env(workbench_home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    import re

    session_id = re.search(r"ses_[0-9a-f]{20}", first.stdout).group(0)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "workbench",
            "chat",
            "--session",
            session_id,
            "--system",
            "Answer in French.",
            "--max-tokens",
            "5",
        ],
        input="Again.\n",
        env=cli_env(workbench_home),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    with Engine(workbench_home) as engine:
        assert len(engine.session_messages(session_id)) == 4
        assert len(engine.list_sessions()) == 1
