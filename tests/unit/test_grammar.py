"""What llama.cpp's grammar can enforce, and what is left to validation."""

from __future__ import annotations

import pytest

from workbench.engine.errors import InvalidRequest
from workbench.engine.inference.grammar import _gbnf, prepare_schema
from workbench.engine.schemas import ResponseFormat, validate


@pytest.mark.parametrize(
    ("bounds", "allowed"),
    [
        ({"minimum": 5, "exclusiveMinimum": 0, "maximum": 8}, [5, 6, 7, 8]),
        ({"exclusiveMaximum": -2.5, "minimum": -4}, [-4, -3]),
        ({"exclusiveMinimum": -1.5, "maximum": 1}, [-1, 0, 1]),
        ({"minimum": 0.5, "maximum": 3.5}, [1, 2, 3]),
        ({"exclusiveMinimum": 2, "exclusiveMaximum": 5}, [3, 4]),
    ],
)
def test_integer_bounds_become_exact_enums(bounds, allowed):
    prepared, enforced = prepare_schema({"type": "integer", **bounds})
    assert prepared == {"enum": allowed} and enforced


def test_unenforceable_keywords_are_reported():
    assert prepare_schema({"type": "integer", "minimum": 0})[1] is False  # open range
    assert prepare_schema({"type": "integer", "minimum": 0, "maximum": 10**6})[1] is False  # too many values
    assert prepare_schema({"type": "array", "items": {"type": "string"}, "uniqueItems": True})[1] is False
    assert prepare_schema({"type": "string", "format": "email"})[1] is False
    assert prepare_schema({"type": "string", "format": "date"})[1] is True


def test_json_strings_exclude_raw_control_characters():
    grammar = _gbnf('{"type": "object", "properties": {"a": {"type": "string"}}}')
    char_rule = next(line for line in grammar.splitlines() if line.startswith("char ::="))
    assert r"\x00-\x1F" in char_rule


def test_schemas_cannot_fetch_or_hold_non_finite_numbers():
    with pytest.raises(InvalidRequest, match="local references"):
        validate(ResponseFormat, {"type": "json_object", "schema": {"$ref": "http://example.com/s.json"}})
    with pytest.raises(InvalidRequest, match="infinite"):
        validate(ResponseFormat, {"type": "json_object", "schema": {"type": "number", "maximum": float("inf")}})
    ok = validate(
        ResponseFormat, {"type": "json_object", "schema": {"$defs": {"a": {"type": "string"}}, "$ref": "#/$defs/a"}}
    )
    assert ok.is_json
