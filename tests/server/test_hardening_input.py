"""Bad input at the server's boundary, against a real server: unpaired surrogates, duplicate Origin
headers, chunked bodies over the limit, and the bounds on tags, metadata and batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import LiveServer, start_server

SURROGATE_BODIES = {
    # route -> a JSON body (raw text, so the escapes reach the server as sent)
    "/v1/remember": r'{"key": "k1", "value": "x\ud800"}',
    "/workbench/v1/memory": r'{"key": "k2", "value": "ok", "metadata": {"tags": ["\udcff"]}}',
    "/v1/embeddings": r'{"input": "hello \udcff"}',
    "/v1/chat/completions": r'{"model": "default", "messages": [{"role": "user", "content": "\udc9b"}]}',
}


@pytest.fixture
def workspace(live: LiveServer, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    live.engine.add_workspace_root(str(root))
    return root


@pytest.mark.parametrize("path", list(SURROGATE_BODIES))
def test_unpaired_surrogates_are_refused_with_400(live: LiveServer, path: str) -> None:
    with live.client() as client:
        response = client.post(
            path, content=SURROGATE_BODIES[path].encode(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert "unpaired surrogate" in response.text
    assert live.engine.list_memories() == []


def test_raw_utf8_encoded_surrogates_are_refused_too(live: LiveServer) -> None:
    # "\xed\xa0\x80" is a surrogate encoded as UTF-8 bytes: json.loads(bytes) lets it through ("surrogatepass")
    body = b'{"key": "k", "value": "x\xed\xa0\x80"}'
    with live.client() as client:
        response = client.post("/v1/remember", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert live.engine.list_memories() == []


def test_paired_surrogates_and_escaped_backslashes_are_fine(live: LiveServer) -> None:
    body = r'{"key": "emoji", "value": "\ud83d\ude00 and \\ud800 (a backslash, not an escape)"}'
    with live.client() as client:
        stored = client.post("/v1/remember", content=body.encode(), headers={"Content-Type": "application/json"})
        assert stored.status_code == 200, stored.text
        recalled = client.get("/v1/recall/emoji")
    assert recalled.json()["value"] == "\U0001f600 and \\ud800 (a backslash, not an escape)"


def test_a_tool_call_with_an_unpaired_surrogate_does_not_run(live: LiveServer, workspace: Path) -> None:
    # Before: the command ran, then its audit insert failed (500), so it was missing from the audit log.
    body = r'{"parameters": {"argv": ["touch", "ran", "x\udcff"]}}'
    with live.client() as client:
        response = client.post(
            "/v1/tools/run_command/execute", content=body.encode(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400, response.text
    assert not (workspace / "ran").exists()
    assert [a.status for a in live.engine.tool_audit()] == []


def test_the_engine_refuses_unpaired_surrogates_for_every_front_end(mem_engine) -> None:
    from workbench.engine.errors import InvalidRequest

    with pytest.raises(InvalidRequest, match="metadata.note.*not valid Unicode"):
        mem_engine.remember({"key": "k", "value": "v", "metadata": {"note": "a\udc9b"}})
    assert mem_engine.list_memories() == []


# ------------------------------------------------------------------ Origin


def test_every_origin_header_is_checked(live: LiveServer) -> None:
    good, bad = live.base_url, "https://evil.example"
    with live.client() as client:
        # Before: only the last Origin was checked, so a foreign one in front of ours got through.
        for origins in ([bad, good], [good, bad]):
            response = client.get("/workbench/v1/whoami", headers=[("Origin", o) for o in origins])
            assert response.status_code == 403, origins
            assert response.json()["error"]["code"] == "FORBIDDEN_ORIGIN"
        twice = client.get("/workbench/v1/whoami", headers=[("Origin", good), ("Origin", good)])
        assert twice.status_code == 400 and twice.json()["error"]["code"] == "DUPLICATE_ORIGIN"
        once = client.get("/workbench/v1/whoami", headers={"Origin": good})
        assert once.status_code == 200


# ------------------------------------------------------------ body limits


@pytest.fixture
def small_body_server(mem_engine) -> Iterator[LiveServer]:
    server, thread, sock, port = start_server(mem_engine, max_body_bytes=4096)
    _, key = mem_engine.api_keys.create("test", ["*"])
    try:
        yield LiveServer(engine=mem_engine, base_url=f"http://127.0.0.1:{port}", port=port, key=key)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_chunked_body_over_the_limit_gets_413(small_body_server: LiveServer, content_type: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"key": "big", "value": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    with small_body_server.client() as client:
        response = client.post("/v1/remember", content=chunks(), headers={"Content-Type": content_type})
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "REQUEST_TOO_LARGE"
        small = client.post(
            "/v1/remember",
            content=iter([b'{"key": "small", "value": "v"}']),
            headers={"Content-Type": "application/json"},
        )
        assert small.status_code == 200, small.text
    assert [m.key for m in small_body_server.engine.list_memories()] == ["small"]


# ----------------------------------------------------------------- bounds


def test_tags_metadata_and_batches_are_bounded(live: LiveServer) -> None:
    from workbench.engine.schemas import MAX_BATCH_ITEMS, MAX_METADATA_BYTES, MAX_TAG_CHARS, MAX_TAGS

    with live.client() as client:
        too_many = client.post(
            "/v1/remember",
            json={"key": "k", "value": "v", "metadata": {"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}},
        )
        assert too_many.status_code == 400 and f"at most {MAX_TAGS} tags" in too_many.text
        too_long = client.post(
            "/v1/remember", json={"key": "k", "value": "v", "metadata": {"tags": ["x" * (MAX_TAG_CHARS + 1)]}}
        )
        assert too_long.status_code == 400 and f"{MAX_TAG_CHARS} characters" in too_long.text
        heavy = client.post(
            "/v1/remember", json={"key": "k", "value": "v", "metadata": {"note": "x" * MAX_METADATA_BYTES}}
        )
        assert heavy.status_code == 400 and "16 KiB" in heavy.text
        items = [{"key": f"k{i}", "value": "v"} for i in range(MAX_BATCH_ITEMS + 1)]
        batch = client.post("/workbench/v1/memory/batch", json=items)
        assert batch.status_code == 400 and f"at most {MAX_BATCH_ITEMS:,} memories" in batch.text
        at_limit = client.post(
            "/v1/remember", json={"key": "k", "value": "v", "metadata": {"tags": [f"t{i}" for i in range(MAX_TAGS)]}}
        )
        assert at_limit.status_code == 200, at_limit.text
    assert [m.key for m in live.engine.list_memories()] == ["k"]


# ------------------------------------------------------------ idempotency


def stored_answers(engine) -> list[int]:
    return [
        row[0]
        for row in engine.db.fetchall(
            "SELECT octet_length(body) FROM idempotency_keys WHERE state = 'done' ORDER BY created_at"
        )
    ]


def test_large_answers_are_not_kept_for_replay(live: LiveServer) -> None:
    # Before: every rag_retrieve with a new Idempotency-Key stored its whole answer (3.3 MB each).
    with live.client() as client:
        for index in range(2):
            stored = client.post(
                "/v1/remember", json={"key": f"long{index}", "value": f"notes on gardening {index} " + "y" * 200_000}
            )
            assert stored.status_code == 200, stored.text
        query = {"query": "notes on gardening", "top_k": 5, "score_threshold": 0.0}
        first = client.post("/v1/rag/retrieve", json=query, headers={"Idempotency-Key": "big-1"})
        assert first.status_code == 200 and len(first.content) > 256 * 1024
        again = client.post("/v1/rag/retrieve", json=query, headers={"Idempotency-Key": "big-1"})
        assert again.status_code == 200 and "idempotent-replayed" not in again.headers
    assert stored_answers(live.engine) == []


def test_kept_answers_have_a_total_budget_oldest_dropped_first(mem_engine) -> None:
    server, thread, sock, port = start_server(
        mem_engine, idempotency_max_body_bytes=1000, idempotency_max_total_bytes=1000
    )
    _, key = mem_engine.api_keys.create("test", ["*"])
    live = LiveServer(engine=mem_engine, base_url=f"http://127.0.0.1:{port}", port=port, key=key)
    try:
        with live.client() as client:
            sizes = []
            for index in range(6):
                response = client.post(
                    "/v1/remember", json={"key": f"k{index}", "value": "v"}, headers={"Idempotency-Key": f"key-{index}"}
                )
                assert response.status_code == 200, response.text
                sizes.append(len(response.content))
            kept = stored_answers(mem_engine)
            assert sum(kept) <= 1000 and 2 <= len(kept) < 6, (kept, sizes)
            newest = client.post("/v1/remember", json={"key": "k5", "value": "v"}, headers={"Idempotency-Key": "key-5"})
            assert newest.headers.get("idempotent-replayed") == "true"
            oldest = client.post("/v1/remember", json={"key": "k0", "value": "v"}, headers={"Idempotency-Key": "key-0"})
            assert "idempotent-replayed" not in oldest.headers  # dropped: it ran again
            assert json.loads(oldest.content)["status"] == "updated"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
