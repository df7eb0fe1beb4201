"""Server benchmark: throughput and latency under concurrent load, and RemoteEngine's HTTP overhead.

Two parts, in one run:

* load: `workbench serve` runs in its own process (as users run it) on a temp
  home seeded with memories; `--clients` threads in this process, each with
  its own keep-alive connection, call one route for `--seconds` (after a
  warm-up): `GET /health`, `GET /v1/recall/{key}`, `POST /v1/rag/retrieve`.
  Reported per route: requests/s, p50 and p99 latency, errors.
* overhead: one in-process `Engine`, served from a thread of this process,
  called directly and through `RemoteEngine` (same engine, same calls,
  alternating, one at a time): recall, rag_retrieve and list_sessions.
  Reported: each side's p50 and the difference. Target: recall's p50
  overhead <= 2 ms.

The per-key rate limit is raised for the load part (`--rate-limit`; each client
would meet the default 100/min at once). Prints one JSON document; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")

from benchmarks.machine import cpu_busy, cpu_model, other_load, package_version  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKBENCH = str(Path(sys.executable).parent / "workbench")
MEMORIES = 500


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_value(i: int) -> str:
    topics = [
        "deploying with kubectl",
        "rotating API keys",
        "the coffee machine",
        "quarterly planning",
        "backing up the database",
        "onboarding new engineers",
        "the release checklist",
    ]
    return f"Note {i}: remember {topics[i % len(topics)]} (detail {i * 7 % 101})."


# ------------------------------------------------------------------- load


def run_load(base: str, key: str, route: str, clients: int, seconds: float) -> dict[str, object]:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_barrier = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def request(client: httpx.Client, n: int) -> httpx.Response:
        if route == "health":
            return client.get("/health")
        if route == "recall":
            return client.get(f"/v1/recall/note:{n % MEMORIES}")
        return client.post("/v1/rag/retrieve", json={"query": "how do I deploy?", "top_k": 5})

    def loop(number: int) -> None:
        mine: list[float] = []
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            request(client, number)  # connect before the clock starts
            start_barrier.wait()
            n = number
            while time.perf_counter() < stop_at[0]:
                n += clients
                began = time.perf_counter()
                try:
                    response = request(client, n)
                    ok = response.status_code == 200
                except httpx.HTTPError as exc:
                    ok, response = False, exc
                mine.append((time.perf_counter() - began) * 1000)
                if not ok:
                    with lock:
                        errors.append(str(getattr(response, "status_code", response)))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + 1e9
    start_barrier.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
        "errors": len(errors),
    }


def load_part(clients: int, seconds: float) -> dict[str, object]:
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WORKBENCH_HOME=str(Path(tmp) / "home"), XDG_DATA_HOME=str(Path(tmp) / "xdg"))
        created = subprocess.run(
            [WORKBENCH, "keys", "create", "--name", "bench"], env=env, capture_output=True, text=True, check=True
        )
        key = created.stdout.split()[0]
        port = free_port()
        server = subprocess.Popen(
            [WORKBENCH, "serve", "--listen", f"127.0.0.1:{port}", "--rate-limit", "1000000"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the server did not start: {server.stderr.read() if server.stderr else ''}")
                time.sleep(0.1)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
                for i in range(MEMORIES):
                    client.post("/v1/remember", json={"key": f"note:{i}", "value": memory_value(i)}).raise_for_status()
            results = {}
            for route in ("health", "recall", "rag_retrieve"):
                log(f"load: {route} with {clients} clients for {seconds} s")
                run_load(base, key, route, clients, 2.0)  # warm-up
                results[route] = run_load(base, key, route, clients, seconds)
            return results
        finally:
            server.terminate()
            server.wait(timeout=30)


# --------------------------------------------------------------- overhead


def overhead_part(rounds: int) -> dict[str, object]:
    import uvicorn

    from workbench.engine.engine import Engine
    from workbench.remote import RemoteEngine
    from workbench.server.app import create_app
    from workbench.server.security import ServerSettings

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp) / "home")
        try:
            engine.remember_many([{"key": f"note:{i}", "value": memory_value(i)} for i in range(MEMORIES)])
            _, key = engine.api_keys.create("bench", ["*"])
            from workbench.server.run import bind

            (sock,) = bind([("127.0.0.1", 0)])
            port = sock.getsockname()[1]
            app = create_app(engine, ServerSettings(ports={port}, rate_limit_per_minute=1_000_000))
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.02)
            calls = {
                "recall": lambda api, n: api.recall(f"note:{n % MEMORIES}"),
                "rag_retrieve": lambda api, n: api.rag_retrieve({"query": "how do I deploy?", "top_k": 5}),
                "list_sessions": lambda api, n: api.list_sessions(),
            }
            report: dict[str, object] = {}
            with RemoteEngine(f"http://127.0.0.1:{port}", api_key=key) as remote:
                for name, call in calls.items():
                    log(f"overhead: {name}")
                    local_ms: list[float] = []
                    remote_ms: list[float] = []
                    for n in range(20):  # warm-up both sides
                        call(engine, n)
                        call(remote, n)
                    for n in range(rounds):
                        for api, sink in (
                            ((engine, local_ms), (remote, remote_ms))
                            if n % 2
                            else ((remote, remote_ms), (engine, local_ms))
                        ):
                            began = time.perf_counter()
                            call(api, n)
                            sink.append((time.perf_counter() - began) * 1000)
                    local_p50, remote_p50 = statistics.median(local_ms), statistics.median(remote_ms)
                    report[name] = {
                        "in_process_p50_ms": round(local_p50, 3),
                        "remote_p50_ms": round(remote_p50, 3),
                        "overhead_p50_ms": round(remote_p50 - local_p50, 3),
                        "remote_p99_ms": round(percentile(remote_ms, 0.99), 3),
                    }
            report["target_recall_overhead_p50_ms"] = 2.0
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()
            return report
        finally:
            engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients in the load part (default 16)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per route (default 10)")
    parser.add_argument("--rounds", type=int, default=300, help="calls per side in the overhead part (default 300)")
    args = parser.parse_args()
    load_before = cpu_busy()
    report = {
        "load": {"clients": args.clients, "seconds": args.seconds, **load_part(args.clients, args.seconds)},
        "remote_engine_overhead": overhead_part(args.rounds),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "other_load_cpus": other_load(load_before),
            "uvicorn": package_version("uvicorn"),
            "fastapi": package_version("fastapi"),
        },
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
