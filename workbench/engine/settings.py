"""The settings the engine changes: providers, workspace roots, the default model.

They live in `config.json` (see `workbench.engine.config`); provider keys live
in the OS keyring (`workbench.engine.secrets`). Every change is validated as a
whole config, saved atomically, and handed to the model registry, which reads
the providers, models folders and default model from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.engine import secrets
from workbench.engine.config import ProviderConfig, WorkbenchConfig, save_config
from workbench.engine.errors import InvalidRequest, NotFound, SecretsError
from workbench.engine.inference.registry import ModelRegistry
from workbench.engine.schemas import ModelInfo, ProviderInfo


class Settings:
    """The current config of one home, and the changes a user may make to it."""

    def __init__(self, home: Path, config: WorkbenchConfig, models: ModelRegistry) -> None:
        self.home = home
        self.config = config
        self.models = models

    def save(self, **changes: Any) -> WorkbenchConfig:
        """Apply `changes` (top-level config fields), validate, save, and hand the result to the registry."""
        config = validate_config(self.config.model_dump() | changes)
        save_config(self.home, config)
        self.config = config
        self.models.config = config
        return config

    # ------------------------------------------------------------- providers

    def providers(self) -> list[ProviderInfo]:
        """Configured remote providers and whether a key is stored for each."""
        return [
            ProviderInfo(name=name, kind=p.kind, base_url=p.base_url, models=p.models, has_key=has_key(name))
            for name, p in sorted(self.config.providers.items())
        ]

    def add_provider(self, name: str, kind: str, base_url: str, models: list[str]) -> ProviderInfo:
        """Add or replace a provider; a new `base_url` deletes the stored key (it was meant for the old one)."""
        providers = dict(self.config.providers)
        previous = providers.get(name)
        providers[name] = validate_provider(kind=kind, base_url=base_url, models=models)
        moved = previous is not None and previous.base_url != providers[name].base_url
        if moved:
            secrets.delete_provider_key(name)
        self.save(providers=providers)
        self.models.forget_provider(name)
        return next(p for p in self.providers() if p.name == name)

    def remove_provider(self, name: str) -> None:
        """Remove a provider and its stored key."""
        if name not in self.config.providers:
            raise NotFound(f"No provider named {name!r}.")
        providers = {k: v for k, v in self.config.providers.items() if k != name}
        self.save(providers=providers)
        self.models.forget_provider(name)
        secrets.delete_provider_key(name)

    def set_provider_key(self, name: str, api_key: str) -> None:
        """Store a provider's API key in the OS keyring."""
        if name not in self.config.providers:
            raise NotFound(f"No provider named {name!r}; add it first with `workbench providers add`.")
        secrets.set_provider_key(name, api_key)
        self.models.forget_provider(name)

    # ------------------------------------------------------ workspace roots

    def workspace_roots(self) -> list[str]:
        """Folders the file, shell, git and python tools are confined to."""
        return list(self.config.workspace_roots)

    def add_workspace_root(self, path: str) -> list[str]:
        """Add a folder (it must exist; stored resolved) to the workspace roots."""
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_dir():
            raise InvalidRequest(f"{path} is not a folder.")
        if resolved == Path(resolved.anchor):
            raise InvalidRequest("The file-system root cannot be a workspace root.")
        roots = [r for r in self.config.workspace_roots if r != str(resolved)] + [str(resolved)]
        self.save(workspace_roots=roots)
        return roots

    def remove_workspace_root(self, path: str) -> list[str]:
        """Remove a workspace root (given as stored or as a path that resolves to it)."""
        resolved = str(Path(path).expanduser().resolve())
        if resolved not in self.config.workspace_roots and path not in self.config.workspace_roots:
            raise NotFound(f"{path} is not a workspace root.")
        roots = [r for r in self.config.workspace_roots if r not in (resolved, path)]
        self.save(workspace_roots=roots)
        return roots

    # --------------------------------------------------------- default model

    def set_default_model(self, model: str) -> ModelInfo:
        """Make `model` (an id from the registry's list) the default of new chats."""
        info = self.models.resolve(model)
        self.save(default_model=info.id)
        return next(m for m in self.models.list() if m.id == info.id)


def validate_provider(**data: Any) -> ProviderConfig:
    """A provider's settings, validated (`InvalidRequest` saying what is wrong)."""
    from pydantic import ValidationError

    try:
        return ProviderConfig.model_validate(data)
    except ValidationError as exc:
        from workbench.engine.schemas import describe_validation_error

        raise InvalidRequest(describe_validation_error(exc)) from None


def validate_config(data: dict[str, Any]) -> WorkbenchConfig:
    """A whole config, validated (`InvalidRequest` saying what is wrong)."""
    from pydantic import ValidationError

    from workbench.engine.schemas import describe_validation_error

    try:
        return WorkbenchConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_error(exc)) from None


def has_key(provider: str) -> bool:
    """Whether a key is stored for `provider` (False where no keyring is available: listing still works)."""
    try:
        return bool(secrets.get_provider_key(provider))
    except SecretsError:
        return False
