"""The server's routes reach the engine only through the typed dependency and its public methods."""

from __future__ import annotations

import re
from pathlib import Path

ROUTES = Path(__file__).resolve().parents[2] / "workbench" / "server" / "routes"
#: the engine's store and embedder are its own business; the app's state is read once, in deps.get_engine
REACHES_IN = re.compile(r"\bengine\.(db|embedder)\b|app\.state\.engine|def _engine\(")


def test_no_route_reaches_into_the_engine_or_the_app_state_for_it() -> None:
    modules = sorted(ROUTES.rglob("*.py"))
    assert len(modules) >= 8, modules  # native, health and the compatibility APIs
    found = [
        f"{path.relative_to(ROUTES)}:{n}: {line.strip()}"
        for path in modules
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if REACHES_IN.search(line)
    ]
    assert found == []


def test_every_route_module_takes_the_engine_typed() -> None:
    untyped = [
        f"{path.relative_to(ROUTES)}: {line.strip()}"
        for path in sorted(ROUTES.rglob("*.py"))
        for line in path.read_text().splitlines()
        if re.search(r"\bengine: Any\b", line)
    ]
    assert untyped == []
