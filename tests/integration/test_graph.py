"""Knowledge graph: facts, relations, recursive neighbours, semantic entity search."""

from __future__ import annotations

import time

import pytest

from workbench.engine.engine import Engine
from workbench.engine.errors import InvalidRequest, NotFound


def test_facts_are_multi_valued_and_deduplicated(mem_engine: Engine):
    mem_engine.store_fact("Bob Ross", "occupation", "painter", source="bio.md", confidence=0.9, entity_type="Person")
    mem_engine.store_fact("bob ross", "occupation", "television host")
    again = mem_engine.store_fact("BOB ROSS", "occupation", "painter", confidence=0.95)
    facts = mem_engine.retrieve_facts("Bob Ross", "occupation")
    assert sorted(f.value for f in facts) == ["painter", "television host"]
    painter = next(f for f in facts if f.value == "painter")
    assert painter.id == again.id and painter.confidence == 0.95 and painter.source == "bio.md"
    assert painter.entity == "Bob Ross"  # the name as first written
    assert mem_engine.retrieve_facts("Bob Ross", "hobby") == []
    assert mem_engine.retrieve_facts("Nobody") == []
    assert mem_engine.graph.get_entity("bob ross").type == "Person"


def test_fact_ttl(mem_engine: Engine):
    mem_engine.store_fact("session-1", "status", "typing", ttl_seconds=1)
    mem_engine.store_fact("session-1", "owner", "ada")
    assert {f.attribute for f in mem_engine.retrieve_facts("session-1")} == {"status", "owner"}
    time.sleep(1.2)
    assert [f.attribute for f in mem_engine.retrieve_facts("session-1")] == ["owner"]


@pytest.fixture
def family(mem_engine: Engine) -> Engine:
    mem_engine.create_relationship("Ada", "Byron", "daughter_of")
    mem_engine.create_relationship("Byron", "Annabella", "married_to", {"since": 1815})
    mem_engine.create_relationship("Annabella", "Ada", "mother_of")  # a cycle
    mem_engine.create_relationship("Ada", "Babbage", "worked_with")
    mem_engine.create_relationship("Babbage", "Analytical Engine", "designed")
    return mem_engine


def test_neighbours_by_hops(family: Engine):
    one = {(n.entity.name, n.hops) for n in family.neighbours("ada")}
    assert one == {("Byron", 1), ("Annabella", 1), ("Babbage", 1)}
    two = {n.entity.name: n for n in family.neighbours("Ada", max_hops=2)}
    assert set(two) == {"Byron", "Annabella", "Babbage", "Analytical Engine"}
    assert two["Analytical Engine"].hops == 2 and two["Analytical Engine"].via == ["worked_with", "designed"]
    assert "Ada" not in two  # the start is never its own neighbour, cycles do not loop


def test_neighbours_direction_and_type(family: Engine):
    assert [n.entity.name for n in family.neighbours("Ada", direction="out")] == ["Babbage", "Byron"]
    assert [n.entity.name for n in family.neighbours("Ada", direction="in")] == ["Annabella"]
    assert [n.entity.name for n in family.neighbours("Ada", max_hops=3, relation_type="worked_with")] == ["Babbage"]
    rel = family.create_relationship("Byron", "Annabella", "married_to", {"since": 1815, "until": 1816})
    assert rel.properties == {"since": 1815, "until": 1816}
    assert len(family.graph.relations()) == 5


def test_neighbours_rejects_bad_input(family: Engine):
    with pytest.raises(NotFound):
        family.neighbours("Nobody")
    with pytest.raises(InvalidRequest):
        family.neighbours("Ada", max_hops=0)
    with pytest.raises(InvalidRequest):
        family.neighbours("Ada", max_hops=99)
    with pytest.raises(InvalidRequest):
        family.neighbours("Ada", direction="sideways")


def test_semantic_entity_search(mem_engine: Engine):
    mem_engine.graph.upsert_entity("Python", "Language", "a programming language with indentation-based syntax")
    mem_engine.graph.upsert_entity("Everest", "Mountain", "the highest mountain on Earth, in the Himalayas")
    mem_engine.graph.upsert_entity("Croissant", "Food", "a buttery French pastry eaten at breakfast")
    hits = mem_engine.search_entities("tallest peak in Nepal", limit=3)
    assert hits[0].entity.name == "Everest"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # Re-describing an entity re-embeds it (and replaces its old vector).
    query = "a limestone rock formation in the Alps"
    assert mem_engine.search_entities(query, limit=1)[0].entity.name != "Croissant"
    mem_engine.graph.upsert_entity("Croissant", description="a limestone rock formation in the Swiss Alps")
    assert mem_engine.index("kg.entities").count == 3
    assert mem_engine.search_entities(query, limit=1)[0].entity.name == "Croissant"


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.store_fact("", "a", "b"),
        lambda e: e.store_fact("x", "a", "b", confidence=1.5),
        lambda e: e.store_fact("x", "a", "b", ttl_seconds=0),
        lambda e: e.store_fact("x\x07", "a", "b"),
        lambda e: e.create_relationship("a", "b", " "),
        lambda e: e.create_relationship("a", "b", "r", ["not", "a", "dict"]),
        lambda e: e.search_entities("x", limit=0),
    ],
)
def test_graph_rejects_bad_input(mem_engine: Engine, call):
    with pytest.raises(InvalidRequest):
        call(mem_engine)
