"""Where the workbench keeps its files, and the user's settings.

`WORKBENCH_HOME` (or `--home`) overrides the default, the platform's user data
directory. Settings live in `config.json` in the home; secrets never do (they
live in the OS keyring, see `workbench.engine.secrets`).

The home holds memories, sessions, audits and stored answers: it is the
owner's alone (folder 700, files 600). `resolve_home` creates it so and
tightens an existing one; `secure_home` tightens what is inside it when an
engine opens it, and `make_private` is for a file just created in it.
"""

from __future__ import annotations

import json
import os
import stat
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
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (OSError, RuntimeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StoreError(f"Cannot use {home} as the workbench home: {reason}.") from None
    make_private(home)
    return home


#: folders of the home the workbench creates; made private up front so what lands in them is too
PRIVATE_FOLDERS = ("indexes", "logs")
#: what else in the home is the workbench's (a home may be a folder that holds other things:
#: those are left as they are, and so is `models/`, which holds only model files)
OWN_FILES = ("config.json", "mcp.json", "server.json")
OWN_FOLDERS = (*PRIVATE_FOLDERS, "templates")


def make_private(path: str | os.PathLike[str]) -> None:
    """Take group and other permissions off `path` (600 for a file, 700 for a folder).

    Symlinks are left alone (chmod would follow them out of the home), and a
    failure is ignored: the file stays as usable as it was.
    """
    try:
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            os.chmod(path, stat.S_IMODE(mode) & 0o700)
    except OSError:
        pass


def private_opener(path: str, flags: int) -> int:
    """An `open(..., opener=)` that creates files 600."""
    return os.open(path, flags, 0o600)


def secure_home(home: Path) -> None:
    """The home and the workbench's files in it private to the owner (symlinks not followed).

    Its own folders are created 700 up front, so that what lands in them later is private too.
    """
    make_private(home)
    for name in PRIVATE_FOLDERS:
        try:
            (home / name).mkdir(mode=0o700, exist_ok=True)
        except OSError:
            pass  # e.g. a file in the way: whoever needs the folder says so
    try:
        entries = list(os.scandir(home))
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink():
            continue
        if entry.name in OWN_FOLDERS and entry.is_dir():
            make_private(entry.path)
            for folder, dirs, files in os.walk(entry.path, followlinks=False):
                for name in dirs + files:
                    make_private(os.path.join(folder, name))
        elif entry.name in OWN_FILES or entry.name.startswith(("workbench.", ".config-", ".mcp.")):
            make_private(entry.path)


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
                raise ValueError(f"provider name {name!r} must be lowercase letters, digits, '-' or '_' (max 32)")
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
