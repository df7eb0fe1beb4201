"""`Idempotency-Key` on POST requests, on a real server over a real engine (DuckDB records)."""

from __future__ import annotations

import json
import threading
import time

import httpx

from tests.server.conftest import start_server
from workbench.server.idempotency import fingerprint

MEMORY = {
    "key": "user_prefs:user_123",
    "value": {"theme": "dark", "language": "en"},
    "metadata": {"user_id": "user_123", "category": "preferences"},
}


def _agent(agent_id: str, cycles: int = 0) -> dict:
    return {
        "agent_id": agent_id,
        "role_model": {"name": "Bob Ross", "occupation": "Artist"},
        "deepening_cycles": cycles,
    }


def _key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def test_a_replay_returns_the_stored_answer_and_runs_nothing_again(live) -> None:
    with live.client() as client:
        first = client.post("/v1/remember", json=MEMORY, headers=_key("remember-1"))
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "stored" and "idempotent-replayed" not in first.headers
        again = client.post("/v1/remember", json=MEMORY, headers=_key("remember-1"))
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        # run again, the route would say "updated" and stamp a new time: the replay is the first answer
        assert again.content == first.content
        assert again.headers["content-type"] == first.headers["content-type"]
        assert again.headers["x-request-id"] != first.headers["x-request-id"]
        # the same JSON with its keys in another order is the same request
        reordered = {"metadata": MEMORY["metadata"], "value": MEMORY["value"], "key": MEMORY["key"]}
        assert client.post("/v1/remember", json=reordered, headers=_key("remember-1")).content == first.content
        # without the header the route runs as before
        plain = client.post("/v1/remember", json=MEMORY)
        assert plain.json()["status"] == "updated" and "idempotent-replayed" not in plain.headers

        created = client.post("/api/v1/agents", json=_agent("agent-once"), headers=_key("create-once"))
        assert created.status_code == 201, created.text
        replayed = client.post("/api/v1/agents", json=_agent("agent-once"), headers=_key("create-once"))
        assert replayed.status_code == 201 and replayed.headers["idempotent-replayed"] == "true"
        assert replayed.json() == created.json()
        assert replayed.json()["meta"]["request_id"] == created.headers["x-request-id"]
        # a new key is a new request: the id is taken now
        other = client.post("/api/v1/agents", json=_agent("agent-once"), headers=_key("create-twice"))
        assert other.status_code == 409 and other.json()["error"]["code"] == "CONFLICT_ERROR.DUPLICATE_RESOURCE"
    assert live.engine.list_agents().total == 1
    rows = live.engine.db.fetchall("SELECT key, state, status FROM idempotency_keys ORDER BY key")
    assert rows == [("create-once", "done", 201), ("create-twice", "done", 409), ("remember-1", "done", 200)]


def test_a_concurrent_duplicate_gets_409_while_the_first_runs(live) -> None:
    body = _agent("agent-slow")
    answers: dict[str, httpx.Response] = {}

    def first() -> None:
        with httpx.Client(
            base_url=live.base_url, timeout=600, headers={"Authorization": f"Bearer {live.key}"}
        ) as client:
            answers["first"] = client.post("/api/v1/agents", json=body, headers=_key("slow-create"))

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.time() + 120
    while time.time() < deadline:  # the agent exists (status building) once the first request's build began
        try:
            live.engine.get_agent("agent-slow")
            break
        except Exception:
            time.sleep(0.02)
    with live.client() as client:
        duplicate = client.post("/api/v1/agents", json=body, headers=_key("slow-create"))
        still_building = live.engine.get_agent("agent-slow").status == "building"
        thread.join(timeout=600)
        assert not thread.is_alive()
        assert still_building, "the first request should still have been running"
        assert duplicate.status_code == 409, duplicate.text
        error = duplicate.json()["error"]
        assert error["code"] == "CONFLICT_ERROR.IDEMPOTENCY_KEY_IN_USE" and duplicate.json()["success"] is False
        assert duplicate.headers["retry-after"] == "1"
        assert answers["first"].status_code == 201, answers["first"].text
        assert answers["first"].json()["data"]["status"] == "completed"
        after = client.post("/api/v1/agents", json=body, headers=_key("slow-create"))
        assert after.headers["idempotent-replayed"] == "true" and after.content == answers["first"].content
    assert live.engine.list_agents().total == 1


def test_the_same_key_for_another_request_is_refused(live) -> None:
    with live.client() as client:
        assert client.post("/v1/remember", json=MEMORY, headers=_key("k-1")).status_code == 200
        other_body = client.post("/v1/remember", json={**MEMORY, "value": {"theme": "light"}}, headers=_key("k-1"))
        assert other_body.status_code == 422
        error = other_body.json()["error"]  # the OpenAI family's shape under /v1/
        assert error["code"] == "IDEMPOTENCY_KEY_REUSED" and "different request" in error["message"]
        other_path = client.post("/v1/rag/retrieve", json={"query": "theme"}, headers=_key("k-1"))
        assert other_path.status_code == 422 and "/v1/remember" in other_path.json()["error"]["message"]

        item = {"identifier": "Bob Ross", "entity_type": "Skill", "text": "Paints happy little trees."}
        assert client.post("/api/v1/knowledge", json=item, headers=_key("k-2")).status_code == 201
        changed = client.post("/api/v1/knowledge", json={**item, "text": "Paints mountains."}, headers=_key("k-2"))
        assert changed.status_code == 422 and changed.json()["success"] is False
        assert changed.json()["error"]["code"] == "VALIDATION_ERROR.IDEMPOTENCY_KEY_REUSED"
    assert live.engine.recall(MEMORY["key"]).value == MEMORY["value"]
    assert [k.entity.text for k in live.engine.list_knowledge("Bob Ross")] == ["Paints happy little trees."]


def test_invalid_keys_are_refused_before_the_route_runs(live) -> None:
    with live.client() as client:
        for bad in ("", "x" * 256, b"caf\xc3\xa9", "tab\there"):
            response = client.post("/v1/remember", json=MEMORY, headers={"Idempotency-Key": bad})
            assert response.status_code == 400, (bad, response.text)
            assert response.json()["error"]["code"] == "INVALID_IDEMPOTENCY_KEY"
        twice = client.post("/v1/remember", json=MEMORY, headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")])
        assert twice.status_code == 400
        chrysalis = client.post("/api/v1/agents", json=_agent("agent-never"), headers={"Idempotency-Key": ""})
        assert chrysalis.status_code == 400
        assert chrysalis.json()["error"]["code"] == "VALIDATION_ERROR.INVALID_IDEMPOTENCY_KEY"
        assert client.get("/v1/recall/user_prefs:user_123").status_code == 404
        longest = client.post("/v1/remember", json=MEMORY, headers=_key("k" * 255))
        assert longest.status_code == 200 and longest.json()["status"] == "stored"
    assert live.engine.list_agents().total == 0


def test_keys_are_separate_per_api_key(live) -> None:
    _, other_key = live.engine.api_keys.create("other", ["*"])
    with live.client() as mine, live.client(key=other_key) as theirs:
        a = mine.post("/v1/remember", json=MEMORY, headers=_key("shared"))
        b = theirs.post("/v1/remember", json={**MEMORY, "key": "user_prefs:user_456"}, headers=_key("shared"))
        assert a.status_code == b.status_code == 200
        assert "idempotent-replayed" not in b.headers and b.json()["key"] == "user_prefs:user_456"
        assert mine.post("/v1/remember", json=MEMORY, headers=_key("shared")).headers["idempotent-replayed"] == "true"
    assert live.engine.recall("user_prefs:user_456").value == MEMORY["value"]


def test_errors_are_replayed_but_streams_and_expired_keys_are_not(live) -> None:
    with live.client() as client:
        invalid = client.post("/api/v1/agents", json={"agent_id": "agent-x"}, headers=_key("bad-body"))
        assert invalid.status_code == 400
        again = client.post("/api/v1/agents", json={"agent_id": "agent-x"}, headers=_key("bad-body"))
        assert again.status_code == 400 and again.headers["idempotent-replayed"] == "true"
        assert again.content == invalid.content

        chat = {
            "model": "default",
            "stream": True,
            "max_tokens": 2,
            "messages": [{"role": "user", "content": "Say hi"}],
        }
        streams = [client.post("/v1/chat/completions", json=chat, headers=_key("stream")) for _ in range(2)]
        for stream in streams:
            assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
            assert "idempotent-replayed" not in stream.headers and "data: [DONE]" in stream.text
        # the record is dropped just after the stream's last chunk went out
        deadline = time.time() + 10
        while live.engine.db.fetchone("SELECT count(*) FROM idempotency_keys WHERE key = 'stream'")[0]:
            assert time.time() < deadline, "the stream's record should have been dropped"
            time.sleep(0.05)

        assert client.post("/v1/remember", json=MEMORY, headers=_key("expiring")).json()["status"] == "stored"
        live.engine.db.execute(
            "UPDATE idempotency_keys SET expires_at = created_at - INTERVAL 1 SECOND WHERE key = 'expiring'"
        )
        expired = client.post("/v1/remember", json=MEMORY, headers=_key("expiring"))
        assert "idempotent-replayed" not in expired.headers and expired.json()["status"] == "updated"


def test_records_survive_a_restart_and_stale_in_flight_ones_are_taken_over(workbench_home, embedder) -> None:
    from workbench.engine.engine import Engine

    def serve(engine):
        server, thread, sock, port = start_server(engine)
        return (server, thread, sock), f"http://127.0.0.1:{port}"

    def stop(handle) -> None:
        server, thread, sock = handle
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    with Engine(workbench_home, embedder=embedder) as engine:
        _, key = engine.api_keys.create("restart", ["*"])
        key_id = engine.api_keys.list()[0].id
        handle, url = serve(engine)
        try:
            first = httpx.post(
                f"{url}/v1/remember", json=MEMORY, headers={"X-API-Key": key, **_key("durable")}, timeout=120
            )
        finally:
            stop(handle)
        assert first.status_code == 200
        # a request that was in flight when its server stopped
        orphan_body = {**MEMORY, "key": "orphan"}
        print_ = fingerprint("POST", "/v1/remember", b"", json.dumps(orphan_body).encode(), "application/json")
        engine.db.execute(
            "INSERT INTO idempotency_keys VALUES (?, 'orphan', ?, 'POST', '/v1/remember', 'in_flight', "
            "'a-stopped-server', NULL, NULL, NULL, now(), now() + INTERVAL 1 DAY)",
            [key_id, print_],
        )

    with Engine(workbench_home, embedder=embedder) as engine:
        handle, url = serve(engine)
        try:
            headers = {"X-API-Key": key}
            replay = httpx.post(f"{url}/v1/remember", json=MEMORY, headers={**headers, **_key("durable")}, timeout=120)
            orphan = httpx.post(
                f"{url}/v1/remember", json=orphan_body, headers={**headers, **_key("orphan")}, timeout=120
            )
        finally:
            stop(handle)
        assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
        assert replay.content == first.content
        assert orphan.status_code == 200 and "idempotent-replayed" not in orphan.headers
        assert engine.recall("orphan").value == MEMORY["value"]
        assert engine.db.fetchone("SELECT state, status FROM idempotency_keys WHERE key = 'orphan'") == ("done", 200)
