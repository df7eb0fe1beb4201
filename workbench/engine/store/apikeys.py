"""API keys of the local server: created once, shown once, stored hashed, revocable at once.

A key reads `wbk_<id>.<secret>`: the id finds the row, the secret is checked
against its sha256 with a constant-time comparison. Secrets are 256 random
bits, so a plain (unsalted, fast) hash is enough: there is nothing to guess.
Scopes are `action:resource` patterns (`read:*`, `write:agents`,
`execute:tools`, or `*` for everything).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from workbench.engine.errors import InvalidRequest, NotFound
from workbench.engine.store.db import Database, utcnow

KEY_PREFIX = "wbk_"
_KEY = re.compile(r"^wbk_([0-9a-f]{16})\.([A-Za-z0-9_-]{20,128})$")
SCOPE = re.compile(r"^(\*|(read|write|execute|admin):(\*|[a-z][a-z0-9_-]{0,31}))$")
DEFAULT_SCOPES = ["read:*", "write:*", "execute:*"]


class APIKeyInfo(BaseModel):
    """A key as listed: never its secret."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        """Whether this key grants `scope` (e.g. "read:memory")."""
        return any(granted == "*" or fnmatch.fnmatchcase(scope, granted) for granted in self.scopes)


def check_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise InvalidRequest("A key needs at least one scope, e.g. read:* or execute:tools.")
    bad = [s for s in scopes if not SCOPE.match(s)]
    if bad:
        raise InvalidRequest(
            f"Invalid scope {bad[0]!r}: use ACTION:RESOURCE with ACTION read, write, execute or admin "
            "(e.g. read:*, write:agents, execute:tools), or * for everything."
        )
    return sorted(set(scopes))


class APIKeys:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._used: dict[str, datetime] = {}

    def create(self, name: str, scopes: list[str] | None = None) -> tuple[APIKeyInfo, str]:
        """A new key: its record and the full key, which is never shown again."""
        name = " ".join(name.split())
        if not 1 <= len(name) <= 100:
            raise InvalidRequest("A key needs a name of 1 to 100 characters.")
        scopes = check_scopes(list(scopes) if scopes is not None else DEFAULT_SCOPES)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        self.db.execute(
            "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL, NULL)",
            [key_id, name, _hash(secret), json.dumps(scopes), now],
        )
        return APIKeyInfo(id=key_id, name=name, scopes=scopes, created_at=now), f"{KEY_PREFIX}{key_id}.{secret}"

    def list(self, include_revoked: bool = False) -> list[APIKeyInfo]:
        sql = "SELECT id, name, scopes, created_at, revoked_at, last_used_at FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        return [_info(row) for row in self.db.fetchall(sql + " ORDER BY created_at")]

    def any_active(self) -> bool:
        return self.db.fetchone("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1") is not None

    def revoke(self, key_id: str) -> APIKeyInfo:
        key_id = key_id.removeprefix(KEY_PREFIX).split(".", 1)[0]
        row = self.db.fetchone("SELECT revoked_at FROM api_keys WHERE id = ?", [key_id])
        if row is None:
            raise NotFound(f"No API key {key_id!r}; `workbench keys list` shows them.")
        if row[0] is None:
            self.db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [utcnow(), key_id])
        return self.get(key_id)

    def get(self, key_id: str) -> APIKeyInfo:
        row = self.db.fetchone(
            "SELECT id, name, scopes, created_at, revoked_at, last_used_at FROM api_keys WHERE id = ?", [key_id]
        )
        if row is None:
            raise NotFound(f"No API key {key_id!r}.")
        return _info(row)

    def verify(self, presented: str) -> APIKeyInfo | None:
        """The active key `presented` is, or None (malformed, unknown, wrong secret or revoked)."""
        match = _KEY.match(presented or "")
        if match is None:
            return None
        key_id, secret = match.groups()
        row = self.db.fetchone(
            "SELECT id, name, scopes, created_at, revoked_at, last_used_at, secret_hash FROM api_keys WHERE id = ?",
            [key_id],
        )
        # Compare even when the id is unknown, so timing tells nothing about ids.
        stored = row[6] if row is not None else "0" * 64
        if not hmac.compare_digest(_hash(secret), stored) or row is None or row[4] is not None:
            return None
        return _info(row[:6])


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _info(row: Any) -> APIKeyInfo:
    return APIKeyInfo(
        id=row[0], name=row[1], scopes=json.loads(row[2]), created_at=row[3], revoked_at=row[4], last_used_at=row[5]
    )
