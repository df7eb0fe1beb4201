"""What the Memory screen asks the engine for and how it words the answers.

`fetch_page` and `graph_lookup` run in thread workers (they take the engine as
an argument and only call `EngineAPI`); the rest formats records as literal text.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text

from workbench.engine.errors import NotFound
from workbench.tui.safe import plain

#: memories a text filter looks through (the EngineAPI lists memories but has no text filter)
SCAN_LIMIT = 20_000
SCAN_BATCH = 500


def value_text(value: Any) -> str:
    """A memory value as text: strings as they are, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def matches(record: Any, needle: str) -> bool:
    haystack = " ".join(
        [
            record.key,
            record.namespace,
            record.kind,
            value_text(record.value),
            json.dumps(record.metadata, ensure_ascii=False, default=str),
        ]
    )
    return needle.casefold() in haystack.casefold()


def fetch_page(
    engine: Any, namespace: str | None, text: str, page: int, size: int
) -> tuple[list[Any], bool, int | None]:
    """One page of memories, whether a next page exists, and (with a text filter) how many match."""
    if not text:
        records = engine.list_memories(namespace, limit=size + 1, offset=page * size)
        return records[:size], len(records) > size, None
    found: list[Any] = []
    offset = 0
    while offset < SCAN_LIMIT:
        batch = engine.list_memories(namespace, limit=SCAN_BATCH, offset=offset)
        found.extend(r for r in batch if matches(r, text))
        if len(batch) < SCAN_BATCH:
            break
        offset += SCAN_BATCH
    start = page * size
    return found[start : start + size], len(found) > start + size, len(found)


def graph_lookup(engine: Any, entity: str, hops: int, direction: str) -> tuple[list[Any], list[Any] | None]:
    """The entity's facts and neighbours; neighbours is None when the graph has no such entity."""
    facts = engine.retrieve_facts(entity)
    try:
        neighbours = engine.neighbours(entity, max_hops=hops, direction=direction)
    except NotFound:
        neighbours = None
    return facts, neighbours


def _when(value: Any) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else "—"


def memory_detail(record: Any) -> Text:
    """Every field of a memory, the value and metadata literally."""
    text = Text()
    fields = [
        ("key", record.key),
        ("namespace", record.namespace),
        ("kind", record.kind),
        ("created", _when(record.created_at)),
        ("updated", _when(record.updated_at)),
        ("expires", _when(record.expires_at)),
        ("accessed", f"{record.accessed_count} times"),
        ("last accessed", _when(record.last_accessed)),
    ]
    for name, value in fields:
        text.append(f"{name}: ", style="bold")
        text.append_text(plain(value))
        text.append("\n")
    kind = "text" if isinstance(record.value, str) else "JSON"
    text.append(f"\nvalue ({kind}):\n", style="bold")
    text.append_text(plain(value_text(record.value)))
    text.append("\n\nmetadata:\n", style="bold")
    text.append_text(plain(json.dumps(record.metadata, ensure_ascii=False, indent=2, default=str)))
    return text
