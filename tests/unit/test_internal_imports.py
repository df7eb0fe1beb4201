"""Every import of a workbench module names one that exists, lazy imports inside functions included.

Heavy modules are imported inside functions on purpose (`workbench --help`
stays fast), so a module that moves leaves no trace at import time: only the
command that runs that function fails. This reads every import statement
instead of running them.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("workbench", "tests", "benchmarks", "packaging", "tests_dist")


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, []) for a in node.names)
    return [f for f in found if f[1] == "workbench" or f[1].startswith("workbench.")]


def _source(module: str) -> Path | None:
    """The file of one of our modules in this checkout (not wherever an installed copy points)."""
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def test_every_workbench_import_names_an_existing_module() -> None:
    missing = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, module, names in _imports(path):
                source = _source(module)
                if source is None:
                    missing.append(f"{path.relative_to(ROOT)}:{line}: {module}")
                    continue
                # `from workbench.engine import config`: a submodule, or a name the module defines
                for name in names:
                    if _source(f"{module}.{name}") is None and not _defines(source, name):
                        missing.append(f"{path.relative_to(ROOT)}:{line}: {module}.{name}")
    assert missing == []


def _defines(source: Path, name: str) -> bool:
    return name == "*" or name in _names(source)


@functools.cache
def _names(source: Path) -> frozenset[str]:
    """Every name a module binds anywhere (definitions, assignments, imports), read, not run."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Assign):
            defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(defined)


def test_the_check_sees_a_moved_module(tmp_path) -> None:
    # The shape of the bug it guards against: a lazy import of a module that moved.
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from workbench.config import resolve_home\n    return resolve_home\n")
    (line, module, names) = _imports(sample)[0]
    assert (line, module, names) == (2, "workbench.config", ["resolve_home"])
    assert _source(module) is None
    assert _source("workbench.engine.config") is not None and _defines(
        _source("workbench.engine.config"), "resolve_home"
    )
