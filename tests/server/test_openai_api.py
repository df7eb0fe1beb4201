"""The OpenAI-compatible routes, driven by the official `openai` client.

A real uvicorn server (tests/server/conftest.py) over a real engine: the
packaged SmolLM2 GGUF for local chat, the real all-MiniLM-L6-v2 embedder, and
for native tool calls the OpenAI wire double of tests/wire_servers.py
configured as a remote provider (key in the keyring's file backend).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from tests.wire_servers import WireServer, answer_for

HELLO = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
]
WEATHER = {
    "name": "get_weather",
    "description": "The weather forecast for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
    },
}
CLOCK = {"name": "clock", "description": "The current time.", "parameters": {"type": "object", "properties": {}}}


def client_for(live: Any, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.base_url}/v1", api_key=key or live.key, max_retries=0, timeout=120)


def default_model(live: Any) -> str:
    return next(m.id for m in live.engine.list_models() if m.is_default)


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, checking its framing."""
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        events.append(block[len("data: ") :])
    return events


#: FastAPI's body validation (types and ranges): 422, or 400 as OpenAI answers
VALIDATION = (400, 422)


def assert_openai_error(response: httpx.Response, status: int | tuple[int, ...], kind: str) -> dict[str, Any]:
    assert response.status_code in (status if isinstance(status, tuple) else (status,)), response.text
    error = response.json()["error"]
    assert error["type"] == kind
    assert isinstance(error["message"], str) and error["message"]
    assert "code" in error and "param" in error
    return error


@pytest.fixture
def wire():
    with WireServer(api_key=f"sk-wire-{uuid.uuid4().hex}") as server:
        yield server


def add_wire_provider(engine: Any, wire: WireServer) -> str:
    engine.add_provider("wireai", "openai", wire.openai_base_url, ["gpt-wire"])
    engine.set_provider_key("wireai", wire.api_key)
    return "wireai:gpt-wire"


# ------------------------------------------------------------------ models


def test_models_are_listed_and_retrieved(live) -> None:
    client = client_for(live)
    listed = client.models.list()
    engine_ids = [m.id for m in live.engine.list_models()]
    assert [m.id for m in listed.data] == engine_ids
    assert all(m.object == "model" and m.owned_by == "llama.cpp" and m.created > 0 for m in listed.data)

    default = default_model(live)
    assert client.models.retrieve(default).id == default
    assert client.models.retrieve("default").id == default

    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert "no-such-model" in caught.value.message
    with live.client() as http:
        assert_openai_error(http.get("/v1/models/no-such-model"), 404, "not_found_error")


def test_remote_provider_models_are_listed(live, wire) -> None:
    add_wire_provider(live.engine, wire)
    entries = {m.id: m for m in client_for(live).models.list().data}
    assert entries["wireai:gpt-wire"].owned_by == "openai"
    assert client_for(live).models.retrieve("wireai:gpt-wire").id == "wireai:gpt-wire"


# -------------------------------------------------------------- local chat


def test_chat_completion_matches_the_engine(live) -> None:
    completion = client_for(live).chat.completions.create(
        model="default", messages=HELLO, max_tokens=16, temperature=0, seed=7
    )

    expected = live.engine.generate(
        {"messages": HELLO, "params": {"max_tokens": 16, "temperature": 0, "seed": 7}, "persist": False}
    )
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == default_model(live) == expected.model
    assert abs(completion.created - time.time()) < 120
    (choice,) = completion.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.message.content.strip() and choice.message.content == expected.text
    assert choice.message.tool_calls is None
    assert choice.finish_reason == expected.finish_reason and choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        expected.usage.prompt_tokens,
        expected.usage.completion_tokens,
    )
    # a request is stateless: no session is stored
    assert live.engine.list_sessions() == []


def test_a_loop_stopped_by_the_guard_is_length_on_the_openai_wire(live) -> None:
    # Greedy without a penalty, this prompt loops ("la femme au martyre, ..."): the
    # guard ends it; OpenAI's wire has no "repetition", so it says "length".
    request = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 400,
        "temperature": 0,
        "repetition_penalty": 1.0,
    }
    with live.client() as http:  # timeout=900: a busy 2-core machine may take minutes
        response = http.post("/v1/chat/completions", json={"model": "default", **request}, timeout=900)
        native = http.post(
            "/workbench/v1/generate",
            timeout=900,
            json={
                "messages": request["messages"],
                "persist": False,
                "params": {"max_tokens": 400, "temperature": 0, "repetition_penalty": 1.0},
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] < 120, body["usage"]
    assert native.status_code == 200, native.text
    assert native.json()["finish_reason"] == "repetition"
    assert native.json()["text"] == body["choices"][0]["message"]["content"]


def test_openai_message_forms_are_accepted(live) -> None:
    """Text parts, the developer role, stop as a string and max_completion_tokens."""
    client = client_for(live)
    plain = client.chat.completions.create(model="default", messages=HELLO, max_tokens=12, temperature=0)
    parts = client.chat.completions.create(
        model=default_model(live),
        temperature=0,
        max_completion_tokens=12,
        stop="\n\n\n",
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
            {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]},
        ],
        frequency_penalty=0.5,
        presence_penalty=0.1,
        user="someone",
        extra_body={"unknown_field": 1},
    )
    assert parts.choices[0].message.content == plain.choices[0].message.content
    assert parts.usage == plain.usage


def test_streaming_equals_the_non_streaming_answer(live) -> None:
    client = client_for(live)
    request = {"model": "default", "messages": HELLO, "max_tokens": 24, "temperature": 0, "seed": 1}
    whole = client.chat.completions.create(**request)

    chunks = list(client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].id.startswith("chatcmpl-") and chunks[0].model == whole.model
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # really streamed
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])

    # the wire: SSE framing, [DONE] last, no usage chunk unless asked
    with live.client() as http:
        response = http.post("/v1/chat/completions", json={**request, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert all(p["choices"] and "usage" not in p for p in payloads)
    assert "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads) == text


def test_json_schema_response_format(live) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}, "country": {"type": "string", "maxLength": 40}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    completion = client_for(live).chat.completions.create(
        model="default",
        max_tokens=120,
        temperature=0,
        messages=[{"role": "user", "content": "Name the capital of France and its country as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": True}},
    )
    assert completion.choices[0].finish_reason == "stop"
    value = json.loads(completion.choices[0].message.content)
    assert list(Draft202012Validator(schema).iter_errors(value)) == []


def test_the_clients_parse_helper_gets_a_valid_object(live) -> None:
    """`chat.completions.parse` sends a strict json_schema made from a pydantic model."""

    class Person(BaseModel):
        name: str
        age: int

    completion = client_for(live).chat.completions.parse(
        model="default",
        max_tokens=80,
        temperature=0,
        response_format=Person,
        messages=[{"role": "user", "content": "Alice is 30 years old. Give her name and age."}],
    )
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and isinstance(person.age, int)


def test_json_object_response_format(live) -> None:
    completion = client_for(live).chat.completions.create(
        model="default",
        max_tokens=80,
        temperature=0,
        response_format={"type": "json_object"},
        messages=[
            {"role": "user", "content": "Give a JSON object with the keys name and color for a black cat called Tom."}
        ],
    )
    assert completion.choices[0].finish_reason == "stop"
    value = json.loads(completion.choices[0].message.content)
    assert isinstance(value, dict) and value


def test_concurrent_requests_all_finish(live) -> None:
    """Streams and plain requests share the one local model: they wait for it, none fails as busy."""
    client = client_for(live)
    request = {"model": "default", "messages": HELLO, "max_tokens": 12, "temperature": 0}
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            if i % 2:
                results[i] = "".join(
                    c.choices[0].delta.content or ""
                    for c in client.chat.completions.create(**request, stream=True)
                    if c.choices
                )
            else:
                results[i] = client.chat.completions.create(**request).choices[0].message.content
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert errors == []
    assert len(results) == 6 and len(set(results.values())) == 1 and results[0].strip()


def test_a_client_that_disconnects_cancels_the_generation(live) -> None:
    """Closing a stream stops the model: it evaluates a few more tokens, not the rest of max_tokens.

    Counted, not timed (this machine's load varies twentyfold): the process's
    llama.cpp model holds the prompt and every token it generated in its
    context (`n_tokens`); `load()` waits until no generation holds the model.
    """
    messages = [{"role": "user", "content": "Write a very long story about a dragon."}]
    request = {"model": "default", "messages": messages, "max_tokens": 80, "temperature": 0}
    client = client_for(live)
    stream = client.chat.completions.create(**request, stream=True)
    received = 0
    for chunk in stream:
        received += bool(chunk.choices and chunk.choices[0].delta.content)
        if received == 3:
            break
    stream.close()
    local = live.engine.models.chat_model("default")
    abandoned = local.load().n_tokens

    # A plain request whose client gives up is cancelled too.
    with live.client() as http, pytest.raises(httpx.ReadTimeout):
        http.post("/v1/chat/completions", json=request, timeout=httpx.Timeout(60, read=0.3))
    given_up = local.load().n_tokens

    # The same request to the end: all 80 tokens (so the abandoned one would have run on).
    full = client.chat.completions.create(**request)
    assert full.choices[0].finish_reason == "length" and full.usage.completion_tokens == 80
    finished = local.load().n_tokens
    prompt = full.usage.prompt_tokens
    assert finished - prompt >= 79
    assert abandoned - prompt < 40, (abandoned, prompt)
    assert given_up - prompt < 70, (given_up, prompt)


# ------------------------------------------------------------------ errors


def test_unknown_models_are_404(live) -> None:
    client = client_for(live)
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=HELLO, max_tokens=4)
    assert caught.value.body["type"] == "not_found_error"
    assert caught.value.body["code"] == "MODEL_NOT_FOUND"
    # model files are not loaded by path over HTTP (and whether a file exists is not told)
    for spec in ("/etc/hostname", "/etc/nothing-here.gguf", "../models/x.gguf"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model=spec, messages=HELLO, max_tokens=4)
        assert "GET /v1/models" in caught.value.message
    with live.client() as http:
        assert_openai_error(
            http.post("/v1/chat/completions", json={"model": "nope", "messages": HELLO}), 404, "not_found_error"
        )


def test_invalid_requests_are_400_or_422_in_the_openai_shape(live) -> None:
    client = client_for(live)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="default", messages=HELLO, n=2)
    assert "n must be 1" in caught.value.message
    with pytest.raises((openai.BadRequestError, openai.UnprocessableEntityError)) as caught:
        client.chat.completions.create(model="default", messages=[])
    assert "messages" in caught.value.message
    with live.client() as http:
        error = assert_openai_error(
            http.post("/v1/chat/completions", json={"messages": []}), VALIDATION, "invalid_request_error"
        )
        assert "messages" in error["message"]
        bad = {
            "temperature": 3,
            "max_tokens": 0,
            "seed": -1,
            "stop": [""],
            "logprobs": True,
            "tool_choice": "sometimes",
            "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
        }
        for field, value in bad.items():
            response = http.post("/v1/chat/completions", json={"messages": HELLO, field: value})
            assert response.status_code in (400, 422), (field, response.text)
            assert response.json()["error"]["type"] == "invalid_request_error"
        image = [{"type": "image_url", "image_url": {"url": "http://example.com/cat.png"}}]
        error = assert_openai_error(
            http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": image}]}),
            400,
            "invalid_request_error",
        )
        assert "text parts" in error["message"]


def test_tools_with_the_local_model_are_refused_unless_tool_choice_is_none(live) -> None:
    client = client_for(live)
    tools = [{"type": "function", "function": WEATHER}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="default", messages=HELLO, tools=tools, max_tokens=4)
    assert "tools" in caught.value.message
    answer = client.chat.completions.create(
        model="default", messages=HELLO, tools=tools, tool_choice="none", max_tokens=4, temperature=0
    )
    assert answer.choices[0].message.content and answer.choices[0].message.tool_calls is None


def test_keys_and_scopes(live) -> None:
    with httpx.Client(base_url=live.base_url, timeout=30) as anonymous:
        for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings")):
            response = anonymous.request(method, path, json={"messages": HELLO, "input": "x"})
            assert_openai_error(response, 401, "authentication_error")
    with pytest.raises(openai.AuthenticationError):
        client_for(live, key="wbk_0123456789abcdef.not-the-right-secret-at-all").models.list()

    _, reader = live.engine.api_keys.create("ro", ["read:*"])
    client = client_for(live, key=reader)
    assert client.models.list().data
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="default", messages=HELLO, max_tokens=4)
    assert "execute:chat" in caught.value.message
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.embeddings.create(model="default", input="hello")
    assert "execute:embeddings" in caught.value.message

    _, embed_only = live.engine.api_keys.create("embed", ["execute:embeddings"])
    client = client_for(live, key=embed_only)
    assert len(client.embeddings.create(model="default", input="hello").data) == 1
    with pytest.raises(openai.PermissionDeniedError):
        client.models.list()


# ------------------------------------------------------------ remote tools


def test_remote_tool_calls_come_back_through_the_server(live, wire) -> None:
    model = add_wire_provider(live.engine, wire)
    wire.tool_calls = [("get_weather", {"city": "Paris", "days": 3})]
    client = client_for(live)
    tools = [{"type": "function", "function": WEATHER}, {"type": "function", "function": CLOCK}]
    question = [{"role": "user", "content": "What is the weather in Paris?"}]

    completion = client.chat.completions.create(model=model, messages=question, tools=tools)
    assert completion.model == model
    (choice,) = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 3}
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == wire.requests[-1].usage
    sent = wire.requests[-1].body
    assert sent["tools"] == tools and sent["tool_choice"] == "auto"

    # the tool's result goes back; the provider answers with text
    follow_up = question + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny and 24 degrees"},
    ]
    answer = client.chat.completions.create(model=model, messages=follow_up, tools=tools)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == answer_for("Sunny and 24 degrees")
    sent = wire.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris", "days": 3}
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny and 24 degrees"}


def test_remote_tool_calls_stream_and_tool_choice(live, wire) -> None:
    model = add_wire_provider(live.engine, wire)
    client = client_for(live)
    tools = [{"type": "function", "function": WEATHER}, {"type": "function", "function": CLOCK}]
    question = [{"role": "user", "content": "What time is it?"}]

    # a named function: only that tool is offered
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=question,
            tools=tools,
            stream=True,
            tool_choice={"type": "function", "function": {"name": "clock"}},
        )
    )
    assert [t["function"]["name"] for t in wire.requests[-1].body["tools"]] == ["clock"]
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(tc.index, tc.function.name, json.loads(tc.function.arguments)) for tc in calls] == [(0, "clock", {})]
    assert calls[0].id.startswith("call_")
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]

    # "none": no tools reach the provider, the answer is text
    answer = client.chat.completions.create(model=model, messages=question, tools=tools, tool_choice="none")
    assert "tools" not in wire.requests[-1].body
    assert answer.choices[0].message.content == answer_for("What time is it?")

    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=model,
            messages=question,
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "missing"}},
        )


def test_a_failure_mid_stream_is_an_error_event_then_done(live, wire) -> None:
    model = add_wire_provider(live.engine, wire)
    wire.fail_midstream = "error"
    request = {"model": model, "messages": [{"role": "user", "content": "one two three four five six"}], "stream": True}
    with live.client() as http:
        response = http.post("/v1/chat/completions", json=request)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["type"] == "api_error" and error["code"] == "PROVIDER_ERROR" and "mid-stream" in error["message"]
    assert any(json.loads(e)["choices"][0]["delta"].get("content") for e in events[:-2])

    with pytest.raises(openai.APIError) as caught:
        for _ in client_for(live).chat.completions.create(
            **{k: v for k, v in request.items() if k != "stream"}, stream=True
        ):
            pass
    assert "mid-stream" in caught.value.message


def test_a_failure_before_the_first_token_is_an_http_error(live, wire) -> None:
    model = add_wire_provider(live.engine, wire)
    live.engine.set_provider_key("wireai", "sk-wrong-key-0000000000")
    with pytest.raises(openai.APIStatusError) as caught:
        for _ in client_for(live).chat.completions.create(model=model, messages=HELLO, stream=True):
            pass
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "PROVIDER_AUTH_ERROR"
    assert "sk-wrong-key" not in json.dumps(caught.value.body)


# -------------------------------------------------------------- embeddings


def test_embeddings_with_the_official_client(live) -> None:
    client = client_for(live)
    texts = ["The cat sat on the mat.", "The cat sat on the mat.", "Quarterly revenue grew by four percent."]
    expected = live.engine.embedder.embed(texts)

    # the client asks for base64 unless told otherwise, and decodes it
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    assert result.model == live.engine.embedder.model_id
    assert [d.index for d in result.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in result.data], dtype=np.float32)
    assert vectors.shape == (3, 384)
    assert np.array_equal(vectors, expected)  # base64 carries the float32 values exactly
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0, abs=1e-5)
    assert float(vectors[0] @ vectors[2]) < 0.5
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert result.usage.prompt_tokens > 0 and result.usage.total_tokens == result.usage.prompt_tokens

    floats = client.embeddings.create(model="default", input=texts[:2], encoding_format="float")
    assert np.array_equal(np.array([d.embedding for d in floats.data], dtype=np.float32), expected[:2])

    raw = client.embeddings.create(
        model="default", input="The cat sat on the mat.", encoding_format="base64", dimensions=384
    )
    decoded = np.frombuffer(base64.b64decode(raw.data[0].embedding), dtype="<f4")
    # (alone, a text is embedded without batch padding: compare with the engine's single embedding)
    assert np.array_equal(decoded, live.engine.embedder.embed(["The cat sat on the mat."])[0])


def test_embeddings_carry_the_soma_fields(live) -> None:
    with live.client() as http:
        response = http.post("/v1/embeddings", json={"input": ["What is machine learning?", "Explain deep learning"]})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["model"] == "all-MiniLM-L6-v2"
    assert body["vector_length"] == 384 and body["latency_ms"] >= 0
    assert [v["index"] for v in body["vectors"]] == [0, 1]
    assert [v["embedding"] for v in body["vectors"]] == [d["embedding"] for d in body["data"]]
    assert all(len(v["embedding"]) == 384 for v in body["vectors"])
    assert body["usage"]["total_tokens"] == 8
    expected = live.engine.embedder.embed(["What is machine learning?", "Explain deep learning"])
    assert np.array_equal(np.array([v["embedding"] for v in body["vectors"]], dtype=np.float32), expected)


def test_embedding_inputs_are_checked(live) -> None:
    cases = [
        ({"input": []}, 400),
        ({"input": ""}, 400),
        ({"input": ["ok", "  "]}, 400),
        ({"input": ["x"] * 2049}, 400),
        ({"input": "x" * 8193}, 400),
        ({"input": [1, 2, 3]}, 400),
        ({"input": [[1, 2]]}, 400),
        ({"input": "hi", "dimensions": 1536}, 400),
        ({"input": "hi", "model": "nope"}, 404),
        ({"input": "hi", "encoding_format": "hex"}, VALIDATION),
        ({}, VALIDATION),
        ({"input": {"a": 1}}, VALIDATION),
    ]
    with live.client() as http:
        for body, status in cases:
            response = http.post("/v1/embeddings", json=body)
            kind = "not_found_error" if status == 404 else "invalid_request_error"
            assert_openai_error(response, status, kind)
        assert http.post("/v1/embeddings", json={"input": ["x"] * 2048}).status_code == 200
        assert http.post("/v1/embeddings", json={"input": "x" * 8192, "normalize": False}).status_code == 200
