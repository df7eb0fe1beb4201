"""Single-shot model routes stop working for a client that has gone.

A real uvicorn server (tests/server/conftest.py) over a real engine and the
packaged SmolLM2 GGUF. Each test makes the route's generation wait for the
process's one local model: the test holds the model with a chat turn of its
own, paused after its first token (a generation in progress holds the model).
It sends the request on a raw socket, closes the socket while the request
waits, then lets the model go. A route that noticed the disconnect evaluates
a token or so and stops; one that did not runs its whole max_tokens for nobody.

What is asserted is counted or recorded, never timed (this machine's load
varies twentyfold):
  * the llama.cpp model keeps the prompt and every token it evaluated in its
    context (`n_tokens`): after the abandoned request it is a few tokens past
    the prompt, while the same request run to its end fills max_tokens;
  * `/metrics` counts the abandoned request with status 499 (client closed);
  * a stored chat turn ends with finish_reason "cancelled", an agent run with
    status "cancelled".
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import wait_until
from workbench.engine.schemas import RunStarted, TokenDelta

STORY = "Write a very long story about a dragon."
#: tokens a request may ask for; the abandoned one must stop well short of them
MAX_TOKENS = 120
#: time for a sent request to reach its generation (which then waits for the model)
DISPATCH_S = 1.5
#: time for the server to notice a closed connection (it checks every 0.1 s)
NOTICE_S = 0.5


# ------------------------------------------------------------------ helpers


def hold_model(engine: Any) -> Iterator[Any]:
    """A chat turn paused after its first token: until it is closed, it holds the local model."""
    stream = engine.chat(
        {
            "messages": [{"role": "user", "content": STORY}],
            "persist": False,
            "params": {"max_tokens": 64, "temperature": 0},
        }
    )
    assert isinstance(next(stream), RunStarted)
    assert isinstance(next(stream), TokenDelta)
    return stream


def abandon(live: Any, path: str, body: dict[str, Any], started: Callable[[], bool] | None = None) -> None:
    """Send `body` to `path` while the model is held, hang up while the request waits, then free the model.

    `started` (if given) tells when the request has reached the engine;
    otherwise the request is given `DISPATCH_S` to get there.
    """
    hold = hold_model(live.engine)
    try:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\nAuthorization: Bearer {live.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", live.port), timeout=30) as sock:
            sock.sendall(head.encode() + data)
            if started is None:
                time.sleep(DISPATCH_S)
            else:
                wait_for(started, what=f"the request to {path} to start")
        # The client has gone while its request waits for the model.
        time.sleep(NOTICE_S)
    finally:
        hold.close()


def wait_for(check: Callable[[], Any], what: str = "the condition") -> Any:
    return wait_until(check, timeout=300.0, what=what)


def statuses(live: Any, route: str) -> dict[str, int]:
    """The statuses `/metrics` counted for POST `route`: {"499": 1, ...}."""
    with live.client() as http:
        text = http.get("/metrics").text
    pattern = re.compile(
        r'^workbench_http_requests_total\{method="POST",route="' + re.escape(route) + r'",status="(\d+)"\} (\S+)$', re.M
    )
    return {status: int(float(count)) for status, count in pattern.findall(text)}


def agent_errors(live: Any, agent_id: str) -> int:
    with live.client() as http:
        text = http.get("/metrics").text
    found = re.search(r'^agent_errors_total\{agent_id="' + re.escape(agent_id) + r'"\} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


def evaluated(live: Any) -> int:
    """The tokens in the local model's context (waits until no generation holds the model)."""
    return live.engine.models.chat_model("default").load().n_tokens


def assert_abandoned_early(live: Any, route: str) -> int:
    """Wait for `route` to end for the hung-up client: it ended as "client closed". Returns the tokens evaluated."""
    counted = wait_for(lambda: statuses(live, route), what=f"{route} to end")
    assert counted == {"499": 1}, counted
    return evaluated(live)


# ------------------------------------------------------------ SomaAgentHub


def test_infer_sync_stops_for_a_client_that_has_gone(live) -> None:
    request = {"prompt": STORY, "max_tokens": MAX_TOKENS, "temperature": 0.0}
    abandon(live, "/v1/infer/sync", request)
    abandoned = assert_abandoned_early(live, "/v1/infer/sync")

    # The same request to its end fills max_tokens: the abandoned one would have run on.
    with live.client() as http:
        full = http.post("/v1/infer/sync", json=request)
    assert full.status_code == 200, full.text
    answer = full.json()
    assert answer["finish_reason"] == "length" and answer["usage"]["completion_tokens"] == MAX_TOKENS
    prompt = answer["usage"]["prompt_tokens"]
    assert evaluated(live) - prompt >= MAX_TOKENS - 1
    assert abandoned - prompt < MAX_TOKENS // 2, (abandoned, prompt)
    assert statuses(live, "/v1/infer/sync") == {"499": 1, "200": 1}


# ------------------------------------------------------------------- tasks


@pytest.mark.parametrize("path", ["/execute", "/run"])
def test_a_zahara_generation_stops_for_a_client_that_has_gone(live, path: str) -> None:
    request = {"task": STORY, "parameters": {"max_tokens": MAX_TOKENS, "temperature": 0.0}}
    abandon(live, path, request)
    abandoned = assert_abandoned_early(live, path)
    assert agent_errors(live, "workbench") == 1

    with live.client() as http:
        full = http.post(path, json=request)
    assert full.status_code == 200, full.text
    answer = full.json()
    assert answer["status"] == "completed" and answer["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == MAX_TOKENS
    prompt = answer["usage"]["prompt_tokens"]
    assert abandoned - prompt < MAX_TOKENS // 2, (abandoned, prompt)
    assert agent_errors(live, "workbench") == 1


def test_a_zahara_agent_run_is_cancelled_for_a_client_that_has_gone(live) -> None:
    engine = live.engine
    engine.create_agent({"id": "reader", "name": "Reader", "tools": ["read_file"], "max_steps": 3})
    request = {"task": "Open the file notes/todo.md.", "parameters": {"agent_id": "reader"}}
    # The run is recorded as it starts; its first step then waits for the model.
    abandon(live, "/execute", request, started=lambda: engine.list_runs(agent_id="reader"))

    runs = engine.list_runs(agent_id="reader")
    assert len(runs) == 1
    status = wait_for(
        lambda: engine.get_run(runs[0].id).status != "running" and engine.get_run(runs[0].id).status,
        what="the run to end",
    )
    assert status == "cancelled"
    wait_for(lambda: statuses(live, "/execute"), what="/execute to end")
    assert statuses(live, "/execute") == {"499": 1}
    assert agent_errors(live, "reader") == 1


def test_a_platform_task_stops_for_a_client_that_has_gone(live) -> None:
    # The Platform's generation takes the model's defaults: max_tokens 1024, which this story fills.
    abandon(live, "/api/v1/execute", {"task_description": STORY})
    abandoned = assert_abandoned_early(live, "/api/v1/execute")
    assert agent_errors(live, "workbench") == 1

    # Its prompt is the task alone, as a Zahara generation's: one token of that tells its length.
    with live.client() as http:
        probe = http.post("/execute", json={"task": STORY, "parameters": {"max_tokens": 1}})
    assert probe.status_code == 200, probe.text
    prompt = probe.json()["usage"]["prompt_tokens"]
    assert abandoned - prompt < MAX_TOKENS // 2, (abandoned, prompt)


# -------------------------------------------------------- Workbench-native


def test_native_generate_stops_for_a_client_that_has_gone(live) -> None:
    # A stored turn: the cancelled generation is recorded with what it said.
    request = {
        "messages": [{"role": "user", "content": STORY}],
        "params": {"max_tokens": MAX_TOKENS, "temperature": 0.0},
    }
    abandon(live, "/workbench/v1/generate", request)

    def stored() -> Any:
        return live.engine.db.fetchone("SELECT finish_reason, completion_tokens FROM generations")

    finish_reason, completion_tokens = wait_for(stored, what="the abandoned turn to be stored")
    assert finish_reason == "cancelled" and completion_tokens < MAX_TOKENS // 2
    abandoned = evaluated(live)

    with live.client() as http:
        full = http.post("/workbench/v1/generate", json={**request, "persist": False})
    assert full.status_code == 200, full.text
    result = full.json()
    assert result["finish_reason"] == "length" and result["usage"]["completion_tokens"] == MAX_TOKENS
    assert abandoned - result["usage"]["prompt_tokens"] < MAX_TOKENS // 2


# ------------------------------------------------------------------ OpenAI


def test_a_plain_chat_completion_stops_for_a_client_that_has_gone(live) -> None:
    request = {
        "model": "default",
        "messages": [{"role": "user", "content": STORY}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
    }
    abandon(live, "/v1/chat/completions", request)
    abandoned = assert_abandoned_early(live, "/v1/chat/completions")

    with live.client() as http:
        full = http.post("/v1/chat/completions", json=request)
    assert full.status_code == 200, full.text
    completion = full.json()
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["usage"]["completion_tokens"] == MAX_TOKENS
    assert abandoned - completion["usage"]["prompt_tokens"] < MAX_TOKENS // 2
