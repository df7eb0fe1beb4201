"""`RemoteEngine`: the `EngineAPI` over HTTP, against a running `workbench serve`.

Every `EngineAPI` method calls one Workbench-native route
(`/workbench/v1/...`) and returns the same pydantic models the in-process
`Engine` returns, so the CLI, the TUI and any script work alike on either.
The methods are not written here one by one: each is generated from its row in
`workbench.engine.ops` (route, request model, response type), the same table
the server's native routes are generated from.

* **Requests** are validated here first, with the operation's request model:
  an invalid request raises the very `InvalidRequest` (same sentence) the
  local engine raises, without a round trip.
* **Errors** come back as the same `WorkbenchError` subclass with the same
  message: the server's error body carries the engine's code (`NOT_FOUND`,
  `MODEL_NOT_FOUND`, ...), rebuilt with `error_from_code` from the one
  code -> class table, `workbench.engine.errors.ERRORS`; 409 is `Conflict`,
  a request the server's validation refuses is `InvalidRequest`. HTTP-level
  refusals have classes of their own: 401 `AuthenticationFailed` (missing,
  invalid or revoked key), 403 `PermissionDenied` (the key lacks a scope),
  429 `RateLimited` (with `retry_after`), and a server that cannot be reached
  is `ServerUnreachable`, one sentence naming the URL.
* **Streams** (`chat`, `ingest`, `run_agent`) send the request at once (so a
  refused request raises at the call, like the local engine) and return an
  `EventStream`: an iterator of the engine's event models parsed from the
  server-sent events. An `event: error` raises the matching `WorkbenchError`;
  `close()` (or leaving a `with` block, or garbage collection) drops the
  connection, which makes the server cancel the generation, ingestion or run.
* **Timeouts**: 10 s to connect; 10 minutes to read an ordinary answer (a
  knowledge or skills generation on a small CPU model takes minutes); streams
  have no read timeout (an agent run may wait for an approval for long).
  Proxy environment variables are ignored (`trust_env=False`): the server is
  normally on this machine.
* **Paths** (`ingest`, workspace roots, documents) are the server's paths.
  `ingest` and `add_workspace_root` make relative paths absolute against the
  client's working directory first, which is right when the server runs on
  the same machine, the normal case.
* **API key**: the `api_key` argument, else `$WORKBENCH_API_KEY`. The CLI
  (`workbench --connect URL`, or automatically when `<home>/server.json`
  names a live server) also falls back to the key a running server stores in
  the OS keyring at start (`local_session_key`, see `workbench.server.run`).

Not part of the protocol and so not here: `api_keys` (server keys are
managed where the database is, with `workbench keys`).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, get_args
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from workbench.engine.api import EngineAPI
from workbench.engine.errors import (
    ERRORS,
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    ServerUnreachable,
    WorkbenchError,
    error_from_code,
)
from workbench.engine.ops import OPERATIONS, Op, parameters

API_PREFIX = "/workbench/v1"
KEY_ENV = "WORKBENCH_API_KEY"
#: the OS keyring service under which a running server keeps its local-session key (user `server:<home>`)
KEYRING_SERVICE = "workbench"
#: in a home: where a running server says where it listens (written by `workbench.server.run.serve`)
SERVER_FILE = "server.json"
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0

T = TypeVar("T")


# ------------------------------------------------------------------ server discovery


def keyring_user(home: str | os.PathLike[str]) -> str:
    """The keyring user name of the local-session key of the server of `home` (a resolved path)."""
    return f"server:{home}"


def local_session_key(home: str | os.PathLike[str]) -> str | None:
    """The key a running server of `home` stored in the OS keyring, or None."""
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, keyring_user(home))
    except Exception:  # no usable keyring backend: the caller falls back to $WORKBENCH_API_KEY
        return None


def running_server_url(home: str | os.PathLike[str]) -> str | None:
    """`http://HOST:PORT` of the live server of `home` (per `<home>/server.json`), or None.

    The server must still be alive: its pid exists and the home's owner lock
    is held (a `kill -9` leaves `server.json` behind, and the pid may be reused).
    """
    try:
        marker = json.loads((Path(home) / SERVER_FILE).read_text(encoding="utf-8"))
        pid = int(marker["pid"])
        listens = [str(v) for v in marker["listen"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not listens or not _pid_alive(pid) or not _lock_held(Path(home)):
        return None
    host, _, port = listens[0].rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_held(home: Path) -> bool:
    """Whether some process holds the home's owner lock (an instant, non-blocking probe)."""
    import fcntl

    from workbench.engine.store.lock import LOCK_FILE

    try:
        fd = os.open(home / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# ------------------------------------------------------------------ streams


def _event_types(union: Any) -> set[str]:
    members = get_args(get_args(union)[0]) if get_args(union) else ()
    return {m.model_fields["type"].default for m in members}


class EventStream(Iterator[T], Generic[T]):
    """Engine events parsed from a server-sent event stream; `close()` cancels the operation on the server."""

    def __init__(
        self, engine: RemoteEngine, response: httpx.Response, adapter: TypeAdapter[Any], known: set[str]
    ) -> None:
        self._engine = engine
        self._response = response
        self._lines = response.iter_lines()
        self._adapter = adapter
        self._known = known
        self._closed = False

    def __iter__(self) -> EventStream[T]:
        return self

    def __next__(self) -> T:
        while True:
            if self._closed:
                raise StopIteration
            kind, data = self._read_event()
            if kind is None:
                self.close()
                raise StopIteration
            if kind == "error":
                self.close()
                payload = _loads(data)
                raise error_from_code(
                    str(payload.get("code", "workbench_error")),
                    str(payload.get("message", "The server reported an error.")),
                )
            if kind not in self._known:
                continue  # an event type this client does not know yet
            try:
                return cast(T, self._adapter.validate_python(_loads(data)))
            except ValidationError as exc:
                self.close()
                raise RemoteError(
                    f"The server at {self._engine.base_url} sent an event this client cannot read "
                    f"({kind}: {exc.errors()[0].get('msg', 'invalid')})."
                ) from None

    def _read_event(self) -> tuple[str | None, str]:
        kind = "message"
        data: list[str] = []
        try:
            for line in self._lines:
                if not line:
                    if data:
                        return kind, "\n".join(data)
                    kind = "message"
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    kind = value
                elif field == "data":
                    data.append(value)
        except httpx.HTTPError as exc:
            if self._closed:
                return None, ""
            self.close()
            raise ServerUnreachable(
                f"The connection to the Workbench server at {self._engine.base_url} broke off "
                f"mid-stream ({type(exc).__name__})."
            ) from None
        if data:
            return kind, "\n".join(data)
        return None, ""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._response.close()

    def __enter__(self) -> EventStream[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _loads(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ------------------------------------------------------------------ the client


def _seg(value: str) -> str:
    """One URL path segment: everything escaped, dots too (so `.` and `..` stay names, not path steps)."""
    return quote(str(value), safe="").replace(".", "%2E")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


if TYPE_CHECKING:
    # The operations are generated from the table (below the class); to a type checker they are EngineAPI's.
    _Operations = EngineAPI
else:
    _Operations = object


class RemoteEngine(_Operations):
    """Everything the workbench does, in a server process reached over HTTP.

    Every `EngineAPI` method is generated from `workbench.engine.ops`: it
    validates its parameters with the operation's request model (the very
    sentence the in-process engine raises), sends them to the operation's route
    and parses the answer as the operation's response type.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = READ_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = base_url.strip().rstrip("/")
        if url.endswith(API_PREFIX):
            url = url[: -len(API_PREFIX)]
        if not url.startswith(("http://", "https://")):
            raise InvalidRequest(f"The server URL must start with http:// or https:// (got {base_url!r}).")
        self.base_url = url
        #: no data folder on this side
        self.home = None
        key = api_key if api_key is not None else os.environ.get(KEY_ENV)
        headers = {"Authorization": f"Bearer {key.strip()}"} if key and key.strip() else {}
        self._timeout = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S)
        try:
            self._http = httpx.Client(
                base_url=url + API_PREFIX, headers=headers, timeout=self._timeout, trust_env=False, transport=transport
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise InvalidRequest(f"The server URL {base_url!r} is not valid ({exc}).") from None

    def __enter__(self) -> RemoteEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections (open streams are closed too)."""
        self._http.close()

    def __repr__(self) -> str:
        return f"RemoteEngine({self.base_url!r})"

    # --------------------------------------------------------- transport

    def _send(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        if stream:
            kwargs["timeout"] = httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)
        try:
            request = self._http.build_request(method, path, **kwargs)
            response = self._http.send(request, stream=stream)
        except httpx.ConnectError:
            raise ServerUnreachable(
                f"No Workbench server answers at {self.base_url}: start one with `workbench serve`, or check the URL."
            ) from None
        except httpx.TimeoutException:
            raise ServerUnreachable(f"The Workbench server at {self.base_url} did not answer in time.") from None
        except httpx.HTTPError as exc:
            raise ServerUnreachable(
                f"The connection to the Workbench server at {self.base_url} failed ({type(exc).__name__})."
            ) from None
        if response.status_code >= 400:
            try:
                if stream:
                    response.read()
            finally:
                response.close()
            raise self._error(response)
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise RemoteError(
                f"The server at {self.base_url} answered {path} with something other than "
                "JSON; is it a Workbench server?"
            ) from None

    def _get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=_params(**params))

    def _post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self._call("POST", path, json=body, params=_params(**params))

    def _stream(self, path: str, body: Any, adapter: TypeAdapter[Any], union: Any) -> EventStream[Any]:
        response = self._send("POST", path, stream=True, json=body, headers={"Accept": "text/event-stream"})
        return EventStream(self, response, adapter, _event_types(union))

    def _error(self, response: httpx.Response) -> WorkbenchError:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code, message = str(error.get("code") or ""), str(error.get("message") or "")
        else:  # not a Workbench error body (a proxy, another program on the port)
            code, message = "", ""
        message = message or f"The server at {self.base_url} answered HTTP {status}."
        if status == 401:
            return AuthenticationFailed(
                f"The Workbench server at {self.base_url} refused the API key "
                f"({message.rstrip('.')}); set {KEY_ENV} to a key from "
                "`workbench keys create`."
            )
        if status == 429:
            retry = response.headers.get("retry-after", "")
            return RateLimited(message, int(retry) if retry.isdigit() else None)
        if status == 409:
            return Conflict(message)
        engine_code = code.lower()
        if engine_code in ERRORS:
            return error_from_code(engine_code, message)
        if status == 403:
            return PermissionDenied(message)
        if status in (400, 413, 422):
            return InvalidRequest(message)
        if status == 404:
            return NotFound(message)
        return RemoteError(message) if not code else WorkbenchError(message)

    # ------------------------------------------------------------- operations

    def _invoke(self, op: Op, request: BaseModel) -> Any:
        """Call the route of `op` with a validated request; the answer parsed as its response type."""
        prepare = _PREPARE.get(op.name)
        if prepare is not None:
            request = prepare(request)
        if op.param is not None:  # the request object is the body
            values = request.model_dump(mode="json", by_alias=True, exclude_unset=True)
            path, rest = op.path, values
        else:
            values = request.model_dump(mode="json", by_alias=True)
            path = _PATH_FIELD.sub(lambda m: _seg(values[m.group(1)]), op.path)
            rest = {k: v for k, v in values.items() if k not in op.path_fields}
        if op.method in ("GET", "DELETE"):
            kwargs: dict[str, Any] = {"params": _params(**rest)}
        else:
            body = rest[op.body] if op.body is not None else rest
            kwargs = {"json": body if body or op.body is not None or op.param is not None else None}
        if op.events is not None:
            return self._stream(path, kwargs.get("json"), _adapter(op.events), op.events)
        answer = self._call(op.method, path, **kwargs)
        if op.response is None:
            return None
        if op.wrap is not None:
            answer = answer.get(op.wrap) if isinstance(answer, dict) else None
        try:
            return _adapter(op.response).validate_python(answer)
        except ValidationError as exc:
            raise RemoteError(
                f"The server at {self.base_url} answered {op.method} {path} with something this client cannot read "
                f"({exc.errors()[0].get('msg', 'invalid')}); is it a Workbench server of this version?"
            ) from None

    # -------------------------------------------------------------- extra

    def whoami(self) -> dict[str, Any]:
        """The key this client uses, as the server sees it (id, name, scopes; never its secret)."""
        return dict(self._get("/whoami"))


_PATH_FIELD = re.compile(r"{(\w+)(?::path)?}")


@functools.cache
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def _absolute(path: str) -> str:
    given = Path(path).expanduser()
    return path if given.is_absolute() else str(given.absolute())


# Paths are the server's: relative ones are made absolute against this process's working directory
# (right when the server runs on this machine, the normal case).
_PREPARE: dict[str, Callable[[Any], BaseModel]] = {
    "ingest": lambda r: r.model_copy(update={"paths": [str(Path(p).expanduser().absolute()) for p in r.paths]}),
    "add_workspace_root": lambda r: r.model_copy(update={"path": str(Path(r.path).expanduser().absolute())}),
    "remove_workspace_root": lambda r: r.model_copy(update={"path": _absolute(r.path)}),
}


def _remote_method(op: Op) -> Callable[..., Any]:
    """`RemoteEngine.<op.name>`: the `EngineAPI` signature, validated here, sent by `_invoke`."""
    declared = inspect.signature(getattr(EngineAPI, op.name))

    def method(self: RemoteEngine, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = declared.bind(self, *args, **kwargs)
        except TypeError as exc:
            raise InvalidRequest(f"{op.name}: {exc}.") from None
        arguments = dict(bound.arguments)
        arguments.pop("self", None)
        return self._invoke(op, parameters(op, arguments))

    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = op.summary
    method.__signature__ = _with_defaults(declared, op)  # type: ignore[attr-defined]
    return method


def _with_defaults(declared: inspect.Signature, op: Op) -> inspect.Signature:
    """`declared` (the protocol's, whose defaults are `...`) with the request model's defaults shown."""
    fields = op.request.model_fields
    shown = [
        p.replace(default=fields[p.name].get_default(call_default_factory=True))
        if p.default is not inspect.Parameter.empty and p.name in fields and op.param is None
        else p
        for p in declared.parameters.values()
    ]
    return declared.replace(parameters=shown)


for _op in OPERATIONS:
    setattr(RemoteEngine, _op.name, _remote_method(_op))
del _op
