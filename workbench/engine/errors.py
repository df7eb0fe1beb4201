"""Every error Workbench raises on purpose, in one place.

Every `WorkbenchError` carries one sentence meant for the user: the CLI prints
it without a traceback, the server returns it in its error envelope. Messages
never contain secrets.

Each class names its wire `code` (events and HTTP error bodies carry it) and
the HTTP `status` the server answers it with. `ERRORS` maps each code to its
class: the server maps an error to its status by the class, and a client
(`workbench.remote`) or an event reader rebuilds the same class from the code
with `error_from_code`. A new error is a class here and a line in `ERRORS`
(tests/unit/test_errors.py checks the table is complete).

The `RemoteError` family is raised by the HTTP client only (the server never
answers with it); it lives here so the table covers every error.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: `str(error)` is a complete, user-facing sentence."""

    code = "workbench_error"
    #: the HTTP status the server answers this error with
    status = 500


# ------------------------------------------------------------------ requests


class InvalidRequest(WorkbenchError):
    """A request failed validation before any model was called."""

    code = "invalid_request"
    status = 400


class ContextOverflow(InvalidRequest):
    """The prompt does not fit the model's context window."""

    code = "context_overflow"
    status = 400


class WorkflowInvalid(InvalidRequest):
    """A workflow definition that cannot run (the message names the step and the field)."""

    code = "workflow_invalid"
    status = 400


class NotFound(WorkbenchError):
    """A session, model or other named thing does not exist."""

    code = "not_found"
    status = 404


class ModelNotFound(NotFound):
    """No model of that name is installed or configured."""

    code = "model_not_found"
    status = 404


class Conflict(WorkbenchError):
    """A resource with this id already exists."""

    code = "conflict"
    status = 409


# ------------------------------------------------------------------ models and providers


class ModelLoadError(WorkbenchError):
    """A model file exists but cannot be loaded (corrupt, wrong format)."""

    code = "model_load_error"
    status = 500


class ModelBusy(WorkbenchError):
    """The local model is serving another generation that cannot finish first."""

    code = "model_busy"
    status = 503


class ProviderError(WorkbenchError):
    """A remote provider answered with an error."""

    code = "provider_error"
    status = 502


class ProviderAuthError(ProviderError):
    """A remote provider refused the configured key."""

    code = "provider_auth_error"
    status = 502


class ProviderUnreachable(ProviderError):
    """A remote provider could not be reached."""

    code = "provider_unreachable"
    status = 502


# ------------------------------------------------------------------ store and secrets


class StoreLocked(WorkbenchError):
    """Another process owns the database file."""

    code = "store_locked"
    status = 503


class StoreError(WorkbenchError):
    """The database failed a read or write."""

    code = "store_error"
    status = 500


class StoreUnavailable(StoreError):
    """The database connection failed in a way that makes it unsafe to use; it reopens on the next access."""

    code = "store_unavailable"
    status = 503


class StorageFull(StoreUnavailable):
    """The disk holding the home is full: the write was not saved."""

    code = "storage_full"
    status = 507


class StoreDamaged(StoreError):
    """A part of the database file is damaged (e.g. a block fails its checksum)."""

    code = "store_damaged"
    status = 500


class SecretsError(WorkbenchError):
    """The OS keyring could not store or read a secret."""

    code = "secrets_error"
    status = 500


# ------------------------------------------------------------------ tools


class ToolError(WorkbenchError):
    """A tool refused its arguments or failed; the message goes back to the model."""

    code = "tool_error"
    status = 400


class ToolDenied(WorkbenchError):
    """A person denied the call, or a policy refused it."""

    code = "tool_denied"
    status = 403


# ------------------------------------------------------------------ the HTTP client (workbench.remote)


class RemoteError(WorkbenchError):
    """Talking to a Workbench server failed at the HTTP level (not an engine error)."""

    code = "remote_error"
    status = 500


class ServerUnreachable(RemoteError):
    """No Workbench server answered at the URL."""

    code = "server_unreachable"
    status = 500


class AuthenticationFailed(RemoteError):
    """401: no key, or a key the server does not know (invalid or revoked)."""

    code = "authentication_failed"
    status = 401


class PermissionDenied(RemoteError):
    """403: the key is valid but lacks the scope, or the server refused the request's origin."""

    code = "permission_denied"
    status = 403


class RateLimited(RemoteError):
    """429: the key's requests per minute are used up."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: wire code -> class: what `error_from_code` rebuilds (every class above, once)
ERRORS: dict[str, type[WorkbenchError]] = {
    cls.code: cls
    for cls in (
        WorkbenchError,
        InvalidRequest,
        ContextOverflow,
        WorkflowInvalid,
        NotFound,
        ModelNotFound,
        Conflict,
        ModelLoadError,
        ModelBusy,
        ProviderError,
        ProviderAuthError,
        ProviderUnreachable,
        StoreLocked,
        StoreError,
        StoreUnavailable,
        StorageFull,
        StoreDamaged,
        SecretsError,
        ToolError,
        ToolDenied,
        RemoteError,
        ServerUnreachable,
        AuthenticationFailed,
        PermissionDenied,
        RateLimited,
    )
}


def error_from_code(code: str, message: str) -> WorkbenchError:
    """Rebuild an error from its `code` (events and HTTP bodies carry codes); an unknown code is a `WorkbenchError`."""
    return ERRORS.get(code, WorkbenchError)(message)


def status_of_code(code: str) -> int:
    """The HTTP status of the error with this `code` (500 for a code no class has)."""
    cls = ERRORS.get(code)
    return cls.status if cls is not None else 500
