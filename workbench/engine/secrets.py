"""Provider API keys, kept only in the OS keyring.

Keys never touch DuckDB, config files, logs or error messages. On a headless
machine without a keyring service, select a file backend from `keyrings.alt`
with `PYTHON_KEYRING_BACKEND` (see the README).
"""

from __future__ import annotations

from workbench.engine.errors import SecretsError

SERVICE = "workbench"


def _username(provider: str) -> str:
    return f"provider:{provider}"


def _keyring():
    import keyring

    return keyring


def _fail(action: str, exc: Exception) -> SecretsError:
    return SecretsError(
        f"Could not {action} in the OS keyring ({type(exc).__name__}). On a headless machine, "
        "set PYTHON_KEYRING_BACKEND to a keyrings.alt backend, e.g. "
        "keyrings.alt.file.EncryptedKeyring."
    )


def set_provider_key(provider: str, api_key: str) -> None:
    """Store `api_key` for `provider` in the keyring."""
    if not api_key or not api_key.strip():
        raise SecretsError("The API key is empty: nothing was stored.")
    if not (api_key.strip().isascii() and api_key.strip().isprintable()):
        # HTTP headers are ASCII; a pasted curly quote or zero-width space would
        # only fail later, in an error that might echo the header.
        raise SecretsError("The API key contains characters other than printable ASCII: nothing was stored.")
    keyring = _keyring()
    try:
        keyring.set_password(SERVICE, _username(provider), api_key.strip())
    except Exception as exc:  # keyring backends raise many types
        raise _fail("store the key", exc) from None


def get_provider_key(provider: str) -> str | None:
    """The stored key for `provider`, or None when there is none."""
    keyring = _keyring()
    try:
        return keyring.get_password(SERVICE, _username(provider))
    except Exception as exc:
        raise _fail("read the key", exc) from None


def delete_provider_key(provider: str) -> bool:
    """Remove the key for `provider`; False when there was none."""
    keyring = _keyring()
    from keyring.errors import PasswordDeleteError

    try:
        keyring.delete_password(SERVICE, _username(provider))
        return True
    except PasswordDeleteError:
        return False
    except Exception as exc:
        raise _fail("delete the key", exc) from None
