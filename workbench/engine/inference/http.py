"""Shared plumbing of the HTTP adapters: streaming requests, SSE, clear errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from workbench.engine.errors import ProviderAuthError, ProviderError, ProviderUnreachable, WorkbenchError
from workbench.engine.inference.base import ChatModel

REDACTED = "[redacted]"
#: request headers whose values are credentials (an `Authorization` value loses its scheme)
_SECRET_HEADERS = ("authorization", "x-api-key", "api-key")


def header_secrets(headers: dict[str, str]) -> list[str]:
    """The credentials carried by `headers` (what must never come back in an error)."""
    found = []
    for name, value in headers.items():
        if name.lower() in _SECRET_HEADERS and value:
            scheme, _, rest = value.partition(" ")
            found.append(rest.strip() if rest.strip() and scheme.lower() in ("bearer", "basic") else value.strip())
    return [s for s in found if s]


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every secret replaced: a provider (or a proxy) may echo the key it was sent."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


@contextmanager
def open_stream(
    client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str], provider: str
) -> Iterator[httpx.Response]:
    """POST `body` and yield the streaming response, mapping failures to one sentence.

    Every error raised here or in the caller's `with` body (mid-stream errors quote the
    provider) has the request's credentials scrubbed from its message.
    """
    secrets = header_secrets(headers)
    try:
        with _mapped(client, url, body, headers, provider, secrets) as response:
            yield response
    except WorkbenchError as exc:
        clean = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in exc.args)
        if clean != exc.args:
            exc.args = clean  # same type and attributes, only the message changes
            exc.__cause__ = exc.__context__ = None
        raise


@contextmanager
def _mapped(
    client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str], provider: str, secrets: list[str]
) -> Iterator[httpx.Response]:
    answering = False
    try:
        with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                response.read()
                raise status_error(provider, url, response, secrets)
            answering = True
            yield response
    except httpx.TimeoutException:
        raise ProviderUnreachable(
            f"The {provider} provider at {url} did not answer in time; check the endpoint or raise its timeout."
        ) from None
    except httpx.TransportError as exc:
        reason = clause(str(exc)) or type(exc).__name__
        if answering:
            raise ProviderUnreachable(
                f"The connection to the {provider} provider at {url} broke mid-answer: {reason}."
            ) from None
        raise ProviderUnreachable(f"Cannot reach the {provider} provider at {url}: {reason}.") from None


def new_client(timeout_s: float) -> httpx.Client:
    """A pooled client for one provider; proxies from the environment are not used."""
    return httpx.Client(timeout=httpx.Timeout(timeout_s, connect=10.0), trust_env=False)


def clause(text: str) -> str:
    """`text` (a provider's message) fit to end one of our sentences: one line, no
    control characters (it may reach a terminal), no final punctuation."""
    printable = "".join(ch for ch in text if ch.isprintable() or ch.isspace())
    return " ".join(printable.split()).rstrip(".!?;: ")


def status_error(provider: str, url: str, response: httpx.Response, secrets: list[str] | None = None) -> ProviderError:
    detail = _error_detail(response, secrets or [])
    code = response.status_code
    if code in (401, 403):
        return ProviderAuthError(
            f"The {provider} provider rejected the API key (HTTP {code}{': ' + detail if detail else ''}); "
            f"set a valid one with `workbench keys set-provider {provider}`."
        )
    return ProviderError(f"The {provider} provider at {url} answered HTTP {code}{': ' + detail if detail else ''}.")


def _error_detail(response: httpx.Response, secrets: list[str]) -> str:
    # Scrubbed before it is cut short: a cut through the key would leave its first characters.
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        return clause(scrub(response.text, secrets)[:200])
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = error.get("message") or error.get("type") or ""
    elif isinstance(error, str):
        message = error
    else:
        message = data.get("message", "") if isinstance(data, dict) else ""
    return clause(scrub(str(message), secrets)[:300])


def iter_sse(response: httpx.Response) -> Iterator[tuple[str, str]]:
    """Yield (event, data) pairs of a text/event-stream body."""
    event, data_lines = "message", []
    for line in response.iter_lines():
        if line == "":
            if data_lines:
                yield event, "\n".join(data_lines)
            event, data_lines = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data_lines.append(value)
    if data_lines:
        yield event, "\n".join(data_lines)


def parse_json(data: str, provider: str) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except ValueError:
        raise ProviderError(f"The {provider} provider sent a stream event that is not JSON.") from None
    if not isinstance(payload, dict):
        raise ProviderError(f"The {provider} provider sent a stream event that is not a JSON object.")
    return payload


class HTTPChatModel(ChatModel):
    """Common ground of the HTTP adapters: one pooled client per model, key kept private."""

    def __init__(
        self, provider_name: str, model: str, base_url: str, api_key: str | None, timeout_s: float = 120.0
    ) -> None:
        self.provider_name = provider_name
        self.model = model
        self.model_id = f"{provider_name}:{model}"
        self.url = self.endpoint(base_url.rstrip("/"))
        self._api_key = api_key
        self._client = new_client(timeout_s)

    def endpoint(self, base_url: str) -> str:
        """The URL this adapter posts to, given the provider's base URL."""
        raise NotImplementedError

    def close(self) -> None:
        self._client.close()
