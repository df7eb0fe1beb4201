"""The operations table, `EngineAPI`, `Engine`, `RemoteEngine` and the native routes agree name for name, type for type.

`workbench.engine.ops` describes each operation once; everything else is
checked against it here, so a fifth copy cannot drift from the first.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import pytest
from pydantic import BaseModel

from workbench.engine.api import EngineAPI
from workbench.engine.engine import Engine
from workbench.engine.ops import OPERATIONS, OPS, NoParams
from workbench.remote import RemoteEngine

NAMES = [op.name for op in OPERATIONS]


def _plain(tp: Any) -> Any:
    """`tp` without `Annotated` metadata, unions as frozensets (so `X | None` equals `Optional[X]`)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _plain(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return ("union", frozenset(_plain(a) for a in get_args(tp)))
    if origin is not None:
        return (origin, tuple(_plain(a) for a in get_args(tp)))
    return tp


def _accepted(tp: Any) -> Any:
    """A method's parameter type as its request field states it: `Model | dict[str, Any]` is `Model`."""
    plain = _plain(tp)
    if isinstance(plain, tuple) and plain[0] == "union":
        members = plain[1] - {(dict, (str, Any))}
        if len(members) == 1 and len(members) < len(plain[1]):
            return next(iter(members))
    if isinstance(plain, tuple) and plain[0] is list:
        return (list, tuple(_accepted_plain(a) for a in plain[1]))
    return plain


def _accepted_plain(plain: Any) -> Any:
    if isinstance(plain, tuple) and plain[0] == "union":
        members = plain[1] - {(dict, (str, Any))}
        if len(members) == 1 and len(members) < len(plain[1]):
            return next(iter(members))
    return plain


def _hints(cls: type, name: str) -> dict[str, Any]:
    return get_type_hints(getattr(cls, name))


def _params(cls: type, name: str) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(getattr(cls, name)).parameters.values() if p.name != "self"]


def test_the_table_covers_the_protocol_exactly() -> None:
    declared = {
        name
        for name, value in vars(EngineAPI).items()
        if callable(value) and not name.startswith("_") and name != "close"
    }
    assert len(NAMES) == len(set(NAMES))
    assert set(NAMES) == declared
    for name in NAMES:
        assert callable(getattr(Engine, name)) and callable(getattr(RemoteEngine, name))
    routes = {(op.method, op.path) for op in OPERATIONS}
    assert len(routes) == len(OPERATIONS), "two operations share a route"


@pytest.mark.parametrize("name", NAMES)
def test_protocol_engine_and_request_model_agree(name: str) -> None:
    op = OPS[name]
    protocol, engine = _params(EngineAPI, name), _params(Engine, name)
    assert [p.name for p in protocol] == [p.name for p in engine]
    assert [p.kind for p in protocol] == [p.kind for p in engine]
    proto_hints, engine_hints = _hints(EngineAPI, name), _hints(Engine, name)
    assert {k: _plain(v) for k, v in proto_hints.items()} == {k: _plain(v) for k, v in engine_hints.items()}

    returned = proto_hints["return"]
    if op.events is not None:
        assert _plain(returned) == _plain(Iterator[op.events])
    else:
        assert _plain(returned) == _plain(op.response if op.response is not None else type(None))

    fields = op.request.model_fields
    if op.param is not None:  # one request object: the engine's own model, or a mapping of it
        assert [p.name for p in engine] == [op.param]
        assert _accepted(engine_hints[op.param]) == op.request
        assert op.path_fields == [] and op.body is None
        return
    if op.request is NoParams:
        assert engine == []
        return
    assert [p.name for p in engine] == list(fields), "the request model's fields are the method's parameters"
    for parameter in engine:
        field = fields[parameter.name]
        assert _accepted(engine_hints[parameter.name]) == _accepted(field.annotation), parameter.name
        if parameter.default is inspect.Parameter.empty:
            assert field.is_required(), f"{parameter.name} is required by the method, optional in the model"
        else:
            assert not field.is_required() and field.get_default(call_default_factory=True) == parameter.default
    for segment in op.path_fields:
        assert segment in fields
    if op.body is not None:
        assert op.body in fields and op.method not in ("GET", "DELETE")


@pytest.mark.parametrize("name", NAMES)
def test_the_remote_engine_offers_the_engines_signature(name: str) -> None:
    remote = inspect.signature(getattr(RemoteEngine, name))
    local = inspect.signature(getattr(Engine, name))
    assert [(p.name, p.kind) for p in remote.parameters.values()] == [
        (p.name, p.kind) for p in local.parameters.values()
    ]
    if OPS[name].param is None:
        assert [p.default for p in remote.parameters.values()] == [p.default for p in local.parameters.values()]


def test_limits_live_in_the_request_models_and_hold_for_every_engine(tmp_path) -> None:
    from workbench.engine.errors import InvalidRequest

    # The engine validates through the table: no hand-written check is needed (nor left) in engine.py.
    from workbench.engine.memory.store import MemoryStore
    from workbench.engine.tools.registry import ToolRegistry

    for implementation in (Engine, MemoryStore, ToolRegistry):
        source = inspect.getsource(implementation)
        assert "1 <= limit <= 1000" not in source and "1 <= additional_cycles <= 5" not in source
    with Engine(tmp_path / "home") as engine:
        for call in (
            lambda: engine.list_sessions(limit=1001),
            lambda: engine.list_runs(offset=-1),
            lambda: engine.tool_audit(limit=0),
            lambda: engine.list_memories(limit=1001),
            lambda: engine.document_chunks("default", "x.md", limit=5000),
            lambda: engine.enrich_agent("nobody", additional_cycles=6),
            lambda: engine.list_sessions(query="q" * 201),
            lambda: engine.neighbours("x", direction="sideways"),  # type: ignore[arg-type]
            lambda: engine.list_sessions(50, 0, None, "extra"),  # type: ignore[call-arg]
        ):
            with pytest.raises(InvalidRequest):
                call()
    remote = RemoteEngine("http://127.0.0.1:9")  # nothing listens: a refusal must come before any request
    with pytest.raises(InvalidRequest, match="limit"):
        remote.list_sessions(limit=0)
    with pytest.raises(InvalidRequest, match="additional_cycles"):
        remote.enrich_agent("a", additional_cycles=9)


def test_every_native_route_is_generated_and_documents_its_answer(tmp_path) -> None:
    from workbench.server.app import create_app
    from workbench.server.routes.native import router

    with Engine(tmp_path / "home") as engine:
        document = create_app(engine).openapi()
    served = {
        (method, route.path.removeprefix("/workbench/v1"))
        for route in router.routes
        for method in getattr(route, "methods", ())
    }
    assert served == {(op.method, op.path) for op in OPERATIONS} | {("GET", "/whoami")}
    for op in OPERATIONS:
        path = "/workbench/v1" + op.path.replace(":path}", "}")
        operation = document["paths"][path][op.method.lower()]
        responses = operation["responses"]
        if op.events is not None:
            assert "text/event-stream" in responses["200"]["content"]
        elif op.response is None:
            assert "204" in responses
        else:
            schema = responses["200"]["content"]["application/json"]["schema"]
            assert schema, f"{op.name} documents no answer"
        parameters = {p["name"]: p for p in operation.get("parameters", [])}
        for field in op.path_fields:
            assert parameters[field]["in"] == "path"
        if op.method in ("GET", "DELETE"):
            for field in set(op.request.model_fields) - set(op.path_fields):
                assert parameters[field]["in"] == "query", (op.name, field)
    # The limits the table states reach the document.
    limit = {p["name"]: p for p in document["paths"]["/workbench/v1/sessions"]["get"]["parameters"]}["limit"]
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 1000


def test_request_models_are_pydantic_models_refusing_unknown_fields() -> None:
    for op in OPERATIONS:
        assert issubclass(op.request, BaseModel)
        assert op.request.model_config.get("extra") == "forbid", op.name


def test_the_type_normaliser_cannot_pass_everything() -> None:
    # A guard on the checks above: different types stay different after normalising.
    assert _plain(int) != _plain(str)
    assert _plain(typing.Union[int, None]) == _plain(int | None) != _plain(int)  # noqa: UP007 (the old spelling on purpose)
    assert _accepted(dict[str, Any] | BaseModel) == BaseModel
    assert _plain(list[int]) != _plain(list[str])
