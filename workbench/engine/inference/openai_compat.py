"""OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, LM Studio, llama.cpp server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


from workbench.engine.errors import ProviderError
from workbench.engine.inference.base import StreamEnd, StreamItem
from workbench.engine.inference.http import HTTPChatModel, clause, iter_sse, open_stream, parse_json
from workbench.engine.schemas import ChatMessage, FinishReason, ResponseFormat, SamplingParams

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "stop",
    "function_call": "stop",
    "eos": "stop",
}


class OpenAICompatChatModel(HTTPChatModel):
    provider = "openai"

    def endpoint(self, base_url: str) -> str:
        return f"{base_url}/chat/completions"

    def request_body(
        self, messages: list[ChatMessage], params: SamplingParams, response_format: ResponseFormat | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
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
        return body

    def stream(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
    ) -> Iterator[StreamItem]:
        headers = {"Accept": "text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = self.request_body(messages, params, response_format)
        finish: FinishReason | None = None
        usage: dict[str, Any] | None = None
        chunks = 0
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
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        chunks += 1
                        yield text
                    if choice.get("finish_reason"):
                        finish = _FINISH.get(choice["finish_reason"], "stop")
        if finish is None:
            raise ProviderError(f"The {self.provider_name} provider closed the stream without finishing.")
        if usage:
            yield StreamEnd(finish, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        else:
            # Servers that ignore stream_options send no usage: count chunks.
            yield StreamEnd(finish, 0, chunks)
