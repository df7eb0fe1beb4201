"""Routers, one module per API family."""

from typing import Any


def listed_model(engine: Any, model: str | None) -> str | None:
    """`model` if it is one `engine.list_models()` shows (None or "default": the default).

    Over HTTP a model is chosen only from the list: the engine would load any
    `.gguf` path, and its errors would tell a caller which files exist.
    """
    from workbench.engine.errors import ModelNotFound

    if model is None or model.strip() in ("", "default"):
        return None
    wanted = model.strip()
    for info in engine.list_models():
        if info.id == wanted:
            return info.id
    raise ModelNotFound(f"The model {wanted[:120]!r} is not available; GET /v1/models lists the models.")
