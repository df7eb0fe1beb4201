"""Tools over the engine's own knowledge base and memory."""

from __future__ import annotations

from typing import Any

from workbench.engine.errors import NotFound, ToolError
from workbench.engine.tools.base import Tool, ToolContext, ToolEngine, object_schema


def _engine(ctx: ToolContext) -> ToolEngine:
    if ctx.engine is None:
        raise ToolError("This tool needs the engine; it is not available here.")
    return ctx.engine


def _namespace(ctx: ToolContext) -> str:
    return f"agent:{ctx.agent_id}" if ctx.agent_id else "default"


def _collections(args: dict[str, Any], ctx: ToolContext, engine: ToolEngine) -> list[str]:
    """The collection asked for, else the calling agent's own collections, else "default"."""
    if args.get("collection"):
        return [args["collection"]]
    if ctx.agent_id:
        try:
            own = engine.get_agent(ctx.agent_id).knowledge_collections
        except NotFound:
            own = []
        if own:
            return list(own)
    return ["default"]


def search_knowledge(args: dict[str, Any], ctx: ToolContext) -> Any:
    engine = _engine(ctx)
    collections = _collections(args, ctx, engine)
    top_k = args.get("top_k", 5)
    hits: list[tuple[str, Any]] = []
    missing: list[str] = []
    for collection in collections:
        try:
            response = engine.search({"query": args["query"], "collection": collection, "top_k": top_k})
        except NotFound:
            missing.append(collection)
            continue
        hits.extend((collection, hit) for hit in response.hits)
    if missing and len(missing) == len(collections):
        names = ", ".join(repr(name) for name in missing)
        raise ToolError(f"No collection {names}; `workbench collections` lists them.")
    if not hits:
        return "No passage matches."
    # Several collections: their fused (reciprocal rank) scores are on one scale; best first.
    hits.sort(key=lambda pair: -pair[1].fused_score)
    return [
        {
            "n": i,
            "collection": collection,
            "source": h.path,
            "heading": h.heading,
            "lines": [h.start_line, h.end_line],
            "text": h.text[:1200],
        }
        for i, (collection, h) in enumerate(hits[:top_k], 1)
    ]


def remember(args: dict[str, Any], ctx: ToolContext) -> Any:
    result = _engine(ctx).remember({"key": args["key"], "value": args["value"], "namespace": _namespace(ctx)})
    return f"Remembered {result.key!r}."


def recall(args: dict[str, Any], ctx: ToolContext) -> Any:
    engine = _engine(ctx)
    query = args["query"]
    try:
        record = engine.recall(query, _namespace(ctx))
        return {"key": record.key, "value": record.value}
    except NotFound:
        pass
    response = engine.rag_retrieve(
        {"query": query, "top_k": args.get("top_k", 3), "filter": {"namespace": _namespace(ctx)}}
    )
    if not response.results:
        return "Nothing remembered matches."
    return [{"key": r.key, "value": r.value, "score": round(r.score, 3)} for r in response.results]


def tools() -> list[Tool]:
    return [
        Tool(
            name="search_knowledge",
            # Without a collection it searches the calling agent's own (see `_collections`);
            # the description is unchanged because tool routing embeds it.
            description="Search the ingested documents of a knowledge collection and return the best passages.",
            parameters=object_schema(
                {
                    "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "collection": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 10},
                },
                required=["query"],
            ),
            permission="read",
            run=search_knowledge,
            examples=[
                "what do our documents say about the refund policy",
                "find passages about installation",
                "search the knowledge base for the deployment steps",
            ],
        ),
        Tool(
            name="remember",
            description="Store a fact in the agent's long-term memory under a short key.",
            parameters=object_schema(
                {
                    "key": {"type": "string", "minLength": 1, "maxLength": 200},
                    "value": {"type": "string", "minLength": 1, "maxLength": 20000},
                },
            ),
            permission="write",
            run=remember,
            examples=[
                "remember that my favourite colour is green",
                "note for later: the meeting moved to Friday",
                "save the fact that the server runs on port 8080",
            ],
        ),
        Tool(
            name="recall",
            description="Look up what the agent remembered earlier, by key or by meaning.",
            parameters=object_schema(
                {
                    "query": {"type": "string", "minLength": 1, "maxLength": 2000},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 10},
                },
                required=["query"],
            ),
            permission="read",
            run=recall,
            examples=[
                "what did I tell you my favourite colour was",
                "recall when the meeting is",
                "what do you remember about the server port",
            ],
        ),
    ]
