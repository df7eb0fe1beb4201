"""Native tool calling with the OpenAI-compatible and Anthropic adapters.

Real sockets (tests/wire_servers.py answers with tool calls in each provider's
streaming wire format and validates tool messages as the real APIs do), the
real Engine, the real keyring file backend and the DuckDB store of a per-test
home; the local-model tests run the real packaged GGUF model.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.wire_servers import WireServer, add_model, answer_for, instance_for
from workbench.engine.errors import InvalidRequest, ProviderError
from workbench.engine.inference.anthropic import AnthropicChatModel
from workbench.engine.inference.base import StreamEnd
from workbench.engine.inference.llama import LlamaCppChatModel, chat_template_messages
from workbench.engine.inference.openai_compat import OpenAICompatChatModel
from workbench.engine.schemas import (
    ChatMessage,
    RunFailed,
    RunFinished,
    RunStarted,
    SamplingParams,
    TokenDelta,
    ToolCall,
    ToolSpec,
)

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city"],
}
WEATHER = {"name": "get_weather", "description": "The weather forecast for a city.", "parameters": WEATHER_SCHEMA}
CLOCK = {"name": "clock", "description": "The current time.", "parameters": {"type": "object", "properties": {}}}
QUESTION = "What is the weather in Paris?"


@pytest.fixture
def wire():
    with WireServer(api_key=f"sk-wire-{uuid.uuid4().hex}") as server:
        yield server


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def one_sentence(message: str) -> None:
    assert "\n" not in message
    assert message.endswith(".") and message[-2] not in ".!?:; ", message
    assert "Traceback" not in message


def nones(value: Any, path: str = "") -> list[str]:
    """Paths of null values anywhere in a JSON document."""
    if value is None:
        return [path or "."]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nones(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nones(v, f"{path}[{i}]")]
    return []


# ---------------------------------------------------------- calls come back


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_request_with_tools_returns_parsed_tool_calls(engine, wire, kind):
    model = add_model(engine, wire, kind)
    wire.tool_calls = [("get_weather", {"city": "Paris", "days": 3, "units": {"temp": "C", "wind": ["km/h"]}})]

    events = list(
        engine.chat({"model": model, "messages": user(QUESTION), "tools": [WEATHER, CLOCK], "persist": False})
    )

    assert isinstance(events[0], RunStarted)
    assert not [e for e in events if isinstance(e, TokenDelta)]
    assert isinstance(events[-1], RunFinished), events[-1]
    result = events[-1].result
    assert result.finish_reason == "tool_calls"
    assert result.text == ""
    (call,) = result.tool_calls
    assert call.name == "get_weather"
    assert call.arguments == {"city": "Paris", "days": 3, "units": {"temp": "C", "wind": ["km/h"]}}
    assert call.id.startswith("call_" if kind == "openai" else "toolu_")
    # Usage is the server's, not a count of the argument fragments.
    request = wire.requests[-1]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == request.usage
    assert result.usage.completion_tokens > 5

    body = request.body
    if kind == "openai":
        assert body["tools"] == [
            {"type": "function", "function": WEATHER},
            {"type": "function", "function": CLOCK},
        ]
        assert body["tool_choice"] == "auto"
        assert body["messages"] == user(QUESTION)
    else:
        assert body["tools"] == [
            {"name": "get_weather", "description": WEATHER["description"], "input_schema": WEATHER_SCHEMA},
            {"name": "clock", "description": CLOCK["description"], "input_schema": CLOCK["parameters"]},
        ]
        assert "tool_choice" not in body
        assert body["messages"] == user(QUESTION)
    assert nones(body) == []


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_arguments_built_from_the_schema_by_the_server_validate(engine, wire, kind):
    model = add_model(engine, wire, kind)
    result = engine.generate({"model": model, "messages": user("Lyon"), "tools": [WEATHER], "persist": False})
    (call,) = result.tool_calls
    assert call.arguments == instance_for(WEATHER_SCHEMA, answer_for("Lyon")) == {"city": "Lyon", "days": 1}


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_text_before_several_calls_streams_and_the_calls_keep_their_order(engine, wire, kind):
    model = add_model(engine, wire, kind)
    wire.tool_preamble = "Let me look that up."
    wire.tool_calls = [("get_weather", {"city": "Paris"}), ("clock", {}), ("get_weather", {"city": "Oslo", "days": 2})]

    events = list(
        engine.chat({"model": model, "messages": user(QUESTION), "tools": [WEATHER, CLOCK], "persist": False})
    )

    deltas = [e.text for e in events if isinstance(e, TokenDelta)]
    assert len(deltas) == 5 and "".join(deltas) == "Let me look that up."
    result = events[-1].result
    assert result.text == "Let me look that up."
    assert result.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("clock", {}),
        ("get_weather", {"city": "Oslo", "days": 2}),
    ]
    assert len({c.id for c in result.tool_calls}) == 3
    assert result.time_to_first_token_ms is not None


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_adapter_stream_yields_complete_tool_calls_before_the_end(wire, kind):
    if kind == "openai":
        adapter = OpenAICompatChatModel("direct", "gpt-wire", wire.openai_base_url, wire.api_key)
    else:
        adapter = AnthropicChatModel("direct", "claude-wire", wire.url, wire.api_key)
    wire.tool_calls = [("get_weather", {"city": "Rome", "days": 5})]
    try:
        items = list(
            adapter.stream([ChatMessage(role="user", content=QUESTION)], SamplingParams(), None, [ToolSpec(**WEATHER)])
        )
    finally:
        adapter.close()
    assert adapter.supports_tools is True
    call, end = items
    assert isinstance(call, ToolCall) and (call.name, call.arguments) == ("get_weather", {"city": "Rome", "days": 5})
    assert isinstance(end, StreamEnd) and end.finish_reason == "tool_calls"


# ------------------------------------------------------ results go back in


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_tool_results_go_back_in_each_providers_format_and_the_model_answers(engine, wire, kind):
    model = add_model(engine, wire, kind)
    wire.tool_preamble = "Checking."
    wire.tool_calls = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo", "days": 2})]
    first = engine.generate({"model": model, "messages": user(QUESTION), "tools": [WEATHER], "persist": False})
    paris, oslo = first.tool_calls

    conversation = [
        *user(QUESTION),
        {"role": "assistant", "content": first.text, "tool_calls": [c.model_dump() for c in first.tool_calls]},
        {"role": "tool", "tool_call_id": paris.id, "name": "get_weather", "content": "sunny and 21 degrees"},
        {"role": "tool", "tool_call_id": oslo.id, "name": "get_weather", "content": "snow at minus 4"},
    ]
    second = engine.generate({"model": model, "messages": conversation, "tools": [WEATHER], "persist": False})

    # The server pairs every call with its result (a real API answers 400 otherwise)
    # and answers the results: the words of the last one reversed (OpenAI), of all
    # the results of the user turn (Anthropic).
    assert second.finish_reason == "stop" and second.tool_calls == []
    expected = "snow at minus 4" if kind == "openai" else "sunny and 21 degrees snow at minus 4"
    assert second.text == answer_for(expected)

    body = wire.requests[-1].body
    assert nones(body) == []
    if kind == "openai":
        sent_calls = body["messages"][1]["tool_calls"]
        assert body["messages"] == [
            *user(QUESTION),
            {"role": "assistant", "content": "Checking.", "tool_calls": sent_calls},
            {"role": "tool", "tool_call_id": paris.id, "content": "sunny and 21 degrees"},
            {"role": "tool", "tool_call_id": oslo.id, "content": "snow at minus 4"},
        ]
        assert [(c["id"], c["type"], c["function"]["name"]) for c in sent_calls] == [
            (paris.id, "function", "get_weather"),
            (oslo.id, "function", "get_weather"),
        ]
        # Arguments travel as JSON text.
        assert [json.loads(c["function"]["arguments"]) for c in sent_calls] == [
            {"city": "Paris"},
            {"city": "Oslo", "days": 2},
        ]
    else:
        assert body["messages"] == [
            *user(QUESTION),
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": paris.id, "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": oslo.id, "name": "get_weather", "input": {"city": "Oslo", "days": 2}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": paris.id, "content": "sunny and 21 degrees"},
                    {"type": "tool_result", "tool_use_id": oslo.id, "content": "snow at minus 4"},
                ],
            },
        ]


def test_openai_assistant_turn_without_text_sends_empty_content_not_null(engine, wire):
    model = add_model(engine, wire, "openai")
    call = {"id": "call_abc", "name": "clock", "arguments": {}}
    conversation = [
        *user("What time is it?"),
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "noon"},
    ]
    result = engine.generate({"model": model, "messages": conversation, "tools": [CLOCK], "persist": False})
    assert result.text == "noon"
    assistant = wire.requests[-1].body["messages"][1]
    assert assistant == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_abc", "type": "function", "function": {"name": "clock", "arguments": "{}"}}],
    }


def test_anthropic_text_after_tool_results_joins_the_same_user_turn_after_them(engine, wire):
    model = add_model(engine, wire, "anthropic")
    conversation = [
        *user("What time is it?"),
        {"role": "assistant", "content": "", "tool_calls": [{"id": "toolu_1", "name": "clock", "arguments": {}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "noon"},
        {"role": "user", "content": "And answer briefly."},
    ]
    engine.generate({"model": model, "messages": conversation, "persist": False})
    body = wire.requests[-1].body
    assert body["messages"] == [
        *user("What time is it?"),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "clock", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "noon"},
                {"type": "text", "text": "And answer briefly."},
            ],
        },
    ]


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_dotted_tool_names_travel_in_the_providers_alphabet_and_come_back(engine, wire, kind):
    model = add_model(engine, wire, kind)
    dotted = {"name": "mcp.time.now", "description": "The time from an MCP server."}
    wire.tool_calls = [("mcp_time_now", {})]

    result = engine.generate({"model": model, "messages": user("time?"), "tools": [dotted], "persist": False})

    assert [(c.name, c.arguments) for c in result.tool_calls] == [("mcp.time.now", {})]
    tools = wire.requests[-1].body["tools"]
    sent = tools[0]["function"]["name"] if kind == "openai" else tools[0]["name"]
    assert sent == "mcp_time_now"

    # The call goes back under the same wire name, so the server can pair it.
    conversation = [
        *user("time?"),
        {"role": "assistant", "content": "", "tool_calls": [c.model_dump() for c in result.tool_calls]},
        {"role": "tool", "tool_call_id": result.tool_calls[0].id, "content": "ten past nine"},
    ]
    answer = engine.generate({"model": model, "messages": conversation, "tools": [dotted], "persist": False})
    assert answer.text == "nine past ten"
    assistant = wire.requests[-1].body["messages"][1]
    if kind == "openai":
        assert assistant["tool_calls"][0]["function"]["name"] == "mcp_time_now"
    else:
        assert assistant["content"][0]["name"] == "mcp_time_now"


# ------------------------------------------------------------- bad answers


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_broken_argument_json_from_the_server_fails_the_run_in_one_sentence(engine, wire, kind):
    model = add_model(engine, wire, kind)
    wire.tool_calls = [("get_weather", '{"city": "Par')]

    events = list(engine.chat({"model": model, "messages": user(QUESTION), "tools": [WEATHER]}))

    failed = events[-1]
    assert isinstance(failed, RunFailed), failed
    assert failed.code == "provider_error"
    assert "'get_weather'" in failed.error and "not valid JSON" in failed.error
    assert failed.error.startswith(f"The {model.split(':')[0]} provider sent arguments for tool")
    one_sentence(failed.error)
    assert engine.list_sessions() == []  # a failed turn stores nothing

    with pytest.raises(ProviderError) as caught:
        engine.generate({"model": model, "messages": user(QUESTION), "tools": [WEATHER], "persist": False})
    assert "not valid JSON" in str(caught.value)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_arguments_that_are_not_an_object_are_refused(engine, wire, kind):
    model = add_model(engine, wire, kind)
    wire.tool_calls = [("get_weather", '["Paris", 3]')]
    with pytest.raises(ProviderError) as caught:
        engine.generate({"model": model, "messages": user(QUESTION), "tools": [WEATHER], "persist": False})
    assert "not a JSON object (got a JSON array)" in str(caught.value)
    one_sentence(str(caught.value))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_arguments_cut_off_by_max_tokens_name_the_cause(engine, wire, kind):
    model = add_model(engine, wire, kind)
    wire.tool_calls = [("get_weather", {"city": "Paris", "days": 3})]
    events = list(
        engine.chat(
            {
                "model": model,
                "messages": user(QUESTION),
                "tools": [WEATHER],
                "params": {"max_tokens": 6},
                "persist": False,
            }
        )
    )
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.code == "provider_error"
    assert "cut off by max_tokens" in failed.error and "'get_weather'" in failed.error
    one_sentence(failed.error)
    # The server did send the truncated call, with "length" / "max_tokens".
    assert wire.requests[-1].usage[1] <= 6


# ------------------------------------------------------ requests refused


def test_local_model_with_tools_is_refused_before_generation(engine):
    with pytest.raises(InvalidRequest) as caught:
        engine.chat({"messages": user("hi"), "tools": [WEATHER], "persist": False})
    message = str(caught.value)
    assert "local models call tools through agents (`workbench run`)" in message
    assert "SmolLM2" in message  # names the model
    one_sentence(message)
    assert engine.list_sessions() == []


def test_llama_adapter_refuses_tools_in_check_and_stream(default_model_path):
    adapter = LlamaCppChatModel("local", default_model_path)
    assert adapter.supports_tools is False
    with pytest.raises(InvalidRequest, match="Local models call tools through agents"):
        adapter.check(SamplingParams(), None, [ToolSpec(**WEATHER)])
    with pytest.raises(InvalidRequest, match="Local models call tools through agents"):
        next(
            iter(
                adapter.stream([ChatMessage(role="user", content="hi")], SamplingParams(), None, [ToolSpec(**WEATHER)])
            )
        )


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"tools": [WEATHER, WEATHER]}, "unique"),
        ({"tools": [{"name": f"tool_{i}"} for i in range(129)]}, "128"),
        ({"tools": [{"name": "bad name"}]}, "name"),
        ({"messages": [*user("x"), {"role": "tool", "content": "result"}]}, "tool_call_id"),
        (
            {"messages": [{"role": "user", "content": "x", "tool_calls": [{"id": "c1", "name": "clock"}]}]},
            "only assistant messages carry tool_calls",
        ),
    ],
)
def test_invalid_tool_requests_are_refused_before_any_http_request(engine, wire, change, words):
    model = add_model(engine, wire, "openai")
    request = {"model": model, "messages": user("x"), "persist": False, **change}
    with pytest.raises(InvalidRequest) as caught:
        engine.chat(request)
    assert words in str(caught.value)
    assert wire.requests == []


def test_anthropic_refuses_tools_with_a_json_response_format(engine, wire):
    model = add_model(engine, wire, "anthropic")
    with pytest.raises(InvalidRequest) as caught:
        engine.chat(
            {"model": model, "messages": user("x"), "tools": [WEATHER], "response_format": {"type": "json_object"}}
        )
    one_sentence(str(caught.value))
    assert "response_format" in str(caught.value)
    assert wire.requests == []


def test_tool_schemas_must_describe_an_object(engine, wire):
    model = add_model(engine, wire, "openai")
    bad = {"name": "listy", "parameters": {"type": "array", "items": {"type": "string"}}}
    with pytest.raises(InvalidRequest, match="object schema"):
        engine.chat({"model": model, "messages": user("x"), "tools": [bad], "persist": False})
    assert wire.requests == []


# --------------------------------------------------------------- sessions


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_persisted_tool_calling_turn_is_stored_and_the_session_goes_on(engine, wire, kind):
    model = add_model(engine, wire, kind)
    wire.tool_calls = [("clock", {})]
    first = engine.generate({"model": model, "messages": user("What time is it?"), "tools": [CLOCK]})

    assert first.session_id is not None and first.finish_reason == "tool_calls"
    stored = [(m.role, m.content) for m in engine.session_messages(first.session_id)]
    assert stored == [("user", "What time is it?"), ("assistant", "")]
    assert engine.conversations.generation(first.id)["finish_reason"] == "tool_calls"

    # The empty assistant turn does not break the next turn (Anthropic refuses
    # empty messages: it is left out and the user turns merge).
    second = engine.generate({"session_id": first.session_id, "messages": user("never mind that")})
    body = wire.requests[-1].body
    if kind == "anthropic":
        assert body["messages"] == [{"role": "user", "content": "What time is it?\n\nnever mind that"}]
        assert second.text == answer_for("What time is it?\n\nnever mind that")
    else:
        assert body["messages"][1] == {"role": "assistant", "content": ""}
        assert second.text == "that mind never"
    assert second.session_id == first.session_id


def test_tool_results_are_not_persisted_into_sessions_that_could_not_replay_them(engine, wire):
    model = add_model(engine, wire, "openai")
    conversation = [
        *user("What time is it?"),
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "name": "clock", "arguments": {}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
    ]
    with pytest.raises(InvalidRequest) as caught:
        engine.chat({"model": model, "messages": conversation, "tools": [CLOCK]})
    assert "persist false" in str(caught.value)
    one_sentence(str(caught.value))
    assert wire.requests == [] and engine.list_sessions() == []


# ----------------------------------------------------------- local model


def test_local_chat_template_renders_tool_turns_as_text():
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Weather in Paris?"),
        ChatMessage(
            role="assistant",
            content="",
            tool_calls=[ToolCall(id="c1", name="get_weather", arguments={"city": "Paris"})],
        ),
        ChatMessage(role="tool", tool_call_id="c1", content="sunny"),
        ChatMessage(role="tool", tool_call_id="zz", name="clock", content="noon"),
    ]
    assert chat_template_messages(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": '{"tool": "get_weather", "arguments": {"city": "Paris"}}'},
        {"role": "user", "content": "Tool result (get_weather): sunny"},
        {"role": "user", "content": "Tool result (clock): noon"},
    ]


def test_local_model_answers_a_conversation_holding_tool_turns(engine):
    conversation = [
        *user("What is the weather in Paris?"),
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "sunny, 21 degrees"},
    ]
    result = engine.generate(
        {"messages": conversation, "params": {"temperature": 0, "seed": 1, "max_tokens": 12}, "persist": False}
    )
    assert result.provider == "llama.cpp"
    assert result.finish_reason in ("stop", "length") and result.tool_calls == []
    assert result.usage.prompt_tokens > 20 and result.text.strip()
