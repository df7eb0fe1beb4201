"""KnowledgeBuilder: deepening cycles with the real default model, stored as graph facts."""

from __future__ import annotations

import pytest

from workbench.engine.engine import Engine
from workbench.engine.errors import InvalidRequest
from workbench.engine.knowledge.bm25 import tokenize
from workbench.engine.knowledge.builder import grounding, knowledge_id

CORPUS = (
    "Bob Ross was an American painter and television host. He created The Joy of Painting, which aired on PBS "
    "from 1983 to 1994. He used the wet-on-wet oil painting technique. Before painting, he served twenty years in "
    "the United States Air Force, retiring as a master sergeant."
)


def test_generate_knowledge_stores_items_as_facts(mem_engine: Engine):
    result = mem_engine.generate_knowledge(
        {"identifier": "Bob Ross", "entity_type": "Person", "deepening_cycles": 2, "corpus": CORPUS}
    )
    assert result.cycles_run == 2 and result.identifier == "Bob Ross"
    assert result.items, "the constrained output always yields at least one item"
    for item in result.items:
        assert item.knowledge_id == knowledge_id("Bob Ross", item.entity.text)
        assert 0.0 <= item.confidence <= 1.0 and item.source in ("corpus", "model")
        assert item.entity.text.strip() and item.entity.type.strip()
    stored = {k.knowledge_id: k for k in mem_engine.list_knowledge("bob ross")}
    assert set(stored) == {i.knowledge_id for i in result.items}
    facts = mem_engine.retrieve_facts("Bob Ross")
    assert {f.value for f in facts} == {i.entity.text for i in result.items}
    assert mem_engine.graph.get_entity("Bob Ross").type == "Person"

    # Another cycle deepens: nothing already known is stored twice.
    again = mem_engine.generate_knowledge(
        {"identifier": "Bob Ross", "entity_type": "Person", "deepening_cycles": 1, "corpus": CORPUS}
    )
    texts = [k.entity.text for k in mem_engine.list_knowledge("Bob Ross")]
    assert len(texts) == len(set(texts)) == len(result.items) + len(again.items)


def test_zero_cycles_generates_nothing(mem_engine: Engine):
    result = mem_engine.generate_knowledge({"identifier": "Ada", "entity_type": "Person", "deepening_cycles": 0})
    assert result.cycles_run == 0 and result.items == []


@pytest.mark.parametrize(
    "request_",
    [
        {"identifier": "", "entity_type": "Person"},
        {"identifier": "x", "entity_type": "Person", "deepening_cycles": 11},
        {"identifier": "x", "entity_type": "Person", "collection": "../x"},
        {"identifier": "x\x00", "entity_type": "Person"},
    ],
)
def test_generate_knowledge_rejects_bad_input(mem_engine: Engine, request_):
    with pytest.raises(InvalidRequest):
        mem_engine.generate_knowledge(request_)


def test_grounding_scores_corpus_support():
    terms = set(tokenize(CORPUS))
    assert grounding("Bob Ross hosted The Joy of Painting on PBS", terms) >= 0.6
    assert grounding("He invented the jet engine in Paris", terms) < 0.6
