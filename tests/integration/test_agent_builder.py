"""Skills and the role-model agent builder on the real default model."""

from __future__ import annotations

import pytest

from workbench.engine.agents.builder import CATEGORIES
from workbench.engine.errors import InvalidRequest, NotFound

CORPUS = (
    "Ada Lovelace was an English mathematician. She wrote the first published algorithm for "
    "Charles Babbage's Analytical Engine and translated Menabrea's paper on it, adding her own notes."
)


def test_generate_skills_returns_schema_shaped_unique_skills(mem_engine) -> None:
    skills = mem_engine.generate_skills({"occupation": "Data Scientist", "deepening_cycles": 1})
    assert skills, "the constrained generation yields at least one skill"
    names = [s.name.lower() for s in skills]
    assert len(names) == len(set(names))
    for skill in skills:
        assert skill.skill_id.startswith("skill_") and skill.name and skill.category in CATEGORIES
    assert len({s.skill_id for s in skills}) == len(skills)


def test_role_model_agent_is_built_then_enriched(mem_engine) -> None:
    agent = mem_engine.create_agent_from_role_model(
        {
            "agent_id": "ada",
            "role_model": {"name": "Ada Lovelace", "occupation": "Mathematician"},
            "deepening_cycles": 1,
            "corpus_text": CORPUS,
            "overrides": {"tools": ["search_knowledge"]},
        }
    )
    assert agent.status == "ready", agent.metadata
    assert agent.occupation == "Mathematician" and agent.tools == ["search_knowledge"]
    assert agent.generated_knowledge and agent.generated_skills
    assert "Ada Lovelace" in agent.instructions

    caps = mem_engine.capabilities("ada")
    assert caps.skills == agent.generated_skills and caps.knowledge == agent.generated_knowledge
    assert caps.status == "ready" and caps.tools == ["search_knowledge"]
    # the knowledge is also in the graph, under the role model's name
    assert {k.knowledge_id for k in mem_engine.list_knowledge("Ada Lovelace")} >= {
        k.knowledge_id for k in agent.generated_knowledge
    }

    enriched = mem_engine.enrich_agent("ada", additional_cycles=1, corpus_text=CORPUS)
    assert enriched.status == "ready"
    assert len(enriched.generated_skills) >= len(agent.generated_skills)
    assert enriched.generated_skills[: len(agent.generated_skills)] == agent.generated_skills
    ids = [k.knowledge_id for k in enriched.generated_knowledge]
    assert len(ids) == len(set(ids))
    assert mem_engine.get_agent("ada").generated_skills == enriched.generated_skills

    exported = mem_engine.export_agent("ada")
    assert agent.generated_skills[0].name in exported


def test_builder_refuses_bad_requests_before_creating_anything(mem_engine) -> None:
    with pytest.raises(NotFound):
        mem_engine.create_agent_from_role_model(
            {"agent_id": "x", "role_model": {"name": "X", "occupation": "Y"}, "model": "no-such-model"}
        )
    with pytest.raises(NotFound):
        mem_engine.get_agent("x")
    with pytest.raises(InvalidRequest, match="deepening_cycles"):
        mem_engine.create_agent_from_role_model(
            {"agent_id": "x", "role_model": {"name": "X", "occupation": "Y"}, "deepening_cycles": 9}
        )
    with pytest.raises(InvalidRequest, match="additional_cycles"):
        mem_engine.enrich_agent("x", additional_cycles=0)
