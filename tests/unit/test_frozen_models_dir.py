"""In the offline executable (`make dist`), the `models/` folder beside it is a models folder.

tests_dist/ proves it on the real bundle; this keeps the rule under `make test`
by giving the interpreter the two attributes PyInstaller's loader sets.
"""

from __future__ import annotations

import sys
from pathlib import Path

from workbench.engine.config import WorkbenchConfig
from workbench.engine.inference.registry import ModelRegistry


def test_models_beside_the_executable_are_listed_only_when_frozen(tmp_path: Path, monkeypatch) -> None:
    bundle = tmp_path / "workbench-dist"
    (bundle / "models").mkdir(parents=True)
    (bundle / "models" / "mine.gguf").write_bytes(b"GGUF")
    (bundle / "workbench").write_bytes(b"")
    registry = ModelRegistry(tmp_path / "home", WorkbenchConfig())
    monkeypatch.chdir(tmp_path)

    monkeypatch.setattr(sys, "executable", str(bundle / "workbench"))
    assert "mine" not in [m.id for m in registry.local_models()]  # a venv's interpreter: not a bundle

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert (bundle / "models").resolve() in registry.models_dirs()
    found = {m.id: m for m in registry.local_models()}
    assert found["mine"].source == "models-folder"
    assert Path(found["mine"].location) == (bundle / "models" / "mine.gguf").resolve()
