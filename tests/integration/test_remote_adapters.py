"""The OpenAI-compatible and Anthropic adapters against a real HTTP server speaking their wire formats.

Everything goes through real sockets (tests/wire_servers.py), the real Engine,
the real keyring file backend and the real DuckDB store of a per-test home.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import cli_env
from tests.wire_servers import WireServer, answer_for
from workbench.engine.errors import InvalidRequest, ProviderAuthError, ProviderError, ProviderUnreachable
from workbench.engine.inference.anthropic import AnthropicChatModel
from workbench.engine.inference.openai_compat import OpenAICompatChatModel
from workbench.engine.schemas import (
    DEFAULT_MAX_TOKENS,
    ChatMessage,
    ResponseFormat,
    RunFailed,
    RunFinished,
    RunStarted,
    SamplingParams,
    TokenDelta,
)

PROMPT = "the quick brown fox, it jumps over lazy dogs!"
ANSWER = answer_for(PROMPT)  # "dogs! lazy over jumps it fox, brown quick the"

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
        "member": {"type": "boolean"},
    },
    "required": ["name", "age", "tags", "member"],
    "additionalProperties": False,
}


@pytest.fixture
def wire():
    with WireServer(api_key=f"sk-wire-{uuid.uuid4().hex}") as server:
        yield server


def add_openai(engine, server: WireServer, name: str = "wireai", key: str | None = "server") -> str:
    engine.add_provider(name, "openai", server.openai_base_url, ["gpt-wire"])
    if key is not None:
        engine.set_provider_key(name, server.api_key if key == "server" else key)
    return name


def add_anthropic(
    engine, server: WireServer, name: str = "wireant", key: str | None = "server", base_url: str | None = None
) -> str:
    engine.add_provider(name, "anthropic", base_url or server.anthropic_base_url, ["claude-wire"])
    if key is not None:
        engine.set_provider_key(name, server.api_key if key == "server" else key)
    return name


def run(engine, request: dict) -> list:
    return list(engine.chat(request))


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_sentence(message: str) -> None:
    assert "\n" not in message
    assert message.endswith(".") and message[-2] not in ".!?:; ", message
    assert "Traceback" not in message


# ---------------------------------------------------------------- streaming


def add_model(engine, wire, kind: str) -> tuple[str, str]:
    """Configure the wire server as a provider of `kind`; return (provider name, model id)."""
    name = add_openai(engine, wire) if kind == "openai" else add_anthropic(engine, wire)
    return name, f"{name}:gpt-wire" if kind == "openai" else f"{name}:claude-wire"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_tokens_stream_as_several_deltas_that_join_to_the_answer(engine, wire, kind):
    name, model = add_model(engine, wire, kind)

    events = run(engine, {"model": model, "messages": user(PROMPT), "persist": False})

    assert isinstance(events[0], RunStarted) and events[0].model == model
    deltas = [e.text for e in events if isinstance(e, TokenDelta)]
    assert len(deltas) == len(PROMPT.split()) >= 5
    assert "".join(deltas) == ANSWER
    assert isinstance(events[-1], RunFinished)
    result = events[-1].result
    assert result.text == ANSWER
    assert result.provider == kind
    assert result.finish_reason == "stop"
    assert result.time_to_first_token_ms is not None


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_usage_comes_from_the_wire_not_from_counting_chunks(engine, wire, kind):
    name, model = add_model(engine, wire, kind)

    result = engine.generate({"model": model, "messages": user(PROMPT), "system": "Be brief.", "persist": False})

    (request,) = wire.requests
    prompt_tokens, completion_tokens = request.usage
    # The server counts punctuation as tokens: usage differs from the 9 chunks.
    assert completion_tokens == 11 != len(PROMPT.split())
    assert result.usage.prompt_tokens == prompt_tokens > 0
    assert result.usage.completion_tokens == completion_tokens
    assert result.usage.total_tokens == prompt_tokens + completion_tokens


def test_openai_server_without_usage_chunk_falls_back_to_chunk_count(engine, wire):
    wire.send_usage = False
    add_openai(engine, wire)
    result = engine.generate({"model": "wireai:gpt-wire", "messages": user(PROMPT), "persist": False})
    assert result.text == ANSWER
    assert result.usage.prompt_tokens == 0
    assert result.usage.completion_tokens == len(PROMPT.split())


@pytest.mark.parametrize(("kind", "wire_reason"), [("openai", "length"), ("anthropic", "max_tokens")])
def test_max_tokens_cuts_the_answer_and_finishes_with_length(engine, wire, kind, wire_reason):
    name, model = add_model(engine, wire, kind)

    result = engine.generate({"model": model, "messages": user(PROMPT), "params": {"max_tokens": 4}, "persist": False})

    assert result.text == "dogs! lazy over"  # "dogs" "!" "lazy" "over" = 4 tokens
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 4
    assert wire.requests[-1].body["max_tokens"] == 4


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_stop_sequence_cuts_the_answer_and_finishes_with_stop(engine, wire, kind):
    name, model = add_model(engine, wire, kind)

    result = engine.generate(
        {"model": model, "messages": user(PROMPT), "params": {"stop": [" jumps"]}, "persist": False}
    )

    assert result.text == "dogs! lazy over"
    assert result.finish_reason == "stop"


# ---------------------------------------------------------- request shapes


def test_openai_sampling_params_are_sent_with_openai_names(engine, wire):
    add_openai(engine, wire)
    engine.generate(
        {
            "model": "wireai:gpt-wire",
            "system": "You are terse.",
            "messages": user(PROMPT),
            "params": {"max_tokens": 50, "temperature": 0.3, "top_p": 0.9, "seed": 7, "stop": ["zzz", "yyy"]},
            "persist": False,
        }
    )
    body = wire.requests[-1].body
    assert body["model"] == "gpt-wire"
    assert body["messages"] == [{"role": "system", "content": "You are terse."}, {"role": "user", "content": PROMPT}]
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (50, 0.3, 0.9, 7)
    assert body["stop"] == ["zzz", "yyy"]
    assert "top_k" not in body and "repetition_penalty" not in body and "response_format" not in body
    assert wire.requests[-1].headers["accept"] == "text/event-stream"

    engine.generate(
        {
            "model": "wireai:gpt-wire",
            "messages": user(PROMPT),
            "params": {"top_k": 40, "repetition_penalty": 1.1},
            "persist": False,
        }
    )
    body = wire.requests[-1].body
    assert body["top_k"] == 40 and body["repetition_penalty"] == 1.1
    # Unset parameters are left to the provider's defaults.
    for name in ("max_tokens", "temperature", "top_p", "seed", "stop"):
        assert name not in body


def test_anthropic_request_shape_system_top_level_and_merged_turns(engine, wire):
    add_anthropic(engine, wire)
    result = engine.generate(
        {
            "model": "wireant:claude-wire",
            "system": "You are terse.",
            "messages": [
                {"role": "system", "content": "Answer in English."},
                {"role": "user", "content": "first part"},
                {"role": "user", "content": PROMPT},
            ],
            "params": {"max_tokens": 64, "temperature": 0.5, "top_p": 0.8, "top_k": 20, "stop": ["zzz"]},
            "persist": False,
        }
    )
    request = wire.requests[-1]
    body = request.body
    assert request.path == "/v1/messages"
    assert body["system"] == "You are terse.\n\nAnswer in English."
    assert body["messages"] == [{"role": "user", "content": f"first part\n\n{PROMPT}"}]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["top_k"]) == (64, 0.5, 0.8, 20)
    assert body["stop_sequences"] == ["zzz"]
    assert body["stream"] is True
    assert "stop" not in body and "seed" not in body
    # The server answers the last user turn: the merged one.
    assert result.text == answer_for(f"first part\n\n{PROMPT}")

    engine.generate({"model": "wireant:claude-wire", "messages": user("hi there"), "persist": False})
    body = wire.requests[-1].body
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS  # required by the Messages API
    assert "system" not in body and "temperature" not in body and "stop_sequences" not in body


def test_anthropic_base_url_ending_in_v1_is_not_doubled(engine, wire):
    add_anthropic(engine, wire, base_url=f"{wire.url}/v1")
    assert engine.generate({"model": "wireant:claude-wire", "messages": user("a b"), "persist": False}).text == "b a"
    assert [r.path for r in wire.requests] == ["/v1/messages"]


@pytest.mark.parametrize(
    ("params", "word"),
    [({"seed": 1}, "seed"), ({"repetition_penalty": 1.2}, "repetition_penalty"), ({"temperature": 1.5}, "temperature")],
)
def test_anthropic_rejects_unsupported_params_before_any_http_request(engine, wire, params, word):
    add_anthropic(engine, wire)
    request = {"model": "wireant:claude-wire", "messages": user(PROMPT), "params": params}

    with pytest.raises(InvalidRequest) as caught:
        engine.generate(request)
    assert word in str(caught.value)
    one_sentence(str(caught.value))

    # The check is eager: chat() raises at call time, before any event or request.
    with pytest.raises(InvalidRequest):
        engine.chat(request)

    adapter = AnthropicChatModel("direct", "claude-wire", wire.url, wire.api_key)
    try:
        with pytest.raises(InvalidRequest):
            list(adapter.stream([ChatMessage(role="user", content="hi")], SamplingParams(**params)))
    finally:
        adapter.close()

    assert wire.requests == []
    assert engine.list_sessions() == []


# ------------------------------------------------------------------- keys


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_key_is_read_from_the_keyring_and_sent_in_the_provider_header(engine, wire, kind):
    import keyring

    if kind == "openai":
        add_openai(engine, wire)
        engine.generate({"model": "wireai:gpt-wire", "messages": user("x y"), "persist": False})
        headers = wire.requests[-1].headers
        assert headers["authorization"] == f"Bearer {wire.api_key}"
        assert "x-api-key" not in headers
    else:
        add_anthropic(engine, wire)
        engine.generate({"model": "wireant:claude-wire", "messages": user("x y"), "persist": False})
        headers = wire.requests[-1].headers
        assert headers["x-api-key"] == wire.api_key
        assert headers["anthropic-version"] == "2023-06-01"
        assert "authorization" not in headers
    name = "wireai" if kind == "openai" else "wireant"
    assert keyring.get_password("workbench", f"provider:{name}") == wire.api_key
    assert next(p for p in engine.list_providers() if p.name == name).has_key


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_wrong_key_gives_auth_error_naming_the_keys_command_and_a_new_key_is_used(engine, wire, kind):
    wrong = f"sk-wrong-{uuid.uuid4().hex}"
    name = f"bad{kind}"
    if kind == "openai":
        add_openai(engine, wire, name=name, key=wrong)
        model = f"{name}:gpt-wire"
    else:
        add_anthropic(engine, wire, name=name, key=wrong)
        model = f"{name}:claude-wire"

    with pytest.raises(ProviderAuthError) as caught:
        engine.generate({"model": model, "messages": user(PROMPT)})
    message = str(caught.value)
    assert f"`workbench keys set-provider {name}`" in message
    assert "HTTP 401" in message
    assert wrong not in message and wire.api_key not in message
    one_sentence(message)

    events = run(engine, {"model": model, "messages": user(PROMPT)})
    assert isinstance(events[-1], RunFailed) and events[-1].code == "provider_auth_error"
    assert wrong not in events[-1].error
    assert engine.list_sessions() == []  # a failed first turn leaves no session

    # Storing the right key replaces the cached adapter: the next call uses it.
    engine.set_provider_key(name, wire.api_key)
    assert engine.generate({"model": model, "messages": user(PROMPT), "persist": False}).text == ANSWER


def test_missing_key_sends_no_auth_header_and_gives_auth_error(engine, wire):
    from workbench.engine import secrets

    secrets.delete_provider_key("nokey")
    add_openai(engine, wire, name="nokey", key=None)
    with pytest.raises(ProviderAuthError) as caught:
        engine.generate({"model": "nokey:gpt-wire", "messages": user(PROMPT)})
    assert "`workbench keys set-provider nokey`" in str(caught.value)
    assert "authorization" not in wire.requests[-1].headers


def test_api_key_never_lands_in_the_home(workbench_home, wire):
    from workbench.engine.engine import Engine

    wrong = f"sk-wrong-{uuid.uuid4().hex}"
    with Engine(workbench_home) as engine:
        add_openai(engine, wire)
        add_anthropic(engine, wire, name="leaky", key=wrong)
        first = engine.generate({"model": "wireai:gpt-wire", "messages": user(PROMPT)})
        engine.generate({"model": "wireai:gpt-wire", "messages": user("again please"), "session_id": first.session_id})
        with pytest.raises(ProviderAuthError):
            engine.generate({"model": "leaky:claude-wire", "messages": user(PROMPT)})
        assert len(engine.session_messages(first.session_id)) == 4

    files = [p for p in workbench_home.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert "config.json" in names and "workbench.duckdb" in names
    for path in files:
        data = path.read_bytes()
        for secret in (wire.api_key, wrong):
            assert secret.encode() not in data, f"API key found in {path}"
            assert secret.encode("utf-16-le") not in data, f"API key found in {path}"
    # The answers are in the database, so the grep above did read real content.
    assert any(ANSWER.encode() in p.read_bytes() for p in files)
    config = json.loads((workbench_home / "config.json").read_text())
    assert set(config["providers"]) == {"wireai", "leaky"}


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_unreachable_endpoint_gives_provider_unreachable_in_one_sentence(engine, kind):
    port = closed_port()
    base = f"http://127.0.0.1:{port}" + ("/v1" if kind == "openai" else "")
    engine.add_provider("gone", kind, base, ["m"])
    engine.set_provider_key("gone", "sk-gone-123456")

    with pytest.raises(ProviderUnreachable) as caught:
        engine.generate({"model": "gone:m", "messages": user("hello")})
    message = str(caught.value)
    assert message.startswith("Cannot reach the gone provider at ")
    assert f"127.0.0.1:{port}" in message
    assert "sk-gone-123456" not in message
    one_sentence(message)

    events = run(engine, {"model": "gone:m", "messages": user("hello")})
    assert [type(e) for e in events] == [RunStarted, RunFailed]
    assert events[-1].code == "provider_unreachable"
    assert engine.list_sessions() == []


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_unknown_remote_model_gives_provider_error_with_the_servers_reason(engine, wire, kind):
    name = add_openai(engine, wire) if kind == "openai" else add_anthropic(engine, wire)
    with pytest.raises(ProviderError) as caught:
        engine.generate({"model": f"{name}:no-such-model", "messages": user("hello")})
    assert type(caught.value) is ProviderError
    message = str(caught.value)
    assert "HTTP 404" in message and "no-such-model" in message
    assert wire.api_key not in message
    one_sentence(message)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_failure_mid_stream_error_event_gives_run_failed(engine, wire, kind):
    wire.fail_midstream = "error"
    name, model = add_model(engine, wire, kind)

    events = run(engine, {"model": model, "messages": user(PROMPT)})

    assert isinstance(events[0], RunStarted)
    assert [e.text for e in events if isinstance(e, TokenDelta)] == ["dogs!", " lazy"]
    failed = events[-1]
    assert isinstance(failed, RunFailed)
    assert failed.code == "provider_error"
    assert "mid-stream" in failed.error
    assert ("Overloaded" if kind == "anthropic" else "The server had an error") in failed.error
    one_sentence(failed.error)
    assert engine.list_sessions() == []


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_connection_dropped_mid_stream_gives_run_failed(engine, wire, kind):
    wire.fail_midstream = "drop"
    name, model = add_model(engine, wire, kind)

    events = run(engine, {"model": model, "messages": user(PROMPT)})

    assert [e.text for e in events if isinstance(e, TokenDelta)] == ["dogs!", " lazy"]
    failed = events[-1]
    assert isinstance(failed, RunFailed)
    assert failed.code in ("provider_error", "provider_unreachable")
    assert "mid-answer" in failed.error
    one_sentence(failed.error)
    assert engine.list_sessions() == []

    # The adapter recovers: the next request gets a fresh connection.
    wire.fail_midstream = None
    assert engine.generate({"model": model, "messages": user(PROMPT), "persist": False}).text == ANSWER


# ------------------------------------------------------------ JSON output


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "json_object", "schema": PERSON},
        {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}},
    ],
)
def test_openai_schema_response_is_parsed_and_validates(engine, wire, response_format):
    add_openai(engine, wire)
    events = run(
        engine, {"model": "wireai:gpt-wire", "messages": user("Ada Lovelace"), "response_format": response_format}
    )

    assert sum(isinstance(e, TokenDelta) for e in events) > 3
    result = events[-1].result
    assert result.parse_error is None
    assert result.parsed == {"name": "Lovelace Ada", "age": 2, "tags": ["Lovelace Ada"], "member": True}
    Draft202012Validator(PERSON).validate(result.parsed)
    sent = wire.requests[-1].body["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["schema"] == PERSON and sent["json_schema"]["name"]
    # The session remembers the requested format with the generation.
    gen = engine.conversations.generation(result.id)
    assert gen["response_format"]["schema"] == PERSON


def test_openai_json_object_without_schema(engine, wire):
    add_openai(engine, wire)
    result = engine.generate(
        {
            "model": "wireai:gpt-wire",
            "messages": user("x y"),
            "response_format": {"type": "json_object"},
            "persist": False,
        }
    )
    assert wire.requests[-1].body["response_format"] == {"type": "json_object"}
    assert result.parsed == {"answer": "y x"} and result.parse_error is None


def test_anthropic_schema_response_uses_a_forced_tool_and_validates(engine, wire):
    add_anthropic(engine, wire)
    events = run(
        engine,
        {
            "model": "wireant:claude-wire",
            "messages": user("Ada Lovelace"),
            "response_format": {"type": "json_object", "schema": PERSON},
        },
    )

    assert sum(isinstance(e, TokenDelta) for e in events) > 3
    result = events[-1].result
    assert result.parse_error is None
    assert result.finish_reason == "stop"  # stop_reason tool_use
    Draft202012Validator(PERSON).validate(result.parsed)
    assert result.parsed["name"] == "Lovelace Ada"
    body = wire.requests[-1].body
    (tool,) = body["tools"]
    assert tool["input_schema"] == PERSON
    assert body["tool_choice"] == {"type": "tool", "name": tool["name"]}


def test_schema_answer_cut_by_max_tokens_reports_a_parse_error(engine, wire):
    add_anthropic(engine, wire)
    result = engine.generate(
        {
            "model": "wireant:claude-wire",
            "messages": user("Ada Lovelace"),
            "response_format": {"type": "json_object", "schema": PERSON},
            "params": {"max_tokens": 5},
            "persist": False,
        }
    )
    assert result.finish_reason == "length"
    assert result.parsed is None
    assert "max_tokens" in result.parse_error


# --------------------------------------------------------------- sessions


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_session_persists_and_the_second_turn_sends_the_history(engine, wire, kind):
    name, model = add_model(engine, wire, kind)

    first = engine.generate({"model": model, "system": "Be terse.", "messages": user("one two three")})
    assert first.session_id is not None
    session = engine.get_session(first.session_id)
    assert session.model == model and session.system_prompt == "Be terse."

    second = engine.generate({"session_id": first.session_id, "messages": user("four five")})
    assert second.text == "five four" and second.session_id == first.session_id

    body = wire.requests[-1].body
    history = [
        {"role": "user", "content": "one two three"},
        {"role": "assistant", "content": "three two one"},
        {"role": "user", "content": "four five"},
    ]
    if kind == "openai":
        assert body["messages"] == [{"role": "system", "content": "Be terse."}, *history]
    else:
        assert body["system"] == "Be terse."
        assert body["messages"] == history
    stored = [(m.role, m.content) for m in engine.session_messages(first.session_id)]
    assert stored == [(m["role"], m["content"]) for m in history] + [("assistant", "five four")]


# -------------------------------------------------------------- adapters


def test_openai_adapter_directly_with_a_text_response_format(wire):
    adapter = OpenAICompatChatModel("direct", "gpt-wire", wire.openai_base_url, wire.api_key)
    try:
        items = list(adapter.stream([ChatMessage(role="user", content="a b c")], SamplingParams(), ResponseFormat()))
    finally:
        adapter.close()
    assert items[:-1] == ["c", " b", " a"]
    end = items[-1]
    assert (end.finish_reason, end.prompt_tokens, end.completion_tokens) == ("stop", *wire.requests[-1].usage)
    assert "response_format" not in wire.requests[-1].body


# -------------------------------------------------------------------- CLI


def test_cli_configures_a_provider_stores_its_key_and_streams_an_answer(workbench_home, wire):
    env = cli_env(workbench_home)
    workbench = [sys.executable, "-m", "workbench"]

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*workbench, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60)

    added = cli(
        "providers", "add", "clitest", "--kind", "openai", "--base-url", wire.openai_base_url, "--model", "gpt-wire"
    )
    assert added.returncode == 0, added.stderr
    stored = cli("keys", "set-provider", "clitest", stdin=wire.api_key + "\n")
    assert stored.returncode == 0, stored.stderr
    assert wire.api_key not in stored.stdout + stored.stderr

    asked = cli("ask", "--model", "clitest:gpt-wire", "--max-tokens", "100", PROMPT)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout == ANSWER + "\n"
    assert wire.api_key not in asked.stdout + asked.stderr
    request = wire.requests[-1]
    assert request.headers["authorization"] == f"Bearer {wire.api_key}"
    assert request.body["max_tokens"] == 100
    assert wire.api_key.encode() not in (Path(workbench_home) / "config.json").read_bytes()

    listed = cli("sessions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (session,) = json.loads(listed.stdout)
    assert session["model"] == "clitest:gpt-wire"


def test_anthropic_non_object_schema_is_wrapped_and_unwrapped(engine, wire):
    add_anthropic(engine, wire)
    schema = {"type": "array", "items": {"type": "string"}}
    result = engine.generate(
        {
            "model": "wireant:claude-wire",
            "messages": user("list some words"),
            "response_format": {"type": "json_object", "schema": schema},
            "persist": False,
        }
    )
    sent = wire.requests[-1].body
    assert sent["tools"][0]["input_schema"] == {
        "type": "object",
        "properties": {"value": schema},
        "required": ["value"],
    }
    assert isinstance(result.parsed, list) and result.parse_error is None
