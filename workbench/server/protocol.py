"""uvicorn's h11 protocol with read timeouts: a half-sent request cannot hold a connection open.

uvicorn times out idle keep-alive connections, but not a request that stops half-way: a
client that sends part of a request's head, or a Content-Length it never delivers, keeps
the connection (and for a body, the route's task) forever. Like nginx's
`client_header_timeout` and `client_body_timeout`:

* the head of a request (from its first byte, or from the connection's start) must arrive
  within `read_timeout_s`; otherwise the server answers 408 and closes the connection;
* while a body is arriving, no pause may last longer than `read_timeout_s`; otherwise the
  connection is closed (the route sees the client disconnect).
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: default for `workbench serve --read-timeout` and the TUI's server
READ_TIMEOUT_S = 10.0

_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 35\r\n\r\nThe request was not sent in time.\r\n"
)


class TimedH11Protocol(H11Protocol):
    """`H11Protocol` plus the two read timeouts above (`read_timeout_s` set by `protocol_with`)."""

    read_timeout_s = READ_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_timer: asyncio.TimerHandle | None = None
        self._got_bytes = False
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is closed too

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        between_requests = self.conn.their_state is h11.IDLE
        if between_requests and self._read_timer is None:
            self._arm()  # the head of a new request begins: it has read_timeout_s in all
        elif self.conn.their_state is h11.SEND_BODY:
            self._arm()  # a body chunk: the pause allowed starts again
        super().data_received(data)
        if self.conn.their_state is h11.SEND_BODY:
            if between_requests:
                self._arm()  # the head is in; the body's pauses are timed from now
        elif self.conn.their_state is not h11.IDLE:
            self._disarm()  # the request is in (or the connection is done with): the app's time now

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.read_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if getattr(self, "_read_timer", None) is not None:
            self._read_timer.cancel()  # type: ignore[union-attr]
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE and self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being written; uvicorn's keep-alive timer follows it
        if state is h11.IDLE and self._got_bytes:
            self.transport.write(_TIMEOUT_408)
        if state in (h11.IDLE, h11.SEND_BODY):
            self.transport.close()


def protocol_with(read_timeout_s: float) -> type[Any]:
    """A `TimedH11Protocol` class with this timeout, for `uvicorn.Config(http=...)`."""
    return type("TimedH11Protocol", (TimedH11Protocol,), {"read_timeout_s": float(read_timeout_s)})
