"""A real HTTP server on 127.0.0.1 that speaks the OpenAI and Anthropic wire formats.

It is a test double for remote providers, faithful where our adapters depend on
the wire: the streaming event sequences, the auth headers, the error bodies and
status codes, and the request validation that a real API would apply. It runs
the stdlib `ThreadingHTTPServer` in a background thread on an ephemeral port,
uses HTTP/1.1 with chunked transfer encoding for streams (as the real APIs do),
and records every request so tests can assert what an adapter sent.

Answers are deterministic and derived from the request: the words of the last
user message in reverse order, streamed one word per chunk. "Tokens" are words
and punctuation marks (`count_tokens`), so usage numbers differ from the number
of chunks: a client that reports usage by counting chunks is caught out.
`max_tokens` cuts the answer (finish_reason "length" / stop_reason
"max_tokens"); stop sequences cut it too ("stop" / "stop_sequence"). When a JSON
schema is requested (OpenAI `response_format`, Anthropic forced tool) the answer
is a JSON object built to match a simple object schema.

    with WireServer(api_key="sk-...") as server:
        base = server.openai_base_url      # http://127.0.0.1:PORT/v1
        ...
        server.requests[-1].body           # the JSON the client sent

Tool calls: when a request offers tools (OpenAI `tools`; Anthropic `tools`
without a forced `tool_choice`) and its last message is not a tool result, the
model "calls" tools in the provider's real streaming format: by default the
first offered tool, with arguments built from its schema (`instance_for`);
`server.tool_calls = [(name, arguments), ...]` scripts the calls (a `str`
arguments value is sent verbatim, so broken JSON can be sent), and
`server.tool_preamble` is text said before the calls. A request whose last
message carries tool results is answered with text: the words of the tool
result in reverse order (OpenAI with `server.repeat_tool_calls = True`: the
scripted calls again, a model stuck in a loop). Tool names, tool schemas and
the pairing of tool calls with tool results are validated as the real APIs do.

`server.fail_midstream = "drop"` closes the connection in the middle of a
stream (without the final chunk of the chunked body); `"error"` sends an error
event in the middle of the stream (Anthropic's `event: error`, and the
`data: {"error": ...}` chunk that OpenAI-compatible servers send).
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_OPENAI_MODELS = ("gpt-wire", "gpt-wire-mini")
DEFAULT_ANTHROPIC_MODELS = ("claude-wire", "claude-wire-haiku")
ANTHROPIC_VERSIONS = ("2023-06-01", "2023-01-01")

_TOKEN = re.compile(r"\w+|[^\w\s]")

OPENAI_PARAMS = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "user",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    # vLLM / llama.cpp server / LM Studio extensions
    "top_k",
    "repetition_penalty",
    "min_p",
}
ANTHROPIC_PARAMS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "metadata",
    "thinking",
    "service_tier",
}


def count_tokens(text: str) -> int:
    """The server's tokenizer: every word and every punctuation mark is a token."""
    return len(_TOKEN.findall(text))


def answer_for(prompt: str) -> str:
    """The full answer the server gives to `prompt` (the last user message)."""
    return " ".join(reversed(prompt.split()))


def instance_for(schema: dict[str, Any], text: str) -> Any:
    """A value that validates against a simple JSON schema, derived from `text`."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        return {name: instance_for(sub, text) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        items = schema.get("items")
        count = max(int(schema.get("minItems", 1)), 1)
        return [instance_for(items, text) for _ in range(count)] if isinstance(items, dict) else []
    if kind == "integer":
        value = len(text.split())
        value = max(value, int(schema.get("minimum", value)))
        return min(value, int(schema.get("maximum", value)))
    if kind == "number":
        value = len(text.split()) + 0.5
        value = max(value, float(schema.get("minimum", value)))
        return min(value, float(schema.get("maximum", value)))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    value = text
    if "maxLength" in schema:
        value = value[: int(schema["maxLength"])]
    if "minLength" in schema and len(value) < int(schema["minLength"]):
        value = value.ljust(int(schema["minLength"]), "x")
    return value


@dataclass
class RecordedRequest:
    method: str
    path: str
    #: header names lower-cased
    headers: dict[str, str]
    #: the parsed JSON body (None when absent or not JSON)
    body: Any
    raw: bytes
    #: (prompt_tokens, completion_tokens) the server reported, for answered requests
    usage: tuple[int, int] | None = None
    status: int | None = None


@dataclass
class _Plan:
    pieces: list[str]
    #: "stop", "length" or "stop_sequence"
    finish: str
    stop_sequence: str | None
    completion_tokens: int
    text: str = field(init=False)

    def __post_init__(self) -> None:
        self.text = "".join(self.pieces)


def plan_answer(pieces: list[str], max_tokens: int | None, stops: list[str]) -> _Plan:
    """Cut `pieces` at the first stop sequence or where max_tokens runs out."""
    out: list[str] = []
    text = ""
    used = 0
    for piece in pieces:
        cost = count_tokens(piece)
        if max_tokens is not None and used + cost > max_tokens:
            return _Plan(out, "length", None, used)
        candidate = text + piece
        hits = [(candidate.find(s), s) for s in stops if s and s in candidate]
        if hits:
            at, seq = min(hits)
            piece = candidate[:at][len(text) :]
            if piece:
                out.append(piece)
                used += count_tokens(piece)
            return _Plan(out, "stop_sequence", seq, used)
        out.append(piece)
        text = candidate
        used += cost
    return _Plan(out, "stop", None, used)


def _word_pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words) if w or i == 0]


def _json_pieces(text: str, size: int = 7) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


#: tool names both APIs accept
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass
class _ToolCallPlan:
    id: str
    name: str
    #: the arguments as sent on the wire (a JSON text, or whatever the test scripted)
    arguments: str


def plan_tool_calls(
    scripted: list[tuple[str, Any]] | None, offered: list[tuple[str, dict[str, Any]]], answer: str, id_prefix: str
) -> list[_ToolCallPlan]:
    """The calls the model makes: the scripted ones, else the first offered tool."""
    if scripted is None:
        name, schema = offered[0]
        scripted = [(name, instance_for(schema, answer))]
    return [
        _ToolCallPlan(f"{id_prefix}{uuid.uuid4().hex[:24]}", name, args if isinstance(args, str) else json.dumps(args))
        for name, args in scripted
    ]


def cut_tool_answer(
    preamble: list[str], calls: list[_ToolCallPlan], max_tokens: int | None
) -> tuple[list[tuple[Any, ...]], bool, int]:
    """The events of a tool-calling answer cut at max_tokens: ("text", piece),
    ("call", i) and ("args", i, piece); whether it was cut; the tokens used."""
    steps: list[tuple[Any, ...]] = [("text", p) for p in preamble]
    for i, call in enumerate(calls):
        steps.append(("call", i))
        steps.extend(("args", i, piece) for piece in _json_pieces(call.arguments))
    out: list[tuple[Any, ...]] = []
    used = 0
    for step in steps:
        cost = count_tokens(calls[step[1]].name) if step[0] == "call" else count_tokens(step[-1])
        if max_tokens is not None and used + cost > max_tokens:
            return out, True, used
        out.append(step)
        used += cost
    return out, False, used


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


def _mask(key: str) -> str:
    return key[:3] + "*" * max(len(key) - 7, 4) + key[-4:] if len(key) > 8 else "*" * len(key)


class _Reject(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _openai_error(
    status: int, message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None
) -> _Reject:
    return _Reject(status, {"error": {"message": message, "type": type_, "param": param, "code": code}})


def _anthropic_error(status: int, type_: str, message: str) -> _Reject:
    return _Reject(status, {"type": "error", "error": {"type": type_, "message": message}})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients closing idle keep-alive connections are normal, not errors.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class WireServer:
    """OpenAI chat completions at /v1/chat/completions and Anthropic Messages at /v1/messages."""

    def __init__(
        self,
        api_key: str = "sk-wire-0123456789abcdef0123456789abcdef",
        openai_models: tuple[str, ...] = DEFAULT_OPENAI_MODELS,
        anthropic_models: tuple[str, ...] = DEFAULT_ANTHROPIC_MODELS,
    ) -> None:
        self.api_key = api_key
        self.openai_models = set(openai_models)
        self.anthropic_models = set(anthropic_models)
        #: None, "drop" (close the connection mid-stream) or "error" (error event mid-stream)
        self.fail_midstream: str | None = None
        #: content chunks sent before a mid-stream failure
        self.fail_after_chunks = 2
        #: False emulates OpenAI-compatible servers that ignore stream_options
        self.send_usage = True
        #: the tool calls to make when a request offers tools: (name, arguments); None: the first tool
        self.tool_calls: list[tuple[str, Any]] | None = None
        #: text the model says before calling tools
        self.tool_preamble = ""
        #: a careless proxy: a rejected key is echoed in full in the 401 error body
        self.echo_rejected_key = False
        #: OpenAI only: make the scripted calls even after a tool result (a model stuck in a loop)
        self.repeat_tool_calls = False
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> WireServer:
        handler = type("Handler", (_Handler,), {"wire": self})
        self._httpd = _HTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        assert self._httpd is not None, "the server is not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    # ------------------------------------------------------------ recording

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    wire: WireServer
    protocol_version = "HTTP/1.1"
    server_version = "wire/1.0"
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # ------------------------------------------------------------- plumbing

    def do_GET(self) -> None:
        self._read_and_record()
        if self.path == "/v1/models":
            self._send_json(
                200, {"object": "list", "data": [{"id": m, "object": "model"} for m in sorted(self.wire.openai_models)]}
            )
        else:
            self._send_json(404, {"error": {"message": f"Unknown path {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        record = self._read_and_record()
        try:
            if self.path == "/v1/chat/completions":
                self._openai(record)
            elif self.path == "/v1/messages":
                self._anthropic(record)
            else:
                raise _openai_error(404, f"Invalid URL (POST {self.path})")
        except _Reject as reject:
            record.status = reject.status
            self._send_json(reject.status, reject.body)

    def _read_and_record(self) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=raw,
        )
        self.wire._record(record)
        return record

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _start_stream(self, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the connection in the middle of a chunked body."""
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --------------------------------------------------------------- OpenAI

    def _openai(self, record: RecordedRequest) -> None:
        wire = self.wire
        auth = self.headers.get("Authorization") or ""
        if not auth:
            raise _openai_error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        scheme, _, key = auth.partition(" ")
        if scheme != "Bearer" or key != wire.api_key:
            raise _openai_error(
                401,
                f"Incorrect API key provided: {key if wire.echo_rejected_key else _mask(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        body = record.body
        if not isinstance(body, dict):
            raise _openai_error(400, "We could not parse the JSON body of your request.")
        for name in body:
            if name not in OPENAI_PARAMS:
                raise _openai_error(400, f"Unrecognized request argument supplied: {name}")
        model = body.get("model")
        if not model:
            raise _openai_error(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _openai_error(400, "[] is too short - 'messages'", param="messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
                raise _openai_error(400, f"Invalid value for 'messages[{i}].role'.", param=f"messages[{i}].role")
        stream = bool(body.get("stream"))
        if "stream_options" in body and not stream:
            raise _openai_error(
                400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
            )
        temperature = body.get("temperature")
        if temperature is not None and not 0 <= temperature <= 2:
            raise _openai_error(
                400,
                f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got {temperature} instead.",
                param="temperature",
            )
        top_p = body.get("top_p")
        if top_p is not None and not 0 <= top_p <= 1:
            raise _openai_error(400, f"Invalid 'top_p': expected a value <= 1, but got {top_p} instead.", param="top_p")
        max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _openai_error(
                400,
                f"Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got {max_tokens} instead.",
                param="max_tokens",
            )
        stop = body.get("stop") or []
        stops = [stop] if isinstance(stop, str) else list(stop)
        if len(stops) > 4:
            raise _openai_error(
                400, "Invalid 'stop': array too long. Expected an array with maximum length 4.", param="stop"
            )
        offered = _openai_check_tools(body)
        _openai_check_tool_messages(messages)
        if model not in wire.openai_models:
            raise _openai_error(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )

        if messages[-1].get("role") == "tool":
            prompt = messages[-1].get("content") or ""
        else:
            prompt = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        answer = answer_for(prompt)
        stuck = wire.repeat_tool_calls and wire.tool_calls is not None
        if offered and (messages[-1].get("role") != "tool" or stuck) and body.get("tool_choice") != "none":
            calls = plan_tool_calls(wire.tool_calls, offered, answer, "call_")
            self._openai_tool_answer(record, body, model, messages, calls, max_tokens, stream)
            return
        pieces = _word_pieces(answer)
        response_format = body.get("response_format")
        if response_format is not None:
            kind = response_format.get("type") if isinstance(response_format, dict) else None
            if kind == "json_schema":
                spec = response_format.get("json_schema")
                if not isinstance(spec, dict) or not spec.get("name"):
                    raise _openai_error(
                        400,
                        "Missing required parameter: 'response_format.json_schema.name'.",
                        param="response_format.json_schema.name",
                    )
                if not isinstance(spec.get("schema"), dict):
                    raise _openai_error(
                        400,
                        "Missing required parameter: 'response_format.json_schema.schema'.",
                        param="response_format.json_schema.schema",
                    )
                pieces = _json_pieces(json.dumps(instance_for(spec["schema"], answer)))
            elif kind == "json_object":
                pieces = _json_pieces(json.dumps({"answer": answer}))
            elif kind != "text":
                raise _openai_error(
                    400, f"Invalid value for 'response_format.type': {kind!r}.", param="response_format.type"
                )
        plan = plan_answer(pieces, max_tokens, stops)
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) + 3 for m in messages) + 3
        record.usage = (prompt_tokens, plan.completion_tokens)
        record.status = 200
        finish = "length" if plan.finish == "length" else "stop"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": plan.completion_tokens,
            "total_tokens": prompt_tokens + plan.completion_tokens,
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if not stream:
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": plan.text, "refusal": None},
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_wire",
                },
            )
            return

        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and wire.send_usage

        def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_wire",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                payload["usage"] = None
            return payload

        def send(payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            self._chunk(f"data: {data}\n\n")

        self._start_stream()
        send(chunk({"role": "assistant", "content": "", "refusal": None}, None))
        for i, piece in enumerate(plan.pieces):
            if wire.fail_midstream and i == wire.fail_after_chunks:
                if wire.fail_midstream == "drop":
                    self._drop()
                    return
                send(
                    {
                        "error": {
                            "message": "The server had an error while processing your request. Sorry about that!",
                            "type": "server_error",
                            "code": None,
                        }
                    }
                )
                self._end_stream()
                return
            send(chunk({"content": piece}, None))
        send(chunk({}, finish))
        if include_usage:
            send(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_wire",
                    "choices": [],
                    "usage": usage,
                }
            )
        send("[DONE]")
        self._end_stream()

    def _openai_tool_answer(
        self,
        record: RecordedRequest,
        body: dict[str, Any],
        model: str,
        messages: list[dict[str, Any]],
        calls: list[_ToolCallPlan],
        max_tokens: int | None,
        stream: bool,
    ) -> None:
        """Answer with tool calls, streamed as `delta.tool_calls` fragments."""
        steps, cut, used = cut_tool_answer(
            _word_pieces(self.wire.tool_preamble) if self.wire.tool_preamble else [], calls, max_tokens
        )
        prompt_tokens = sum(count_tokens(str(m.get("content") or "")) + 3 for m in messages) + 3
        record.usage = (prompt_tokens, used)
        record.status = 200
        finish = "length" if cut else "tool_calls"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": used, "total_tokens": prompt_tokens + used}
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        started = sorted({step[1] for step in steps if step[0] == "call"})
        if not stream:
            text = "".join(step[1] for step in steps if step[0] == "text")
            arguments = {i: "".join(step[2] for step in steps if step[0] == "args" and step[1] == i) for i in started}
            message = {
                "role": "assistant",
                "content": text or None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": calls[i].id,
                        "type": "function",
                        "function": {"name": calls[i].name, "arguments": arguments[i]},
                    }
                    for i in started
                ],
            }
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                    "usage": usage,
                    "system_fingerprint": "fp_wire",
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and self.wire.send_usage

        def send(delta: dict[str, Any] | None, finish_reason: str | None = None, final_usage: bool = False) -> None:
            payload: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_wire",
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                payload["usage"] = usage if final_usage else None
            self._chunk(f"data: {json.dumps(payload)}\n\n")

        self._start_stream()
        first: dict[str, Any] = {
            "role": "assistant",
            "content": "" if self.wire.tool_preamble else None,
            "refusal": None,
        }
        for step in steps:
            if step[0] == "text":
                if first:
                    send(first)
                    first = {}
                send({"content": step[1]})
            elif step[0] == "call":
                i = step[1]
                header = {
                    "index": i,
                    "id": calls[i].id,
                    "type": "function",
                    "function": {"name": calls[i].name, "arguments": ""},
                }
                # OpenAI puts the first call's header in the chunk that opens the message.
                send({**first, "tool_calls": [header]})
                first = {}
            else:
                send({"tool_calls": [{"index": step[1], "function": {"arguments": step[2]}}]})
        if first:
            send(first)
        send({}, finish)
        if include_usage:
            send(None, final_usage=True)
        self._chunk("data: [DONE]\n\n")
        self._end_stream()

    # ------------------------------------------------------------ Anthropic

    def _anthropic(self, record: RecordedRequest) -> None:
        wire = self.wire
        version = self.headers.get("anthropic-version")
        if not version:
            raise _anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")
        if version not in ANTHROPIC_VERSIONS:
            raise _anthropic_error(400, "invalid_request_error", f"anthropic-version: invalid version {version!r}")
        key = self.headers.get("x-api-key")
        if not key:
            raise _anthropic_error(401, "authentication_error", "x-api-key header is required")
        if key != wire.api_key:
            raise _anthropic_error(
                401,
                "authentication_error",
                f"invalid x-api-key {key}" if wire.echo_rejected_key else "invalid x-api-key",
            )
        body = record.body
        if not isinstance(body, dict):
            raise _anthropic_error(400, "invalid_request_error", "Request body is not valid JSON.")
        for name in body:
            if name not in ANTHROPIC_PARAMS:
                raise _anthropic_error(400, "invalid_request_error", f"{name}: Extra inputs are not permitted")
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                raise _anthropic_error(400, "invalid_request_error", f"{name}: Field required")
        max_tokens = body["max_tokens"]
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise _anthropic_error(
                400, "invalid_request_error", "max_tokens: Input should be greater than or equal to 1"
            )
        temperature = body.get("temperature")
        if temperature is not None and not 0 <= temperature <= 1:
            raise _anthropic_error(400, "invalid_request_error", "temperature: Input should be less than or equal to 1")
        top_p = body.get("top_p")
        if top_p is not None and not 0 <= top_p <= 1:
            raise _anthropic_error(400, "invalid_request_error", "top_p: Input should be less than or equal to 1")
        system = body.get("system")
        if system is not None and not isinstance(system, (str, list)):
            raise _anthropic_error(400, "invalid_request_error", "system: Input should be a valid string")
        stops = body.get("stop_sequences") or []
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _anthropic_error(
                400, "invalid_request_error", "stop_sequences: Input should be a valid list of strings"
            )
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise _anthropic_error(400, "invalid_request_error", "messages: at least one message is required")
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ("user", "assistant"):
                raise _anthropic_error(
                    400,
                    "invalid_request_error",
                    f'messages: Unexpected role "{role}". The Messages API accepts a top-level `system` '
                    'parameter, not "system" as an input message role.',
                )
            content = m.get("content")
            empty = content == "" or content == [] or content is None
            if empty and not (i == len(messages) - 1 and role == "assistant"):
                raise _anthropic_error(
                    400,
                    "invalid_request_error",
                    f"messages.{i}: all messages must have non-empty content except for the optional final assistant message",
                )
        tool_name: str | None = None
        tool_schema: dict[str, Any] | None = None
        tools = body.get("tools") or []
        for i, tool in enumerate(tools):
            name = tool.get("name")
            if not isinstance(name, str) or not _TOOL_NAME.match(name):
                raise _anthropic_error(
                    400,
                    "invalid_request_error",
                    f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'",
                )
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise _anthropic_error(
                    400, "invalid_request_error", f"tools.{i}.custom.input_schema.type: Input should be 'object'"
                )
        choice = body.get("tool_choice")
        if choice is not None:
            if not tools:
                raise _anthropic_error(
                    400, "invalid_request_error", "tool_choice may only be specified while providing tools."
                )
            if choice.get("type") == "tool":
                match = next((t for t in tools if t.get("name") == choice.get("name")), None)
                if match is None:
                    raise _anthropic_error(
                        400, "invalid_request_error", f"Tool '{choice.get('name')}' not found in provided tools"
                    )
                tool_name, tool_schema = match["name"], match["input_schema"]
        _anthropic_check_tool_messages(messages)
        model = body["model"]
        if model not in wire.anthropic_models:
            raise _anthropic_error(404, "not_found_error", f"model: {model}")

        last_user = next(m for m in reversed(messages) if m["role"] == "user")
        content = last_user["content"]
        results = (
            [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
            if isinstance(content, list)
            else []
        )
        if results:
            prompt = " ".join(_tool_result_text(b.get("content")) for b in results)
        else:
            prompt = (
                content
                if isinstance(content, str)
                else " ".join(b.get("text", "") for b in content if isinstance(b, dict))
            )
        answer = answer_for(prompt)
        if tools and tool_schema is None and not results and (choice or {}).get("type") != "none":
            offered = [(t["name"], t["input_schema"]) for t in tools]
            calls = plan_tool_calls(wire.tool_calls, offered, answer, "toolu_")
            self._anthropic_tool_answer(record, body, model, messages, calls, max_tokens)
            return
        if tool_schema is not None:
            pieces = _json_pieces(json.dumps(instance_for(tool_schema, answer)))
        else:
            pieces = _word_pieces(answer)
        plan = plan_answer(pieces, max_tokens, stops)
        system_text = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system or [])
        prompt_tokens = count_tokens(system_text or "") + sum(
            count_tokens(m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])) + 4
            for m in messages
        )
        record.usage = (prompt_tokens, plan.completion_tokens)
        record.status = 200
        if tool_schema is not None and plan.finish == "stop":
            stop_reason = "tool_use"
        else:
            stop_reason = {"stop": "end_turn", "length": "max_tokens", "stop_sequence": "stop_sequence"}[plan.finish]
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        if not body.get("stream"):
            block: dict[str, Any]
            if tool_schema is not None:
                block = {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:24]}",
                    "name": tool_name,
                    "input": json.loads(plan.text),
                }
            else:
                block = {"type": "text", "text": plan.text}
            self._send_json(
                200,
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [block],
                    "stop_reason": stop_reason,
                    "stop_sequence": plan.stop_sequence,
                    "usage": {"input_tokens": prompt_tokens, "output_tokens": plan.completion_tokens},
                },
                {"request-id": f"req_{uuid.uuid4().hex[:24]}"},
            )
            return

        def send(event: str, payload: dict[str, Any]) -> None:
            self._chunk(f"event: {event}\ndata: {json.dumps(payload)}\n\n")

        self._start_stream({"request-id": f"req_{uuid.uuid4().hex[:24]}"})
        send(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": prompt_tokens, "output_tokens": 1},
                },
            },
        )
        if tool_schema is not None:
            block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool_name, "input": {}}
            pieces_out = [""] + plan.pieces
        else:
            block = {"type": "text", "text": ""}
            pieces_out = plan.pieces
        send("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
        send("ping", {"type": "ping"})
        sent = 0
        for piece in pieces_out:
            if wire.fail_midstream and piece and sent == wire.fail_after_chunks:
                if wire.fail_midstream == "drop":
                    self._drop()
                    return
                send("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                self._end_stream()
                return
            if tool_schema is not None:
                delta = {"type": "input_json_delta", "partial_json": piece}
            else:
                delta = {"type": "text_delta", "text": piece}
            send("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            sent += 1 if piece else 0
        send("content_block_stop", {"type": "content_block_stop", "index": 0})
        send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": plan.stop_sequence},
                "usage": {"output_tokens": plan.completion_tokens},
            },
        )
        send("message_stop", {"type": "message_stop"})
        self._end_stream()

    def _anthropic_tool_answer(
        self,
        record: RecordedRequest,
        body: dict[str, Any],
        model: str,
        messages: list[dict[str, Any]],
        calls: list[_ToolCallPlan],
        max_tokens: int,
    ) -> None:
        """Answer with tool_use blocks: content_block_start, input_json_delta pieces, content_block_stop."""
        preamble = _word_pieces(self.wire.tool_preamble) if self.wire.tool_preamble else []
        steps, cut, used = cut_tool_answer(preamble, calls, max_tokens)
        system = body.get("system")
        system_text = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system or [])
        prompt_tokens = count_tokens(system_text or "") + sum(
            count_tokens(m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])) + 4
            for m in messages
        )
        record.usage = (prompt_tokens, used)
        record.status = 200
        stop_reason = "max_tokens" if cut else "tool_use"
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        if not body.get("stream"):
            blocks: list[dict[str, Any]] = []
            text = "".join(step[1] for step in steps if step[0] == "text")
            if text:
                blocks.append({"type": "text", "text": text})
            for i in sorted({step[1] for step in steps if step[0] == "call"}):
                try:
                    value = json.loads(calls[i].arguments)
                except ValueError:
                    value = {}
                blocks.append({"type": "tool_use", "id": calls[i].id, "name": calls[i].name, "input": value})
            self._send_json(
                200,
                {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": blocks,
                    "stop_reason": stop_reason,
                    "stop_sequence": None,
                    "usage": {"input_tokens": prompt_tokens, "output_tokens": used},
                },
            )
            return

        def send(event: str, payload: dict[str, Any]) -> None:
            self._chunk(f"event: {event}\ndata: {json.dumps(payload)}\n\n")

        self._start_stream({"request-id": f"req_{uuid.uuid4().hex[:24]}"})
        send(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": model,
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": prompt_tokens, "output_tokens": 1},
                },
            },
        )
        index = -1
        text_open = False
        for step in steps:
            if step[0] == "text":
                if not text_open:
                    index += 1
                    text_open = True
                    send(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                    )
                send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": step[1]}},
                )
            elif step[0] == "call":
                if index >= 0:
                    send("content_block_stop", {"type": "content_block_stop", "index": index})
                text_open = False
                index += 1
                call = calls[step[1]]
                send(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
                    },
                )
                send(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": ""},
                    },
                )
            else:
                send(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": step[2]},
                    },
                )
        if index >= 0:
            send("content_block_stop", {"type": "content_block_stop", "index": index})
        send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": used},
            },
        )
        send("message_stop", {"type": "message_stop"})
        self._end_stream()


# ------------------------------------------------------- tool validation


def _openai_check_tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Validate `tools` and `tool_choice` as OpenAI does; the offered (name, parameters)."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools is None:
        if choice is not None:
            raise _openai_error(
                400,
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                param="tool_choice",
            )
        return []
    if not isinstance(tools, list):
        raise _openai_error(
            400, f"Invalid type for 'tools': expected an array, but got {type(tools).__name__} instead.", param="tools"
        )
    offered: list[tuple[str, dict[str, Any]]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _openai_error(
                400, f"Invalid value for 'tools[{i}].type': expected 'function'.", param=f"tools[{i}].type"
            )
        function = tool.get("function")
        if not isinstance(function, dict) or "name" not in function:
            raise _openai_error(
                400, f"Missing required parameter: 'tools[{i}].function.name'.", param=f"tools[{i}].function.name"
            )
        name = function["name"]
        if not isinstance(name, str) or len(name) > 64:
            raise _openai_error(
                400,
                f"Invalid 'tools[{i}].function.name': string too long. Expected a string with maximum length 64.",
                param=f"tools[{i}].function.name",
            )
        if not _TOOL_NAME.match(name):
            raise _openai_error(
                400,
                f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                param=f"tools[{i}].function.name",
            )
        for key in function:
            if key not in ("name", "description", "parameters", "strict"):
                raise _openai_error(400, f"Unrecognized request argument supplied: tools[{i}].function.{key}")
        if "description" in function and not isinstance(function["description"], str):
            raise _openai_error(
                400,
                f"Invalid type for 'tools[{i}].function.description': expected a string, but got {type(function['description']).__name__} instead.",
            )
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            raise _openai_error(
                400,
                f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"'.",
                param=f"tools[{i}].function.parameters",
            )
        offered.append((name, parameters))
    if (
        choice is not None
        and choice not in ("none", "auto", "required")
        and not (isinstance(choice, dict) and choice.get("type") == "function")
    ):
        raise _openai_error(400, "Invalid value for 'tool_choice'.", param="tool_choice")
    return offered


def _openai_check_tool_messages(messages: list[dict[str, Any]]) -> None:
    """Tool messages answer the calls of the assistant message before them, every one of them."""
    pending: list[str] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        content = m.get("content")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not call_id:
                raise _openai_error(
                    400,
                    "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
                    param=f"messages.[{i}].tool_call_id",
                )
            if call_id not in pending:
                raise _openai_error(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            pending.remove(call_id)
            if not isinstance(content, str):
                raise _openai_error(
                    400,
                    f"Invalid type for 'messages[{i}].content': expected a string.",
                    param=f"messages.[{i}].content",
                )
            continue
        if pending:
            raise _openai_error(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
                param="messages",
            )
        calls = m.get("tool_calls")
        if calls is not None:
            if role != "assistant":
                raise _openai_error(400, f"Unrecognized request argument supplied: messages[{i}].tool_calls")
            for j, call in enumerate(calls):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not call.get("id") or call.get("type") != "function":
                    raise _openai_error(400, f"Missing required parameter: 'messages[{i}].tool_calls[{j}].function'.")
                if not isinstance(function.get("arguments"), str):
                    raise _openai_error(
                        400,
                        f"Invalid type for 'messages[{i}].tool_calls[{j}].function.arguments': expected a string, but got {type(function.get('arguments')).__name__} instead.",
                    )
                pending.append(call["id"])
        elif content is None:
            raise _openai_error(
                400,
                f"Invalid value for 'messages[{i}].content': expected a string, got null.",
                param=f"messages.[{i}].content",
            )
    if pending:
        raise _openai_error(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
            param="messages",
        )


def _anthropic_check_tool_messages(messages: list[dict[str, Any]]) -> None:
    """Every tool_use block is answered by a tool_result block in the very next message, and only those."""
    previous_uses: list[str] = []
    for i, m in enumerate(messages):
        content = m.get("content")
        blocks = content if isinstance(content, list) else []
        results = [b.get("tool_use_id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        for j, block in enumerate(blocks):
            if not isinstance(block, dict) or block.get("type") not in (
                "text",
                "tool_use",
                "tool_result",
                "image",
                "document",
            ):
                raise _anthropic_error(
                    400,
                    "invalid_request_error",
                    f"messages.{i}.content.{j}: Input tag does not match any of the expected tags",
                )
            if block["type"] == "tool_result" and m.get("role") != "user":
                raise _anthropic_error(
                    400,
                    "invalid_request_error",
                    f"messages.{i}.content.{j}: tool_result blocks may only appear in user messages",
                )
            if block["type"] == "tool_use":
                if m.get("role") != "assistant":
                    raise _anthropic_error(
                        400,
                        "invalid_request_error",
                        f"messages.{i}.content.{j}: tool_use blocks may only appear in assistant messages",
                    )
                if not isinstance(block.get("input"), dict):
                    raise _anthropic_error(
                        400,
                        "invalid_request_error",
                        f"messages.{i}.content.{j}.tool_use.input: Input should be a valid dictionary",
                    )
                if not block.get("id") or not isinstance(block.get("name"), str):
                    raise _anthropic_error(
                        400, "invalid_request_error", f"messages.{i}.content.{j}.tool_use.id: Field required"
                    )
        unexpected = [r for r in results if r not in previous_uses]
        if unexpected:
            raise _anthropic_error(
                400,
                "invalid_request_error",
                f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: {unexpected[0]}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
            )
        missing = [u for u in previous_uses if u not in results]
        if missing:
            raise _anthropic_error(
                400,
                "invalid_request_error",
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
            )
        previous_uses = [b.get("id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]


def add_model(engine, wire: WireServer, kind: str) -> str:
    """Configure `wire` as a provider of `kind` ("openai" or "anthropic", key in the keyring); the model id."""
    if kind == "openai":
        engine.add_provider("wireai", "openai", wire.openai_base_url, ["gpt-wire"])
        engine.set_provider_key("wireai", wire.api_key)
        return "wireai:gpt-wire"
    engine.add_provider("wireant", "anthropic", wire.anthropic_base_url, ["claude-wire"])
    engine.set_provider_key("wireant", wire.api_key)
    return "wireant:claude-wire"
