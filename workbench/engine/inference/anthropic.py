"""Anthropic Messages API adapter (streaming, over httpx)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


from workbench.engine.errors import InvalidRequest, ProviderError
from workbench.engine.inference.base import StreamEnd, StreamItem
from workbench.engine.inference.http import HTTPChatModel, clause, iter_sse, open_stream, parse_json
from workbench.engine.schemas import DEFAULT_MAX_TOKENS, ChatMessage, FinishReason, ResponseFormat, SamplingParams

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

    def endpoint(self, base_url: str) -> str:
        return f"{base_url}/messages" if base_url.endswith("/v1") else f"{base_url}/v1/messages"

    def check(self, params: SamplingParams, response_format: ResponseFormat | None = None) -> None:
        if params.seed is not None:
            raise InvalidRequest("The Anthropic Messages API has no seed parameter; leave seed unset.")
        if params.repetition_penalty is not None:
            raise InvalidRequest("The Anthropic Messages API has no repetition_penalty; leave it unset.")
        if params.temperature is not None and params.temperature > 1.0:
            raise InvalidRequest("Anthropic accepts temperature from 0 to 1.")

    def request_body(
        self, messages: list[ChatMessage], params: SamplingParams, response_format: ResponseFormat | None
    ) -> dict[str, Any]:
        self.check(params, response_format)
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        turns: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "system":
                continue
            if turns and turns[-1]["role"] == m.role:
                turns[-1]["content"] += "\n\n" + m.content
            else:
                turns.append({"role": m.role, "content": m.content})
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": turns,
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
        return body

    def stream(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
    ) -> Iterator[StreamItem]:
        body = self.request_body(messages, params, response_format)
        # A tool's input must be an object: other schemas travel wrapped in
        # {"value": ...} and are unwrapped here, so the answer is buffered.
        wrapped = bool(response_format and response_format.is_json and _needs_wrapping(response_format.schema_))
        buffered: list[str] = []
        headers = {"anthropic-version": API_VERSION, "Accept": "text/event-stream"}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        input_tokens = output_tokens = 0
        finish: FinishReason | None = None
        with open_stream(self._client, self.url, body, headers, self.provider_name) as response:
            for event, data in iter_sse(response):
                payload = parse_json(data, self.provider_name)
                kind = payload.get("type", event)
                if kind == "message_start":
                    usage = (payload.get("message") or {}).get("usage") or {}
                    input_tokens = int(usage.get("input_tokens") or 0)
                    output_tokens = int(usage.get("output_tokens") or 0)
                elif kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    text = delta.get("text") if delta.get("type") == "text_delta" else None
                    if delta.get("type") == "input_json_delta":
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
        if wrapped:
            yield _unwrap("".join(buffered))
        yield StreamEnd(finish, input_tokens, output_tokens)



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
