"""Consuming a chat, agent or answer stream in ONE thread worker, and the messages it posts.

Each `consume_*` function runs inside a thread worker: it calls the engine,
reads the whole stream there (the local model's lock is per thread), batches
tokens so the UI re-renders about every 50 ms, and posts messages to the
screen (`post_message` is thread-safe). Cancelling the worker stops the
stream: the iterator is closed (the engine then stores a chat's partial answer
with finish_reason "cancelled"), and an agent run waiting for an approval is
cancelled through `cancel_run` so the worker never blocks the app's exit.
The `*_meta` helpers format the line shown under each answer.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.worker import get_current_worker

from workbench.tui.safe import one_line

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from workbench.engine.schemas import AgentRunRecord, AnswerResponse, GenerationResult, MessageRecord

#: seconds between two re-renders of a streamed answer
RENDER_INTERVAL = 0.05


class TokensStreamed(Message):
    """Text generated since the last batch."""

    def __init__(self, turn: int, text: str) -> None:
        super().__init__()
        self.turn = turn
        self.text = text


class StreamEvent(Message):
    """One engine event other than a token (run started/finished/failed, agent events, an answer)."""

    def __init__(self, turn: int, event: Any) -> None:
        super().__init__()
        self.turn = turn
        self.event = event


class StreamEnded(Message):
    """The worker is done: finished, cancelled (by the user) or failed before streaming."""

    def __init__(self, turn: int, *, cancelled: bool = False, error: Exception | None = None, tokens: int = 0) -> None:
        super().__init__()
        self.turn = turn
        self.cancelled = cancelled
        self.error = error
        self.tokens = tokens


def _post(target: MessagePump, message: Message) -> bool:
    try:
        return target.post_message(message)
    except RuntimeError:  # the event loop is gone: the app is exiting
        return False


def consume_chat(engine: Any, target: MessagePump, turn: int, request: dict[str, Any]) -> None:
    """Stream one chat turn; tokens are posted in ~50 ms batches."""
    worker = get_current_worker()
    try:
        events = engine.chat(request)
    except Exception as exc:  # noqa: BLE001 - shown by the screen
        _post(target, StreamEnded(turn, error=exc))
        return
    pending: list[str] = []
    tokens = 0
    last = time.monotonic()
    cancelled = False
    try:
        with closing(events):
            for event in events:
                if worker.is_cancelled:
                    cancelled = True
                    break
                if event.type == "token":
                    pending.append(event.text)
                    tokens += 1
                    if time.monotonic() - last >= RENDER_INTERVAL:
                        _post(target, TokensStreamed(turn, "".join(pending)))
                        pending.clear()
                        last = time.monotonic()
                    continue
                if pending:
                    _post(target, TokensStreamed(turn, "".join(pending)))
                    pending.clear()
                _post(target, StreamEvent(turn, event))
    except Exception as exc:  # noqa: BLE001 - e.g. the store failed while recording the turn
        _post(target, StreamEnded(turn, error=exc, tokens=tokens))
        return
    # closing() above ran before this line: a cancelled answer is stored by now
    if pending:
        _post(target, TokensStreamed(turn, "".join(pending)))
    _post(target, StreamEnded(turn, cancelled=cancelled, tokens=tokens))


def consume_agent(engine: Any, target: MessagePump, turn: int, request: dict[str, Any]) -> None:
    """Run an agent; every event is posted. Cancelling the worker cancels the run, even mid-approval."""
    worker = get_current_worker()
    created = None
    try:
        if not request.get("session_id"):  # the run starts a chat of its own, titled by the task
            created = engine.create_session(title=one_line(request["task"], 60)).id
            request = {**request, "session_id": created}
        events = engine.run_agent(request)
    except Exception as exc:  # noqa: BLE001
        if created is not None:  # the run never started: leave no empty chat behind
            try:
                engine.delete_session(created)
            except Exception:  # noqa: BLE001 - the error that matters is the run's
                pass
        _post(target, StreamEnded(turn, error=exc))
        return
    run_ids: list[str] = []
    done = threading.Event()

    def watch() -> None:
        # The run may be blocked waiting for an approval: only cancel_run wakes it.
        while not done.wait(0.1):
            if worker.is_cancelled:
                for run_id in run_ids:
                    try:
                        engine.cancel_run(run_id)
                    except Exception:  # noqa: BLE001 - the run may have just ended
                        pass
                return

    threading.Thread(target=watch, name="agent-run-cancel-watch", daemon=True).start()
    cancelled = False
    try:
        with closing(events):
            for event in events:
                if event.type == "agent_run_started":
                    run_ids.append(event.run_id)
                _post(target, StreamEvent(turn, event))
                if event.type == "agent_run_finished":
                    # no break: closing the run after its last event would record it as cancelled
                    cancelled = event.run.status == "cancelled"
                    continue
                if worker.is_cancelled:
                    cancelled = True
                    break
    except Exception as exc:  # noqa: BLE001
        _post(target, StreamEnded(turn, error=exc))
        return
    finally:
        done.set()
    _post(target, StreamEnded(turn, cancelled=cancelled))


def consume_answer(engine: Any, target: MessagePump, turn: int, request: dict[str, Any]) -> None:
    """A cited answer from a knowledge collection (one call, no stream)."""
    worker = get_current_worker()
    try:
        response = engine.answer(request)
    except Exception as exc:  # noqa: BLE001
        _post(target, StreamEnded(turn, error=exc))
        return
    if not worker.is_cancelled:
        _post(target, StreamEvent(turn, response))
    _post(target, StreamEnded(turn, cancelled=worker.is_cancelled))


# ------------------------------------------------------------------ meta lines


def context_budget(used: int, n_ctx: int | None) -> str:
    if not n_ctx:
        return f"context {used} tokens"
    return f"context {used}/{n_ctx} ({100 * used / n_ctx:.1f}%)"


def _figures(
    model: str,
    completion_tokens: int,
    prompt_tokens: int,
    latency_ms: float,
    ttft_ms: float | None,
    finish_reason: str,
    n_ctx: int | None,
) -> str:
    """`model · tokens · latency · context budget`, plus why it stopped unless it simply finished."""
    parts = [model, f"{completion_tokens} tokens out, {prompt_tokens} in", f"{latency_ms / 1000:.1f} s"]
    if ttft_ms is not None:
        parts[-1] += f" (first token {ttft_ms:.0f} ms)"
    parts.append(context_budget(prompt_tokens + completion_tokens, n_ctx))
    if finish_reason != "stop":
        parts.append(f"finish_reason {finish_reason}")
    return " · ".join(parts)


def generation_meta(result: GenerationResult, n_ctx: int | None) -> str:
    usage = result.usage
    return _figures(
        result.model,
        usage.completion_tokens,
        usage.prompt_tokens,
        result.latency_ms,
        result.time_to_first_token_ms,
        result.finish_reason,
        n_ctx,
    )


def stored_meta(message: MessageRecord, n_ctx: int | None) -> str:
    """The facts line of a stored answer: its generation's figures, or the agent run it came from."""
    g = message.generation
    if g is not None:
        return _figures(
            g.model,
            g.completion_tokens,
            g.prompt_tokens,
            g.latency_ms,
            g.time_to_first_token_ms,
            g.finish_reason,
            n_ctx,
        )
    if message.run_id:
        return f"agent run {message.run_id} (its steps are in the Clinic, F5)"
    return ""


def agent_meta(run: AgentRunRecord, last_prompt_tokens: int, n_ctx: int | None) -> str:
    duration = f"{(run.duration_ms or 0) / 1000:.1f} s"
    return " · ".join(
        [
            f"run {run.status}",
            run.model,
            f"{run.steps} step{'s' if run.steps != 1 else ''}",
            f"{run.completion_tokens} tokens out, {run.prompt_tokens} in",
            duration,
            context_budget(last_prompt_tokens, n_ctx) + " at the last step",
        ]
    )


#: shown above an answer that quotes the passages because the model's own was unusable
EXTRACTIVE_LABEL = "Extract (the model's answer was unusable; this is the passages' best-matching sentence)"


def answer_meta(response: AnswerResponse, elapsed_s: float) -> str:
    cited = len(response.citations)
    parts = [
        response.model or "no model (nothing matched)",
        f"{response.latency_ms / 1000:.1f} s",
        f"{cited} citation{'s' if cited != 1 else ''}",
    ]
    if response.mode == "extractive":
        parts.append("mode extractive")
    return " · ".join(parts)


def answer_text(response: AnswerResponse) -> str:
    """The answer as shown: an extractive one is labelled as such above the quote (Markdown)."""
    if response.mode == "extractive":
        return f"*{EXTRACTIVE_LABEL}:*\n\n{response.text}"
    return response.text
