"""Parameter validation happens at the boundary, before any model is called."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.engine.errors import InvalidRequest
from workbench.engine.schemas import ResponseFormat, SamplingParams, validate

BAD_PARAMS = [
    ({"max_tokens": -1}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 2**63}, "max_tokens"),
    ({"top_k": -5}, "top_k"),
    ({"top_k": 0}, "top_k"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"repetition_penalty": 3}, "repetition_penalty"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"stop": ["x"] * 10_000}, "stop"),
    ({"stop": [""]}, "stop"),
    ({"stop": ["y" * 1000]}, "stop"),
    ({"temprature": 0.5}, "temprature"),
]


@pytest.mark.parametrize(("params", "field"), BAD_PARAMS)
def test_out_of_range_params_are_rejected_with_a_sentence_naming_the_field(params, field):
    with pytest.raises(InvalidRequest) as info:
        validate(SamplingParams, params)
    message = str(info.value)
    assert field in message
    assert message.startswith("Invalid request:") and message.endswith(".")
    assert "\n" not in message


@pytest.mark.parametrize(("params", "field"), BAD_PARAMS)
def test_engine_rejects_bad_params_before_calling_the_model(engine, tmp_path: Path, params, field):
    # A model file that would fail to load: if the engine called the model
    # before validating, we would see ModelLoadError instead of InvalidRequest.
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\0" * 64)
    request = {"messages": [{"role": "user", "content": "hi"}], "model": str(broken), "params": params}
    with pytest.raises(InvalidRequest) as info:
        engine.chat(request)  # raises at call time: no generator is even started
    assert field in str(info.value)
    assert engine.list_sessions() == []


def test_seed_names_are_accepted():
    params = validate(SamplingParams, {"stop_sequences": ["END"], "max_tokens": 256, "top_k": 50, "seed": 7})
    assert params.stop == ["END"]
    assert params.explicit() == {"stop": ["END"], "max_tokens": 256, "top_k": 50, "seed": 7}


def test_response_format_shapes():
    ours = validate(ResponseFormat, {"type": "json_object", "schema": {"type": "object"}})
    openai = validate(
        ResponseFormat, {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    )
    assert ours.is_json and openai.is_json
    assert ours.schema_ == openai.schema_ == {"type": "object"}
    with pytest.raises(InvalidRequest, match="not a valid JSON Schema"):
        validate(ResponseFormat, {"type": "json_object", "schema": {"type": "no-such-type"}})
    with pytest.raises(InvalidRequest, match="json_schema"):
        validate(ResponseFormat, {"type": "json_schema", "json_schema": {"name": "x"}})


def test_chat_request_needs_a_message(engine):
    with pytest.raises(InvalidRequest, match="messages"):
        engine.chat({"messages": []})
    with pytest.raises(InvalidRequest, match="role"):
        engine.chat({"messages": [{"role": "wizard", "content": "hi"}]})
