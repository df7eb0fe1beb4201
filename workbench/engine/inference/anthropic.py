"""Anthropic Messages API adapter (streaming, over httpx)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from workbench.engine.errors import InvalidRequest, ProviderError
from workbench.engine.inference.base import StreamEnd, StreamItem
from workbench.engine.inference.http import HTTPChatModel, clause, iter_sse, open_stream, parse_json
from workbench.engine.inference.openai_compat import ToolNames, make_call, object_schema, parse_arguments
from workbench.engine.schemas import (
    DEFAULT_MAX_TOKENS,
    ChatMessage,
    FinishReason,
    ResponseFormat,
    SamplingParams,
    ToolCall,
    ToolSpec,
)

API_VERSION = "2023-06-01"
JSON_TOOL = "json_response"

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
}


class AnthropicChatModel(HTTPChatModel):
    provider = "anthropic"
    supports_tools = True

    def endpoint(self, base_url: str) -> str:
        return f"{base_url}/messages" if base_url.endswith("/v1") else f"{base_url}/v1/messages"

    def check(
        self,
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> None:
        if params.seed is not None:
            raise InvalidRequest("The Anthropic Messages API has no seed parameter; leave seed unset.")
        if params.repetition_penalty is not None:
            raise InvalidRequest("The Anthropic Messages API has no repetition_penalty; leave it unset.")
        if params.temperature is not None and params.temperature > 1.0:
            raise InvalidRequest("Anthropic accepts temperature from 0 to 1.")
        if tools and response_format is not None and response_format.is_json:
            raise InvalidRequest(
                "Anthropic returns schema-shaped JSON through a forced tool, so a request cannot carry both "
                "tools and a JSON response_format; drop one of them."
            )
        if tools and any(t.name == JSON_TOOL for t in tools):
            raise InvalidRequest(f"The tool name {JSON_TOOL!r} is reserved by the Anthropic adapter; rename the tool.")
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
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": wire_turns(messages, names),
            "stream": True,
        }
        if system:
            body["system"] = system
        for name in ("temperature", "top_p", "top_k"):
            value = getattr(params, name)
            if value is not None:
                body[name] = value
        if params.stop:
            body["stop_sequences"] = params.stop
        if response_format and response_format.is_json:
            # Forcing a single tool whose input schema is the response schema is
            # how the Messages API guarantees schema-shaped JSON.
            body["tools"] = [
                {
                    "name": JSON_TOOL,
                    "description": "Respond with a JSON value matching the input schema.",
                    "input_schema": _tool_schema(response_format.schema_),
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": JSON_TOOL}
        if tools:
            body["tools"] = [wire_tool(t, names) for t in tools]
        return body

    def stream(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[StreamItem]:
        names = ToolNames(tools, messages)
        body = self.request_body(messages, params, response_format, tools, names)
        json_mode = bool(response_format and response_format.is_json)
        # A tool's input must be an object: other schemas travel wrapped in
        # {"value": ...} and are unwrapped here, so the answer is buffered.
        wrapped = bool(response_format and response_format.is_json and _needs_wrapping(response_format.schema_))
        buffered: list[str] = []
        headers = {"anthropic-version": API_VERSION, "Accept": "text/event-stream"}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        input_tokens = output_tokens = 0
        finish: FinishReason | None = None
        #: tool_use blocks by index: [id, name, partial_json pieces, input from the block start]
        open_calls: dict[int, list[Any]] = {}
        done_calls: list[list[Any]] = []
        with open_stream(self._client, self.url, body, headers, self.provider_name) as response:
            for event, data in iter_sse(response):
                payload = parse_json(data, self.provider_name)
                kind = payload.get("type", event)
                if kind == "message_start":
                    usage = (payload.get("message") or {}).get("usage") or {}
                    input_tokens = int(usage.get("input_tokens") or 0)
                    output_tokens = int(usage.get("output_tokens") or 0)
                elif kind == "content_block_start":
                    block = payload.get("content_block") or {}
                    if block.get("type") == "tool_use" and not json_mode:
                        start_input = block.get("input")
                        open_calls[payload.get("index", len(open_calls))] = [
                            block.get("id"),
                            block.get("name") or "",
                            [],
                            start_input if isinstance(start_input, dict) else {},
                        ]
                elif kind == "content_block_stop":
                    call = open_calls.pop(payload.get("index", -1), None)
                    if call is not None:
                        done_calls.append(call)
                elif kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    text = delta.get("text") if delta.get("type") == "text_delta" else None
                    if delta.get("type") == "input_json_delta":
                        call = open_calls.get(payload.get("index", -1))
                        if call is not None:
                            call[2].append(delta.get("partial_json") or "")
                            continue
                        text = delta.get("partial_json")
                    if text and wrapped:
                        buffered.append(text)
                    elif text:
                        yield text
                elif kind == "message_delta":
                    reason = (payload.get("delta") or {}).get("stop_reason")
                    if reason:
                        finish = _FINISH.get(reason, "stop")
                    usage = payload.get("usage") or {}
                    output_tokens = int(usage.get("output_tokens") or output_tokens)
                elif kind == "error":
                    error = payload.get("error") or {}
                    raise ProviderError(
                        f"The {self.provider_name} provider failed mid-stream: "
                        f"{clause(str(error.get('message') or error.get('type') or 'unknown error'))}."
                    )
                elif kind == "message_stop":
                    break
        if finish is None:
            raise ProviderError(f"The {self.provider_name} provider closed the stream without finishing.")
        if open_calls:
            done_calls.extend(open_calls.values())
        if wrapped:
            yield _unwrap("".join(buffered))
        calls = [self._tool_call(call, names, cut_off=finish == "length") for call in done_calls]
        yield from calls
        if calls:
            finish = "tool_calls"
        yield StreamEnd(finish, input_tokens, output_tokens)

    def _tool_call(self, call: list[Any], names: ToolNames, cut_off: bool) -> ToolCall:
        call_id, name, pieces, start_input = call
        if not name:
            raise ProviderError(f"The {self.provider_name} provider sent a tool_use block without a tool name.")
        name = names.ours(name)
        text = "".join(pieces)
        arguments = parse_arguments(text, name, self.provider_name, cut_off) if text.strip() else start_input
        return make_call(call_id or "", name, arguments, self.provider_name)


def wire_tool(tool: ToolSpec, names: ToolNames) -> dict[str, Any]:
    out: dict[str, Any] = {"name": names.wire(tool.name)}
    if tool.description:
        out["description"] = tool.description
    out["input_schema"] = object_schema(tool)
    return out


def wire_turns(messages: list[ChatMessage], names: ToolNames | None = None) -> list[dict[str, Any]]:
    """Messages in the Messages API's shape.

    System messages travel apart (top-level `system`). Assistant tool calls
    become `tool_use` blocks after the assistant's text; "tool" messages become
    `tool_result` blocks of a user turn. Consecutive turns of one role merge
    into one (the API wants alternating roles), and empty text is left out
    (the API refuses empty messages).
    """
    names = names or ToolNames(None, messages)
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = "user" if m.role == "tool" else m.role
        content: str | list[dict[str, Any]]
        if m.role == "tool":
            if not m.tool_call_id:
                raise InvalidRequest('A "tool" message needs the tool_call_id of the call it answers.')
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.tool_call_id}
            if m.content:
                result["content"] = m.content
            content = [result]
        elif m.role == "assistant" and m.tool_calls:
            content = [{"type": "text", "text": m.content}] if m.content else []
            content += [
                {"type": "tool_use", "id": c.id, "name": names.wire(c.name), "input": c.arguments} for c in m.tool_calls
            ]
        elif not m.content:
            continue
        else:
            content = m.content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = _merge(turns[-1]["content"], content)
        else:
            turns.append({"role": role, "content": content})
    return turns


def _merge(first: str | list[dict[str, Any]], second: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(first, str) and isinstance(second, str):
        return first + "\n\n" + second
    blocks = _blocks(first) + _blocks(second)
    # In a user turn, tool results come before any text.
    return sorted(blocks, key=lambda b: b["type"] != "tool_result")


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _needs_wrapping(schema: dict[str, Any] | None) -> bool:
    return schema is not None and schema.get("type") != "object"


def _tool_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {"type": "object"}
    if _needs_wrapping(schema):
        return {"type": "object", "properties": {"value": schema}, "required": ["value"]}
    return schema


def _unwrap(text: str) -> str:
    """The `value` of a wrapped answer as JSON text (the raw text if it is not one)."""
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and "value" in data:
        return json.dumps(data["value"])
    return text
