"""A stored provider key goes only to the endpoint it was stored for, and never comes back in an error.

Real server (`live`), real keyring (the keyrings.alt file backend), and real
OpenAI/Anthropic wire servers on 127.0.0.1 standing in for the provider and for
a listener an attacker controls (each records the headers it receives).
"""

from __future__ import annotations

import pytest

from tests.wire_servers import WireServer

SECRET = "sk-stored-secret-0123456789abcdef0123456789"
CHAT = {"messages": [{"role": "user", "content": "hello there"}], "model": "corp:gpt-wire", "persist": False}


def _keys_sent(server: WireServer) -> list[str]:
    return [r.headers.get("authorization", "") + r.headers.get("x-api-key", "") for r in server.requests]


@pytest.fixture
def provider_and_listener(live):
    with WireServer(api_key=SECRET) as provider, WireServer(api_key="sk-listener-key") as listener:
        live.engine.add_provider("corp", "openai", provider.openai_base_url, ["gpt-wire"])
        live.engine.set_provider_key("corp", SECRET)
        yield provider, listener


def test_a_non_admin_key_cannot_point_a_provider_with_a_key_elsewhere(live, provider_and_listener) -> None:
    provider, listener = provider_and_listener
    _, writer = live.engine.api_keys.create("writer", ["write:providers", "read:providers", "execute:chat"])
    with live.client(writer) as http:
        moved = http.put(
            "/workbench/v1/providers/corp",
            json={"kind": "openai", "base_url": listener.openai_base_url, "models": ["gpt-wire"]},
        )
        assert moved.status_code == 403, moved.text
        assert "admin:providers" in moved.json()["error"]["message"]
        # the provider is untouched and still answers with its own key
        assert http.get("/workbench/v1/providers").json()[0]["base_url"] == provider.openai_base_url
        assert http.post("/workbench/v1/generate", json=CHAT).status_code == 200
        # the same endpoint with other models needs no admin scope and keeps the key
        same = http.put(
            "/workbench/v1/providers/corp",
            json={"kind": "openai", "base_url": provider.openai_base_url + "/", "models": ["gpt-wire", "x"]},
        )
        assert same.status_code == 200 and same.json()["has_key"] is True
    assert not listener.requests
    assert _keys_sent(provider) == [f"Bearer {SECRET}"]


def test_moving_a_provider_deletes_its_key(live, provider_and_listener) -> None:
    provider, listener = provider_and_listener
    _, admin = live.engine.api_keys.create("admin", ["write:providers", "admin:providers", "execute:chat"])
    with live.client(admin) as http:
        moved = http.put(
            "/workbench/v1/providers/corp",
            json={"kind": "openai", "base_url": listener.openai_base_url, "models": ["gpt-wire"]},
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["has_key"] is False
        answer = http.post("/workbench/v1/generate", json=CHAT)
        assert answer.status_code == 502, answer.text  # the listener wants a key: none is sent
    assert listener.requests and all(SECRET not in sent for sent in _keys_sent(listener))


def test_a_new_provider_over_a_key_left_in_the_keyring_needs_admin(live) -> None:
    from workbench.engine import secrets

    secrets.set_provider_key("orphan", SECRET)  # e.g. stored by another home: the keyring is per user
    try:
        _, writer = live.engine.api_keys.create("writer", ["write:providers"])
        with WireServer() as listener, live.client(writer) as http:
            added = http.put(
                "/workbench/v1/providers/orphan",
                json={"kind": "openai", "base_url": listener.openai_base_url, "models": ["m"]},
            )
            assert added.status_code == 403, added.text
            fresh = http.put(
                "/workbench/v1/providers/fresh",
                json={"kind": "openai", "base_url": listener.openai_base_url, "models": ["m"]},
            )
            assert fresh.status_code == 200 and fresh.json()["has_key"] is False
    finally:
        secrets.delete_provider_key("orphan")


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_provider_that_echoes_the_key_does_not_leak_it(live, kind: str) -> None:
    """A 401 body that quotes the key it got (a careless proxy) reaches the client scrubbed."""
    with WireServer(api_key="sk-the-right-one") as echoing:
        echoing.echo_rejected_key = True
        base = echoing.openai_base_url if kind == "openai" else echoing.anthropic_base_url
        model = "gpt-wire" if kind == "openai" else "claude-wire"
        live.engine.add_provider("echo", kind, base, [model])
        live.engine.set_provider_key("echo", SECRET)
        with live.client() as http:
            answer = http.post("/workbench/v1/generate", json={**CHAT, "model": f"echo:{model}"})
            also = http.post("/v1/chat/completions", json={"model": f"echo:{model}", "messages": CHAT["messages"]})
        assert SECRET in str(echoing.requests[0].headers)  # the key was sent, and echoed back
    for response in (answer, also):
        assert response.status_code == 502, response.text
        assert SECRET not in response.text and SECRET[:12] not in response.text
        assert "[redacted]" in response.text


def test_mid_stream_errors_are_scrubbed_too() -> None:
    """An error event in the middle of a stream quotes the provider: its message is scrubbed as well."""
    import httpx

    from workbench.engine.errors import ProviderError
    from workbench.engine.inference.http import open_stream

    with WireServer(api_key=SECRET) as server, httpx.Client() as client:
        body = {"model": "gpt-wire", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        with pytest.raises(ProviderError) as caught:
            with open_stream(
                client,
                server.openai_base_url + "/chat/completions",
                body,
                {"Authorization": f"Bearer {SECRET}"},
                "corp",
            ):
                raise ProviderError(f"The corp provider failed mid-stream: bad key {SECRET}.")
    assert SECRET not in str(caught.value) and "[redacted]" in str(caught.value)
