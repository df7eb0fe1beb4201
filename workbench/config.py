"""Where the workbench keeps its files, and the user's settings.

`WORKBENCH_HOME` (or `--home`) overrides the default, the platform's user data
directory. Settings live in `config.json` in the home; secrets never do (they
live in the OS keyring, see `workbench.engine.secrets`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.engine.errors import InvalidRequest

CONFIG_FILE = "config.json"
PROVIDER_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"


def resolve_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The workbench home: `explicit`, else `$WORKBENCH_HOME`, else the user data dir."""
    if explicit:
        home = Path(explicit)
    elif os.environ.get("WORKBENCH_HOME"):
        home = Path(os.environ["WORKBENCH_HOME"])
    else:
        from platformdirs import user_data_dir

        home = Path(user_data_dir("workbench", appauthor=False))
    from workbench.engine.errors import StoreError

    try:
        home = home.expanduser().resolve()
        home.mkdir(parents=True, exist_ok=True)
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StoreError(f"Cannot use {home} as the workbench home: {reason}.") from None
    return home


class ProviderConfig(BaseModel):
    """A remote chat endpoint. Its API key, if any, is in the OS keyring."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["openai", "anthropic"]
    base_url: str
    models: list[str] = Field(default_factory=list)
    timeout_s: float = Field(120.0, gt=0, le=3600)

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        import httpx

        try:
            parsed = httpx.URL(url)
        except Exception:
            raise ValueError(f"{url!r} is not a URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"{url!r} must be an http:// or https:// URL with a host")
        if parsed.userinfo:
            raise ValueError("put credentials in the keyring (`workbench keys set-provider`), not in the URL")
        return url.rstrip("/")


class WorkbenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_model: str | None = None
    models_dirs: list[str] = Field(default_factory=list)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    n_ctx: int = Field(8192, ge=512, le=1_048_576)
    #: llama.cpp threads for local models; None = `default_threads()` (see inference/llama.py)
    n_threads: int | None = Field(None, ge=1, le=512)
    #: embedder for memory and knowledge: None = the packaged all-MiniLM-L6-v2,
    #: or PROVIDER:MODEL of a configured OpenAI-compatible provider
    embedder: str | None = Field(None, max_length=200)
    #: how long "conversation" memories live when remember() gives no TTL
    conversation_ttl_seconds: int = Field(7 * 86400, ge=60, le=10 * 365 * 86400)
    #: folders the file, shell, git and python tools are confined to (none: those tools refuse)
    workspace_roots: list[str] = Field(default_factory=list, max_length=50)
    #: let the HTTP tool reach private, loopback and link-local addresses
    allow_private_network: bool = False

    @field_validator("providers")
    @classmethod
    def _check_names(cls, providers: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        import re

        for name in providers:
            if not re.match(PROVIDER_NAME_PATTERN, name):
                raise ValueError(
                    f"provider name {name!r} must be lowercase letters, digits, '-' or '_' (max 32)"
                )
        return providers


def load_config(home: Path) -> WorkbenchConfig:
    """Read `config.json`; a missing file means defaults, a broken one a clear error."""
    path = home / CONFIG_FILE
    if not path.exists():
        return WorkbenchConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return WorkbenchConfig.model_validate(data)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{path} is not valid JSON (line {exc.lineno}): fix or delete it.") from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"{path} is not UTF-8 text: fix or delete it.") from None
    except OSError as exc:
        raise InvalidRequest(f"Cannot read {path}: {exc.strerror}.") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the top level"
        raise InvalidRequest(f"{path} is invalid at {where}: {first['msg']}.") from None


def save_config(home: Path, config: WorkbenchConfig) -> None:
    """Write `config.json` atomically (temp file, fsync, rename)."""
    path = home / CONFIG_FILE
    text = config.model_dump_json(indent=2, exclude_defaults=True)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".config-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
