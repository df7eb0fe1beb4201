"""`Idempotency-Key` on POST requests: a retry gets the first answer, never a second effect.

`IdempotencyMiddleware` is a pure-ASGI layer inside `SecurityMiddleware` (so Host checks, request
ids and body limits come first) and in front of every route, so it covers every POST: Chrysalis
creates, `/v1/remember`, native creates, Zahara `/execute` and `/run`, Platform `/api/v1/execute`...

* A POST carrying `Idempotency-Key` (1 to 255 printable ASCII characters, else 400) and a valid API
  key is recorded under (API key id, Idempotency-Key) in DuckDB with a fingerprint: a sha256 of the
  method, path, query and body (JSON bodies canonicalised, so key order does not matter).
* The same key and fingerprint after the first request completed: the stored status, body and
  content type are replayed with `Idempotent-Replayed: true`; the route does not run again.
* The same key while the first request is still running: 409 (`Retry-After: 1`).
* The same key with another method, path or body: 422 (the key belongs to the first request).
* Not stored (the record is dropped, so a retry runs the route again): 5xx answers, 401/403/429
  (about the caller's credentials or rate, not the request), requests that raise or are cancelled,
  answers over `ServerSettings.idempotency_max_body_bytes` (256 KiB: a retrieval's large answer is
  cheaper to compute again than to keep), and **streaming responses (`text/event-stream`), which pass
  through untouched** (a concurrent duplicate of a running stream still gets 409).
* Stored answers take at most `idempotency_max_total_bytes` (32 MiB) together: storing one more
  drops the oldest first (a retry of a dropped one runs the route again).
* Records expire 24 hours after the first request. An in-flight record left by a server that
  stopped (another middleware instance) is stale and taken over.
* Requests without the header, without a valid API key (the route answers 401 itself), and other
  methods pass through unchanged. Replays count against the key's rate limit.

Errors are in the shape of the path's API family (`error_body`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Send

from workbench.server.security import _send_json, error_body, presented_key

if TYPE_CHECKING:
    from workbench.engine.engine import Engine

log = logging.getLogger("workbench.server")

HEADER = "idempotency-key"
TTL = timedelta(hours=24)
VALID_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
#: answers about the caller's credentials or rate, not about the request: never replayed
NOT_STORED = frozenset({401, 403, 429})


def _now() -> datetime:
    return datetime.now(UTC)


def fingerprint(method: str, path: str, query: bytes, body: bytes, content_type: str) -> str:
    """sha256 of what makes two requests "the same": method, path, query and body (canonical JSON)."""
    canonical = body
    if "json" in content_type.lower() and body:
        try:
            canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        except (ValueError, UnicodeDecodeError):
            canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


# ------------------------------------------------------------------ stores


class Claim:
    """The outcome of claiming a key: "new", "replay", "in_flight" or "mismatch"."""

    def __init__(
        self,
        outcome: str,
        status: int | None = None,
        content_type: str | None = None,
        body: bytes | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.outcome, self.status, self.content_type, self.body = outcome, status, content_type, body
        self.method, self.path = method, path


class DuckDBStore:
    """Records in the engine's DuckDB (`idempotency_keys`), so they survive a restart."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._last_purge = 0.0

    def claim(self, key_id: str, key: str, print_: str, method: str, path: str, owner: str) -> Claim:
        now = _now()
        self._purge(now)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT fingerprint, method, path, state, owner, status, content_type, body, expires_at > ? "
                "FROM idempotency_keys WHERE api_key_id = ? AND key = ?",
                [now, key_id, key],
            ).fetchone()
            if row is not None and row[8]:
                if row[0] != print_:
                    return Claim("mismatch", method=row[1], path=row[2])
                if row[3] == "done":
                    return Claim("replay", status=row[5], content_type=row[6], body=bytes(row[7] or b""))
                if row[4] == owner:
                    return Claim("in_flight")
            if row is None:
                conn.execute(
                    "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?, 'in_flight', ?, NULL, NULL, NULL, ?, ?)",
                    [key_id, key, print_, method, path, owner, now, now + TTL],
                )
            else:  # expired, or stale (left in flight by a server that stopped): start over
                conn.execute(
                    "UPDATE idempotency_keys SET fingerprint = ?, method = ?, path = ?, state = 'in_flight', "
                    "owner = ?, status = NULL, content_type = NULL, body = NULL, created_at = ?, expires_at = ? "
                    "WHERE api_key_id = ? AND key = ?",
                    [print_, method, path, owner, now, now + TTL, key_id, key],
                )
        return Claim("new")

    def complete(
        self, key_id: str, key: str, owner: str, status: int, content_type: str, body: bytes, max_total: int
    ) -> None:
        with self.db.transaction() as conn:
            (total,) = conn.execute(
                "SELECT coalesce(sum(octet_length(body)), 0) FROM idempotency_keys WHERE state = 'done'"
            ).fetchone()
            if total + len(body) > max_total:
                stored = conn.execute(
                    "SELECT api_key_id, key, octet_length(body) FROM idempotency_keys "
                    "WHERE state = 'done' ORDER BY created_at DESC, api_key_id, key"
                ).fetchall()
                for gone in _over_budget([(r[0], r[1], r[2] or 0) for r in stored], len(body), max_total):
                    conn.execute("DELETE FROM idempotency_keys WHERE api_key_id = ? AND key = ?", list(gone))
            conn.execute(
                "UPDATE idempotency_keys SET state = 'done', status = ?, content_type = ?, body = ? "
                "WHERE api_key_id = ? AND key = ? AND owner = ? AND state = 'in_flight'",
                [status, content_type, body, key_id, key, owner],
            )

    def release(self, key_id: str, key: str, owner: str) -> None:
        self.db.execute(
            "DELETE FROM idempotency_keys WHERE api_key_id = ? AND key = ? AND owner = ? AND state = 'in_flight'",
            [key_id, key, owner],
        )

    def _purge(self, now: datetime) -> None:
        if time.monotonic() - self._last_purge < 60:
            return
        self._last_purge = time.monotonic()
        self.db.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", [now])


class MemoryStore:
    """The same records in memory, for an engine without a local database (lost on restart)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def claim(self, key_id: str, key: str, print_: str, method: str, path: str, owner: str) -> Claim:
        now = _now()
        with self._lock:
            row = self._rows.get((key_id, key))
            if row is not None and row["expires_at"] > now:
                if row["fingerprint"] != print_:
                    return Claim("mismatch", method=row["method"], path=row["path"])
                if row["state"] == "done":
                    return Claim("replay", status=row["status"], content_type=row["content_type"], body=row["body"])
                return Claim("in_flight")
            self._rows[(key_id, key)] = {
                "fingerprint": print_,
                "method": method,
                "path": path,
                "state": "in_flight",
                "owner": owner,
                "expires_at": now + TTL,
            }
        return Claim("new")

    def complete(
        self, key_id: str, key: str, owner: str, status: int, content_type: str, body: bytes, max_total: int
    ) -> None:
        with self._lock:
            stored = sorted(
                ((k, r) for k, r in self._rows.items() if r["state"] == "done"),
                key=lambda item: item[1]["expires_at"],
                reverse=True,
            )
            for gone in _over_budget([(k[0], k[1], len(r["body"] or b"")) for k, r in stored], len(body), max_total):
                del self._rows[gone]
            row = self._rows.get((key_id, key))
            if row is not None and row["owner"] == owner:
                row.update(state="done", status=status, content_type=content_type, body=body)

    def release(self, key_id: str, key: str, owner: str) -> None:
        with self._lock:
            row = self._rows.get((key_id, key))
            if row is not None and row["owner"] == owner and row["state"] == "in_flight":
                del self._rows[(key_id, key)]


def _over_budget(stored: list[tuple[str, str, int]], adding: int, max_total: int) -> list[tuple[str, str]]:
    """Which stored answers (newest first: key id, key, size) to drop so that `adding` more bytes fit."""
    kept = adding
    for index, (_, _, size) in enumerate(stored):
        if kept + size > max_total:  # this one and every older one go
            return [(key_id, key) for key_id, key, _ in stored[index:]]
        kept += size
    return []


# -------------------------------------------------------------- middleware


class IdempotencyMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app
        #: this server instance: in-flight records of any other instance are stale
        self.owner = uuid.uuid4().hex
        self._store: Any = None

    def store(self, engine: Engine) -> Any:
        if self._store is None:
            db = getattr(engine, "db", None)
            self._store = DuckDBStore(db) if db is not None and hasattr(db, "transaction") else MemoryStore()
        return self._store

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        values = [v for k, v in scope.get("headers", []) if k.lower() == HEADER.encode()]
        if not values:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        state = scope.setdefault("state", {})
        request_id = state.get("request_id", "")

        async def refuse(
            status: int, code: str, message: str, headers: dict[str, str] | None = None, details: Any = None
        ) -> None:
            body = error_body(path, status, code, message, request_id, details, state.get("started"))
            await _send_json(send, status, body, headers or {})

        key = values[0].decode("latin-1")
        if len(values) > 1 or not VALID_KEY.match(key) or not key.strip():
            await refuse(
                400,
                "INVALID_IDEMPOTENCY_KEY",
                "Idempotency-Key must be sent once, as 1 to 255 printable ASCII characters.",
            )
            return

        app_state = scope["app"].state
        engine = app_state.engine
        key_id = await run_in_threadpool(_key_id, engine, Headers(scope=scope))
        if key_id is None:  # no valid API key: the route refuses the request itself
            await self.app(scope, receive, send)
            return

        body, disconnected = await _read_body(receive)
        if disconnected:
            return
        headers = Headers(scope=scope)
        print_ = fingerprint("POST", path, scope.get("query_string", b""), body, headers.get("content-type", ""))
        store = self.store(engine)
        claim = await run_in_threadpool(store.claim, key_id, key, print_, "POST", path, self.owner)

        if claim.outcome == "mismatch":
            first = f"POST {claim.path}" if claim.path != path else "another body"
            await refuse(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                f"This Idempotency-Key was used for a different request ({first}); use a new key for a new request.",
            )
            return
        if claim.outcome == "in_flight":
            await refuse(
                409,
                "IDEMPOTENCY_KEY_IN_USE",
                "A request with this Idempotency-Key is still being processed; retry after it finishes.",
                headers={"retry-after": "1"},
            )
            return
        if claim.outcome == "replay":
            allowed, rate_headers = app_state.rate_limiter.hit(key_id)
            state["rate_headers"] = rate_headers
            if not allowed:
                retry = max(rate_headers["X-RateLimit-Reset"] - int(time.time()), 1)
                await refuse(
                    429,
                    "RATE_LIMIT_EXCEEDED",
                    f"Rate limit exceeded. Retry after {retry} seconds",
                    headers={"retry-after": str(retry)},
                    details={"limit": rate_headers["X-RateLimit-Limit"], "window": "1m", "retry_after": retry},
                )
                return
            data = claim.body or b""
            raw = [
                (b"content-type", (claim.content_type or "application/json").encode("latin-1")),
                (b"content-length", str(len(data)).encode()),
                (b"idempotent-replayed", b"true"),
            ]
            await send({"type": "http.response.start", "status": claim.status, "headers": raw})
            await send({"type": "http.response.body", "body": data})
            return

        # a new request: run it, pass its answer through as it comes, and keep a copy to replay
        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        settings = app_state.settings
        max_body = min(settings.idempotency_max_body_bytes, settings.idempotency_max_total_bytes)
        answer: dict[str, Any] = {
            "status": None,
            "content_type": "",
            "chunks": [],
            "size": 0,
            "storable": False,
            "complete": False,
        }

        settled = False

        async def settle() -> None:
            nonlocal settled
            settled = True
            if answer["storable"] and answer["complete"]:
                try:
                    await run_in_threadpool(
                        store.complete,
                        key_id,
                        key,
                        self.owner,
                        answer["status"],
                        answer["content_type"],
                        b"".join(answer["chunks"]),
                        settings.idempotency_max_total_bytes,
                    )
                    return
                except Exception:  # not kept: a retry runs again, rather than meeting "in flight" for a day
                    log.exception("could not store the answer of an idempotent request")
            await run_in_threadpool(store.release, key_id, key, self.owner)

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                content_type = Headers(raw=message.get("headers", [])).get("content-type", "")
                answer.update(
                    status=status,
                    content_type=content_type,
                    storable=status < 500
                    and status not in NOT_STORED
                    and not content_type.lower().startswith("text/event-stream"),
                )
            elif message["type"] == "http.response.body":
                if answer["storable"]:
                    chunk = message.get("body", b"")
                    answer["size"] += len(chunk)
                    if answer["size"] > max_body:
                        answer.update(storable=False, chunks=[])
                    else:
                        answer["chunks"].append(chunk)
                if not message.get("more_body", False) and not settled:
                    answer["complete"] = True
                    # Before the last byte goes out: a client that retries the moment it has the answer
                    # finds it stored (or the key free again), never still "in flight" (409).
                    await settle()
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            if not settled:
                store.release(key_id, key, self.owner)  # quick, and must run even when cancelled
            raise
        if not settled:
            await settle()


def _key_id(engine: Engine, headers: Headers) -> str | None:
    """The id of the request's API key, or None when it has no valid one."""

    class _Request:  # presented_key reads only `.headers`
        pass

    request = _Request()
    request.headers = headers  # type: ignore[attr-defined]
    try:
        key = presented_key(request)
    except Exception:
        return None
    if not key:
        return None
    info = engine.api_keys.verify(key)
    return info.id if info is not None else None


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", True
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks), False
