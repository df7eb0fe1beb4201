"""The engine stays free of front ends, and `workbench --help` stays light."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import cli_env

ENGINE_MODULES = [
    "workbench.engine",
    "workbench.engine.engine",
    "workbench.engine.api",
    "workbench.engine.schemas",
    "workbench.engine.store.db",
    "workbench.engine.store.conversations",
    "workbench.engine.inference.registry",
    "workbench.engine.inference.llama",
    "workbench.engine.inference.openai_compat",
    "workbench.engine.inference.anthropic",
    "workbench.engine.secrets",
    "workbench.engine.memory.embedder",
]
FORBIDDEN = ["textual", "fastapi", "uvicorn", "starlette", "workbench.tui", "workbench.server"]


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    import json

    return set(json.loads(out.strip().splitlines()[-1]))


def test_engine_imports_no_front_end():
    imports = "\n".join(f"import {m}" for m in ENGINE_MODULES)
    # Touch the lazy root too, so its exports are really imported.
    loaded = _loaded_after(imports + "\nfrom workbench.engine import Engine, EngineAPI")
    leaked = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == []
    assert "workbench.engine.engine" in loaded


def test_package_roots_are_lazy():
    loaded = _loaded_after("import workbench, workbench.engine")
    for heavy in ("llama_cpp", "torch", "duckdb", "httpx", "pydantic", "sentence_transformers"):
        assert heavy not in loaded, heavy


def test_help_imports_nothing_heavy(workbench_home):
    """`--help` must answer at once: nothing heavy may be imported for it.

    (Its wall time is measured in benchmarks/inference.py, not asserted here.)
    """
    loaded = _loaded_after(
        "import sys; sys.argv=['workbench','--help']\nfrom workbench import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass"
    )
    for heavy in ("llama_cpp", "torch", "duckdb", "httpx", "numpy", "pydantic", "keyring", "dbos", "sqlalchemy"):
        assert heavy not in loaded, heavy
    result = subprocess.run(
        [sys.executable, "-m", "workbench", "--help"], capture_output=True, text=True, env=cli_env(workbench_home)
    )
    assert result.returncode == 0
    for command in ("ask", "chat", "models", "sessions", "providers", "keys", "workflows"):
        assert command in result.stdout


def test_workflow_modules_import_dbos_only_when_a_workflow_runs():
    loaded = _loaded_after(
        "import workbench.engine.workflows.definition, workbench.engine.workflows.durable, workbench.cli.workflows"
    )
    for heavy in ("dbos", "sqlalchemy", "psycopg"):
        assert heavy not in loaded, heavy


def test_embedder_module_does_not_import_torch():
    loaded = _loaded_after("import workbench.engine.memory.embedder")
    for heavy in ("torch", "sentence_transformers", "transformers"):
        assert heavy not in loaded, heavy


def test_engine_implements_every_engine_api_method():
    """EngineAPI is what the remote client must also implement: Engine has all of it."""
    import inspect

    from workbench.engine.api import EngineAPI
    from workbench.engine.engine import Engine

    wanted = [name for name in dir(EngineAPI) if not name.startswith("_") and callable(getattr(EngineAPI, name))]
    assert {"remember", "rag_retrieve", "ingest", "search", "answer", "neighbours"} <= set(wanted)
    for name in wanted:
        method = getattr(Engine, name, None)
        assert callable(method), f"Engine lacks {name}"
        api_params = list(inspect.signature(getattr(EngineAPI, name)).parameters)
        assert list(inspect.signature(method).parameters) == api_params, name
