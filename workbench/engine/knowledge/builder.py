"""KnowledgeBuilder: generate knowledge items about an identifier with the chat model.

Each deepening cycle asks the model, with output constrained to a JSON
schema, for new items about the identifier, given a local corpus and the
items of the cycles before. Items are deduplicated, scored for grounding
(an item whose words mostly occur in the corpus has source "corpus", else
"model"), and stored as facts of the identifier's entity.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from workbench.engine.knowledge.bm25 import tokenize
from workbench.engine.knowledge.graph import KnowledgeGraph, name_key
from workbench.engine.schemas import KnowledgeEntity, KnowledgeItem, KnowledgeRequest, KnowledgeResult

CORPUS_CHARS = 3000
#: share of an item's terms that must occur in the corpus for source "corpus"
GROUNDED = 0.6
SYSTEM = (
    "You build a knowledge base. Extract short, specific, factual statements about the subject from the corpus. "
    "For each item give: text, one factual sentence; type, a one-word category such as Biography, Work or "
    "Skill; confidence, how sure you are from 0 to 100 percent (100 when the corpus states it). "
    "Do not repeat known items."
)


def knowledge_schema(items: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": items,
                "items": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string", "minLength": 1},
                        "type": {"type": "string", "minLength": 1},
                        # an integer range is enforced by the grammar; a float range is not
                        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
                    },
                    "required": ["text", "type", "confidence"],
                },
            }
        },
        "required": ["items"],
    }


def _prompt(request: KnowledgeRequest, corpus: str, known: list[KnowledgeItem], cycle: int) -> str:
    lines = [f"Subject: {request.identifier} ({request.entity_type})"]
    if corpus:
        lines.append(f"Corpus:\n{corpus[:CORPUS_CHARS]}")
    if known:
        lines.append("Known items:\n" + "\n".join(f"- {k.entity.text}" for k in known[-20:]))
        lines.append(f"Cycle {cycle}: give up to {request.items_per_cycle} new items that deepen the known ones.")
    else:
        lines.append(f"Give up to {request.items_per_cycle} items.")
    return "\n\n".join(lines)


def knowledge_id(identifier: str, text: str) -> str:
    digest = hashlib.sha256(f"{name_key(identifier)}\x00{name_key(text)}".encode()).hexdigest()
    return f"kn_{digest[:16]}"


def grounding(text: str, corpus_terms: set[str]) -> float:
    terms = set(tokenize(text))
    if not terms:
        return 0.0
    return len(terms & corpus_terms) / len(terms)


def generate_knowledge(
    request: KnowledgeRequest,
    corpus: str,
    generate: Callable[[list[dict[str, str]], dict[str, Any]], Any],
    graph: KnowledgeGraph,
) -> KnowledgeResult:
    """Run the deepening cycles and store the items as facts of the identifier."""
    started = time.perf_counter()
    corpus_terms = set(tokenize(corpus))
    graph.upsert_entity(request.identifier, request.entity_type)
    known = [
        KnowledgeItem(
            knowledge_id=f.knowledge_id,
            entity=KnowledgeEntity(text=f.value, type=f.attribute),
            source=f.source or "model",
            confidence=f.confidence,
        )
        for f in graph.facts_with_knowledge_id(request.identifier)
    ]
    seen = {name_key(k.entity.text) for k in known}
    new_items: list[KnowledgeItem] = []
    cycles = 0
    for cycle in range(1, request.deepening_cycles + 1):
        cycles = cycle
        result = generate(
            [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": _prompt(request, corpus, known + new_items, cycle)},
            ],
            {"type": "json_object", "schema": knowledge_schema(request.items_per_cycle)},
        )
        parsed = result.parsed if isinstance(result.parsed, dict) else {}
        for raw in parsed.get("items", []):
            text = " ".join(str(raw.get("text", "")).split())[:4000]
            kind = " ".join(str(raw.get("type", "")).split())[:100] or request.entity_type
            if not text or name_key(text) in seen:
                continue
            seen.add(name_key(text))
            confidence = min(max(int(raw.get("confidence", 50)), 0), 100) / 100
            source = "corpus" if corpus_terms and grounding(text, corpus_terms) >= GROUNDED else "model"
            item = KnowledgeItem(
                knowledge_id=knowledge_id(request.identifier, text),
                entity=KnowledgeEntity(text=text, type=kind),
                source=source,
                confidence=confidence,
            )
            graph.store_fact(
                request.identifier, kind, text, source=source, confidence=confidence, knowledge_id=item.knowledge_id
            )
            new_items.append(item)
    return KnowledgeResult(
        identifier=request.identifier,
        entity_type=request.entity_type,
        cycles_run=cycles,
        items=new_items,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )
