"""Make JSON Schemas fit what llama.cpp's grammar converter can enforce.

llama-cpp-python turns a JSON Schema into a GBNF grammar, but the grammar
ignores numeric bounds and some other keywords. `prepare_schema` rewrites
small integer ranges into enums (which the grammar enforces) and reports
whether every remaining keyword is enforced; when one is not, the adapter
validates the output and samples again.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

# Integer ranges up to this many values become an enum of literals.
MAX_ENUM_RANGE = 512
# Keywords the grammar ignores: output must be validated after generation.
UNENFORCED = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "patternProperties",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
    }
)
ENFORCED_FORMATS = frozenset({"date", "time", "date-time", "uuid"})


def prepare_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return (schema for the grammar, whether the grammar enforces all of it)."""
    enforced = True

    def visit(node: Any) -> Any:
        nonlocal enforced
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: visit(value) for key, value in node.items()}
        small_range = _integer_range(node)
        if small_range is not None:
            rest = {
                k: v
                for k, v in node.items()
                if k not in ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
            }
            return {**rest, "enum": small_range}
        if UNENFORCED & node.keys():
            enforced = False
        if "format" in node and node["format"] not in ENFORCED_FORMATS:
            enforced = False
        return node

    return visit(schema), enforced


def _integer_range(node: dict[str, Any]) -> list[int] | None:
    """The allowed integers of a bounded integer schema, when few enough to enumerate."""
    import math

    if node.get("type") != "integer" or "enum" in node or "const" in node or "multipleOf" in node:
        return None

    def number(key: str) -> float | None:
        value = node.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    lows = [math.ceil(v) for v in (number("minimum"),) if v is not None]
    lows += [math.floor(v) + 1 for v in (number("exclusiveMinimum"),) if v is not None]
    highs = [math.floor(v) for v in (number("maximum"),) if v is not None]
    highs += [math.ceil(v) - 1 for v in (number("exclusiveMaximum"),) if v is not None]
    if not lows or not highs:
        return None
    low, high = max(lows), min(highs)
    if high < low or high - low + 1 > MAX_ENUM_RANGE:
        return None
    return list(range(low, high + 1))


# llama-cpp-python's string rule lets raw control characters into JSON strings,
# which no JSON parser accepts; upstream llama.cpp excludes them, and so do we.
_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


@lru_cache(maxsize=64)
def _gbnf(schema_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(schema_json)
    if _LOOSE_CHAR in gbnf:
        gbnf = gbnf.replace(_LOOSE_CHAR, _STRICT_CHAR)
    return gbnf


def check_schema(schema: dict[str, Any]) -> None:
    """Raise `InvalidRequest` unless llama.cpp's grammar converter accepts `schema`."""
    import json

    from workbench.engine.errors import InvalidRequest

    try:
        _gbnf(json.dumps(prepare_schema(schema)[0]))
    except Exception as exc:  # the converter asserts and raises on what it cannot express
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InvalidRequest(f"The local model cannot enforce this JSON Schema ({detail}).") from None


def json_grammar(schema: dict[str, Any] | None) -> Any:
    """A llama.cpp grammar for JSON matching `schema` (any object when None)."""
    import json

    from llama_cpp import LlamaGrammar

    prepared = prepare_schema(schema)[0] if schema is not None else {"type": "object"}
    return LlamaGrammar.from_string(_gbnf(json.dumps(prepared)), verbose=False)
