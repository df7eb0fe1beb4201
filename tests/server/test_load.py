"""Load: 50 concurrent clients for 30 s mixing health, remember, recall, rag_retrieve and chat.

Zero errors, and nothing lost: every key a client remembered is recalled
afterwards with the value it wrote. The per-key rate limit is raised for this
test (each client would otherwise meet the default 100/min within seconds);
the limiter itself is tested in test_security.py.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import httpx
import pytest

from tests.server.conftest import start_server

CLIENTS = 50
SECONDS = 30.0


@pytest.mark.slow
def test_fifty_clients_for_thirty_seconds(mem_engine) -> None:
    server, thread, sock, port = start_server(mem_engine, rate_limit_per_minute=1_000_000)
    _, key = mem_engine.api_keys.create("load", ["*"])
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    # Something to retrieve from the start.
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        seed = client.post("/v1/remember", json={"key": "seed:deploy", "value": "Deploy with kubectl apply -f."})
        assert seed.status_code == 200, seed.text

    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    remembered: dict[str, str] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + SECONDS

    def client_loop(number: int) -> None:
        rng = random.Random(number)
        written: list[str] = []
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            n = 0
            while time.monotonic() < stop_at:
                n += 1
                kind = rng.choices(["health", "remember", "recall", "rag", "chat"], [3, 3, 3, 2, 1])[0]
                try:
                    if kind == "health":
                        response = client.get("/health")
                    elif kind == "remember" or (kind == "recall" and not written):
                        kind = "remember"
                        memory_key = f"load:{number}:{n}"
                        value = f"client {number} wrote note {n}"
                        response = client.post("/v1/remember", json={"key": memory_key, "value": value})
                        if response.status_code == 200:
                            written.append(memory_key)
                            with lock:
                                remembered[memory_key] = value
                    elif kind == "recall":
                        response = client.get(f"/v1/recall/{rng.choice(written)}")
                    elif kind == "rag":
                        response = client.post("/v1/rag/retrieve", json={"query": "how to deploy", "top_k": 3})
                    else:
                        response = client.post(
                            "/v1/chat/completions",
                            json={
                                "model": "default",
                                "max_tokens": 4,
                                "temperature": 0,
                                "messages": [{"role": "user", "content": "Say hi."}],
                            },
                        )
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    outcomes[f"{kind} {response.status_code}"] += 1
                    if response.status_code != 200:
                        failures.append(f"{kind}: {response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SECONDS + 300)
        assert not any(t.is_alive() for t in threads), "a client hung"
        assert failures == [], failures[:10]
        for kind in ("health", "remember", "recall", "rag", "chat"):
            assert outcomes[f"{kind} 200"] > 0, outcomes
        # Nothing lost: every remembered key comes back with its value.
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            for memory_key, value in remembered.items():
                recalled = client.get(f"/v1/recall/{memory_key}")
                assert recalled.status_code == 200, (memory_key, recalled.text)
                assert recalled.json()["value"] == value
        assert len(remembered) == outcomes["remember 200"]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
