"""`workbench ask` and `workbench chat`: one streamed answer, or a line chat over a session.

Standard library only at module level (`workbench --help` must stay fast).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.cli.common import PROG, open_engine, plain, reject_constant, terminal_safe

if TYPE_CHECKING:  # pragma: no cover
    from workbench.engine.api import EngineAPI


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    ask = commands.add_parser("ask", help="stream one answer to stdout", description="Stream one answer to stdout.")
    ask.add_argument("prompt", help="the question; '-' reads it from standard input")
    _add_generation_options(ask)
    ask.add_argument("--session", metavar="ID", help="continue this session instead of starting a new one")
    ask.add_argument("--schema", metavar="JSON|@FILE", help="constrain the answer to JSON matching this JSON Schema")
    ask.add_argument("--json", action="store_true", help="print one machine-readable JSON result instead of streaming")
    ask.add_argument("--no-save", action="store_true", help="do not store this exchange in the session history")

    chat = commands.add_parser(
        "chat",
        help="line chat over a persisted session",
        description="Line chat over a persisted session. Ctrl-D quits; /help lists commands.",
    )
    chat.add_argument("--session", metavar="ID", help="resume this session")
    _add_generation_options(chat)


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", help="model id (see `workbench models`), a .gguf path, or PROVIDER:MODEL")
    parser.add_argument("--system", "-s", help="system prompt")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="at most N tokens (default 512)")
    parser.add_argument("--temperature", "-t", type=float, metavar="T", help="0.0 to 2.0")
    parser.add_argument("--top-p", type=float, metavar="P", help="0.0 to 1.0")
    parser.add_argument("--top-k", type=int, metavar="K", help="1 to 1000")
    parser.add_argument("--repetition-penalty", type=float, metavar="R", help="above 0, at most 2.0 (default 1.1)")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop sequence (repeatable)")
    parser.add_argument(
        "--seed", type=int, help="random seed, for reproducible sampling (default: a fresh one each time)"
    )


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    params = {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "repetition_penalty": args.repetition_penalty,
        "seed": args.seed,
    }
    params = {k: v for k, v in params.items() if v is not None}
    if args.stop:
        params["stop"] = args.stop
    return params


def _load_schema(value: str) -> dict[str, Any]:
    from workbench.engine.errors import InvalidRequest

    try:
        text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
        schema = json.loads(text, parse_constant=reject_constant)
    except OSError as exc:
        raise InvalidRequest(f"Cannot read the schema file {value[1:]}: {exc.strerror}.") from None
    except ValueError as exc:
        raise InvalidRequest(f"--schema is not valid JSON: {exc}.") from None
    if not isinstance(schema, dict):
        raise InvalidRequest("--schema must be a JSON object (a JSON Schema).")
    return schema


def _stream_answer(engine: EngineAPI, request: dict[str, Any], turn: dict[str, Any] | None = None) -> Any:
    """Print the answer as it streams; return the RunFinished result, raise on failure.

    `turn`, if given, receives the session id as soon as the run starts, so a
    caller still knows the session after Ctrl-C.
    """
    from workbench.engine.errors import error_from_code
    from workbench.engine.schemas import RunFailed, RunFinished, RunStarted, TokenDelta

    out = sys.stdout
    result = None
    # Ctrl-C only sets a flag while the answer streams; the loop raises it.
    # A KeyboardInterrupt raised by Python's own handler can land inside a
    # ctypes callback of llama.cpp, where it is printed and swallowed.
    interrupted = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    with closing(engine.chat(request)) as events:  # closing stores a partial answer as cancelled
        try:
            for event in events:
                if interrupted.is_set():
                    raise KeyboardInterrupt
                if isinstance(event, TokenDelta):
                    out.write(terminal_safe(event.text, out))
                    out.flush()
                elif isinstance(event, RunStarted) and turn is not None:
                    turn["session_id"] = event.session_id
                elif isinstance(event, RunFinished):
                    result = event.result
                elif isinstance(event, RunFailed):
                    out.write("\n")
                    raise error_from_code(event.code, event.error)
            if interrupted.is_set():
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            out.write("\n[cancelled]\n")
            out.flush()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
    out.write("\n")
    out.flush()
    if result is not None and result.finish_reason == "repetition":
        # On stderr, so a pipe still gets the answer alone.
        print("[stopped: the model was repeating itself]", file=sys.stderr)
    return result


def cmd_ask(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        # A usage error (exit 2, like argparse's): nothing is sent to the model or saved.
        where = "standard input was" if args.prompt == "-" else "the prompt is"
        print(f"{PROG}: error: {where} empty; give the question to ask.", file=sys.stderr)
        return 2
    request: dict[str, Any] = {
        "messages": [{"role": "user", "content": prompt}],
        "model": args.model,
        "system": args.system,
        "params": _sampling(args),
        "session_id": args.session,
        "persist": not args.no_save,
    }
    if args.schema:
        request["response_format"] = {"type": "json_object", "schema": _load_schema(args.schema)}
    with open_engine(args) as engine:
        if args.json:
            result = engine.generate(request)
            print(result.model_dump_json(indent=2))
            return 0
        _stream_answer(engine, request)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from workbench.engine.errors import WorkbenchError

    with open_engine(args) as engine:
        session_id = args.session
        model = args.model
        if session_id:
            session = engine.get_session(session_id)
            model = model or session.model
            for message in engine.session_messages(session_id):
                label = "you" if message.role == "user" else message.role
                print(f"{label}> {terminal_safe(message.content, sys.stdout)}")
        model_id = model or next((m.id for m in engine.list_models() if m.is_default), "default")
        print(
            f"Chatting with {model_id}{' in session ' + session_id if session_id else ''}. /help for commands, Ctrl-D to quit."
        )
        while True:
            try:
                line = input("you> ")
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print()
                continue
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                return 0
            if text == "/help":
                print("/session  show the session id   /new  start a new session   /exit  quit")
                continue
            if text == "/session":
                print(session_id or "(no session yet: it starts with your first message)")
                continue
            if text == "/new":
                session_id = None
                print("New session.")
                continue
            request = {
                "messages": [{"role": "user", "content": line}],
                "model": model,
                "system": args.system,
                "params": _sampling(args),
                "session_id": session_id,
            }
            sys.stdout.write("assistant> ")
            turn: dict[str, Any] = {}
            try:
                _stream_answer(engine, request, turn)
            except KeyboardInterrupt:
                pass
            except WorkbenchError as exc:
                print(f"error: {plain(str(exc))}", file=sys.stderr)
            # A first turn creates the session (even when cancelled): stay in it.
            if session_id is None and turn.get("session_id") and engine_has_session(engine, turn["session_id"]):
                session_id = turn["session_id"]


def engine_has_session(engine: EngineAPI, session_id: str) -> bool:
    from workbench.engine.errors import NotFound

    try:
        engine.get_session(session_id)
        return True
    except NotFound:
        return False


COMMANDS = {"ask": cmd_ask, "chat": cmd_chat}
