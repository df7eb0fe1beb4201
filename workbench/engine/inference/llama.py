"""The default backend: a GGUF model run in-process by llama.cpp.

One `Llama` instance lives in the process at a time (loading another GGUF
replaces it) and generations are serialised by a process-wide lock, because a
llama.cpp context is neither thread-safe nor cheap to duplicate. The KV cache
is kept between calls, so a chat turn only evaluates the tokens that follow the
longest prefix it shares with the previous call (llama-cpp-python's prefix
matching).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.engine.errors import ContextOverflow, InvalidRequest, ModelBusy, ModelLoadError, ModelNotFound
from workbench.engine.inference.base import ChatModel, StreamEnd, StreamItem
from workbench.engine.inference.grammar import check_schema, json_grammar, prepare_schema
from workbench.engine.inference.loop_guard import RepetitionGuard
from workbench.engine.schemas import (
    DEFAULT_MAX_TOKENS,
    MAX_SEED,
    ChatMessage,
    FinishReason,
    ResponseFormat,
    SamplingParams,
    ToolSpec,
)

GGUF_MAGIC = b"GGUF"
# Attempts at output that satisfies schema keywords the grammar cannot enforce.
SCHEMA_ATTEMPTS = 4
#: Sampling for parameters the caller leaves unset, fitted to small models:
#: without a repetition penalty a 135M model loops within a few sentences.
#: (llama-cpp-python's own defaults: temperature 0.2, top_p 0.95, top_k 40,
#: no penalty.)
LOCAL_SAMPLING_DEFAULTS: dict[str, float | int] = {
    "temperature": 0.2,
    "top_p": 0.95,
    "top_k": 40,
    "repeat_penalty": 1.1,
}

# A plain Lock, not an RLock: a generation's steps may run on different threads
# (a web server iterates a stream from a pool), and any thread may release it.
_lock = threading.Lock()
# The thread that started the generation holding `_lock`: a second generation
# started by that same thread would wait for itself forever, so it is refused.
_holder: int | None = None
_loaded: tuple[Path, Any] | None = None  # (resolved path, llama_cpp.Llama)


def physical_cores() -> int:
    """Physical CPU cores (llama.cpp gains nothing from SMT siblings)."""
    try:
        pairs = set()
        physical = core = None
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        pairs.add((physical, core))
                    physical = core = None
        if core is not None:
            pairs.add((physical, core))
        if pairs:
            return len(pairs)
    except OSError:
        pass
    return os.cpu_count() or 1


def check_gguf(path: Path) -> None:
    """Fail with one clear sentence unless `path` looks like a GGUF file."""
    if not path.is_file():
        raise ModelNotFound(f"No model file at {path}.")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelLoadError(f"Cannot read the model file {path}: {exc.strerror}.") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF model file (it lacks the GGUF header); llama.cpp needs .gguf files."
        )


@contextmanager
def _model_turn() -> Iterator[None]:
    """Hold the process's model for one generation (or load)."""
    global _holder
    me = threading.get_ident()
    if _holder == me:
        raise ModelBusy(
            "The local model is still busy with an unfinished answer from this thread; "
            "finish or close that stream first."
        )
    with _lock:
        _holder = me
        try:
            yield
        finally:
            _holder = None


def default_threads() -> int:
    """llama.cpp threads when `config.json` sets no `n_threads`: one core is left free.

    llama.cpp's threads meet at a barrier after every layer, so one thread
    that loses its core to another process stalls them all: on 2 busy cores
    2 threads generated several times slower than 1 (benchmarks/cold_cli.py).
    Leaving a core for the rest of the machine costs little when it is idle.
    """
    return max(1, physical_cores() - 1)


def load_llama(path: Path, n_ctx: int, n_threads: int | None = None) -> Any:
    """The process's `Llama` for `path`, loading it (and unloading another) if needed."""
    with _model_turn():
        return _load_locked(path, n_ctx, n_threads)


def _load_locked(path: Path, n_ctx: int, n_threads: int | None = None) -> Any:
    """Load `path` unless it is the loaded model. The caller holds `_lock`."""
    global _loaded
    path = path.resolve()
    threads = n_threads or default_threads()
    if _loaded is not None and _loaded[0] == path:
        if _loaded[1].n_threads != threads:
            _set_threads(_loaded[1], threads)  # same weights, another thread count: no reload
        return _loaded[1]
    check_gguf(path)
    if _loaded is not None:
        _loaded[1].close()
        _loaded = None
    from llama_cpp import Llama

    try:
        llama = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(
            f"llama.cpp could not load {path.name}: the file is damaged, truncated, or a model "
            f"architecture this llama.cpp does not support ({str(exc).splitlines()[0][:120]})."
        ) from None
    train_ctx = llama.n_ctx_train() if hasattr(llama, "n_ctx_train") else n_ctx
    if train_ctx and n_ctx > train_ctx:
        # A context beyond what the model was trained on only wastes memory.
        llama.close()
        llama = Llama(model_path=str(path), n_ctx=train_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
    _evaluate_prompts_in_blocks(llama)
    _loaded = (path, llama)
    return llama


#: Prompt tokens are evaluated in blocks that start at multiples of this position.
PROMPT_BLOCK = 64


def _evaluate_prompts_in_blocks(llama: Any) -> None:
    """Make a prompt's logits independent of what the model evaluated before.

    llama-cpp-python keeps the previous call's tokens and evaluates only the part
    of a new prompt after the common prefix. Its float results depend on how the
    tokens are batched (one token at a time while generating, up to `n_batch` at
    once for a prompt), and on a 135M model that flips near-ties: the same greedy
    request answered "The capital of France is Paris." after one request and
    "La femme de France" in a new process. Here every prompt is evaluated in
    blocks of `PROMPT_BLOCK` tokens at fixed positions, and only whole blocks that
    were themselves evaluated that way are reused. The same prompt therefore
    always meets the same computation: temperature 0 or a seed gives the same
    text in every process and after any history, and a long shared prefix (an
    agent's instructions and transcript) is still reused up to the last block.
    """
    generate, evaluate = llama.generate, llama.eval
    state = {"prompt": False, "blocks_end": 0}

    def generate_in_blocks(*args: Any, **kwargs: Any) -> Iterator[int]:
        state["prompt"] = True  # the next eval is this call's prompt
        return generate(*args, **kwargs)

    def eval_in_blocks(tokens: Any) -> None:
        if not state["prompt"]:
            evaluate(tokens)  # a sampled token, one at a time
            return
        state["prompt"] = False
        kept = llama.n_tokens  # generate() kept this much of the previous tokens
        start = min(kept, state["blocks_end"]) // PROMPT_BLOCK * PROMPT_BLOCK
        pending = [int(t) for t in llama.input_ids[start:kept]] + [int(t) for t in tokens]
        llama.n_tokens = start
        state["blocks_end"] = start
        for i in range(0, len(pending), PROMPT_BLOCK):
            block = pending[i : i + PROMPT_BLOCK]
            evaluate(block)
            if len(block) == PROMPT_BLOCK:
                state["blocks_end"] = llama.n_tokens

    llama.generate = generate_in_blocks
    llama.eval = eval_in_blocks


def _set_threads(llama: Any, threads: int) -> None:
    import llama_cpp

    llama_cpp.llama_set_n_threads(llama.ctx, threads, threads)
    llama.n_threads = llama.n_threads_batch = threads


class _TokenCounter:
    """A logits processor that counts sampling steps; its first call sees the whole prompt."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.sampled = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if self.sampled == 0:
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        return scores


NO_NATIVE_TOOLS = (
    "Local models call tools through agents (`workbench run`); a chat request with tools needs a remote "
    "OpenAI-compatible or Anthropic model."
)


class LlamaCppChatModel(ChatModel):
    provider = "llama.cpp"
    supports_tools = False

    def __init__(
        self, model_id: str, path: Path, n_ctx: int = 8192, n_threads: int | None = None, loop_guard: bool = True
    ) -> None:
        self.model_id = model_id
        self.path = path
        self.n_ctx = n_ctx
        #: None: `default_threads()`
        self.n_threads = n_threads
        #: end a generation that repeats itself (finish_reason "repetition");
        #: off only to measure the model without it (benchmarks/quality.py)
        self.loop_guard = loop_guard

    def load(self) -> Any:
        """Load the model now (otherwise the first generation does it)."""
        return load_llama(self.path, self.n_ctx, self.n_threads)

    def check(
        self,
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> None:
        if tools:
            raise InvalidRequest(NO_NATIVE_TOOLS)
        if response_format is not None and response_format.is_json and response_format.schema_ is not None:
            check_schema(response_format.schema_)

    @staticmethod
    def completion_kwargs(params: SamplingParams, response_format: ResponseFormat | None) -> dict[str, Any]:
        """llama-cpp-python arguments: the caller's parameters over `LOCAL_SAMPLING_DEFAULTS`.

        An unset seed is drawn at random for each call (llama-cpp-python would
        otherwise reuse one fixed seed, so asking again gave the same text).
        """
        kwargs: dict[str, Any] = {"max_tokens": params.max_tokens or DEFAULT_MAX_TOKENS, **LOCAL_SAMPLING_DEFAULTS}
        for ours, theirs in (
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("top_k", "top_k"),
            ("repetition_penalty", "repeat_penalty"),
            ("seed", "seed"),
        ):
            value = getattr(params, ours)
            if value is not None:
                kwargs[theirs] = value
        if params.seed is None:
            kwargs["seed"] = secrets.randbelow(MAX_SEED + 1)
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if response_format is not None and response_format.is_json:
            kwargs["grammar"] = json_grammar(response_format.schema_)
        return kwargs

    def stream(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        response_format: ResponseFormat | None = None,
        tools: list[ToolSpec] | None = None,
    ) -> Iterator[StreamItem]:
        if tools:
            raise InvalidRequest(NO_NATIVE_TOOLS)
        schema = response_format.schema_ if response_format is not None and response_format.is_json else None
        if schema is None or prepare_schema(schema)[1] or params.temperature == 0:
            # The grammar enforces the whole schema (or sampling is greedy, so
            # sampling again would give the same text): stream as it comes.
            yield from self._stream_once(messages, params, response_format)
            return
        # Part of the schema is beyond the grammar: validate each attempt and
        # sample again with another seed, yielding only the accepted text.
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(schema)
        prompt_tokens = completion_tokens = 0
        for attempt in range(SCHEMA_ATTEMPTS):
            seed = None if params.seed is None else (params.seed + attempt) % (MAX_SEED + 1)
            attempt_params = params.model_copy(update={"seed": seed})
            parts: list[str] = []
            for item in self._stream_once(messages, attempt_params, response_format):
                if isinstance(item, StreamEnd):
                    end = item
                else:
                    parts.append(item)
            prompt_tokens = end.prompt_tokens
            completion_tokens += end.completion_tokens
            text = "".join(parts)
            if end.finish_reason in ("length", "repetition") or _is_valid(validator, text):
                break
        yield text
        yield StreamEnd(end.finish_reason, prompt_tokens, completion_tokens)

    def _stream_once(
        self,
        messages: list[ChatMessage],
        params: SamplingParams,
        response_format: ResponseFormat | None,
    ) -> Iterator[StreamItem]:
        from jinja2 import TemplateError
        from llama_cpp import LogitsProcessorList

        kwargs = self.completion_kwargs(params, response_format)
        counter = _TokenCounter()
        guard = RepetitionGuard() if self.loop_guard else None
        with _model_turn():
            llama = _load_locked(self.path, self.n_ctx, self.n_threads)
            finish: FinishReason = "stop"
            try:
                chunks = llama.create_chat_completion(
                    messages=chat_template_messages(messages),
                    stream=True,
                    logits_processor=LogitsProcessorList([counter]),
                    **kwargs,
                )
            except ValueError as exc:
                raise _context_error(exc, llama) from None
            except TemplateError as exc:
                # The GGUF's chat template is rendered in Jinja2's sandbox; one
                # that reaches for unsafe attributes is refused there.
                raise ModelLoadError(
                    f"The chat template inside {self.path.name} cannot be used ({type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:120]}); use another model file."
                ) from None
            try:
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    text = choice["delta"].get("content")
                    if text:
                        yield text
                        if guard is not None and guard.feed(text):
                            # Looping: stop sampling now rather than at max_tokens.
                            finish = "repetition"
                            break
                    if choice.get("finish_reason"):
                        finish = "length" if choice["finish_reason"] == "length" else "stop"
            except ValueError as exc:
                raise _context_error(exc, llama) from None
            finally:
                # On cancellation, end llama-cpp-python's generator now, while
                # we still hold the lock, not whenever it is collected.
                chunks.close()
        # The token that ended a "stop" (end-of-generation, or the last token of
        # a stop sequence) is not part of the answer, as llama.cpp counts it.
        # After "repetition" every sampled token was streamed.
        completion_tokens = counter.sampled - 1 if finish == "stop" and counter.sampled else counter.sampled
        yield StreamEnd(finish, counter.prompt_tokens, completion_tokens)


def chat_template_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as the model's chat template takes them: roles system, user, assistant.

    An assistant's tool calls become JSON text (`{"tool": name, "arguments": {...}}`,
    one per line) and a "tool" message becomes a user message
    `Tool result (name): content`, so a conversation with tool turns still renders.
    """
    import json

    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            name = m.name or names.get(m.tool_call_id or "") or "tool"
            out.append({"role": "user", "content": f"Tool result ({name}): {m.content}"})
        elif m.role == "assistant" and m.tool_calls:
            lines = [m.content] if m.content else []
            for call in m.tool_calls:
                names[call.id] = call.name
                lines.append(json.dumps({"tool": call.name, "arguments": call.arguments}, ensure_ascii=False))
            out.append({"role": "assistant", "content": "\n".join(lines)})
        else:
            out.append(m.model_dump(include={"role", "content"}, exclude_none=True))
    return out


def _is_valid(validator: Any, text: str) -> bool:
    import json

    try:
        return validator.is_valid(json.loads(text))
    except ValueError:
        return False


def _context_error(exc: ValueError, llama: Any) -> Exception:
    if "exceed context window" in str(exc):
        return ContextOverflow(
            f"The conversation is longer than the model's context window ({llama.n_ctx()} tokens): "
            "start a new session or use a model with a larger context."
        )
    return exc
