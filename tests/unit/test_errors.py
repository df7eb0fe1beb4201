"""Errors live in one module, each with its wire code and HTTP status, and one code -> class table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from workbench.engine import errors
from workbench.engine.errors import ERRORS, WorkbenchError, error_from_code, status_of_code

PACKAGE = Path(errors.__file__).resolve().parents[1]

#: the statuses the server answered with before the table moved into the classes (app.STATUS, default 500)
STATUS_BEFORE = {
    "invalid_request": 400,
    "context_overflow": 400,
    "tool_error": 400,
    "not_found": 404,
    "model_not_found": 404,
    "conflict": 409,
    "tool_denied": 403,
    "model_busy": 503,
    "store_locked": 503,
    "store_unavailable": 503,
    "storage_full": 507,
    "provider_error": 502,
    "provider_auth_error": 502,
    "provider_unreachable": 502,
    "model_load_error": 500,
    "workbench_error": 500,
    "store_error": 500,
    "store_damaged": 500,
    "secrets_error": 500,
}


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    pending = [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


def test_the_table_lists_every_error_once_by_its_own_code() -> None:
    defined = {cls for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, WorkbenchError)}
    assert set(ERRORS.values()) == defined
    assert len(ERRORS) == len(defined)  # no two classes share a code
    for code, cls in ERRORS.items():
        # each class states its own code and status: a subclass that forgot one would answer as its parent
        assert cls.__dict__.get("code") == code, cls
        assert isinstance(cls.__dict__.get("status"), int), cls


def test_every_loaded_subclass_is_in_the_table() -> None:
    import workbench.engine.tools.base  # noqa: F401  (once defined ToolError)
    import workbench.remote  # noqa: F401  (once defined the client's errors)

    assert {cls for cls in _all_subclasses(WorkbenchError) if cls.__module__.startswith("workbench.")} <= set(
        ERRORS.values()
    )


def test_no_module_but_errors_defines_a_workbench_error() -> None:
    names = {cls.__name__ for cls in ERRORS.values()}
    elsewhere = []
    for path in PACKAGE.rglob("*.py"):
        if path == Path(errors.__file__).resolve():
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & names:
                    elsewhere.append(f"{path.relative_to(PACKAGE.parent)}:{node.name}")
    assert elsewhere == []


def test_the_server_statuses_are_unchanged() -> None:
    for code, status in STATUS_BEFORE.items():
        assert ERRORS[code].status == status, code
        assert status_of_code(code) == status
    assert status_of_code("no_such_code") == 500


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_a_code_rebuilds_its_class_with_the_message(code: str) -> None:
    error = error_from_code(code, "One sentence.")
    assert type(error) is ERRORS[code]
    assert str(error) == "One sentence."


def test_an_unknown_code_is_a_plain_workbench_error() -> None:
    error = error_from_code("from_a_newer_server", "Something failed.")
    assert type(error) is WorkbenchError
    assert str(error) == "Something failed."


def test_the_server_has_no_status_table_of_its_own() -> None:
    import workbench.server.app as app

    assert not hasattr(app, "STATUS")
