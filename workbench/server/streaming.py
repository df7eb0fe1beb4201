"""Engine event streams served over HTTP: one dedicated thread per stream, and server-sent events.

Why a thread of its own: the local llama.cpp model is held per *thread*
(`workbench.engine.inference.llama._model_turn`), so an engine generator must
be advanced, and closed, on one thread from its first event to its end. The
server's thread pool would hand successive `next()` calls to different threads
(and keep one holding the model between two steps). `EventPump` runs the
iterator to its end on a thread it owns and hands each event to the event loop
through an asyncio queue.

Cancelling (a client that disconnects, a finished response): `cancel()` makes
that thread stop after the event it is waiting for and close the iterator
there, which cancels the generation or the agent run; `on_cancel` runs at once
as well, for iterators that may sit waiting without events (an agent run
waiting for an approval is woken by `cancel_run`).

`sse_response` is the Workbench-native wire form: per engine event one
`event: <type>` line and one `data: <json>` line; a failure during the stream
is an `event: error` with `{"code", "message"}` (the `WorkbenchError` code, so
a client can raise the same error class); the stream then ends.

Single-shot routes (one JSON answer at the end: `/v1/infer/sync`, the task
APIs, `/workbench/v1/generate`, non-streaming chat completions) consume the
same iterators with `run_to_end` (or `generate_to_end` for a chat turn)
instead of a blocking engine call such as `engine.generate`: a blocking call
would hold the one local model for everyone until its end, even for a client
that has gone. Once the client disconnects the iterator is closed on its
thread, and the route ends with `ClientDisconnected`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from workbench.server.security import APIError

log = logging.getLogger("workbench.server")

#: put on the queue after the last event (the iterator is closed by then)
END = object()
#: how often a waiting request checks whether its client is still there
DISCONNECT_POLL_S = 0.1
#: nginx's "client closed request": how metrics count a request whose client left before its answer
CLIENT_CLOSED = 499


class ClientDisconnected(APIError):
    """The client went away before the answer was ready; its generation or run was cancelled.

    Nobody reads this error's answer. Its status is a 5xx so that a retry with
    the same `Idempotency-Key` runs the request again instead of replaying it
    (answers under 500 are stored); metrics count it as `CLIENT_CLOSED`, not as
    a server failure (`workbench.server.metrics.status_of`).
    """

    def __init__(self) -> None:
        super().__init__(
            503, "CLIENT_DISCONNECTED", "The client disconnected before the answer was ready; the work was cancelled."
        )


class EventPump:
    """Runs an engine event iterator on a thread of its own, handing events to the running event loop.

    The iterator is advanced and closed on that one thread, so the local
    model's lock is taken and released there. Items from `get()`: the events,
    then an exception if the iterator raised, then `END`.
    """

    def __init__(
        self, events: Iterator[Any], name: str = "engine-stream", on_cancel: Callable[[], None] | None = None
    ) -> None:
        self._events = events
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._cancelled = threading.Event()
        self.on_cancel = on_cancel
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._events:
                if self._cancelled.is_set():
                    break
                self._put(event)
                if self._cancelled.is_set():
                    break
        except Exception as exc:  # the engine reports most failures as events; anything else lands here
            self._put(exc)
        finally:
            close = getattr(self._events, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # closing must not hide the stream's own outcome
                    log.exception("closing an engine stream failed")
            self._put(END)

    def _put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone: nobody is listening any more
            self._cancelled.set()

    async def get(self) -> Any:
        return await self._queue.get()

    def cancel(self) -> None:
        """Stop after the current event and close the iterator (on its own thread); idempotent."""
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        callback, self.on_cancel = self.on_cancel, None
        if callback is not None:
            try:
                callback()
            except Exception:
                log.exception("cancelling an engine stream failed")

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


async def cancel_on_disconnect(request: Any, pump: EventPump, poll_s: float = DISCONNECT_POLL_S) -> None:
    """Cancel `pump` once the client of `request` has gone (run as a task while a response is not yet streaming)."""
    while not await request.is_disconnected():
        await asyncio.sleep(poll_s)
    pump.cancel()


async def run_to_end(
    request: Any,
    events: Iterator[Any],
    name: str = "engine-run",
    on_event: Callable[[EventPump, Any], None] | None = None,
) -> Any:
    """Run an engine iterator to its end on a thread of its own and return its last event.

    For routes that answer once, at the end. Must be awaited on the event loop
    (an `async def` route). While it waits, a watcher polls the client: once
    it has disconnected, the iterator is closed on its thread (which cancels
    the generation or the run, and frees the model at once) and
    `ClientDisconnected` is raised. `on_event(pump, event)` sees each event as
    it arrives (e.g. to set `pump.on_cancel` once a run id is known).

    Raises what the iterator raised, `ClientDisconnected`, or `WorkbenchError`
    when the iterator ended without any event.
    """
    from workbench.engine.errors import WorkbenchError

    pump = EventPump(events, name=name)
    watcher = asyncio.create_task(cancel_on_disconnect(request, pump))
    last: Any = END
    try:
        while True:
            item = await pump.get()
            if item is END:
                break
            if isinstance(item, Exception):
                raise item
            if on_event is not None:
                on_event(pump, item)
            last = item
        # Only the watcher cancels the pump before this point: the client has gone.
        if pump.cancelled:
            raise ClientDisconnected()
    finally:
        watcher.cancel()
        pump.cancel()  # a no-op after a normal end; stops the iterator if this coroutine was cancelled
    if last is END:
        raise WorkbenchError("The engine stream ended without a result.")
    return last


async def generate_to_end(request: Any, events: Iterator[Any], name: str = "engine-generate") -> Any:
    """The `GenerationResult` of an `engine.chat` stream, as `engine.generate` returns it, cancelled if the client goes.

    `engine.generate` runs the same stream, but as a blocking call that no
    disconnect can stop. Failures map as there: `RunFailed` raises the error of
    its code; a stream without a result raises `WorkbenchError`.
    """
    from workbench.engine.errors import WorkbenchError, error_from_code
    from workbench.engine.schemas import RunFailed, RunFinished

    last = await run_to_end(request, events, name=name)
    if isinstance(last, RunFailed):
        raise error_from_code(last.code, last.error)
    if isinstance(last, RunFinished):
        return last.result
    raise WorkbenchError("The generation ended without a result.")


def sse_event(kind: str, data: Any) -> str:
    """One server-sent event: `event: KIND` and the JSON of `data` on one `data:` line."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def sse_events(pump: EventPump, on_event: Callable[[Any], None] | None = None) -> AsyncIterator[str]:
    """The pump's events as Workbench-native server-sent events; cancels the pump however it ends.

    A client that disconnects makes Starlette cancel this generator: the
    `finally` cancels the pump, which closes the engine iterator on its thread.
    """
    from workbench.engine.errors import WorkbenchError

    try:
        while True:
            item = await pump.get()
            if item is END:
                break
            if isinstance(item, WorkbenchError):
                yield sse_event("error", {"code": item.code, "message": str(item)})
                break
            if isinstance(item, Exception):
                log.error("an engine stream failed", exc_info=item)
                # Only the type: an exception's text can carry request data.
                yield sse_event(
                    "error",
                    {
                        "code": "internal_error",
                        "message": f"The stream failed unexpectedly ({type(item).__name__}); "
                        "details are in the server log.",
                    },
                )
                break
            if on_event is not None:
                on_event(item)
            yield sse_event(getattr(item, "type", "event"), item.model_dump(mode="json"))
    finally:
        pump.cancel()


def sse_response(
    events: Iterator[Any], name: str = "engine-stream", on_event: Callable[[EventPump, Any], None] | None = None
) -> Any:
    """A `StreamingResponse` of `events` (an engine iterator), pumped on a thread of its own.

    Must be called on the event loop (an `async def` route). `on_event(pump,
    event)` sees each event before it is sent (e.g. to set `pump.on_cancel`
    once a run id is known).
    """
    from fastapi.responses import StreamingResponse

    pump = EventPump(events, name=name)
    hook = (lambda event: on_event(pump, event)) if on_event is not None else None
    return StreamingResponse(
        sse_events(pump, hook),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
