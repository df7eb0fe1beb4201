"""Chat with the real default model (SmolLM2-135M via llama.cpp) and a real DuckDB file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from workbench.engine.engine import Engine
from workbench.engine.errors import ContextOverflow, ModelLoadError, ModelNotFound
from workbench.engine.schemas import RunFailed, RunFinished, RunStarted, TokenDelta

GREEDY = {"temperature": 0, "seed": 42, "max_tokens": 48}
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3},
        "employed": {"type": "boolean"},
    },
    "required": ["name", "age", "hobbies", "employed"],
    "additionalProperties": False,
}


def ask(engine: Engine, text: str, **extra) -> tuple[list, object]:
    events = list(engine.chat({"messages": [{"role": "user", "content": text}], **extra}))
    return events, events[-1]


def test_stream_events_and_usage(engine: Engine):
    events, last = ask(engine, "Name three fruits.", params=GREEDY)
    assert isinstance(events[0], RunStarted)
    deltas = [e for e in events if isinstance(e, TokenDelta)]
    assert len(deltas) > 3
    assert isinstance(last, RunFinished)
    result = last.result
    assert result.text == "".join(d.text for d in deltas)
    assert result.provider == "llama.cpp"
    assert result.usage.prompt_tokens > 5
    assert 0 < result.usage.completion_tokens <= GREEDY["max_tokens"]
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.finish_reason in ("stop", "length")
    assert 0 < result.time_to_first_token_ms <= result.latency_ms


def test_deterministic_with_temperature_zero_and_seed(engine: Engine):
    texts = {
        engine.generate(
            {"messages": [{"role": "user", "content": "Write a haiku about rain."}], "params": GREEDY, "persist": False}
        ).text
        for _ in range(3)
    }
    assert len(texts) == 1 and texts.pop().strip()


def test_seeded_sampling_is_reproducible(engine: Engine):
    params = {"temperature": 0.9, "top_p": 0.95, "top_k": 50, "seed": 1234, "max_tokens": 40}
    request = {
        "messages": [{"role": "user", "content": "Tell me a story about a fox."}],
        "params": params,
        "persist": False,
    }
    first = engine.generate(request).text
    second = engine.generate(request).text
    assert first == second
    other = engine.generate({**request, "params": {**params, "seed": 99}}).text
    assert other != first


def test_max_tokens_gives_finish_reason_length(engine: Engine):
    result = engine.generate(
        {
            "messages": [{"role": "user", "content": "Count from 1 to 100."}],
            "params": {"temperature": 0, "max_tokens": 5},
        }
    )
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 5


def test_stop_sequence_ends_the_answer(engine: Engine):
    free = engine.generate(
        {"messages": [{"role": "user", "content": "List the numbers 1 to 10 separated by commas."}], "params": GREEDY}
    ).text
    assert "," in free
    stop = free[free.index(",") + 1 :].strip()[:1] or ","
    cut = engine.generate(
        {
            "messages": [{"role": "user", "content": "List the numbers 1 to 10 separated by commas."}],
            "params": {**GREEDY, "stop": [stop]},
        }
    )
    assert cut.finish_reason == "stop"
    assert stop not in cut.text
    assert len(cut.text) < len(free)


#: generations of the schema test: varied samples (4 prompts x 2 seeds, hot
#: sampling) that meet the keywords the grammar cannot enforce (age 0-150), few
#: enough to stay well within the timeout on a busy 2-core machine (100 of them
#: once hit it)
SCHEMA_SAMPLES = 8


def test_json_schema_output_always_validates(engine: Engine):
    validator = Draft202012Validator(PERSON_SCHEMA)
    prompts = ["Describe a person as JSON.", "Invent a librarian.", "A retired sailor, as JSON.", "Make up a student."]
    for i in range(SCHEMA_SAMPLES):
        result = engine.generate(
            {
                "messages": [{"role": "user", "content": prompts[i % len(prompts)]}],
                # The schema bounds every string: the object takes 30-70 tokens.
                "params": {"temperature": 0.8, "seed": i, "max_tokens": 120},
                "response_format": {"type": "json_object", "schema": PERSON_SCHEMA},
                "persist": False,
            }
        )
        data = json.loads(result.text)
        assert list(validator.iter_errors(data)) == [], result.text
        assert result.parsed == data and result.parse_error is None


FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def test_a_generation_that_loops_is_stopped_by_the_loop_guard(engine: Engine):
    # Greedy and without a repetition penalty this model repeats "la femme au
    # martyre, ..." to max_tokens; the guard ends it after a few copies.
    result = engine.generate(
        {"messages": FRANCE, "params": {"temperature": 0, "repetition_penalty": 1.0, "max_tokens": 1024}}
    )
    assert result.finish_reason == "repetition", result.text
    assert result.usage.completion_tokens < 120, result.usage
    assert result.text and result.parse_error is None
    # It is stored like any other finish reason.
    assert engine.conversations.generation(result.id)["finish_reason"] == "repetition"
    # With the guard off the same greedy run goes on past that point: the guard, not the model, ended it.
    model = engine.models.chat_model(None)
    model.loop_guard = False
    try:
        unguarded = engine.generate(
            {
                "messages": FRANCE,
                "persist": False,
                "params": {
                    "temperature": 0,
                    "repetition_penalty": 1.0,
                    "max_tokens": result.usage.completion_tokens + 16,
                },
            }
        )
    finally:
        model.loop_guard = True
    assert unguarded.finish_reason == "length" and unguarded.text.startswith(result.text)


def test_unseeded_generations_differ_and_a_seed_reproduces(engine: Engine):
    request = {
        "messages": [{"role": "user", "content": "Tell me a story about a fox."}],
        "persist": False,
        "params": {"temperature": 0.9, "max_tokens": 24},
    }
    texts = {engine.generate(request).text for _ in range(3)}
    assert len(texts) > 1  # a fresh seed each time: asking again gives another answer
    seeded = {**request, "params": {**request["params"], "seed": 5}}
    assert engine.generate(seeded).text == engine.generate(seeded).text


def test_conversation_is_persisted_with_generation_details(engine: Engine):
    first = engine.generate(
        {"messages": [{"role": "user", "content": "My name is Ada."}], "system": "Be brief.", "params": GREEDY}
    )
    second = engine.generate(
        {
            "messages": [{"role": "user", "content": "What is my name?"}],
            "session_id": first.session_id,
            "params": GREEDY,
        }
    )
    assert second.session_id == first.session_id
    assert second.usage.prompt_tokens > first.usage.prompt_tokens  # history was sent
    messages = engine.session_messages(first.session_id)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1].content == first.text and messages[1].generation_id == first.id
    session = engine.get_session(first.session_id)
    assert session.system_prompt == "Be brief." and session.title == "My name is Ada." and session.message_count == 4
    record = engine.conversations.generation(second.id)
    assert record["params"] == GREEDY
    assert record["prompt_tokens"] == second.usage.prompt_tokens
    assert record["completion_tokens"] == second.usage.completion_tokens
    assert record["latency_ms"] == pytest.approx(second.latency_ms)
    assert record["model"] == second.model and record["finish_reason"] == second.finish_reason


def test_cancelling_a_stream_keeps_the_partial_answer(engine: Engine):
    events = engine.chat(
        {
            "messages": [{"role": "user", "content": "Write a long essay about the sea."}],
            "params": {"temperature": 0, "max_tokens": 200},
        }
    )
    started = next(events)
    received = ""
    for event in events:
        if isinstance(event, TokenDelta):
            received += event.text
            if len(received) > 20:
                break
    events.close()
    messages = engine.session_messages(started.session_id)
    assert messages[-1].role == "assistant" and messages[-1].content == received
    record = engine.conversations.generation(messages[-1].generation_id)
    assert record["finish_reason"] == "cancelled"
    # the model is free again: a new generation runs
    assert engine.generate({"messages": [{"role": "user", "content": "hi"}], "params": {"max_tokens": 3}}).text


def test_failed_first_turn_leaves_no_session(engine: Engine):
    huge = "word " * 9000
    events = list(engine.chat({"messages": [{"role": "user", "content": huge}]}))
    assert isinstance(events[-1], RunFailed)
    assert events[-1].code == ContextOverflow.code
    assert "context window" in events[-1].error
    assert engine.list_sessions() == []


def test_missing_and_corrupt_model_files(engine: Engine, tmp_path: Path, default_model_path: Path):
    with pytest.raises(ModelNotFound, match="No model file"):
        engine.chat({"messages": [{"role": "user", "content": "hi"}], "model": str(tmp_path / "absent.gguf")})
    with pytest.raises(ModelNotFound, match="workbench models"):
        engine.chat({"messages": [{"role": "user", "content": "hi"}], "model": "no-such-model"})

    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("this is not a model")
    truncated = tmp_path / "truncated.gguf"
    with default_model_path.open("rb") as src:
        truncated.write_bytes(src.read(1_000_000))
    for path, expected in ((not_gguf, "not a GGUF model file"), (truncated, "damaged, truncated")):
        events = list(engine.chat({"messages": [{"role": "user", "content": "hi"}], "model": str(path)}))
        assert isinstance(events[-1], RunFailed)
        assert events[-1].code == ModelLoadError.code
        assert expected in events[-1].error and "\n" not in events[-1].error
    # the default model still works afterwards
    assert engine.generate({"messages": [{"role": "user", "content": "hi"}], "params": {"max_tokens": 3}}).text


def test_models_folder_is_discovered(engine: Engine, workbench_home: Path, default_model_path: Path):
    models = workbench_home / "models"
    models.mkdir()
    shutil.copy(default_model_path, models / "my-model.gguf")
    ids = {m.id: m for m in engine.list_models()}
    assert ids["my-model"].source == "models-folder"
    assert ids[default_model_path.stem].is_default
    result = engine.generate(
        {"messages": [{"role": "user", "content": "hi"}], "model": "my-model", "params": {"max_tokens": 4}}
    )
    assert result.model == "my-model"


def test_sessions_survive_a_restart(workbench_home: Path):
    with Engine(workbench_home) as engine:
        result = engine.generate({"messages": [{"role": "user", "content": "Remember: blue."}], "params": GREEDY})
    with Engine(workbench_home) as engine:
        messages = engine.session_messages(result.session_id)
        assert [m.content for m in messages] == ["Remember: blue.", result.text]


def test_usage_matches_llama_cpp_own_count(engine: Engine, default_model_path: Path):
    from workbench.engine.inference.llama import LOCAL_SAMPLING_DEFAULTS, load_llama

    messages = [{"role": "user", "content": "Say hello in one word."}]
    ours = engine.generate(
        {"messages": messages, "params": {"temperature": 0, "seed": 1, "max_tokens": 64}, "persist": False}
    )
    assert ours.finish_reason == "stop"
    llama = load_llama(default_model_path, engine.config.n_ctx)
    # The same sampling: our default repetition penalty, which llama-cpp-python leaves off.
    theirs = llama.create_chat_completion(
        messages=messages,
        temperature=0,
        seed=1,
        max_tokens=64,
        repeat_penalty=LOCAL_SAMPLING_DEFAULTS["repeat_penalty"],
    )
    assert theirs["choices"][0]["message"]["content"] == ours.text
    assert ours.usage.prompt_tokens == theirs["usage"]["prompt_tokens"]
    assert ours.usage.completion_tokens == theirs["usage"]["completion_tokens"]
