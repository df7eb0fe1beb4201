"""One agent step under a JSON Schema: a final answer, or a call to one offered tool.

For local models the step's output is generated under a llama.cpp grammar
built from `step_schema`, so every proposal parses and its arguments fit the
chosen tool's schema (keywords the grammar cannot enforce are checked after,
by the registry). Remote providers use their native tool calling instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from workbench.engine.errors import InvalidRequest
from workbench.engine.inference.grammar import check_schema
from workbench.engine.tools.base import Tool

FINAL = "final_answer"
#: longest answer a step may write (characters)
MAX_ANSWER_CHARS = 4000
#: Length and item bounds are left out of the step grammar and checked by
#: validation instead: llama.cpp expands `x{0,n}` into n nested rules, and a
#: step schema with many bounded strings exceeds its grammar limits (refused,
#: or a crash in the sampler when it is close).
UNBOUNDED_KEYWORDS = ("maxLength", "maxItems", "pattern", "description", "examples", "title")


@dataclass
class Proposal:
    """What the model proposed in one step."""

    action: str  # FINAL or a tool name
    answer: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    #: set when the output did not parse or fit the schema
    error: str | None = None


def grammar_safe(schema: Any) -> Any:
    """`schema` as the step grammar enforces it: no repetition bounds, no regexes (validated afterwards)."""
    if isinstance(schema, list):
        return [grammar_safe(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: grammar_safe(value) for key, value in schema.items() if key not in UNBOUNDED_KEYWORDS}
    for key in ("minLength", "minItems"):  # a lower bound above 1 is a repetition too
        if isinstance(out.get(key), int) and out[key] > 1:
            out[key] = 1
    # the properties mapping holds names, not schemas: restore its keys untouched
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: grammar_safe(value) for name, value in schema["properties"].items()}
    return out


_SAFE: dict[str, dict[str, Any]] = {}


def arguments_schema(tool: Tool) -> dict[str, Any]:
    """The tool's argument schema in a form the grammar can enforce (any object if it cannot)."""
    key = tool.name + json.dumps(tool.parameters, sort_keys=True)
    if key not in _SAFE:
        safe = grammar_safe(tool.parameters)
        try:
            check_schema(safe)
        except InvalidRequest:
            safe = {"type": "object"}
        _SAFE[key] = safe
    return _SAFE[key]


def with_choices(schema: dict[str, Any], allowed: dict[str, list[str]]) -> dict[str, Any]:
    """`schema` with the named string properties narrowed to an `enum` of `allowed` values."""
    properties = schema.get("properties")
    if not allowed or not isinstance(properties, dict):
        return schema
    narrowed = dict(properties)
    for name, values in allowed.items():
        if name in narrowed and values:
            narrowed[name] = {"type": "string", "enum": list(values)}
    return {**schema, "properties": narrowed}


def step_schema(
    tools: list[Tool], allow_final: bool = True, choices: dict[str, dict[str, list[str]]] | None = None
) -> dict[str, Any]:
    """The schema of one step; `choices` narrows arguments per tool name (see `agents.hints`)."""
    choices = choices or {}
    options: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {
                "action": {"const": tool.name},
                "arguments": with_choices(arguments_schema(tool), choices.get(tool.name, {})),
            },
            "required": ["action", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    if allow_final or not options:
        options.append(
            {
                "type": "object",
                "properties": {"action": {"const": FINAL}, "answer": {"type": "string", "minLength": 1}},
                "required": ["action", "answer"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": options} if len(options) > 1 else options[0]


def parse_step(text: str, tools: list[Tool]) -> Proposal:
    """Read a step's JSON output; anything malformed becomes `Proposal.error`."""
    try:
        value = json.loads(text)
    except ValueError:
        return Proposal(action="invalid", error="Your reply was not one JSON object. Reply with JSON only.")
    if not isinstance(value, dict) or not isinstance(value.get("action"), str):
        return Proposal(action="invalid", error='Your reply needs an "action": a tool name or "final_answer".')
    action = value["action"]
    if action == FINAL:
        answer = value.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            return Proposal(action="invalid", error='A final answer needs a non-empty "answer" string.')
        return Proposal(action=FINAL, answer=answer[:MAX_ANSWER_CHARS])
    names = {tool.name for tool in tools}
    if action not in names:
        offered = ", ".join(sorted(names)) or "none"
        return Proposal(action="invalid", error=f"{action!r} is not a tool you can use now (offered: {offered}).")
    arguments = value.get("arguments", {})
    if not isinstance(arguments, dict):
        return Proposal(action=action, error='"arguments" must be a JSON object.')
    return Proposal(action=action, arguments=arguments)


def describe_tools(tools: list[Tool]) -> str:
    """The offered tools as prompt text: name, description, arguments."""
    lines = []
    for tool in tools:
        props = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
        required = set(tool.parameters.get("required", [])) if isinstance(tool.parameters, dict) else set()
        args = ", ".join(
            f"{name}{'' if name in required else '?'}: {spec.get('type', 'any') if isinstance(spec, dict) else 'any'}"
            for name, spec in props.items()
        )
        lines.append(f"- {tool.name}({args}): {tool.description}")
    return "\n".join(lines)


PROTOCOL = (
    'Reply with exactly one JSON object. To use a tool, name it in "action" and give its "arguments" '
    'object. When you can answer the task, set "action" to "final_answer" and write your answer, in '
    'full, in "answer".'
)
