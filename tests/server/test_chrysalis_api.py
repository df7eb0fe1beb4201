"""Chrysalis's AgentBuilder / KnowledgeBuilder / SkillBuilder APIs on a real server.

Request bodies are the seed's own (the Chrysalis integration guide: Bob Ross, Workflow 1's custom
knowledge, the client SDK's calls), with deepening_cycles kept at 0 or 1 so the tiny default model
finishes quickly.
"""

from __future__ import annotations

import time
from datetime import datetime

import httpx

from tests.server.conftest import start_server

BOB_ROSS = {
    "agent_id": "agent-bob-ross-001",
    "role_model": {"name": "Bob Ross", "occupation": "Artist"},
    "deepening_cycles": 1,
}
CUSTOM_KNOWLEDGE = [
    {
        "text": "Expert in wet-on-wet oil painting technique",
        "entity_type": "Skill",
        "source": "Custom Database",
        "confidence": 1.0,
    },
    {
        "text": "Hosted 'The Joy of Painting' TV show for 11 years",
        "entity_type": "Achievement",
        "source": "Custom Database",
        "confidence": 1.0,
    },
]
SKILL_FIELDS = {"skill_id", "name", "description", "category"}
KNOWLEDGE_FIELDS = {"knowledge_id", "entity", "source", "confidence"}


def _ok(response: httpx.Response, status: int = 200) -> dict:
    """The seed's success envelope; returns the whole body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "data", "meta"} and body["success"] is True
    meta = body["meta"]
    assert meta["request_id"] == response.headers["x-request-id"]
    assert meta["version"] == "v1"
    assert datetime.fromisoformat(meta["timestamp"]).tzinfo is not None
    return body


def _error(response: httpx.Response, status: int, code: str) -> dict:
    """The seed's error envelope with `code`; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and set(body) == {"success", "error", "meta"}
    error = body["error"]
    assert error["code"] == code, error
    assert error["category"] == code.split(".")[0] and error["message"]
    assert body["meta"]["request_id"] == response.headers["x-request-id"] == error["request_id"]
    assert body["meta"]["version"] == "v1"
    return error


# ------------------------------------------------------------------- agents


def test_the_quick_start_agent_lifecycle(live) -> None:
    with live.client() as client:
        created = _ok(client.post("/api/v1/agents", json=BOB_ROSS), 201)["data"]
        assert created["agent_id"] == "agent-bob-ross-001"
        assert created["role_model"] == {"name": "Bob Ross", "occupation": "Artist"}
        assert created["status"] == "completed" and created["deepening_cycles"] == 1
        assert created["generated_skills"], "one deepening cycle yields skills"
        assert all(set(s) == SKILL_FIELDS for s in created["generated_skills"])
        assert all(
            set(k) == KNOWLEDGE_FIELDS and set(k["entity"]) == {"text", "type"} for k in created["generated_knowledge"]
        )
        stored = live.engine.get_agent("agent-bob-ross-001")
        assert [s.skill_id for s in stored.generated_skills] == [s["skill_id"] for s in created["generated_skills"]]

        # Step 2: verify; Step 3: capabilities (only skills and knowledge, plus what the agent may use)
        fetched = _ok(client.get("/api/v1/agents/agent-bob-ross-001"))["data"]
        assert fetched["generated_skills"] == created["generated_skills"]
        assert fetched["created_at"] == created["created_at"]
        caps = _ok(client.get("/api/v1/agents/agent-bob-ross-001/capabilities"))["data"]
        assert caps["skills"] == created["generated_skills"]
        assert caps["knowledge"] == created["generated_knowledge"]

        # PATCH: deepening_cycles is recorded, role_model fields merge, the rest is preserved
        patched = _ok(client.patch("/api/v1/agents/agent-bob-ross-001", json={"deepening_cycles": 5}))["data"]
        assert patched["deepening_cycles"] == 5 and patched["generated_skills"] == created["generated_skills"]
        renamed = _ok(client.patch("/api/v1/agents/agent-bob-ross-001", json={"role_model": {"name": "Bob Ross Jr."}}))[
            "data"
        ]
        assert renamed["role_model"] == {"name": "Bob Ross Jr.", "occupation": "Artist"}
        assert renamed["deepening_cycles"] == 5
        assert renamed["created_at"] == created["created_at"]
        assert live.engine.get_agent("agent-bob-ross-001").name == "Bob Ross Jr."

        deleted = _ok(client.delete("/api/v1/agents/agent-bob-ross-001"))["data"]
        assert deleted == {"deleted": True, "agent_id": "agent-bob-ross-001"}
        _error(client.get("/api/v1/agents/agent-bob-ross-001"), 404, "NOT_FOUND_ERROR.RESOURCE_NOT_FOUND")
        _error(client.delete("/api/v1/agents/agent-bob-ross-001"), 404, "NOT_FOUND_ERROR.RESOURCE_NOT_FOUND")
        _error(
            client.patch("/api/v1/agents/agent-bob-ross-001", json={"deepening_cycles": 1}),
            404,
            "NOT_FOUND_ERROR.RESOURCE_NOT_FOUND",
        )
        _error(client.get("/api/v1/agents/agent-bob-ross-001/capabilities"), 404, "NOT_FOUND_ERROR.RESOURCE_NOT_FOUND")
        _error(client.get("/api/v1/no-such-thing"), 404, "NOT_FOUND_ERROR.ENDPOINT_NOT_FOUND")
    assert live.engine.list_agents().total == 0


def test_workflow_1_custom_knowledge_skills_and_the_duplicate_409(live) -> None:
    agent_id = "agent-bob-ross-custom"
    with live.client() as client:
        # Step 1: the base agent, deepening_cycles 0 (no knowledge generation)
        agent = _ok(
            client.post(
                "/api/v1/agents",
                json={
                    "agent_id": agent_id,
                    "role_model": {"name": "Bob Ross", "occupation": "Artist"},
                    "deepening_cycles": 0,
                },
            ),
            201,
        )["data"]
        assert agent["agent_id"] == agent_id and agent["generated_knowledge"] == []
        assert agent["deepening_cycles"] == 0

        duplicate = client.post(
            "/api/v1/agents",
            json={
                "agent_id": agent_id,
                "role_model": {"name": "Someone Else", "occupation": "Other"},
                "deepening_cycles": 0,
            },
        )
        error = _error(duplicate, 409, "CONFLICT_ERROR.DUPLICATE_RESOURCE")
        assert agent_id in error["message"]
        assert live.engine.get_agent(agent_id).name == "Bob Ross"

        # Step 2: custom knowledge items
        added = []
        for item in CUSTOM_KNOWLEDGE:
            response = _ok(
                client.post(
                    "/api/v1/knowledge",
                    json={
                        "identifier": agent_id,
                        "entity_type": item.get("entity_type", "Custom"),
                        "text": item["text"],
                        "source": item.get("source", "Custom"),
                        "confidence": item.get("confidence", 1.0),
                    },
                ),
                201,
            )
            [stored] = response["data"]
            assert stored["entity"] == {"text": item["text"], "type": item["entity_type"]}
            assert stored["source"] == "Custom Database" and stored["confidence"] == 1.0
            added.append(stored)

        # Step 3: the knowledge of the agent, then skills from a corpus of it
        listing = _ok(client.get(f"/api/v1/knowledge?filter[identifier]={agent_id}"))
        knowledge_items = listing["data"]
        assert {k["knowledge_id"] for k in knowledge_items} == {k["knowledge_id"] for k in added}
        assert listing["meta"]["pagination"]["total"] == 2
        only_skills = _ok(
            client.get("/api/v1/knowledge", params={"filter[identifier]": agent_id, "filter[type]": "Skill"})
        )["data"]
        assert [k["entity"]["text"] for k in only_skills] == [CUSTOM_KNOWLEDGE[0]["text"]]
        corpus = " ".join([k["entity"]["text"] for k in knowledge_items])
        skills = _ok(
            client.post(
                "/api/v1/skills",
                json={
                    "occupation": "Artist",
                    "deepening_cycles": 0,
                    "corpus_text": corpus,
                },
            ),
            201,
        )["data"]
        assert skills and all(set(s) == SKILL_FIELDS and s["skill_id"].startswith("skill_") for s in skills)
        assert live.engine.list_agents().total == 1, "skills are generated, not stored as agents"

        # Step 4: update the agent with its new capabilities
        updated = _ok(
            client.patch(
                f"/api/v1/agents/{agent_id}",
                json={
                    "generated_skills": skills,
                    "generated_knowledge": knowledge_items,
                },
            )
        )["data"]
        assert updated["generated_skills"] == skills
        assert updated["generated_knowledge"] == knowledge_items
    caps = live.engine.capabilities(agent_id)
    assert [k.entity.text for k in caps.knowledge] == [k["entity"]["text"] for k in knowledge_items]
    assert [s.name for s in caps.skills] == [s["name"] for s in skills]


def test_listing_pages_and_sorts_like_the_seed(live) -> None:
    names = ["Delta", "alpha", "Echo", "bravo", "Charlie"]
    for i, name in enumerate(names):  # stored directly: listing needs no model work
        live.engine.create_agent({"id": f"agent-{i}", "name": name, "occupation": "Tester"})
        time.sleep(0.01)
    with live.client() as client:
        first = _ok(client.get("/api/v1/agents", params={"page": 1, "per_page": 2, "sort": "-created_at"}))
        assert [a["agent_id"] for a in first["data"]] == ["agent-4", "agent-3"]
        assert first["meta"]["pagination"] == {
            "page": 1,
            "per_page": 2,
            "total": 5,
            "total_pages": 3,
            "has_next": True,
            "has_prev": False,
        }
        last = _ok(client.get("/api/v1/agents?page=3&per_page=2&sort=-created_at"))
        assert [a["agent_id"] for a in last["data"]] == ["agent-0"]
        assert last["meta"]["pagination"]["has_next"] is False and last["meta"]["pagination"]["has_prev"] is True
        oldest = _ok(client.get("/api/v1/agents?sort=created_at"))["data"]
        assert [a["agent_id"] for a in oldest] == [f"agent-{i}" for i in range(5)]
        by_name = _ok(client.get("/api/v1/agents?sort=name"))["data"]
        assert [a["role_model"]["name"] for a in by_name] == ["alpha", "bravo", "Charlie", "Delta", "Echo"]
        by_id_desc = _ok(client.get("/api/v1/agents?sort=-agent_id"))["data"]
        assert [a["agent_id"] for a in by_id_desc] == [f"agent-{i}" for i in reversed(range(5))]
        # the SDK's default call and the status filter (ready agents are "completed")
        default = _ok(client.get("/api/v1/agents", params={"page": 1, "per_page": 20}))
        assert default["meta"]["pagination"]["total"] == 5 and default["data"][0]["agent_id"] == "agent-4"
        completed = _ok(client.get("/api/v1/agents", params={"filter[status]": "completed"}))
        assert completed["meta"]["pagination"]["total"] == 5
        assert {a["status"] for a in completed["data"]} == {"completed"}
        pending = _ok(client.get("/api/v1/agents", params={"filter[status]": "pending"}))
        assert pending["data"] == [] and pending["meta"]["pagination"]["total_pages"] == 0
        # Chrysalis clamps per_page to 100
        clamped = _ok(client.get("/api/v1/agents?per_page=500"))
        assert clamped["meta"]["pagination"]["per_page"] == 100

        bad_sort = _error(client.get("/api/v1/agents?sort=-colour"), 400, "VALIDATION_ERROR")
        assert bad_sort["details"]["field"] == "sort"
        _error(client.get("/api/v1/agents?sort=name,-created_at"), 400, "VALIDATION_ERROR")
        _error(client.get("/api/v1/agents?filter[status]=sleeping"), 400, "VALIDATION_ERROR")
        not_a_number = _error(client.get("/api/v1/agents?page=two"), 400, "VALIDATION_ERROR")
        assert not_a_number["details"]["field"] == "query.page"


# ---------------------------------------------------------------- knowledge


def test_knowledge_generation_listing_and_search(live) -> None:
    with live.client() as client:
        generated = _ok(
            client.post(
                "/api/v1/knowledge",
                json={
                    "identifier": "Bob Ross",
                    "entity_type": "Person",
                    "deepening_cycles": 1,
                },
            ),
            201,
        )["data"]
        assert isinstance(generated, list)
        assert all(set(k) == KNOWLEDGE_FIELDS and 0.0 <= k["confidence"] <= 1.0 for k in generated)
        custom = _ok(
            client.post(
                "/api/v1/knowledge",
                json={
                    "identifier": "Bob Ross",
                    "entity_type": "Technique",
                    "text": CUSTOM_KNOWLEDGE[0]["text"],
                    "source": "Custom Database",
                    "confidence": 0.9,
                },
            ),
            201,
        )["data"]
        listed = _ok(client.get("/api/v1/knowledge?filter[identifier]=Bob Ross"))["data"]
        assert {k["knowledge_id"] for k in generated + custom} == {k["knowledge_id"] for k in listed}
        assert [k.knowledge_id for k in live.engine.list_knowledge("Bob Ross")] == [k["knowledge_id"] for k in listed]
        paged = _ok(client.get("/api/v1/knowledge", params={"filter[identifier]": "Bob Ross", "per_page": 1}))
        assert len(paged["data"]) == 1 and paged["meta"]["pagination"]["total"] == len(listed)
        nothing = _ok(client.get("/api/v1/knowledge?filter[identifier]=Nobody Known"))
        assert nothing["data"] == [] and nothing["meta"]["pagination"]["total"] == 0

        # another entity, so the search has something to rank below Bob Ross
        _ok(
            client.post(
                "/api/v1/knowledge",
                json={
                    "identifier": "NASA",
                    "entity_type": "Organization",
                    "text": "NASA runs the United States space program.",
                    "source": "Custom Database",
                    "confidence": 0.95,
                },
            ),
            201,
        )
        results = _ok(client.post("/api/v1/knowledge/search", json={"query": "Bob Ross", "limit": 5}))["data"]
        # Bob Ross ranks first, so his items lead the (at most 5) results.
        leading = min(len(listed), 5)
        assert len(results) <= 5 and [r["identifier"] for r in results[:leading]] == ["Bob Ross"] * leading
        assert results[0]["identifier"] == "Bob Ross" and results[0]["entity_type"] == "Person"
        assert {r["knowledge_id"] for r in results if r["identifier"] == "Bob Ross"} <= {
            k["knowledge_id"] for k in listed
        }
        assert all({"knowledge_id", "entity", "relevance_score", "identifier"} <= set(r) for r in results)
        space = _ok(client.post("/api/v1/knowledge/search", json={"query": "space agency rockets", "limit": 1}))
        assert [r["identifier"] for r in space["data"]] == ["NASA"]
        organisations = _ok(
            client.post(
                "/api/v1/knowledge/search", json={"query": "painting", "entity_type": "Organization", "limit": 10}
            )
        )["data"]
        assert {r["identifier"] for r in organisations} == {"NASA"}

        missing = _error(client.get("/api/v1/knowledge"), 400, "VALIDATION_ERROR")
        assert missing["details"]["field"] == "filter[identifier]"
        _error(client.post("/api/v1/knowledge/search", json={"limit": 5}), 400, "VALIDATION_ERROR")
        _error(client.post("/api/v1/knowledge", json={"identifier": "X", "source": "orphan"}), 400, "VALIDATION_ERROR")


# ------------------------------------------------------------------- errors


def test_validation_errors_are_400_with_the_field(live) -> None:
    with live.client() as client:
        missing = _error(client.post("/api/v1/agents", json={"agent_id": "agent-x"}), 400, "VALIDATION_ERROR")
        assert missing["details"]["field"] == "role_model"
        too_deep = _error(
            client.post("/api/v1/agents", json={**BOB_ROSS, "deepening_cycles": 99}), 400, "VALIDATION_ERROR"
        )
        assert too_deep["details"]["field"] == "deepening_cycles"
        bad_id = _error(
            client.post("/api/v1/agents", json={**BOB_ROSS, "agent_id": "no spaces allowed"}), 400, "VALIDATION_ERROR"
        )
        assert bad_id["details"]["field"] == "agent_id"
        broken = _error(
            client.post("/api/v1/agents", content=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "VALIDATION_ERROR",
        )
        assert broken["details"] == {"field": "body", "issue": "is not valid JSON"}
        _error(client.post("/api/v1/skills", json={"deepening_cycles": 0}), 400, "VALIDATION_ERROR")
        _error(client.patch("/api/v1/agents/agent-x", json={"colour": "blue"}), 400, "VALIDATION_ERROR")
        _error(
            client.post("/api/v1/agents", json={**BOB_ROSS, "model": "no-such-model.gguf"}),
            404,
            "NOT_FOUND_ERROR.RESOURCE_NOT_FOUND",
        )
    assert live.engine.list_agents().total == 0


def test_missing_keys_wrong_keys_and_scopes(live) -> None:
    with live.client(key=None) as anonymous:
        missing = anonymous.post("/api/v1/agents", json=BOB_ROSS)
        _error(missing, 401, "AUTHENTICATION_ERROR.MISSING_AUTHORIZATION")
        assert missing.headers["www-authenticate"] == "Bearer"
        _error(anonymous.get("/api/v1/agents"), 401, "AUTHENTICATION_ERROR.MISSING_AUTHORIZATION")
    with live.client(key="wb_nope.not-a-secret") as wrong:
        _error(wrong.get("/api/v1/agents"), 401, "AUTHENTICATION_ERROR.INVALID_TOKEN")
    _, reader = live.engine.api_keys.create("reader", ["read:agents", "read:knowledge"])
    with live.client(key=reader) as client:
        _ok(client.get("/api/v1/agents"))
        _ok(client.get("/api/v1/knowledge?filter[identifier]=Bob Ross"))
        denied = _error(client.post("/api/v1/agents", json=BOB_ROSS), 403, "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE")
        assert "write:agents" in denied["message"]
        _error(client.delete("/api/v1/agents/agent-bob-ross-001"), 403, "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE")
        _error(
            client.post("/api/v1/skills", json={"occupation": "Artist"}), 403, "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE"
        )
        _error(
            client.post("/api/v1/knowledge", json={"identifier": "Bob Ross", "text": "x"}),
            403,
            "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE",
        )
    assert live.engine.list_agents().total == 0 and live.engine.list_knowledge("Bob Ross") == []


def test_the_rate_limit_answer_in_the_chrysalis_shape(mem_engine) -> None:
    server, thread, sock, port = start_server(mem_engine, rate_limit_per_minute=2)
    _, key = mem_engine.api_keys.create("limited", ["*"])
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as client:
            if 60 - time.time() % 60 < 5:  # stay inside one window
                time.sleep(60 - time.time() % 60 + 0.1)
            responses = [client.get("/api/v1/agents") for _ in range(3)]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert [r.status_code for r in responses] == [200, 200, 429]
    error = _error(responses[2], 429, "RATE_LIMIT_ERROR.TOO_MANY_REQUESTS")
    assert error["retry_after"] == int(responses[2].headers["retry-after"]) >= 1
    assert error["details"]["limit"] == 2
