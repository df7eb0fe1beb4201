"""One rule for "which model may this request load", the same in every API family."""

from __future__ import annotations

HELLO = [{"role": "user", "content": "hi"}]


def test_every_family_refuses_an_unlisted_model_with_the_same_sentence(live) -> None:
    for spec in ("/etc/nothing-here.gguf", "../models/x.gguf", "no-such-model"):
        sentence = f"The model {spec!r} is not available over HTTP; GET /v1/models (or /workbench/v1/models)"
        requests = [
            ("/workbench/v1/sessions", {"title": "x", "model": spec}),
            ("/workbench/v1/generate", {"messages": HELLO, "model": spec, "persist": False}),
            ("/v1/chat/completions", {"model": spec, "messages": HELLO}),
            ("/v1/infer/sync", {"prompt": "hi", "model": spec}),
            ("/execute", {"task": "hi", "parameters": {"model": spec}}),
        ]
        with live.client() as client:
            for path, body in requests:
                response = client.post(path, json=body)
                assert response.status_code == 404, (path, response.text)
                assert sentence in response.text, (path, response.text)
    assert not live.engine.list_sessions()


def test_a_listed_model_is_matched_by_its_id_without_regard_to_case(live) -> None:
    listed = live.engine.list_models()[0].id
    with live.client() as client:
        response = client.post("/workbench/v1/sessions", json={"title": "x", "model": listed.upper()})
        assert response.status_code in (200, 201), response.text
        assert response.json()["model"] == listed
