"""SomaAgentHub's service APIs on a real server: /v1/infer/sync, memory, RAG and tools.

Request bodies are the seed document's own examples (the SLM, memory and tool
services' API reference), with max_tokens kept small.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

# --------------------------------------------------------------- the seed's bodies

CONVERSATION = {
    "key": "conversation:conv_123:msg_msg_001",
    "value": {
        "role": "user",
        "content": "How do I deploy my agent?",
        "timestamp": "2025-10-05T12:00:00Z",
        "tokens": 15,
    },
    "metadata": {
        "conversation_id": "conv_123",
        "role": "user",
        "timestamp": "2025-10-05T12:00:00Z",
        "category": "conversation",
    },
}
DOCUMENT = {
    "key": "company_kb:doc:deployment_guide",
    "value": {
        "title": "Kubernetes Deployment Guide",
        "content": "To deploy SomaAgent on Kubernetes, first create a namespace...",
        "word_count": 10,
    },
    "metadata": {
        "doc_id": "deployment_guide",
        "title": "Kubernetes Deployment Guide",
        "tags": ["kubernetes", "deployment", "devops"],
        "category": "document",
        "indexed_at": "2025-10-05T12:00:00",
    },
}
PREFERENCES = {
    "key": "user_prefs:user_123",
    "value": {
        "theme": "dark",
        "language": "en",
        "notifications": True,
        "model": "somasuite-markov-v1",
        "temperature": 0.8,
    },
    "metadata": {"user_id": "user_123", "category": "preferences", "updated_at": "2025-10-05T12:00:00"},
}


def _openai_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["message"] and body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


# -------------------------------------------------------------------- inference


def test_infer_sync_answers_in_the_seeds_shape(live) -> None:
    with live.client() as client:
        response = client.post(
            "/v1/infer/sync",
            json={
                "prompt": "Write a Python function to calculate fibonacci numbers:",
                "max_tokens": 8,
                "temperature": 0.8,
            },
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert {"model", "completion", "usage", "finish_reason", "latency_ms"} <= set(body)
        assert body["model"] == next(m.id for m in live.engine.list_models() if m.is_default)
        assert isinstance(body["completion"], str) and body["completion"]
        usage = body["usage"]
        assert usage["prompt_tokens"] > 0 and 1 <= usage["completion_tokens"] <= 8
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert body["finish_reason"] in ("stop", "length") and body["latency_ms"] > 0

        # the seed's deterministic code generation: temperature 0, a stop sequence and a seed
        deterministic = {
            "prompt": "Generate a python function that reverses a string:\n\n```python\n",
            "max_tokens": 8,
            "temperature": 0.0,
            "stop_sequences": ["```"],
            "seed": 42,
        }
        first = client.post("/v1/infer/sync", json=deterministic)
        second = client.post("/v1/infer/sync", json=deterministic)
        assert first.status_code == second.status_code == 200
        assert first.json()["completion"] == second.json()["completion"]
        assert "```" not in first.json()["completion"]
    # unsaved: the API's generations create no sessions
    assert live.engine.list_sessions() == []


def test_infer_sync_refuses_invalid_requests_before_any_model_call(live) -> None:
    with live.client() as client:
        for body, field in [
            ({"prompt": ""}, "prompt"),
            ({"prompt": "hi", "max_tokens": 0}, "max_tokens"),
            ({"prompt": "hi", "temperature": 3}, "temperature"),
            ({"prompt": "hi", "stop_sequences": [""]}, "stop"),
            ({"prompt": "hi", "surprise": 1}, "surprise"),
        ]:
            response = client.post("/v1/infer/sync", json=body)
            assert response.status_code in (400, 422), (body, response.text)
            error = _openai_error(response, response.status_code)
            assert error["type"] == "invalid_request_error" and field in error["message"], error
        missing = client.post("/v1/infer/sync", json={"prompt": "hi", "model": "no-such-model"})
        assert _openai_error(missing, 404, "MODEL_NOT_FOUND")["type"] == "not_found_error"
    with live.client(key=None) as anonymous:
        error = _openai_error(anonymous.post("/v1/infer/sync", json={"prompt": "hi"}), 401)
        assert error["type"] == "authentication_error"


# ------------------------------------------------------------------------ memory


def test_remember_recall_and_rag_retrieve_with_the_seeds_examples(live) -> None:
    with live.client() as client:
        stored = []
        for body in (CONVERSATION, DOCUMENT, PREFERENCES):
            response = client.post("/v1/remember", json=body)
            assert response.status_code == 200, response.text
            result = response.json()
            assert {"key", "status", "vector_id", "embedding_dimensions", "indexed_at"} <= set(result)
            assert result["key"] == body["key"] and result["status"] == "stored"
            assert result["embedding_dimensions"] == 384 and result["vector_id"]
            datetime.fromisoformat(result["indexed_at"])
            stored.append(result)
        assert len({r["vector_id"] for r in stored}) == 3
        again = client.post("/v1/remember", json=PREFERENCES).json()
        assert again["status"] == "updated"

        recalled = client.get(f"/v1/recall/{PREFERENCES['key']}")
        assert recalled.status_code == 200, recalled.text
        memory = recalled.json()
        assert {"key", "value", "metadata", "created_at", "accessed_count", "last_accessed"} <= set(memory)
        assert memory["value"]["theme"] == "dark" and memory["value"]["language"] == "en"
        assert memory["metadata"]["category"] == "preferences" and memory["accessed_count"] >= 1
        assert client.get(f"/v1/recall/{PREFERENCES['key']}").json()["accessed_count"] == memory["accessed_count"] + 1

        # the seed's basic RAG search
        response = client.post("/v1/rag/retrieve", json={"query": "How do I deploy to Kubernetes?", "top_k": 3})
        assert response.status_code == 200, response.text
        rag = response.json()
        assert {"query", "results", "total_results", "answer", "sources", "latency_ms"} <= set(rag)
        assert rag["query"] == "How do I deploy to Kubernetes?" and rag["total_results"] == len(rag["results"]) >= 1
        best = rag["results"][0]
        assert best["key"] == DOCUMENT["key"] and best["rank"] == 1 and 0 < best["score"] <= 1
        assert best["value"]["title"] == "Kubernetes Deployment Guide" and best["metadata"]["category"] == "document"
        assert rag["sources"] == [r["key"] for r in rag["results"]] and rag["answer"] is None
        assert [r["rank"] for r in rag["results"]] == list(range(1, len(rag["results"]) + 1))

        # the seed's filtered search: only the category asked for
        filtered = client.post(
            "/v1/rag/retrieve",
            json={
                "query": "deployment issues",
                "top_k": 10,
                "filter": {"category": "conversation"},
                "score_threshold": 0.0,
            },
        ).json()
        assert [r["key"] for r in filtered["results"]] == [CONVERSATION["key"]]
        bare = client.post(
            "/v1/rag/retrieve", json={"query": "Kubernetes deployment guide", "include_metadata": False}
        ).json()
        assert bare["results"] and all("metadata" not in r for r in bare["results"])

        invalid = client.post("/v1/rag/retrieve", json={"query": "x", "top_k": 21})
        assert "top_k" in _openai_error(invalid, 400)["message"]


def test_recall_of_a_missing_key_is_a_404(live) -> None:
    with live.client() as client:
        error = _openai_error(client.get("/v1/recall/user_prefs:nobody"), 404, "NOT_FOUND")
        assert error["type"] == "not_found_error" and "user_prefs:nobody" in error["message"]
        client.post("/v1/remember", json={"key": "a/b", "value": "slashes are part of the key", "namespace": "notes"})
        assert (
            client.get("/v1/recall/a/b", params={"namespace": "notes"}).json()["value"] == "slashes are part of the key"
        )
        _openai_error(client.get("/v1/recall/a/b"), 404)  # another namespace
        _openai_error(client.get("/v1/recall/a/b", params={"namespace": "../x"}), 400)


def test_a_read_only_key_cannot_write_memories(live) -> None:
    _, reader = live.engine.api_keys.create("reader", ["read:*"])
    with live.client(key=reader) as client:
        error = _openai_error(
            client.post("/v1/remember", json=PREFERENCES), 403, "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE"
        )
        assert error["type"] == "permission_error" and "write:memory" in error["message"]
        assert client.get("/v1/tools").status_code == 200  # read:tools is granted
        _openai_error(client.post("/v1/tools/read_file/execute", json={"parameters": {"path": "x"}}), 403)
        _openai_error(client.post("/v1/infer/sync", json={"prompt": "hi"}), 403)
    assert live.engine.list_memories() == []


# ------------------------------------------------------------------------- tools


def test_tools_are_listed_in_the_seeds_shape(live) -> None:
    with live.client() as client:
        response = client.get("/v1/tools")
    assert response.status_code == 200
    body = response.json()
    tools = {t["id"]: t for t in body["tools"]}
    assert body["total"] == len(body["tools"]) and "read_file" in tools and "write_file" in tools
    read_file = tools["read_file"]
    assert read_file["name"] == "read_file" and read_file["category"] == "filesystem"
    assert read_file["permission"] == "read" and tools["write_file"]["permission"] == "write"
    assert read_file["parameters"]["type"] == "object" and "path" in read_file["parameters"]["properties"]
    assert read_file["description"] and tools["git_status"]["category"] == "development"


@pytest.fixture
def workspace(live, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "todo.md").write_text("- buy milk\n- call Bob\n")
    live.engine.add_workspace_root(str(root))
    return root


def test_tool_execute_reads_a_file_and_is_audited(live, workspace: Path) -> None:
    with live.client() as client:
        response = client.post("/v1/tools/read_file/execute", json={"parameters": {"path": "notes/todo.md"}})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["tool_id"] == "read_file" and body["status"] == "ok" and body["action"] is None
        assert body["result"] == "- buy milk\n- call Bob\n" and body["duration_ms"] >= 0
        datetime.fromisoformat(body["executed_at"])
        audit = live.engine.tool_audit(tool="read_file")
        assert audit[0].id == body["audit_id"] and audit[0].status == "ok"
        assert audit[0].arguments == {"path": "notes/todo.md"}

        # `arguments` is a synonym of the seed's `parameters`
        lines = client.post(
            "/v1/tools/read_file/execute", json={"arguments": {"path": "notes/todo.md", "start_line": 2}}
        )
        assert lines.status_code == 200 and lines.json()["result"].startswith("- call Bob")
        # a tool taking no arguments needs no body
        metrics = client.post("/v1/tools/system_metrics/execute")
        assert metrics.status_code == 200 and metrics.json()["status"] == "ok"


def test_tool_execute_failures_are_clear_errors(live, workspace: Path) -> None:
    with live.client() as client:
        wrong_type = _openai_error(
            client.post("/v1/tools/read_file/execute", json={"parameters": {"path": 5}}), 400, "INVALID_ARGUMENTS"
        )
        assert "read_file" in wrong_type["message"] and "path" in wrong_type["message"]
        assert "'string'" in wrong_type["message"]
        missing = _openai_error(
            client.post("/v1/tools/read_file/execute", json={"parameters": {}}), 400, "INVALID_ARGUMENTS"
        )
        assert "'path' is a required property" in missing["message"]
        _openai_error(
            client.post("/v1/tools/read_file/execute", json={"parameters": {"path": "x", "nope": 1}}),
            400,
            "INVALID_ARGUMENTS",
        )
        statuses = [a.status for a in live.engine.tool_audit(tool="read_file")]
        assert statuses == ["invalid", "invalid", "invalid"]  # refused calls are audited too

        absent = _openai_error(
            client.post("/v1/tools/read_file/execute", json={"parameters": {"path": "notes/none.md"}}),
            422,
            "TOOL_ERROR",
        )
        assert "audit aud_" in absent["message"]
        escape = _openai_error(
            client.post("/v1/tools/read_file/execute", json={"parameters": {"path": "../../etc/passwd"}}),
            422,
            "TOOL_ERROR",
        )
        assert "root" in escape["message"].lower() or "outside" in escape["message"].lower()

        _openai_error(client.post("/v1/tools/no_such_tool/execute", json={"parameters": {}}), 404, "NOT_FOUND")
        action = _openai_error(
            client.post(
                "/v1/tools/read_file/execute", json={"action": "read", "parameters": {"path": "notes/todo.md"}}
            ),
            404,
        )
        assert "no action 'read'" in action["message"]
        conflict = client.post(
            "/v1/tools/read_file/execute", json={"parameters": {"path": "a"}, "arguments": {"path": "b"}}
        )
        assert "once" in _openai_error(conflict, 400)["message"]
        _openai_error(client.post("/v1/tools/read_file/execute", json={"parameters": "notes/todo.md"}), 400)


def test_request_id_is_echoed(live) -> None:
    with live.client(headers={"X-Request-Id": "soma-test-42"}) as client:
        response = client.get("/v1/recall/nothing-here")
    assert response.headers["x-request-id"] == "soma-test-42"
    assert response.json()["request_id"] == "soma-test-42"


def test_models_are_chosen_from_the_list_never_by_path(live) -> None:
    with live.client() as client:
        for model in ("/etc/passwd", "/etc/no-such-file.gguf", "../models/x"):
            response = client.post("/v1/infer/sync", json={"prompt": "hi", "model": model, "max_tokens": 2})
            assert response.status_code == 404, response.text
            assert "GET /v1/models" in response.json()["error"]["message"]
            assert "GGUF" not in response.text and "No model file" not in response.text
