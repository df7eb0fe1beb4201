"""OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, LM Studio, llama.cpp server)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from workbench.engine.errors import InvalidRequest, ProviderError
from workbench.engine.inference.base import StreamEnd, StreamItem
from workbench.engine.inference.http import HTTPChatModel, clause, iter_sse, open_stream, parse_json
from workbench.engine.schemas import ChatMessage, FinishReason, ResponseFormat, SamplingParams, ToolCall, ToolSpec

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "eos": "stop",
}


class OpenAICompatChatModel(HTTPChatModel):
    provider = "openai"
    supports_tools = True

    def endpoint(self, base_url: str) -> str:
        return f"{base_url}/chat/completions"

    def check(
        self,
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> None:
        for tool in tools or []:
            object_schema(tool)

    def request_body(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        response_format: ResponseFormat | None,
        tools: list[ToolSpec] | None = None,
        names: ToolNames | None = None,
    ) -> dict[str, Any]:
        self.check(params, response_format, tools)
        names = names or ToolNames(tools, messages)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [wire_message(m, names) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for name in ("max_tokens", "temperature", "top_p", "seed"):
            value = getattr(params, name)
            if value is not None:
                body[name] = value
        if params.stop:
            body["stop"] = params.stop
        # Not in OpenAI's API, but understood by vLLM, llama.cpp server and
        # LM Studio; sent only when the user asks for them.
        if params.top_k is not None:
            body["top_k"] = params.top_k
        if params.repetition_penalty is not None:
            body["repetition_penalty"] = params.repetition_penalty
        if response_format and response_format.is_json:
            if response_format.schema_ is not None:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "response", "schema": response_format.schema_},
                }
            else:
                body["response_format"] = {"type": "json_object"}
        if tools:
            body["tools"] = [wire_tool(t, names) for t in tools]
            body["tool_choice"] = "auto"
        return body

    def stream(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[StreamItem]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        names = ToolNames(tools, messages)
        body = self.request_body(messages, params, response_format, tools, names)
        finish: FinishReason | None = None
        usage: dict[str, Any] | None = None
        chunks = 0
        calls = _CallAssembler(self.provider_name, names)
        with open_stream(self._client, self.url, body, headers, self.provider_name) as response:
            for _event, data in iter_sse(response):
                if data.strip() == "[DONE]":
                    break
                payload = parse_json(data, self.provider_name)
                if "error" in payload:
                    detail = payload["error"]
                    message = detail.get("message") if isinstance(detail, dict) else detail
                    raise ProviderError(
                        f"The {self.provider_name} provider failed mid-stream: {clause(str(message or 'unknown error'))}."
                    )
                if payload.get("usage"):
                    usage = payload["usage"]
                for choice in payload.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text = delta.get("content")
                    if text:
                        chunks += 1
                        yield text
                    fragments = delta.get("tool_calls")
                    if fragments:
                        chunks += 1
                        calls.add(fragments)
                    if choice.get("finish_reason"):
                        finish = _FINISH.get(choice["finish_reason"], "stop")
        if finish is None:
            raise ProviderError(f"The {self.provider_name} provider closed the stream without finishing.")
        made = calls.finish(cut_off=finish == "length")
        yield from made
        if made and finish == "stop":
            # Some compatible servers end a tool-calling answer with "stop".
            finish = "tool_calls"
        if usage:
            yield StreamEnd(finish, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        else:
            # Servers that ignore stream_options send no usage: count chunks.
            yield StreamEnd(finish, 0, chunks)


def wire_message(message: ChatMessage, names: ToolNames) -> dict[str, Any]:
    """A message in the OpenAI chat format (no null fields)."""
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequest('A "tool" message needs the tool_call_id of the call it answers.')
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "assistant" and message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": names.wire(call.name),
                    "arguments": json.dumps(call.arguments, ensure_ascii=False),
                },
            }
            for call in message.tool_calls
        ]
    return out


def wire_tool(tool: ToolSpec, names: ToolNames) -> dict[str, Any]:
    function: dict[str, Any] = {"name": names.wire(tool.name)}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = object_schema(tool)
    return {"type": "function", "function": function}


def object_schema(tool: ToolSpec) -> dict[str, Any]:
    """A tool's parameters schema; arguments are always a JSON object."""
    schema = tool.parameters
    if "type" not in schema:
        return {"type": "object", **schema}
    if schema["type"] != "object":
        raise InvalidRequest(f'The parameters of tool {tool.name!r} must be an object schema (type "object").')
    return schema


#: the tool names OpenAI and Anthropic accept
_WIRE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolNames:
    """Tool names as providers accept them, and back.

    Our names may hold dots and run to 128 characters ("mcp.time.now"); the
    OpenAI and Anthropic APIs take `^[A-Za-z0-9_-]{1,64}$`. Other names travel
    with `_` for each other character (cut, with a hash, when too long, or
    when that would collide with another tool), and the model's calls are
    mapped back to our names.
    """

    def __init__(self, tools: list[ToolSpec] | None, messages: list[ChatMessage] | None = None) -> None:
        names = [t.name for t in tools or []] + [c.name for m in messages or [] for c in m.tool_calls or []]
        names = list(dict.fromkeys(names))
        self._to_wire: dict[str, str] = {}
        self._from_wire: dict[str, str] = {}
        # Names the providers accept keep themselves; the others take what is left.
        for name in sorted(names, key=lambda n: not _WIRE_NAME.match(n)):
            wire = _wire_name(name)
            if wire in self._from_wire:
                wire = _hashed_name(name)
            self._to_wire[name] = wire
            self._from_wire[wire] = name

    def wire(self, name: str) -> str:
        return self._to_wire.get(name) or _wire_name(name)

    def ours(self, wire: str) -> str:
        return self._from_wire.get(wire, wire)


def _wire_name(name: str) -> str:
    if _WIRE_NAME.match(name):
        return name
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return safe if len(safe) <= 64 else _hashed_name(name)


def _hashed_name(name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:55] + "_" + digest


class _CallAssembler:
    """Tool calls assembled from streamed `delta.tool_calls` fragments (keyed by index)."""

    def __init__(self, provider: str, names: ToolNames) -> None:
        self.provider = provider
        self.names = names
        self.slots: dict[Any, dict[str, Any]] = {}

    def add(self, fragments: list[Any]) -> None:
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                raise ProviderError(f"The {self.provider} provider sent a tool call fragment that is not an object.")
            key = fragment.get("index")
            if key is None:  # servers that omit the index: the id, else the position
                key = fragment.get("id") or position
            slot = self.slots.setdefault(key, {"id": None, "name": "", "arguments": []})
            if fragment.get("id"):
                slot["id"] = fragment["id"]
            function = fragment.get("function") or {}
            name = function.get("name")
            if name and name != slot["name"]:
                slot["name"] += name
            arguments = function.get("arguments")
            if isinstance(arguments, dict):  # some servers send the object itself
                slot["arguments"] = [json.dumps(arguments)]
            elif arguments:
                slot["arguments"].append(str(arguments))

    def finish(self, cut_off: bool) -> list[ToolCall]:
        calls = []
        for slot in self.slots.values():  # in order of arrival
            name = self.names.ours(slot["name"])
            if not name:
                raise ProviderError(f"The {self.provider} provider sent a tool call without a tool name.")
            arguments = parse_arguments("".join(slot["arguments"]), name, self.provider, cut_off)
            call_id = slot["id"] or f"call_{uuid.uuid4().hex[:24]}"
            calls.append(make_call(call_id, name, arguments, self.provider))
        return calls


_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def parse_arguments(text: str, tool: str, provider: str, cut_off: bool) -> dict[str, Any]:
    """A tool call's arguments (JSON text) as a dict, or one clear `ProviderError`."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        if cut_off:
            raise ProviderError(
                f"The {provider} provider's call of tool {tool[:80]!r} was cut off by max_tokens before its "
                "arguments were complete; raise max_tokens."
            ) from None
        raise ProviderError(
            f"The {provider} provider sent arguments for tool {tool[:80]!r} that are not valid JSON ({clause(str(exc))})."
        ) from None
    if not isinstance(value, dict):
        raise ProviderError(
            f"The {provider} provider sent arguments for tool {tool[:80]!r} that are not a JSON object "
            f"(got a JSON {_JSON_TYPES.get(type(value), 'value')})."
        )
    return value


def make_call(call_id: str, name: str, arguments: dict[str, Any], provider: str) -> ToolCall:
    try:
        return ToolCall(id=call_id, name=name, arguments=arguments)
    except ValidationError:
        raise ProviderError(
            f"The {provider} provider sent a tool call with an invalid id or tool name ({clause(name[:80])})."
        ) from None
