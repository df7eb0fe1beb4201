"""The OpenAI-compatible family: `/v1/models`, `/v1/chat/completions`, `/v1/embeddings`.

Any OpenAI client (the official `openai` package, LangChain, curl) works
against `http://127.0.0.1:PORT/v1` with a workbench API key as its `api_key`.
Errors come in OpenAI's shape `{"error": {"message", "type", "code", "param"}}`.

Chat completions
  * `model`: an id from `GET /v1/models`, `PROVIDER:MODEL` of a configured
    remote provider, or `default` / omitted for the engine's default model.
    File paths are not accepted over HTTP (only listed local models load).
  * Messages: roles system, developer (treated as system), user, assistant and
    tool; content as a string or a list of `{"type": "text"}` parts (other part
    types, e.g. images, are refused with 400); assistant `tool_calls` and tool
    `tool_call_id` pass through. Nothing is stored: each request is stateless.
  * Sampling: temperature, top_p, max_tokens / max_completion_tokens (the
    latter wins), stop (string or list), seed, plus the vLLM / llama.cpp
    extensions top_k and repetition_penalty. `frequency_penalty`,
    `presence_penalty`, `user`, `parallel_tool_calls` and unknown fields are
    accepted and ignored. `n` other than 1 and `logprobs: true` are refused (400).
  * `response_format`: `{"type": "json_schema", "json_schema": {"schema": ...}}`
    or `{"type": "json_object"}`; local models follow it with a grammar, so the
    answer parses (unless max_tokens cuts it off).
  * Tools: remote providers call them natively and the answer carries
    `tool_calls` with finish_reason "tool_calls". Local (llama.cpp) models do
    not take tools in a chat request (they call tools through agents): such a
    request is refused with 400, unless `tool_choice` is "none", which drops
    the tools. `tool_choice` "auto" and "required" are forwarded as "auto"
    (the providers are asked with "auto"); a named function
    (`{"type": "function", "function": {"name": ...}}`) offers only that tool.
  * `stream: true` answers with server-sent events: `chat.completion.chunk`s
    (the role first, then one per text delta, tool calls in one delta, a chunk
    with finish_reason, a usage chunk when `stream_options.include_usage`),
    then `data: [DONE]`. A failure before the first token is an HTTP error; a
    failure after it is a `data: {"error": {...}}` event followed by [DONE].
    A client that disconnects cancels the generation.

Embeddings
  * `input`: a string or a list of 1 to 2048 non-empty strings of at most
    8,192 characters (token arrays are refused); `model`: omitted, `default`
    or the embedder's id; `encoding_format` "float" (default) or "base64"
    (little-endian float32, what the official client asks for by default);
    `dimensions`, if given, must equal the embedder's.
  * The answer is OpenAI's shape plus SomaAgentHub's `vectors`
    (`[{"embedding", "index"}]`, encoded like `data`), `vector_length` and
    `latency_ms`. Vectors are always L2-normalised (SomaAgentHub's `normalize`
    is accepted; false changes nothing). Token counts in `usage` are an
    estimate (words and punctuation marks), not the embedder's tokenizer.

Generations run on a thread of their own (not the server's thread pool), so a
thread of the pool never holds the local model between two steps of a stream
(`workbench.server.streaming.EventPump`, shared with the native routes). A
client that disconnects before a plain (non-streaming) answer is ready cancels
its generation too (`workbench.server.streaming.generate_to_end`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from workbench.engine.engine import Engine
from workbench.engine.errors import InvalidRequest, ModelNotFound, WorkbenchError, error_from_code, status_of_code
from workbench.engine.schemas import (
    MAX_SEED,
    MAX_STOP_LENGTH,
    MAX_STOP_SEQUENCES,
    MAX_TOKENS_LIMIT,
    ChatRequest,
    GenerationResult,
    ModelInfo,
    RunFailed,
    RunFinished,
    RunStarted,
    TokenDelta,
    ToolCall,
    validate,
)
from workbench.server.deps import EngineDep, allowed_model
from workbench.server.metrics import MetricsRoute
from workbench.server.security import error_body, require
from workbench.server.streaming import END, EventPump, cancel_on_disconnect, generate_to_end

#: MetricsRoute: requests are counted and timed in /metrics like the other routers' (a stream until its first token)
router = APIRouter(prefix="/v1", tags=["openai"], route_class=MetricsRoute)

MAX_EMBEDDING_INPUTS = 2048
MAX_EMBEDDING_CHARS = 8192
#: how often a non-streaming request checks whether its client is still there
DISCONNECT_POLL_S = 0.1
# The OpenAI wire has no "repetition": a generation the loop guard ended is
# reported as "length" (cut off before the model finished, as a client
# checking for truncated output must learn); the native API keeps "repetition".
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "cancelled": "stop",
    "repetition": "length",
}
_TOKEN = re.compile(r"\w+|[^\w\s]")


# ------------------------------------------------------------------ models


@router.get("/models", dependencies=[Depends(require("read:models"))])
def list_models(engine: EngineDep) -> JSONResponse:
    models = engine.list_models()
    return JSONResponse({"object": "list", "data": [_model_entry(m) for m in models]})


@router.get("/models/{model_id:path}", dependencies=[Depends(require("read:models"))])
def get_model(model_id: str, engine: EngineDep) -> JSONResponse:
    models = engine.list_models()
    wanted = model_id.strip()
    for info in models:
        if info.id == wanted or info.id.lower() == wanted.lower() or (wanted == "default" and info.is_default):
            return JSONResponse(_model_entry(info))
    raise ModelNotFound(f"The model {_shown(model_id)} does not exist; GET /v1/models lists the available ones.")


def _model_entry(info: ModelInfo) -> dict[str, Any]:
    created = 0
    if info.source != "remote":
        try:
            created = int(Path(info.location).stat().st_mtime)
        except OSError:
            pass
    return {"id": info.id, "object": "model", "created": created, "owned_by": info.provider}


def _shown(value: str, limit: int = 120) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


# ----------------------------------------------------------- chat: request


class _Lenient(BaseModel):
    #: OpenAI clients send fields we have no use for (metadata, store, ...): ignore them
    model_config = ConfigDict(extra="ignore")


class FunctionCall(_Lenient):
    name: str = Field(max_length=128)
    #: a JSON object as text (OpenAI's wire form); an object is accepted too
    arguments: str | dict[str, Any] = ""


class MessageToolCall(_Lenient):
    id: str = Field(min_length=1, max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(None, max_length=128)
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = Field(None, max_length=200)


class StreamOptions(_Lenient):
    include_usage: bool = False


class FunctionDefinition(_Lenient):
    name: str = Field(max_length=128)
    description: str | None = Field(None, max_length=4000)
    parameters: dict[str, Any] | None = None


class Tool(_Lenient):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class ChatCompletionRequest(_Lenient):
    model: str | None = Field(None, max_length=500)
    messages: list[Message] = Field(min_length=1, max_length=10_000)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    n: int | None = Field(None, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    # extensions of vLLM, llama.cpp server and LM Studio
    top_k: int | None = Field(None, ge=1, le=1000)
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)


def build_chat_request(engine: Engine, body: ChatCompletionRequest) -> ChatRequest:
    """The engine's request for an OpenAI one (raises InvalidRequest / ModelNotFound)."""
    if body.n not in (None, 1):
        raise InvalidRequest(f"n must be 1: the workbench returns one choice per request (got {body.n}).")
    if body.logprobs:
        raise InvalidRequest("logprobs are not supported by the workbench; leave logprobs unset or false.")
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stops) > MAX_STOP_SEQUENCES or any(not s or len(s) > MAX_STOP_LENGTH for s in stops):
        raise InvalidRequest(
            f"stop takes at most {MAX_STOP_SEQUENCES} non-empty strings of at most {MAX_STOP_LENGTH} characters each."
        )
    params: dict[str, Any] = {
        "max_tokens": body.max_completion_tokens or body.max_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "top_k": body.top_k,
        "repetition_penalty": body.repetition_penalty,
        "seed": body.seed,
    }
    data: dict[str, Any] = {
        "messages": _messages(body.messages),
        "model": allowed_model(engine, body.model),
        "params": {**{k: v for k, v in params.items() if v is not None}, "stop": stops},
        "response_format": body.response_format,
        "tools": _tools(body.tools, body.tool_choice),
        "persist": False,
    }
    request: ChatRequest = validate(ChatRequest, data)
    return request


def _text(content: str | list[dict[str, Any]] | None, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for i, part in enumerate(content):
        kind = part.get("type")
        if kind != "text" or not isinstance(part.get("text"), str):
            raise InvalidRequest(
                f'{where}.content[{i}]: only text parts ({{"type": "text", "text": ...}}) are '
                f"supported, not {str(kind)[:40]!r}."
            )
        texts.append(part["text"])
    return "\n".join(texts)


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        item: dict[str, Any] = {
            "role": "system" if m.role == "developer" else m.role,
            "content": _text(m.content, where),
        }
        if m.tool_calls:
            if m.role != "assistant":
                raise InvalidRequest(f"{where}: only assistant messages carry tool_calls.")
            calls = []
            for j, call in enumerate(m.tool_calls):
                calls.append(
                    {
                        "id": call.id,
                        "name": call.function.name,
                        "arguments": _arguments(call.function.arguments, f"{where}.tool_calls[{j}]"),
                    }
                )
                call_names[call.id] = call.function.name
            item["tool_calls"] = calls
        if m.role == "tool":
            if not m.tool_call_id:
                raise InvalidRequest(f'{where}: a "tool" message needs the tool_call_id of the call it answers.')
            item["tool_call_id"] = m.tool_call_id
            name = m.name or call_names.get(m.tool_call_id)
            if name:
                item["name"] = name
        elif m.name and m.role != "assistant":
            item["name"] = m.name
        out.append(item)
    return out


def _arguments(arguments: str | dict[str, Any], where: str) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not arguments.strip():
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}.function.arguments must be a JSON object as text.")
    return value


def _tools(tools: list[Tool] | None, choice: str | dict[str, Any] | None) -> list[dict[str, Any]] | None:
    specs = [
        {
            "name": t.function.name,
            "description": t.function.description or "",
            **({"parameters": t.function.parameters} if t.function.parameters is not None else {}),
        }
        for t in tools or []
    ]
    if choice is None or choice in ("auto", "required"):
        return specs or None
    if choice == "none":
        return None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        chosen = [s for s in specs if s["name"] == name]
        if not chosen:
            raise InvalidRequest(f"tool_choice names the function {_shown(str(name))}, which is not among tools.")
        return chosen
    raise InvalidRequest(
        'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}.'
    )


# ---------------------------------------------------------- chat: running


# The engine's iterator runs on a thread of its own (workbench.server.streaming explains why).
_END = END


async def _cancel_on_disconnect(request: Request, pump: EventPump) -> None:
    await cancel_on_disconnect(request, pump, DISCONNECT_POLL_S)


def _raise_failure(item: Any) -> None:
    if isinstance(item, RunFailed):
        raise error_from_code(item.code, item.error)
    if isinstance(item, Exception):
        raise item
    if item is _END:
        raise WorkbenchError("The generation ended without a result.")


@router.post("/chat/completions", dependencies=[Depends(require("execute:chat"))])
async def chat_completions(body: ChatCompletionRequest, request: Request, engine: EngineDep) -> Any:
    chat_request = await run_in_threadpool(build_chat_request, engine, body)
    # Validation, unknown models and refused tools raise here, before any generation.
    events = await run_in_threadpool(engine.chat, chat_request)
    created = int(time.time())
    if not body.stream:
        # To the end; a client that disconnects first cancels it. The id is the run's, as streamed.
        result: GenerationResult = await generate_to_end(request, events, name="openai-chat")
        return JSONResponse(_completion(result, f"chatcmpl-{result.id}", created))
    pump = EventPump(events, name="openai-chat")
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    model = chat_request.model or ""
    head: list[Any] = []
    watcher = asyncio.create_task(_cancel_on_disconnect(request, pump))
    handed_over = False
    try:
        # Wait for the first token (or the end), so that a failure before any output is an HTTP error.
        while True:
            item = await pump.get()
            if isinstance(item, RunStarted):
                completion_id, model = f"chatcmpl-{item.run_id}", item.model
                continue
            _raise_failure(item)
            head.append(item)
            break
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = _sse(
            pump,
            head,
            completion_id,
            created,
            model,
            include_usage,
            request.url.path,
            getattr(request.state, "request_id", ""),
        )
        handed_over = True
        return StreamingResponse(
            stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
    finally:
        watcher.cancel()
        if not handed_over:
            pump.cancel()


def _wire_calls(calls: list[ToolCall], with_index: bool = False) -> list[dict[str, Any]]:
    return [
        {
            **({"index": i} if with_index else {}),
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
        }
        for i, c in enumerate(calls)
    ]


def _usage(result: GenerationResult) -> dict[str, int]:
    u = result.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    }


def _completion(result: GenerationResult, completion_id: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.text if result.text or not result.tool_calls else None,
    }
    if result.tool_calls:
        message["tool_calls"] = _wire_calls(result.tool_calls)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(result.finish_reason, "stop"),
            }
        ],
        "usage": _usage(result),
    }


async def _sse(
    pump: EventPump,
    head: list[Any],
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    path: str,
    request_id: str,
) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        payload.update(extra)
        return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

    def failure(code: str, message: str) -> str:
        status = status_of_code(code)
        body = error_body(path, status, code.upper(), message, request_id)
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        pending = list(head)
        while True:
            item = pending.pop(0) if pending else await pump.get()
            if isinstance(item, TokenDelta):
                if item.text:
                    yield chunk({"content": item.text})
            elif isinstance(item, RunFinished):
                result = item.result
                if result.tool_calls:
                    yield chunk({"tool_calls": _wire_calls(result.tool_calls, with_index=True)})
                yield chunk({}, FINISH_REASONS.get(result.finish_reason, "stop"))
                if include_usage:
                    yield chunk({}, None, choices=[], usage=_usage(result))
                break
            elif isinstance(item, RunFailed):
                yield failure(item.code, item.error)
                break
            elif isinstance(item, WorkbenchError):
                yield failure(item.code, str(item))
                break
            elif isinstance(item, Exception) or item is _END:
                yield failure("internal_error", "The generation failed unexpectedly; details are in the log.")
                break
        yield "data: [DONE]\n\n"
    finally:
        # Normal end, or the client went away (Starlette cancels this generator): stop the generation.
        pump.cancel()


# -------------------------------------------------------------- embeddings


class EmbeddingRequest(_Lenient):
    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = Field(None, max_length=500)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    #: SomaAgentHub's flag: vectors are always L2-normalised, so false changes nothing
    normalize: bool = True


@router.post("/embeddings", dependencies=[Depends(require("execute:embeddings"))])
def embeddings(body: EmbeddingRequest, engine: EngineDep) -> JSONResponse:
    started = time.perf_counter()
    texts = _embedding_inputs(body.input)
    embedder_id = engine.embedding_model()
    model = (body.model or "").strip()
    if model and model != "default" and model.rsplit("/", 1)[-1].lower() != embedder_id.lower():
        raise ModelNotFound(
            f"The embedding model {_shown(model)} does not exist; this server embeds with "
            f'{embedder_id!r} (or send "default").'
        )
    vectors = engine.embed_texts(texts)
    dims = int(vectors.shape[1])
    if body.dimensions is not None and body.dimensions != dims:
        raise InvalidRequest(f"dimensions must be {dims} for {embedder_id} (got {body.dimensions}).")
    if body.encoding_format == "base64":
        encoded: list[Any] = [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors]
    else:
        encoded = vectors.tolist()
    tokens = sum(len(_TOKEN.findall(t)) for t in texts)
    return JSONResponse(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)],
            "model": embedder_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            # SomaAgentHub's fields
            "vectors": [{"embedding": e, "index": i} for i, e in enumerate(encoded)],
            "vector_length": dims,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    )


def _embedding_inputs(value: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    items: list[object] = [value] if isinstance(value, str) else list(value)
    if not items:
        raise InvalidRequest("input must be a string or a non-empty list of strings.")
    texts = [t for t in items if isinstance(t, str)]
    if len(texts) != len(items):
        raise InvalidRequest("input must be text: token arrays are not supported by this server.")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise InvalidRequest(f"input takes at most {MAX_EMBEDDING_INPUTS} strings (got {len(texts)}).")
    for i, text in enumerate(texts):
        if not text.strip():
            raise InvalidRequest(f"input[{i}] is empty; every input must contain text.")
        if len(text) > MAX_EMBEDDING_CHARS:
            raise InvalidRequest(
                f"input[{i}] is {len(text):,} characters long; the limit is "
                f"{MAX_EMBEDDING_CHARS:,} (split the text first)."
            )
    return texts
