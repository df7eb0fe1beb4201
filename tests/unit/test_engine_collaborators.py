"""The Engine's collaborators get narrow, typed parts, never the Engine as `Any` or its private names."""

from __future__ import annotations

import re
from pathlib import Path

import workbench

ENGINE_PACKAGE = Path(workbench.__file__).parent / "engine"
#: an untyped engine parameter or field, or a private Engine name reached from outside
LOOSE = re.compile(r"\bengine\s*:\s*Any\b|\bengine\._[a-z]")


def _loose_uses(root: Path) -> list[str]:
    return sorted(
        f"{path.relative_to(root).as_posix()}:{n}: {line.strip()}"
        for path in root.rglob("*.py")
        if path.name != "engine.py" or path.parent != root
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if LOOSE.search(line)
    )


def test_no_engine_module_takes_the_engine_loosely():
    assert _loose_uses(ENGINE_PACKAGE) == []


def test_the_check_catches_both_forms(tmp_path):
    """The pattern finds what it is meant to (else the test above could never fail)."""
    (tmp_path / "a.py").write_text("def build(agent, engine: Any) -> None:\n    engine._json_generate('m')\n")
    assert [line.split(":")[1] for line in _loose_uses(tmp_path)] == ["1", "2"]
