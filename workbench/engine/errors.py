"""Errors the engine raises on purpose.

Every `WorkbenchError` carries one sentence meant for the user: the CLI prints
it without a traceback, the server returns it in its error envelope. Messages
never contain secrets.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base class: `str(error)` is a complete, user-facing sentence."""

    code = "workbench_error"


class InvalidRequest(WorkbenchError):
    """A request failed validation before any model was called."""

    code = "invalid_request"


class NotFound(WorkbenchError):
    """A session, model or other named thing does not exist."""

    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class ModelLoadError(WorkbenchError):
    """A model file exists but cannot be loaded (corrupt, wrong format)."""

    code = "model_load_error"


class ModelBusy(WorkbenchError):
    """The local model is serving another generation that cannot finish first."""

    code = "model_busy"


class ContextOverflow(InvalidRequest):
    code = "context_overflow"


class ProviderError(WorkbenchError):
    """A remote provider answered with an error."""

    code = "provider_error"


class ProviderAuthError(ProviderError):
    code = "provider_auth_error"


class ProviderUnreachable(ProviderError):
    code = "provider_unreachable"


class StoreLocked(WorkbenchError):
    """Another process owns the database file."""

    code = "store_locked"


class StoreError(WorkbenchError):
    code = "store_error"


class StoreUnavailable(StoreError):
    """The database connection failed in a way that makes it unsafe to use; it reopens on the next access."""

    code = "store_unavailable"


class StorageFull(StoreUnavailable):
    """The disk holding the home is full: the write was not saved."""

    code = "storage_full"


class StoreDamaged(StoreError):
    """A part of the database file is damaged (e.g. a block fails its checksum)."""

    code = "store_damaged"


class SecretsError(WorkbenchError):
    code = "secrets_error"


def error_from_code(code: str, message: str) -> WorkbenchError:
    """Rebuild an error from its `code` (events and HTTP bodies carry codes)."""
    classes: list[type[WorkbenchError]] = [WorkbenchError]
    while classes:
        cls = classes.pop()
        if cls.code == code:
            return cls(message)
        classes.extend(cls.__subclasses__())
    return WorkbenchError(message)


class Conflict(WorkbenchError):
    """A resource with this id already exists."""

    code = "conflict"
