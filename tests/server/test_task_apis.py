"""Zahara (`/execute`, `/run`), AI Agents Platform (`/api/v1/execute`) and `/metrics` on a real server."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import Path

import pytest

ZAHARA_KEYS = {"error", "code", "request_id", "duration_ms", "service"}


def _zahara_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ZAHARA_KEYS, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["service"] == "workbench" and body["duration_ms"] >= 0
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def _platform_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) <= {"error", "request_id"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    return body["error"]


# ------------------------------------------------------------------------ Zahara


def test_zahara_execute_runs_a_task_as_one_generation(live) -> None:
    request_id = str(uuid.uuid4())
    # the seed's gateway call: X-API-Key and X-Request-Id headers, {task, parameters}
    with live.client(key=None, headers={"X-API-Key": live.key, "X-Request-Id": request_id}) as client:
        response = client.post("/execute", json={"task": "Say hello in one word.", "parameters": {"max_tokens": 6}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == request_id == response.headers["x-request-id"]
    assert body["service"] == "workbench" and body["status"] == "completed" and body["duration_ms"] > 0
    assert isinstance(body["result"], str) and body["result"]
    assert body["agent_id"] is None and body["model"] == next(m.id for m in live.engine.list_models() if m.is_default)
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # max_tokens 6 is honoured: a full budget is reported as "length", anything shorter as "stop"
    assert body["finish_reason"] == ("length" if usage["completion_tokens"] == 6 else "stop")
    assert 0 < usage["completion_tokens"] <= 6
    assert live.engine.list_sessions() == []  # unsaved


def test_zahara_run_is_the_runtime_spelling_and_makes_its_own_request_id(live) -> None:
    with live.client() as client:
        response = client.post(
            "/run", json={"task": "Name one colour.", "parameters": {"max_tokens": 4, "temperature": 0.0}}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"] and body["request_id"].startswith("req_")
    assert body["status"] == "completed" and body["result"] and body["service"] == "workbench"


def test_zahara_errors_have_the_seeds_shape(live) -> None:
    with live.client(headers={"X-Request-Id": "zahara-err-1"}) as client:
        empty = _zahara_error(client.post("/execute", json={"task": "", "parameters": {}}), 400)
        assert empty["request_id"] == "zahara-err-1" and "task" in empty["error"]
        assert empty["code"] == "INVALID_REQUEST"
        assert "task" in _zahara_error(client.post("/run", json={"parameters": None}), 400)["error"]
        assert "JSON object" in _zahara_error(client.post("/execute"), 400)["error"]
        assert "20000" in _zahara_error(client.post("/execute", json={"task": "x" * 20_001}), 400)["error"]
        unknown = _zahara_error(client.post("/execute", json={"task": "hi", "parameters": {"colour": "red"}}), 400)
        assert "parameters.colour" in unknown["error"] and "agent_id" in unknown["error"]
        steps = _zahara_error(client.post("/execute", json={"task": "hi", "parameters": {"max_steps": 2}}), 400)
        assert "agent_id" in steps["error"]
        ghost = _zahara_error(client.post("/execute", json={"task": "hi", "parameters": {"agent_id": "ghost"}}), 404)
        assert "ghost" in ghost["error"]
    with live.client(key=None) as anonymous:
        _zahara_error(anonymous.post("/execute", json={"task": "hi"}), 401)
    _, reader = live.engine.api_keys.create("reader", ["read:*"])
    with live.client(key=reader) as client:
        assert "execute:agents" in _zahara_error(client.post("/run", json={"task": "hi"}), 403)["error"]


@pytest.fixture
def workspace(live, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "todo.md").write_text("- buy milk\n")
    live.engine.add_workspace_root(str(root))
    return root


def test_zahara_agent_run_denies_approvals_unattended(live, workspace: Path) -> None:
    live.engine.create_agent({"id": "writer", "name": "Writer", "tools": ["write_file"], "max_steps": 2})
    with live.client() as client:
        response = client.post(
            "/execute",
            json={
                "task": "Write 'buy milk' into the file shopping.txt.",
                "parameters": {"agent_id": "writer", "max_steps": 1},
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["agent_id"] == "writer" and body["service"] == "workbench" and body["request_id"]
    run = live.engine.get_run(body["run_id"])
    assert body["status"] == ("completed" if run.status == "finished" else run.status)
    assert body["result"] == run.answer and body["steps"] == run.steps == 1  # max_steps overrides the agent's 2
    assert body["usage"]["total_tokens"] == run.prompt_tokens + run.completion_tokens > 0
    # the write needed a person: it was denied at once, and the response says why
    denied = body["approvals_denied"]
    assert denied and denied[0]["tool"] == "write_file" and denied[0]["reason"] == "unattended API run"
    assert "unattended API run" in body["note"] and "no person" in body["note"]
    decided = live.engine.approvals.list(run.id)
    assert decided and {a.status for a in decided} == {"denied"}
    assert live.engine.pending_approvals() == []
    assert not (workspace / "shopping.txt").exists()
    assert "ok" not in {a.status for a in live.engine.tool_audit(run_id=run.id)}


# ------------------------------------------------------------- AI Agents Platform


def test_platform_execute_answers_exactly_the_seeds_shape(live) -> None:
    with live.client() as client:  # the seed's Authorization: Bearer
        response = client.post(
            "/api/v1/execute",
            json={
                "task_description": "Reply with one word: hello.",
                "context": {"audience": "a child"},
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"result", "metadata", "processing_time_ms"}
    assert set(body["metadata"]) == {"agent_id", "model", "tokens_used", "timestamp"}
    assert isinstance(body["result"], str) and body["result"]
    meta = body["metadata"]
    assert meta["agent_id"] == "workbench" and meta["tokens_used"] > 0
    assert meta["model"] == next(m.id for m in live.engine.list_models() if m.is_default)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["timestamp"])
    datetime.fromisoformat(meta["timestamp"].replace("Z", "+00:00"))
    assert body["processing_time_ms"] > 0


def test_platform_errors_have_the_seeds_shape(live) -> None:
    with live.client() as client:
        too_long = _platform_error(client.post("/api/v1/execute", json={"task_description": "x" * 5001}), 400)
        assert too_long["code"] == "INVALID_REQUEST" and "5000" in too_long["message"]
        assert too_long["details"] == {"field": "task_description", "issue": "too_long", "max_length": 5000}
        missing = _platform_error(client.post("/api/v1/execute", json={"context": {"key": "value"}}), 400)
        assert missing["details"] == {"field": "task_description", "issue": "missing_required_field"}
        empty = _platform_error(client.post("/api/v1/execute", json={"task_description": ""}), 400)
        assert empty["details"]["issue"] == "too_short"
        extra = _platform_error(client.post("/api/v1/execute", json={"task_description": "hi", "agent": "x"}), 400)
        assert extra["details"] == {"field": "agent", "issue": "unknown_field"}
        context = _platform_error(
            client.post("/api/v1/execute", json={"task_description": "hi", "context": ["a"]}), 400
        )
        assert context["details"]["field"] == "context"
        # a body that is not JSON reaches the app's validation handler: same family shape
        broken = _platform_error(
            client.post("/api/v1/execute", content=b"{not json", headers={"content-type": "application/json"}), 400
        )
        assert broken["code"] == "VALIDATION_ERROR" and broken["details"] == {
            "field": "body",
            "issue": "is not valid JSON",
        }
    with live.client(key=None) as anonymous:
        unauthenticated = _platform_error(anonymous.post("/api/v1/execute", json={"task_description": "hi"}), 401)
        assert unauthenticated["code"].startswith("AUTHENTICATION_ERROR")


# ----------------------------------------------------------------------- metrics

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """(family -> type, samples); every line must be a comment or `name{labels} value`."""
    types: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4, line
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped") and name not in types
            types[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels_text, value = match.groups()
        labels = dict(LABEL.findall(labels_text or ""))
        if labels_text:
            assert ",".join(f'{k}="{v}"' for k, v in LABEL.findall(labels_text)) == labels_text, line
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert family in types, f"{name} has no # TYPE line before it"
        samples.append((name, labels, float(value)))
    return types, samples


def _value(samples, name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_metrics_are_valid_prometheus_text_and_count_earlier_requests(live) -> None:
    live.engine.create_agent({"id": "helper", "name": "Helper"})
    with live.client() as client:
        assert client.post("/v1/remember", json={"key": "k1", "value": "metrics are counted"}).status_code == 200
        for _ in range(3):
            assert client.get("/v1/tools").status_code == 200
        assert client.get("/v1/recall/absent").status_code == 404
        assert client.post("/execute", json={"task": ""}).status_code == 400
        assert client.post("/run", json={"task": "Say yes.", "parameters": {"max_tokens": 3}}).status_code == 200
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    types, samples = parse_prometheus(response.text)
    assert types["workbench_http_requests_total"] == "counter"
    assert types["workbench_http_request_duration_seconds"] == "histogram"
    assert types["workbench_agents"] == types["workbench_memories"] == "gauge"

    requests = "workbench_http_requests_total"
    assert _value(samples, requests, method="GET", route="/v1/tools", status="200") == 3
    assert _value(samples, requests, method="GET", route="/v1/recall/{key}", status="404") == 1
    assert _value(samples, requests, method="POST", route="/execute", status="400") == 1
    assert _value(samples, requests, method="POST", route="/run", status="200") == 1
    assert _value(samples, requests, method="POST", route="/v1/remember", status="200") == 1

    # histograms: cumulative buckets ending in +Inf == count, and a sum
    latency = "workbench_http_request_duration_seconds"
    buckets = [(lab["le"], v) for n, lab, v in samples if n == f"{latency}_bucket" and lab["route"] == "/v1/tools"]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1] == ("+Inf", 3)
    assert _value(samples, f"{latency}_count", method="GET", route="/v1/tools") == 3
    assert _value(samples, f"{latency}_sum", method="GET", route="/v1/tools") > 0

    # the seed's agent_* series and the engine's gauges
    assert _value(samples, "agent_requests_total", agent_id="workbench") == 1
    assert _value(samples, "agent_tokens_used_total", agent_id="workbench") > 0
    assert _value(samples, "agent_processing_seconds_count", agent_id="workbench") == 1
    assert _value(samples, "workbench_agents") == 1 and _value(samples, "workbench_memories") == 1

    # a second scrape counts the first one
    with live.client() as client:
        _, again = parse_prometheus(client.get("/metrics").text)
    assert _value(again, requests, method="GET", route="/metrics", status="200") == 1


def test_metrics_need_the_read_metrics_scope(live) -> None:
    _, runner = live.engine.api_keys.create("runner", ["execute:agents"])
    with live.client(key=runner) as client:
        response = client.get("/metrics")
    assert response.status_code == 403
    assert "read:metrics" in response.json()["error"]["message"]
    _, scraper = live.engine.api_keys.create("scraper", ["read:metrics"])
    with live.client(key=scraper) as client:
        assert client.get("/metrics").status_code == 200
        assert client.post("/execute", json={"task": "hi"}).status_code == 403


def test_metrics_count_the_native_routes_too(live) -> None:
    with live.client() as client:
        assert client.get("/workbench/v1/sessions").status_code == 200
        assert client.get("/workbench/v1/sessions/ses_nope").status_code == 404
        _, samples = parse_prometheus(client.get("/metrics").text)
    requests = "workbench_http_requests_total"
    assert _value(samples, requests, method="GET", route="/workbench/v1/sessions", status="200") == 1
    assert _value(samples, requests, method="GET", route="/workbench/v1/sessions/{session_id}", status="404") == 1
    latency = "workbench_http_request_duration_seconds_count"
    assert _value(samples, latency, method="GET", route="/workbench/v1/sessions/{session_id}") == 1
