"""The server's security layer: one code path for every route.

* `SecurityMiddleware` (pure ASGI, so streaming responses pass untouched):
  request ids, Host and Origin checks (DNS rebinding, cross-site requests),
  keys in query strings refused, body size limits, rate-limit headers.
* `require(scope)`: a FastAPI dependency that authenticates the API key
  (`Authorization: Bearer` or `X-API-Key`, compared in constant time by the
  key store), checks the scope, and applies the per-key rate limit;
  `require_also(request, scope, reason)` adds a scope that the body calls for.
* `error_response`: errors in the shape of the API family a path belongs to
  (OpenAI, Chrysalis envelope, Zahara, AI Agents Platform); keys and secrets
  never appear in them.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import Message, Receive, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
KEY_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token", "x-api-key"})
#: the `meta.version` of Chrysalis envelopes (the seed shows "v1")
VERSION = "v1"


@dataclass
class ServerSettings:
    #: every port this server listens on (the Host header must name one of them)
    ports: set[int] = field(default_factory=lambda: {8765})
    #: extra host names accepted when serving beyond loopback (--allow-remote)
    extra_hosts: set[str] = field(default_factory=set)
    rate_limit_per_minute: int = 100
    #: the server's own local-session key ids (the user's TUI and CLI on this machine): not rate limited,
    #: and the only keys that may ingest paths outside the workspace roots
    local_session_keys: set[str] = field(default_factory=set)
    max_body_bytes: int = 8 * 1024 * 1024
    #: `Idempotency-Key`: answers larger than this are not kept for replay (the record is dropped) ...
    idempotency_max_body_bytes: int = 256 * 1024
    #: ... and all kept answers together take at most this much (the oldest are dropped first)
    idempotency_max_total_bytes: int = 32 * 1024 * 1024


class APIError(Exception):
    """An error answered in the shape of the path's API family."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}


# ------------------------------------------------------------------ errors


def family(path: str) -> str:
    if path.startswith("/api/v1/execute"):
        return "platform"
    if path.startswith("/api/v1/"):
        return "chrysalis"
    if path in ("/execute", "/run"):
        return "zahara"
    if path.startswith("/v1/"):
        return "openai"
    return "workbench"


def error_body(
    path: str, status: int, code: str, message: str, request_id: str, details: Any = None, started: float | None = None
) -> dict[str, Any]:
    kind = family(path)
    if kind == "chrysalis":
        code = chrysalis_code(status, code)
        envelope = meta(request_id)
        error = {
            "code": code,
            "message": message,
            "category": code.split(".")[0],
            "details": details,
            "request_id": request_id,
            "timestamp": envelope["timestamp"],
        }
        if isinstance(details, dict) and "retry_after" in details:
            error["retry_after"] = details["retry_after"]
        return {"success": False, "error": error, "meta": envelope}
    if kind == "zahara":
        duration = round((time.perf_counter() - started) * 1000, 3) if started else 0.0
        return {
            "error": message,
            "code": code,
            "request_id": request_id,
            "duration_ms": duration,
            "service": "workbench",
        }
    if kind == "openai":
        return {
            "error": {"message": message, "type": _openai_type(status), "code": code, "param": None},
            "request_id": request_id,
        }
    return {"error": {"code": code, "message": message, "details": details}, "request_id": request_id}


#: shared error codes -> Chrysalis's `CATEGORY.SPECIFIC` codes (its ErrorCode taxonomy)
CHRYSALIS_CODES = {
    "INVALID_REQUEST": "VALIDATION_ERROR",
    "CONTEXT_OVERFLOW": "VALIDATION_ERROR",
    "NOT_FOUND": "NOT_FOUND_ERROR.RESOURCE_NOT_FOUND",
    "MODEL_NOT_FOUND": "NOT_FOUND_ERROR.RESOURCE_NOT_FOUND",
    "ENDPOINT_NOT_FOUND": "NOT_FOUND_ERROR.ENDPOINT_NOT_FOUND",
    "RATE_LIMIT_EXCEEDED": "RATE_LIMIT_ERROR.TOO_MANY_REQUESTS",
    "INTERNAL_ERROR": "SERVICE_ERROR.INTERNAL_ERROR",
    "MODEL_LOAD_ERROR": "SERVICE_ERROR.INTERNAL_ERROR",
    "MODEL_BUSY": "SERVICE_ERROR.SERVICE_UNAVAILABLE",
    "STORE_LOCKED": "SERVICE_ERROR.SERVICE_UNAVAILABLE",
    "PROVIDER_ERROR": "UPSTREAM_ERROR.SERVICE_UNAVAILABLE",
    "PROVIDER_AUTH_ERROR": "UPSTREAM_ERROR.SERVICE_UNAVAILABLE",
    "PROVIDER_UNREACHABLE": "UPSTREAM_ERROR.SERVICE_UNAVAILABLE",
}
_CATEGORIES = {
    400: "VALIDATION_ERROR",
    413: "VALIDATION_ERROR",
    422: "VALIDATION_ERROR",
    401: "AUTHENTICATION_ERROR",
    403: "AUTHORIZATION_ERROR",
    421: "AUTHORIZATION_ERROR",
    404: "NOT_FOUND_ERROR",
    405: "NOT_FOUND_ERROR",
    409: "CONFLICT_ERROR",
    429: "RATE_LIMIT_ERROR",
    502: "UPSTREAM_ERROR",
    504: "UPSTREAM_ERROR",
}


def chrysalis_code(status: int, code: str) -> str:
    """A code in Chrysalis's form: dotted codes pass; others map by name, else by status category."""
    if "." in code or code in _CATEGORIES.values():
        return code
    if code in CHRYSALIS_CODES:
        return CHRYSALIS_CODES[code]
    return f"{_CATEGORIES.get(status, 'SERVICE_ERROR')}.{code}"


def _openai_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        409: "conflict_error",
        413: "invalid_request_error",
        422: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "api_error")


def meta(request_id: str) -> dict[str, Any]:
    return {"request_id": request_id, "timestamp": datetime.now(UTC).isoformat(), "version": VERSION}


def error_response(request: Any, error: APIError) -> Any:
    from fastapi.responses import JSONResponse

    request_id = getattr(request.state, "request_id", None) or new_request_id()
    started = getattr(request.state, "started", None)
    body = error_body(request.url.path, error.status, error.code, error.message, request_id, error.details, started)
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex[:20]}"


# ------------------------------------------------------------- middleware


class SecurityMiddleware:
    """Checks every HTTP request before any route sees it."""

    def __init__(self, app: Any, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]
        headers = dict(raw_headers)
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = time.perf_counter()
        path = scope.get("path", "")

        async def refuse(status: int, code: str, message: str, details: Any = None) -> None:
            await _send_json(
                send,
                status,
                error_body(path, status, code, message, request_id, details, state["started"]),
                {"x-request-id": request_id},
            )

        problem = self._check(scope, headers, [v for k, v in raw_headers if k == "origin"])
        if problem is not None:
            await refuse(*problem)
            return

        limit = self.settings.max_body_bytes
        too_large = f"The request body is over {limit:,} bytes."
        if _is_json(headers) and scope.get("method") in ("POST", "PUT", "PATCH", "DELETE"):
            # JSON bodies are read here, whole (they are bounded), so that text no engine part can store is
            # refused before any route runs (a tool would otherwise run and then fail to be audited).
            body, outcome = await _read_limited(receive, limit)
            if outcome == "disconnected":
                return
            if outcome == "too_large":  # a chunked body: no Content-Length to refuse it by up front
                await refuse(413, "REQUEST_TOO_LARGE", too_large)
                return
            where = _unpaired_surrogate_in_json(body)
            if where is not None:
                issue = "is not valid Unicode text (it holds an unpaired surrogate such as \\ud800)"
                await refuse(
                    400, "VALIDATION_ERROR", f"Invalid request: {where}: {issue}.", {"field": where, "issue": issue}
                )
                return
            receive = _replay(body, receive)

        received = 0
        over_limit = False
        answered = False

        async def limited_receive() -> Message:
            nonlocal received, over_limit
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over_limit = True
                    raise _BodyTooLarge()
            return message

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal answered
            if over_limit:  # whatever the route made of the cut-off body (FastAPI: 400), the answer is 413
                if not answered:
                    answered = True
                    await refuse(413, "REQUEST_TOO_LARGE", too_large)
                return
            if message["type"] == "http.response.start":
                answered = True
                extra = [(b"x-request-id", request_id.encode())]
                for name, value in (state.get("rate_headers") or {}).items():
                    extra.append((name.lower().encode(), str(value).encode()))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not answered:
                answered = True
                await refuse(413, "REQUEST_TOO_LARGE", too_large)

    def _check(self, scope: dict[str, Any], headers: dict[str, str], origins: list[str]) -> tuple[int, str, str] | None:
        host = headers.get("host", "")
        if not self._host_allowed(host):
            return 421, "INVALID_HOST", "The Host header must name this server (a loopback name and its port)."
        # Every Origin header is checked, not just the last one a dict keeps; and only one is accepted.
        if any(not self._origin_allowed(origin) for origin in origins):
            return 403, "FORBIDDEN_ORIGIN", "Cross-origin requests are refused."
        if len(origins) > 1:
            return 400, "DUPLICATE_ORIGIN", "Send at most one Origin header."
        query = scope.get("query_string", b"").decode("latin-1")
        if query and any(name.lower() in KEY_PARAMS for name, _ in parse_qsl(query, keep_blank_values=True)):
            return 400, "KEY_IN_URL", "API keys in URLs are refused (they end up in logs): send an X-API-Key header."
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return 400, "INVALID_REQUEST", "Content-Length must be a number."
            if int(length) > self.settings.max_body_bytes:
                return 413, "REQUEST_TOO_LARGE", f"The request body is over {self.settings.max_body_bytes:,} bytes."
        return None

    def _names(self) -> set[str]:
        return set(LOOPBACK_NAMES) | {h.lower() for h in self.settings.extra_hosts}

    def _host_allowed(self, host: str) -> bool:
        name, port = _split_host(host)
        return name is not None and name in self._names() and port in self.settings.ports

    def _origin_allowed(self, origin: str) -> bool:
        if origin == "null":
            return False
        match = re.match(r"^https?://(.+)$", origin)
        return match is not None and self._host_allowed(match.group(1))


class _BodyTooLarge(Exception):
    pass


def _is_json(headers: dict[str, str]) -> bool:
    """Whether the routes will parse the body as JSON (FastAPI does so without a Content-Type too)."""
    content_type = headers.get("content-type", "").lower()
    return not content_type or "json" in content_type


async def _read_limited(receive: Receive, limit: int) -> tuple[bytes, str]:
    """The whole body and "ok", or "too_large" past `limit` bytes, or "disconnected"."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", "disconnected"
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", "too_large"
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), "ok"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands out `body` once, then waits on the real one (for the disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


#: JSON's escaped surrogates (\ud800..\udfff), and raw UTF-8-encoded ones (which `json.loads` of bytes lets
#: through as "surrogatepass"): only bodies with one of these are parsed here
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]")


def _unpaired_surrogate_in_json(body: bytes) -> str | None:
    """Where the JSON `body` holds an unpaired surrogate (e.g. "metadata.tags.0"), or None."""
    if not (_ESCAPED_SURROGATE.search(body) or _RAW_SURROGATE.search(body)):
        return None
    from workbench.engine.schemas import unpaired_surrogate

    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # the route reports malformed JSON in its own words
        return None
    return unpaired_surrogate(parsed)


def _split_host(host: str) -> tuple[str | None, int | None]:
    host = host.strip().lower()
    match = re.match(r"^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$", host)
    if not match:
        return None, None
    port = int(match.group(2)) if match.group(2) else 80
    return match.group(1), port


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


# ----------------------------------------------------------- rate limits


class RateLimiter:
    """A fixed one-minute window per key (limit, remaining, reset like the seed's headers)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._windows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: str) -> tuple[bool, dict[str, int]]:
        now = int(time.time())
        window = now - now % 60
        with self._lock:
            start, count = self._windows.get(key_id, (window, 0))
            if start != window:
                start, count = window, 0
            allowed = count < self.per_minute
            if allowed:
                count += 1
            self._windows[key_id] = (start, count)
        headers = {
            "X-RateLimit-Limit": self.per_minute,
            "X-RateLimit-Remaining": max(self.per_minute - count, 0),
            "X-RateLimit-Reset": start + 60,
        }
        return allowed, headers


# ------------------------------------------------------------------ auth


def presented_key(request: Any) -> str | None:
    """The key from `Authorization: Bearer` or `X-API-Key` (one path for both)."""
    bearer = request.headers.get("authorization", "")
    header_key = request.headers.get("x-api-key")
    from_bearer = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
    if from_bearer and header_key and from_bearer != header_key.strip():
        raise APIError(
            401, "AUTHENTICATION_ERROR.CONFLICTING_KEYS", "Authorization and X-API-Key carry different keys; send one."
        )
    return from_bearer or (header_key.strip() if header_key else None)


def require(scope: str) -> Callable[..., Any]:
    """A dependency: the request's key must be valid, active, within its rate limit and grant `scope`."""

    def check(request: Request) -> Any:
        key = presented_key(request)
        if not key:
            raise APIError(
                401,
                "AUTHENTICATION_ERROR.MISSING_AUTHORIZATION",
                "An API key is required: send Authorization: Bearer KEY or X-API-Key: KEY.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        app_state = request.app.state
        info = app_state.engine.api_keys.verify(key)
        if info is None:
            raise APIError(
                401,
                "AUTHENTICATION_ERROR.INVALID_TOKEN",
                "The API key is invalid or revoked.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if info.id in app_state.settings.local_session_keys:
            allowed, headers = True, {}
        else:
            allowed, headers = app_state.rate_limiter.hit(info.id)
            request.scope.setdefault("state", {})["rate_headers"] = headers
        if not allowed:
            retry = max(headers["X-RateLimit-Reset"] - int(time.time()), 1)
            raise APIError(
                429,
                "RATE_LIMIT_EXCEEDED",
                f"Rate limit exceeded. Retry after {retry} seconds",
                details={"limit": headers["X-RateLimit-Limit"], "window": "1m", "retry_after": retry},
                headers={"Retry-After": str(retry), **{k: str(v) for k, v in headers.items()}},
            )
        if not info.allows(scope):
            raise APIError(403, "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE", f"This key lacks the scope {scope}.")
        request.state.api_key = info
        return info

    check.__name__ = f"require_{scope.replace(':', '_').replace('*', 'all')}"
    return check


def require_also(request: Any, scope: str, reason: str) -> None:
    """For a route where the body decides: the key `require` accepted must also grant `scope`.

    `reason` says what in the request needs it (one clause, e.g. "changing a provider's endpoint").
    """
    info = getattr(request.state, "api_key", None)
    if info is None or not info.allows(scope):
        raise APIError(
            403, "AUTHORIZATION_ERROR.INSUFFICIENT_SCOPE", f"This key lacks the scope {scope}, which {reason} needs."
        )
