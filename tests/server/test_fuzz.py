"""Schemathesis against `/openapi.json`: every operation, generated requests, no 5xx and no hang.

The served engine's default chat model is a remote provider (the OpenAI wire
server of tests/wire_servers.py on 127.0.0.1), so generated chat, builder and
agent requests answer in milliseconds instead of running the local model for
thousands of tokens; everything else (store, embedder, tools, security) is
the real thing. No workspace roots are configured, so generated tool calls
that touch files or run commands are refused, as they would be for a user.
Also checks that the document is complete: every route the app serves is in it.
"""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.server.conftest import start_server
from tests.wire_servers import WireServer, add_model

REQUEST_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory, embedder):
    from workbench.engine.engine import Engine

    home = tmp_path_factory.mktemp("fuzz-home")
    with WireServer(api_key="sk-fuzz") as wire, Engine(home, embedder=embedder) as engine:
        engine.set_default_model(add_model(engine, wire, "openai"))
        engine.remember({"key": "fuzz:seed", "value": "A memory to find."})
        server, thread, sock, port = start_server(engine, rate_limit_per_minute=1_000_000)
        # Not admin: generated requests must not add workspace roots or MCP servers (programs to start).
        _, key = engine.api_keys.create("fuzz", ["read:*", "write:*", "execute:*"])
        try:
            yield f"http://127.0.0.1:{port}", key, engine
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed_server):
    base, key, _ = fuzzed_server
    return schemathesis.openapi.from_url(f"{base}/openapi.json", headers={"Authorization": f"Bearer {key}"})


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_no_hangs(case, fuzzed_server) -> None:
    base, key, _ = fuzzed_server
    response = case.call(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:500])


def test_the_openapi_document_lists_every_route_and_needs_a_key(fuzzed_server) -> None:
    import httpx

    base, key, engine = fuzzed_server
    assert httpx.get(f"{base}/openapi.json").status_code == 401
    document = httpx.get(f"{base}/openapi.json", headers={"X-API-Key": key}).json()
    from workbench.server.app import create_app

    app = create_app(engine)
    served = {
        (re.sub(r":\w+}", "}", route.path), method)
        for route in _routes(app.routes)
        if route.include_in_schema
        for method in route.methods - {"HEAD"}
    }
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    assert served == documented
    # The seed families and the native API are all there.
    for path in (
        "/v1/chat/completions",
        "/v1/recall/{key}",
        "/api/v1/agents",
        "/execute",
        "/api/v1/execute",
        "/workbench/v1/runs",
        "/health",
    ):
        assert path in document["paths"], path


def _routes(routes):
    """Every API route, also inside included routers (FastAPI keeps those as included-router entries)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes)
        elif hasattr(route, "methods") and hasattr(route, "include_in_schema"):
            yield route
