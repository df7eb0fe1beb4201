"""Skills and the agent builder (Chrysalis's role-model agents).

`generate_skills` asks the chat model, under a JSON schema, for the skills of
an occupation in deepening cycles (each cycle sees the skills found so far and
adds new ones). `create_from_role_model` stores the agent with status
"building", runs knowledge generation for the role model, then skills, and
stores the results with status "ready" (or "failed" with the reason).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.engine.errors import WorkbenchError
from workbench.engine.schemas import (
    AgentDefinition,
    KnowledgeItem,
    KnowledgeRequest,
    KnowledgeResult,
    Skill,
    SkillsRequest,
)

if TYPE_CHECKING:
    from workbench.engine.chat_turn import JsonGenerator

#: the knowledge generation the builder runs first (`Engine.generate_knowledge`)
GenerateKnowledge = Callable[[KnowledgeRequest | dict[str, Any]], KnowledgeResult]

SKILLS_PER_CYCLE = 5
#: greedy small models repeat one item; a mild penalty keeps the list varied
SKILLS_REPETITION_PENALTY = 1.15
CORPUS_CHARS = 3000
CATEGORIES = ["technical", "analytical", "communication", "leadership", "creative", "domain", "interpersonal"]
SYSTEM = (
    "You list the skills a person needs for an occupation. A skill is an ability, never the job title itself. "
    "Each skill has a name of two to five words, a one-sentence description of what a person with the skill "
    "can do, and a category. Do not repeat known skills."
)
#: one worked example: a tiny model otherwise repeats the job title as every skill
EXAMPLE = [
    {"role": "user", "content": "Occupation: Chef\n\nWhat skills does a Chef need?"},
    {
        "role": "assistant",
        "content": json.dumps(
            {
                "skills": [
                    {
                        "name": "Knife technique",
                        "description": "Cuts ingredients quickly, safely and evenly.",
                        "category": "technical",
                    },
                    {
                        "name": "Menu planning",
                        "description": "Designs balanced menus that fit season and budget.",
                        "category": "creative",
                    },
                    {
                        "name": "Kitchen team leadership",
                        "description": "Organises and motivates the staff during service.",
                        "category": "leadership",
                    },
                ]
            }
        ),
    },
]


def skills_schema(count: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "skills": {
                "type": "array",
                "minItems": 1,
                "maxItems": count,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 2, "maxLength": 80},
                        "description": {"type": "string", "minLength": 5, "maxLength": 300},
                        "category": {"enum": CATEGORIES},
                    },
                    "required": ["name", "description", "category"],
                },
            }
        },
        "required": ["skills"],
    }


def _key(name: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", name.lower()))


def skill_id(occupation: str, name: str) -> str:
    return "skill_" + hashlib.sha256(f"{_key(occupation)}\x00{_key(name)}".encode()).hexdigest()[:12]


def generate_skills(
    request: SkillsRequest,
    generate: Callable[[list[dict[str, str]], dict[str, Any]], Any],
    known: list[Skill] | None = None,
) -> list[Skill]:
    """New skills for the occupation (not in `known`), over 1 + deepening_cycles rounds."""
    known = list(known or [])
    seen = {_key(s.name) for s in known}
    found: list[Skill] = []
    for _cycle in range(request.deepening_cycles + 1):
        lines = [f"Occupation: {request.occupation}"]
        if request.corpus_text:
            lines.append(f"About this work:\n{request.corpus_text[:CORPUS_CHARS]}")
        so_far = known + found
        if so_far:
            lines.append("Known skills:\n" + "\n".join(f"- {s.name}" for s in so_far[-25:]))
            lines.append(f"What other skills does a {request.occupation} need? Up to {SKILLS_PER_CYCLE} new ones.")
        else:
            lines.append(f"What skills does a {request.occupation} need?")
        result = generate(
            [{"role": "system", "content": SYSTEM}, *EXAMPLE, {"role": "user", "content": "\n\n".join(lines)}],
            {"type": "json_object", "schema": skills_schema(SKILLS_PER_CYCLE)},
        )
        parsed = result.parsed if isinstance(result.parsed, dict) else {}
        for raw in parsed.get("skills", []):
            if not isinstance(raw, dict):
                continue
            name = " ".join(str(raw.get("name", "")).split())[:200]
            key = _key(name)
            if not key or key in seen or key == _key(request.occupation):
                continue
            seen.add(key)
            category = raw.get("category") if raw.get("category") in CATEGORIES else "domain"
            found.append(
                Skill(
                    skill_id=skill_id(request.occupation, name),
                    name=name,
                    description=" ".join(str(raw.get("description", "")).split())[:2000],
                    category=category,
                )
            )
    return found


def merge_knowledge(old: list[KnowledgeItem], new: list[KnowledgeItem]) -> list[KnowledgeItem]:
    ids = {item.knowledge_id for item in old}
    return old + [item for item in new if item.knowledge_id not in ids]


def merge_skills(old: list[Skill], new: list[Skill]) -> list[Skill]:
    keys = {_key(s.name) for s in old}
    return old + [s for s in new if _key(s.name) not in keys]


def build(
    agent: AgentDefinition,
    cycles: int,
    corpus_text: str,
    generate_knowledge: GenerateKnowledge,
    json_generator: JsonGenerator,
    model: str | None,
) -> AgentDefinition:
    """Generate knowledge (with `generate_knowledge`, i.e. `Engine.generate_knowledge`) and skills
    (with `json_generator`) for a stored agent and return its updated definition."""
    occupation = agent.occupation or agent.name
    try:
        knowledge = generate_knowledge(
            {
                "identifier": agent.name,
                "entity_type": occupation,
                "deepening_cycles": cycles,
                "corpus": corpus_text,
                "model": model,
            }
        )
        skills = generate_skills(
            SkillsRequest(occupation=occupation, deepening_cycles=cycles, corpus_text=corpus_text, model=model),
            json_generator(model, 600, repetition_penalty=SKILLS_REPETITION_PENALTY),
            known=agent.generated_skills,
        )
    except WorkbenchError as exc:
        return agent.model_copy(update={"status": "failed", "metadata": {**agent.metadata, "build_error": str(exc)}})
    metadata = {k: v for k, v in agent.metadata.items() if k != "build_error"}
    return agent.model_copy(
        update={
            "status": "ready",
            "generated_knowledge": merge_knowledge(agent.generated_knowledge, knowledge.items),
            "generated_skills": merge_skills(agent.generated_skills, skills),
            "metadata": metadata,
        }
    )
