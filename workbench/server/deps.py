"""What every route needs from the app: the engine (a typed dependency) and the model rule.

`EngineDep` gives a route the app's `Engine`, typed, instead of each route
module reading `request.app.state.engine` as `Any`.

`allowed_model` is the one answer to "which model may this request load":
over HTTP a model is chosen from `list_models()` (or is a model of a
configured remote provider), never by file path. The engine itself would load
any `.gguf` path it is given, and its errors would tell a caller which files
exist on the server's disk.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from workbench.engine.engine import Engine
from workbench.engine.errors import ModelNotFound

DEFAULT_MODEL = "default"


async def get_engine(request: Request) -> Engine:
    """The app's engine (async: FastAPI runs it inline, not on its thread pool)."""
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def allowed_model(engine: Engine, spec: str | None) -> str | None:
    """The model `spec` names, if a request over HTTP may load it; else `ModelNotFound`.

    None, "" and "default" mean the default model (None is returned). A listed
    model is returned by its listed id (matched without regard to case); a
    `PROVIDER:MODEL` spec of a configured provider is returned as given (a
    remote model loads nothing here). Anything else, a file path above all,
    raises: the message never says whether such a file exists.
    """
    if spec is None or spec.strip() in ("", DEFAULT_MODEL):
        return None
    wanted = spec.strip()
    provider, sep, rest = wanted.partition(":")
    if sep and rest and provider in {p.name for p in engine.list_providers()}:
        return wanted
    for info in engine.list_models():
        if info.id.lower() == wanted.lower():
            return info.id
    shown = wanted if len(wanted) <= 120 else wanted[:120] + "..."
    raise ModelNotFound(
        f"The model {shown!r} is not available over HTTP; GET /v1/models (or /workbench/v1/models) lists the models."
    )
