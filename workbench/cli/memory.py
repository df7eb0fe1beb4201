"""Memories and the knowledge graph: `workbench remember`, `recall`, `forget`, `graph` and `knowledge`
(the KnowledgeBuilder, whose items are stored as graph facts).

Standard library only at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workbench.cli.common import open_engine, plain, reject_constant, terminal_safe


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    remember = commands.add_parser(
        "remember",
        help="store a memory under a key",
        description="Store a memory. VALUE is text, or JSON with --json-value.",
    )
    remember.add_argument("key")
    remember.add_argument("value", help="the value; '-' reads it from standard input")
    remember.add_argument("--json-value", action="store_true", help="parse VALUE as JSON")
    remember.add_argument("--namespace", "-n", default="default")
    remember.add_argument(
        "--kind",
        choices=["episodic", "conversation", "knowledge"],
        default="episodic",
        help="knowledge needs a JSON value with subject, predicate, object",
    )
    remember.add_argument("--category")
    remember.add_argument("--tag", dest="tags", action="append", default=[], help="repeatable")
    remember.add_argument("--ttl", type=int, metavar="SECONDS", help="forget after this many seconds")
    remember.add_argument("--json", action="store_true", help="print JSON")

    recall = commands.add_parser("recall", help="print a memory by key, or search memories with --query")
    recall.add_argument("key", nargs="?")
    recall.add_argument("--namespace", "-n", default="default")
    recall.add_argument("--query", "-q", help="search memories by meaning instead")
    recall.add_argument("--top-k", "-k", type=int, default=5, metavar="K")
    recall.add_argument("--threshold", type=float, default=0.3, metavar="S", help="minimum similarity 0..1")
    recall.add_argument("--category")
    recall.add_argument("--tag", dest="tags", action="append", default=[])
    recall.add_argument("--answer", action="store_true", help="with --query: also write a cited answer")
    recall.add_argument("--json", action="store_true", help="print JSON")

    forget = commands.add_parser("forget", help="delete a memory")
    forget.add_argument("key")
    forget.add_argument("--namespace", "-n", default="default")

    graph = commands.add_parser(
        "graph",
        help="knowledge graph: facts, relations, neighbours",
        description="Store and query facts and relations between entities.",
    )
    graph_commands = graph.add_subparsers(dest="graph_command", metavar="ACTION")
    fact = graph_commands.add_parser("fact", help="store ENTITY ATTRIBUTE VALUE")
    fact.add_argument("entity")
    fact.add_argument("attribute")
    fact.add_argument("value")
    fact.add_argument("--source")
    fact.add_argument("--confidence", type=float, default=1.0)
    facts = graph_commands.add_parser("facts", help="list facts of an entity")
    facts.add_argument("entity")
    facts.add_argument("--attribute")
    relate = graph_commands.add_parser("relate", help="relate SOURCE RELATION TARGET")
    relate.add_argument("source")
    relate.add_argument("relation")
    relate.add_argument("target")
    near = graph_commands.add_parser("neighbours", help="entities within N hops")
    near.add_argument("entity")
    near.add_argument("--hops", type=int, default=1)
    near.add_argument("--relation")
    find = graph_commands.add_parser("search", help="entities by meaning")
    find.add_argument("query")
    find.add_argument("--limit", type=int, default=10)

    knowledge = commands.add_parser(
        "knowledge",
        help="generate knowledge items about a subject (KnowledgeBuilder)",
        description="Generate knowledge items about IDENTIFIER with the chat model, in deepening cycles, "
        "from a corpus file and/or a collection; items are stored as graph facts.",
    )
    knowledge.add_argument("identifier")
    knowledge.add_argument("--type", dest="entity_type", default="Person", help="entity type (default: Person)")
    knowledge.add_argument("--cycles", type=int, default=1, help="deepening cycles, 0 to 10 (0 lists stored items)")
    knowledge.add_argument("--corpus", metavar="FILE", help="a text file to draw knowledge from")
    knowledge.add_argument("--collection", "-c", help="also draw from this collection")
    knowledge.add_argument("--model", "-m")
    knowledge.add_argument("--json", action="store_true", help="print JSON")


def cmd_remember(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    raw = sys.stdin.read() if args.value == "-" else args.value
    value: Any = raw
    if args.json_value or args.kind == "knowledge":
        try:
            value = json.loads(raw, parse_constant=reject_constant)
        except ValueError as exc:
            raise InvalidRequest(f"VALUE is not valid JSON: {exc}.") from None
    metadata: dict[str, Any] = {}
    if args.category:
        metadata["category"] = args.category
    if args.tags:
        metadata["tags"] = args.tags
    request = {
        "key": args.key,
        "value": value,
        "metadata": metadata,
        "ttl_seconds": args.ttl,
        "namespace": args.namespace,
        "kind": args.kind,
    }
    with open_engine(args) as engine:
        result = engine.remember(request)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        expiry = f", expires {result.expires_at:%Y-%m-%d %H:%M} UTC" if result.expires_at else ""
        print(plain(f"{result.status.capitalize()} {result.namespace}/{result.key} ({result.vector_id}{expiry})."))
    return 0


def cmd_recall(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    if (args.key is None) == (args.query is None):
        raise InvalidRequest("Give a KEY to recall, or --query TEXT to search memories (not both).")
    with open_engine(args) as engine:
        if args.key is not None:
            record = engine.recall(args.key, args.namespace)
            if args.json:
                print(record.model_dump_json(indent=2))
            else:
                value = record.value if isinstance(record.value, str) else json.dumps(record.value, ensure_ascii=False)
                print(terminal_safe(value, sys.stdout))
            return 0
        flt: dict[str, Any] = {"tags": args.tags}
        if args.category:
            flt["category"] = args.category
        response = engine.rag_retrieve(
            {
                "query": args.query,
                "top_k": args.top_k,
                "score_threshold": args.threshold,
                "filter": flt,
                "answer": args.answer,
            }
        )
    if args.json:
        print(response.model_dump_json(indent=2))
        return 0
    if response.answer:
        print(terminal_safe(response.answer, sys.stdout) + "\n")
    if not response.results:
        print("No memories match.")
    for r in response.results:
        value = r.value if isinstance(r.value, str) else json.dumps(r.value, ensure_ascii=False)
        print(plain(f"{r.rank:>2}. {r.score:.3f}  {r.namespace}/{r.key}: {value[:160]}"))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        engine.forget(args.key, args.namespace)
    print(f"Forgot {plain(args.namespace)}/{plain(args.key)}.")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    action = args.graph_command
    if action is None:
        raise InvalidRequest(
            "Choose an action: fact, facts, relate, neighbours or search (see `workbench graph --help`)."
        )
    with open_engine(args) as engine:
        if action == "fact":
            fact = engine.store_fact(
                args.entity, args.attribute, args.value, source=args.source, confidence=args.confidence
            )
            print(plain(f"{fact.entity} · {fact.attribute} = {fact.value}"))
        elif action == "facts":
            for fact in engine.retrieve_facts(args.entity, args.attribute):
                source = f"  ({fact.source})" if fact.source else ""
                print(plain(f"{fact.attribute}: {fact.value}  [{fact.confidence:.2f}]{source}"))
        elif action == "relate":
            rel = engine.create_relationship(args.source, args.target, args.relation)
            print(plain(f"{rel.source} -[{rel.relation_type}]-> {rel.target}"))
        elif action == "neighbours":
            for n in engine.neighbours(args.entity, args.hops, args.relation):
                print(plain(f"{n.hops}  {n.entity.name} ({n.entity.type})  via {' > '.join(n.via)}"))
        else:
            for hit in engine.search_entities(args.query, args.limit):
                print(plain(f"{hit.score:.3f}  {hit.entity.name} ({hit.entity.type})"))
    return 0


def cmd_knowledge(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    corpus = ""
    if args.corpus:
        try:
            corpus = Path(args.corpus).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"Cannot read the corpus file {args.corpus}: {exc}.") from None
    with open_engine(args) as engine:
        if args.cycles == 0:
            items = engine.list_knowledge(args.identifier)
        else:
            result = engine.generate_knowledge(
                {
                    "identifier": args.identifier,
                    "entity_type": args.entity_type,
                    "deepening_cycles": args.cycles,
                    "corpus": corpus,
                    "collection": args.collection,
                    "model": args.model,
                }
            )
            items = result.items
    if args.json:
        print(json.dumps([i.model_dump() for i in items], indent=2))
        return 0
    if not items:
        print("No knowledge items.")
    for item in items:
        print(
            plain(
                f"{item.knowledge_id}  [{item.entity.type}] {item.entity.text}  ({item.source}, {item.confidence:.2f})"
            )
        )
    return 0


COMMANDS = {
    "remember": cmd_remember,
    "recall": cmd_recall,
    "forget": cmd_forget,
    "graph": cmd_graph,
    "knowledge": cmd_knowledge,
}
