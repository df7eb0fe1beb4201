"""The `workbench` command line.

Only argparse and the standard library are imported at module level, so that
`workbench --help` answers at once; the engine loads inside each command.
"""

from __future__ import annotations

import argparse
import json
from contextlib import closing
import os
import re
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from workbench.engine.api import EngineAPI

PROG = "workbench"
# C0/C1 control characters other than tab and newline: model output printed to a
# terminal must not be able to move the cursor, retitle the window, etc.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A local-first agent workbench: chat with local or remote models, give them memory, knowledge and tools, and run agents, from the terminal.",
        epilog="With no command, opens the TUI. Run `workbench COMMAND --help` for a command's options.",
    )
    parser.add_argument("--home", metavar="DIR", help="workbench data folder (default: $WORKBENCH_HOME or the user data dir)")
    parser.add_argument("--connect", "--remote", dest="connect", metavar="URL",
                        help="use the Workbench server at URL (e.g. http://127.0.0.1:8765) instead of the data "
                        "folder; the API key comes from $WORKBENCH_API_KEY. Without --connect, a server already "
                        "running on the data folder is used automatically.")
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    parser.add_argument("--serve", nargs="?", const="127.0.0.1:8765", metavar="HOST:PORT",
                        help="with the TUI: also serve the local API from the same process (default 127.0.0.1:8765)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ask = commands.add_parser("ask", help="stream one answer to stdout", description="Stream one answer to stdout.")
    ask.add_argument("prompt", help="the question; '-' reads it from standard input")
    _add_generation_options(ask)
    ask.add_argument("--session", metavar="ID", help="continue this session instead of starting a new one")
    ask.add_argument("--schema", metavar="JSON|@FILE", help="constrain the answer to JSON matching this JSON Schema")
    ask.add_argument("--json", action="store_true", help="print one machine-readable JSON result instead of streaming")
    ask.add_argument("--no-save", action="store_true", help="do not store this exchange in the session history")

    chat = commands.add_parser("chat", help="line chat over a persisted session", description="Line chat over a persisted session. Ctrl-D quits; /help lists commands.")
    chat.add_argument("--session", metavar="ID", help="resume this session")
    _add_generation_options(chat)

    models = commands.add_parser("models", help="list available models, or pull a GGUF from Hugging Face",
                                 description="List the packaged, local and remote models; `models pull` downloads a GGUF.")
    models.add_argument("--json", action="store_true", help="print JSON")
    models_commands = models.add_subparsers(dest="models_command", metavar="ACTION")
    models_commands.add_parser("list", help="list models (the default)").add_argument(
        "--json", action="store_true", help="print JSON")
    pull = models_commands.add_parser(
        "pull", help="download a GGUF from Hugging Face into the home's models/ folder",
        description="Download OWNER/NAME/FILE.gguf (or the 4-bit GGUF of OWNER/NAME) from Hugging Face into "
        "<home>/models/, with a progress bar, resuming a broken download, checked against the repository's "
        "size and sha256. The only command that uses the internet. HF_ENDPOINT overrides the server; HF_TOKEN "
        "is sent for gated repositories.")
    pull.add_argument("spec", metavar="REPO[/FILE]", help="e.g. Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf")

    sessions = commands.add_parser("sessions", help="list, show or delete chat sessions", description="List, show or delete chat sessions.")
    sessions_commands = sessions.add_subparsers(dest="sessions_command", metavar="ACTION")
    listing = sessions_commands.add_parser("list", help="list sessions, most recent first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sessions_commands.add_parser("show", help="print a session's messages")
    show.add_argument("session_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    delete = sessions_commands.add_parser("delete", help="delete a session and its messages")
    delete.add_argument("session_id", metavar="ID")

    providers = commands.add_parser("providers", help="configure remote model providers", description="Configure OpenAI-compatible or Anthropic endpoints. Keys go to the OS keyring (`workbench keys`).")
    providers_commands = providers.add_subparsers(dest="providers_command", metavar="ACTION")
    add = providers_commands.add_parser("add", help="add or replace a provider")
    add.add_argument("name", help="short name, used in model ids as NAME:MODEL")
    add.add_argument("--kind", choices=["openai", "anthropic"], required=True, help="wire format")
    add.add_argument("--base-url", required=True, help="e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1")
    add.add_argument("--model", dest="models", action="append", default=[], metavar="MODEL", help="a model to list (repeatable)")
    providers_commands.add_parser("list", help="list providers")
    remove = providers_commands.add_parser("remove", help="remove a provider and its key")
    remove.add_argument("name")

    keys = commands.add_parser("keys", help="provider keys (OS keyring) and API keys of the local server",
                               description="Provider API keys live only in the OS keyring. Server API keys are "
                               "shown once at creation and stored hashed.")
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    create_key = keys_commands.add_parser("create", help="create a server API key (printed once)")
    create_key.add_argument("--name", required=True)
    create_key.add_argument("--scopes", default="read:*,write:*,execute:*",
                            help="comma-separated ACTION:RESOURCE scopes, e.g. read:*,write:agents,execute:tools "
                            "(default read:*,write:*,execute:*; * grants everything)")
    keys_commands.add_parser("list", help="list server API keys (never their secrets)")
    revoke_key = keys_commands.add_parser("revoke", help="revoke a server API key at once")
    revoke_key.add_argument("key_id", metavar="ID")
    set_key = keys_commands.add_parser("set-provider", help="store a provider's API key (prompted, or read from stdin)")
    set_key.add_argument("name")
    del_key = keys_commands.add_parser("delete-provider", help="delete a provider's API key")
    del_key.add_argument("name")
    _add_knowledge_commands(commands)
    from workbench import cli_agents, cli_eval

    cli_agents.add_commands(commands)
    cli_eval.add_commands(commands)
    _accept_globals_everywhere(parser)
    return parser


def _add_knowledge_commands(commands: Any) -> None:
    ingest = commands.add_parser(
        "ingest", help="add files and folders to the knowledge base",
        description="Add files and folders (.md .txt .html .pdf .json .csv and source code) to a collection. "
        "Re-ingesting a folder updates changed files and removes deleted ones.",
    )
    ingest.add_argument("paths", nargs="+", metavar="PATH")
    ingest.add_argument("--collection", "-c", default="default", help="collection name (default: default)")
    ingest.add_argument("--pin", action="store_true", help="pin these documents: always part of search results")
    ingest.add_argument("--max-chars", type=int, default=1000, metavar="N", help="chunk size in characters")
    ingest.add_argument("--overlap", type=int, default=150, metavar="N", help="characters repeated between chunks")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")

    search = commands.add_parser("search", help="hybrid search of a collection",
                                 description="Search a collection with BM25 and vectors; the fused score combines both.")
    search.add_argument("query")
    search.add_argument("--collection", "-c", default="default")
    search.add_argument("--top-k", "-k", type=int, default=8, metavar="K", help="1 to 50")
    search.add_argument("--mode", choices=["hybrid", "bm25", "vector"], default="hybrid")
    search.add_argument("--fusion", choices=["convex", "rrf"], help="how the two rankings are fused: normalised "
                        "scores with weights (convex, default) or reciprocal rank fusion (rrf)")
    search.add_argument("--bm25-weight", type=float, metavar="W", help="BM25's weight in fusion (default 0.3, scaled by query coverage)")
    search.add_argument("--vector-weight", type=float, metavar="W", help="the vector weight in fusion (default 0.7)")
    search.add_argument("--json", action="store_true", help="print JSON")

    answer = commands.add_parser("answer", help="answer a question from a collection, with citations",
                                 description="Answer from a collection; each sentence cites passages as [n].")
    answer.add_argument("question")
    answer.add_argument("--collection", "-c", default="default")
    answer.add_argument("--top-k", "-k", type=int, default=5, metavar="K", help="passages given to the model (1 to 20)")
    answer.add_argument("--model", "-m", help="model id (see `workbench models`)")
    answer.add_argument("--max-tokens", type=int, default=400, metavar="N",
                        help="tokens the model may write (16 to 4096, default 400)")
    answer.add_argument("--json", action="store_true",
                        help='print JSON ("mode" is "extractive" when the model\'s answer was unusable and a passage '
                        "sentence is quoted instead)")

    collections = commands.add_parser("collections", help="list knowledge-base collections")
    collections.add_argument("--json", action="store_true", help="print JSON")
    docs = commands.add_parser("docs", help="list, pin, unpin or remove documents of a collection")
    docs.add_argument("action", nargs="?", choices=["list", "pin", "unpin", "remove"], default="list")
    docs.add_argument("path", nargs="?", help="the document's path (for pin, unpin, remove)")
    docs.add_argument("--collection", "-c", default="default")
    docs.add_argument("--json", action="store_true", help="print JSON")

    remember = commands.add_parser("remember", help="store a memory under a key",
                                   description="Store a memory. VALUE is text, or JSON with --json-value.")
    remember.add_argument("key")
    remember.add_argument("value", help="the value; '-' reads it from standard input")
    remember.add_argument("--json-value", action="store_true", help="parse VALUE as JSON")
    remember.add_argument("--namespace", "-n", default="default")
    remember.add_argument("--kind", choices=["episodic", "conversation", "knowledge"], default="episodic",
                          help="knowledge needs a JSON value with subject, predicate, object")
    remember.add_argument("--category")
    remember.add_argument("--tag", dest="tags", action="append", default=[], help="repeatable")
    remember.add_argument("--ttl", type=int, metavar="SECONDS", help="forget after this many seconds")
    remember.add_argument("--json", action="store_true", help="print JSON")

    recall = commands.add_parser("recall", help="print a memory by key, or search memories with --query")
    recall.add_argument("key", nargs="?")
    recall.add_argument("--namespace", "-n", default="default")
    recall.add_argument("--query", "-q", help="search memories by meaning instead")
    recall.add_argument("--top-k", "-k", type=int, default=5, metavar="K")
    recall.add_argument("--threshold", type=float, default=0.3, metavar="S", help="minimum similarity 0..1")
    recall.add_argument("--category")
    recall.add_argument("--tag", dest="tags", action="append", default=[])
    recall.add_argument("--answer", action="store_true", help="with --query: also write a cited answer")
    recall.add_argument("--json", action="store_true", help="print JSON")

    forget = commands.add_parser("forget", help="delete a memory")
    forget.add_argument("key")
    forget.add_argument("--namespace", "-n", default="default")

    graph = commands.add_parser("graph", help="knowledge graph: facts, relations, neighbours",
                                description="Store and query facts and relations between entities.")
    graph_commands = graph.add_subparsers(dest="graph_command", metavar="ACTION")
    fact = graph_commands.add_parser("fact", help="store ENTITY ATTRIBUTE VALUE")
    fact.add_argument("entity")
    fact.add_argument("attribute")
    fact.add_argument("value")
    fact.add_argument("--source")
    fact.add_argument("--confidence", type=float, default=1.0)
    facts = graph_commands.add_parser("facts", help="list facts of an entity")
    facts.add_argument("entity")
    facts.add_argument("--attribute")
    relate = graph_commands.add_parser("relate", help="relate SOURCE RELATION TARGET")
    relate.add_argument("source")
    relate.add_argument("relation")
    relate.add_argument("target")
    near = graph_commands.add_parser("neighbours", help="entities within N hops")
    near.add_argument("entity")
    near.add_argument("--hops", type=int, default=1)
    near.add_argument("--relation")
    find = graph_commands.add_parser("search", help="entities by meaning")
    find.add_argument("query")
    find.add_argument("--limit", type=int, default=10)

    knowledge = commands.add_parser(
        "knowledge", help="generate knowledge items about a subject (KnowledgeBuilder)",
        description="Generate knowledge items about IDENTIFIER with the chat model, in deepening cycles, "
        "from a corpus file and/or a collection; items are stored as graph facts.",
    )
    knowledge.add_argument("identifier")
    knowledge.add_argument("--type", dest="entity_type", default="Person", help="entity type (default: Person)")
    knowledge.add_argument("--cycles", type=int, default=1, help="deepening cycles, 0 to 10 (0 lists stored items)")
    knowledge.add_argument("--corpus", metavar="FILE", help="a text file to draw knowledge from")
    knowledge.add_argument("--collection", "-c", help="also draw from this collection")
    knowledge.add_argument("--model", "-m")
    knowledge.add_argument("--json", action="store_true", help="print JSON")


def _accept_globals_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let `--home` and `--connect` follow any command too (`workbench sessions list --home DIR`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS, help="workbench data folder")
                sub.add_argument("--connect", "--remote", dest="connect", metavar="URL", default=argparse.SUPPRESS,
                                 help="use the Workbench server at URL (key from $WORKBENCH_API_KEY)")
                _accept_globals_everywhere(sub)


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", help="model id (see `workbench models`), a .gguf path, or PROVIDER:MODEL")
    parser.add_argument("--system", "-s", help="system prompt")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="at most N tokens (default 512)")
    parser.add_argument("--temperature", "-t", type=float, metavar="T", help="0.0 to 2.0")
    parser.add_argument("--top-p", type=float, metavar="P", help="0.0 to 1.0")
    parser.add_argument("--top-k", type=int, metavar="K", help="1 to 1000")
    parser.add_argument("--repetition-penalty", type=float, metavar="R", help="above 0, at most 2.0 (default 1.1)")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop sequence (repeatable)")
    parser.add_argument("--seed", type=int, help="random seed, for reproducible sampling (default: a fresh one each time)")


class _VersionAction(argparse.Action):
    """`--version`, printed on one line (argparse's own action wraps it to the terminal's width)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"{PROG} {_version()}")
        parser.exit()


def _version() -> str:
    from workbench import __version__

    if getattr(sys, "frozen", False):  # the offline executable: name its build (packaging/workbench.spec)
        from pathlib import Path

        try:
            build = json.loads(Path(__file__).with_name("BUILD.json").read_text(encoding="utf-8"))
            return (f"{__version__} (offline bundle, commit {build['commit']}, built {build['built']}, "
                    f"Python {build['python']}, {build['platform']}, {build['glibc']})")
        except (OSError, ValueError, KeyError):
            return f"{__version__} (offline bundle)"
    return __version__


# ------------------------------------------------------------------- helpers


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


def _terminal_safe(text: str, stream: Any) -> str:
    """Model output: control characters removed on a terminal, untouched in a pipe."""
    return _CONTROL.sub("", text) if stream.isatty() else text


def _plain(text: str) -> str:
    """Text from outside (errors, titles, provider fields): never control characters."""
    return _CONTROL.sub("", text)


def _open_engine(args: argparse.Namespace) -> EngineAPI:
    """The engine a command works with: in this process, or a running server's over HTTP.

    * `--connect URL`: a `RemoteEngine` for URL, keyed by $WORKBENCH_API_KEY.
    * Otherwise, when `<home>/server.json` names a live server of this home
      (its pid exists and it holds the home's lock), a `RemoteEngine` for it,
      keyed by $WORKBENCH_API_KEY, else by the "local-session" key that server
      put in the OS keyring (`workbench.server.run`): a second command works
      while `workbench serve` runs instead of failing on the database lock.
    * Else the in-process `Engine`.
    Serving (`serve`, the TUI's `--serve`) and `keys create|list|revoke`
    need the data folder itself.
    """
    from workbench.config import resolve_home
    from workbench.engine.errors import InvalidRequest

    serving = args.command == "serve" or bool(getattr(args, "serve", None))
    local_only = serving or (
        args.command == "keys" and getattr(args, "keys_command", None) in ("create", "list", "revoke"))
    url = getattr(args, "connect", None)
    if url:
        if local_only:
            what = "Serving" if serving else f"`workbench keys {args.keys_command}`"
            raise InvalidRequest(f"{what} works on the data folder itself, not through --connect.")
        from workbench.remote import RemoteEngine

        return RemoteEngine(url)
    home = resolve_home(args.home)
    # Only a home with a server marker can have a server: importing the HTTP client costs ~0.15 s.
    if not local_only and (home / "server.json").exists():
        from workbench.remote import KEY_ENV, RemoteEngine, local_session_key, running_server_url

        running = running_server_url(home)
        if running is not None:
            return RemoteEngine(running, os.environ.get(KEY_ENV) or local_session_key(home))
    from workbench.engine.engine import Engine

    engine = Engine(home)
    _log_to(engine.home / "workbench.log")
    return engine


def _log_to(path: Any) -> None:
    """Send the engine's log (e.g. tracebacks of unexpected failures) to a file, not the terminal."""
    import logging

    from workbench.config import make_private

    logger = logging.getLogger("workbench")
    if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        make_private(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.handleError = lambda record: None  # a full disk must not print logging tracebacks
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _load_schema(value: str) -> dict[str, Any]:
    from workbench.engine.errors import InvalidRequest

    try:
        text = open(value[1:], encoding="utf-8").read() if value.startswith("@") else value
        schema = json.loads(text, parse_constant=_reject_constant)
    except OSError as exc:
        raise InvalidRequest(f"Cannot read the schema file {value[1:]}: {exc.strerror}.") from None
    except ValueError as exc:
        raise InvalidRequest(f"--schema is not valid JSON: {exc}.") from None
    if not isinstance(schema, dict):
        raise InvalidRequest("--schema must be a JSON object (a JSON Schema).")
    return schema


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


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
                    out.write(_terminal_safe(event.text, out))
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


# ------------------------------------------------------------------ commands


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
    with _open_engine(args) as engine:
        if args.json:
            result = engine.generate(request)
            print(result.model_dump_json(indent=2))
            return 0
        _stream_answer(engine, request)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from workbench.engine.errors import WorkbenchError

    with _open_engine(args) as engine:
        session_id = args.session
        model = args.model
        if session_id:
            session = engine.get_session(session_id)
            model = model or session.model
            for message in engine.session_messages(session_id):
                label = "you" if message.role == "user" else message.role
                print(f"{label}> {_terminal_safe(message.content, sys.stdout)}")
        model_id = model or next((m.id for m in engine.list_models() if m.is_default), "default")
        print(f"Chatting with {model_id}{' in session ' + session_id if session_id else ''}. /help for commands, Ctrl-D to quit.")
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
                print(f"error: {_plain(str(exc))}", file=sys.stderr)
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


def _byte_bar(done: int, total: int) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // total if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done / 1e6:,.0f}/{total / 1e6:,.0f} MB")
    sys.stderr.flush()


def cmd_models_pull(args: argparse.Namespace) -> int:
    """Download a GGUF into <home>/models (no engine: a running server sees it at its next listing)."""
    from pathlib import Path

    from workbench.config import resolve_home
    from workbench.engine.inference import hub

    from workbench.engine.errors import InvalidRequest

    if getattr(args, "connect", None):
        raise InvalidRequest("`workbench models pull` downloads into this machine's data folder, not through --connect.")
    models_dir = Path(resolve_home(args.home)) / "models"
    announce = lambda remote: print(  # noqa: E731
        _plain(f"Pulling {remote.repo}/{remote.path} ({remote.size / 1e6:,.0f} MB) into {models_dir}..."),
        file=sys.stderr)
    try:
        result = hub.pull(args.spec, models_dir, progress=_byte_bar, on_file=announce)
    finally:
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    verb = {"present": "Already present", "resumed": "Resumed and verified", "downloaded": "Downloaded and verified"}
    print(_plain(f"{verb[result.status]}: {result.path} (sha256 {result.sha256[:12]}...). "
                 f"Use it with --model {result.path.stem}."))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    if getattr(args, "models_command", None) == "pull":
        return cmd_models_pull(args)
    from workbench.engine.inference.hub import RECOMMENDED_MODELS

    with _open_engine(args) as engine:
        models = engine.list_models()
    if args.json:
        print(json.dumps([m.model_dump() for m in models], indent=2))
        return 0
    if not models:
        print("No models found.")
        return 0
    width = max(len(m.id) for m in models)
    for m in models:
        size = f"{m.size_bytes / 1e6:.0f} MB" if m.size_bytes else ""
        mark = "*" if m.is_default else " "
        print(_plain(f"{mark} {m.id:<{width}}  {m.provider:<9}  {m.source:<13}  {size:>7}  {m.location}"))
    print("\n* default. Drop .gguf files into ./models or the home's models/ folder to add local models.")
    installed = {m.id.lower() for m in models}
    spec, size, why = RECOMMENDED_MODELS[0]
    if spec.rsplit("/", 1)[-1].removesuffix(".gguf").lower() not in installed:
        print(f"Recommended upgrade for chat and agents ({size}; {why}):\n    workbench models pull {spec}")
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    action = args.sessions_command or "list"
    with _open_engine(args) as engine:
        if action == "list":
            sessions = engine.list_sessions(limit=getattr(args, "limit", 20))
            if getattr(args, "json", False):
                print(json.dumps([s.model_dump(mode="json") for s in sessions], indent=2))
            for s in [] if getattr(args, "json", False) else sessions:
                print(f"{s.id}  {s.updated_at:%Y-%m-%d %H:%M}  {s.message_count:>4} msgs  {_plain(s.title)}")
        elif action == "show":
            messages = engine.session_messages(args.session_id)
            if args.json:
                print(json.dumps([m.model_dump(mode="json") for m in messages], indent=2))
            else:
                for m in messages:
                    print(f"{m.role}> {_terminal_safe(m.content, sys.stdout)}")
        elif action == "delete":
            engine.delete_session(args.session_id)
            print(f"Deleted {args.session_id}.")
    return 0


def cmd_providers(args: argparse.Namespace) -> int:
    action = args.providers_command or "list"
    with _open_engine(args) as engine:
        if action == "add":
            info = engine.add_provider(args.name, args.kind, args.base_url, args.models)
            hint = "" if info.has_key else f" Store its key with `workbench keys set-provider {info.name}` if it needs one."
            print(f"Added {info.name} ({info.kind}, {info.base_url}).{hint}")
        elif action == "remove":
            engine.remove_provider(args.name)
            print(f"Removed {args.name}.")
        else:
            providers = engine.list_providers()
            if not providers:
                print("No providers. Add one with `workbench providers add NAME --kind openai --base-url URL`.")
            for p in providers:
                key = "key stored" if p.has_key else "no key"
                print(_plain(f"{p.name:<12} {p.kind:<9} {p.base_url}  [{key}]  models: {', '.join(p.models) or '-'}"))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from workbench.engine import secrets
    from workbench.engine.errors import InvalidRequest

    if args.keys_command == "set-provider":
        if sys.stdin.isatty():
            import getpass

            api_key = getpass.getpass(f"API key for {args.name} (input hidden): ")
        else:
            api_key = sys.stdin.readline().strip()
        with _open_engine(args) as engine:
            engine.set_provider_key(args.name, api_key)
        print(f"Stored the {args.name} key in the OS keyring.")
        return 0
    if args.keys_command == "delete-provider":
        deleted = secrets.delete_provider_key(args.name)
        print(f"Deleted the {args.name} key." if deleted else f"No key was stored for {args.name}.")
        return 0
    if args.keys_command == "create":
        scopes = [part.strip() for part in args.scopes.split(",") if part.strip()]
        with _open_engine(args) as engine:
            info, key = engine.api_keys.create(args.name, scopes)
        print(key)
        print(_plain(f"Created key {info.id} ({info.name}; scopes {', '.join(info.scopes)}). "
                     "It is shown only now: store it safely."), file=sys.stderr)
        return 0
    if args.keys_command == "list":
        with _open_engine(args) as engine:
            keys = engine.api_keys.list()
        if not keys:
            print("No server API keys. Create one with `workbench keys create --name NAME`.")
        for key in keys:
            print(_plain(f"{key.id}  {key.name:20} {','.join(key.scopes):30} created {key.created_at:%Y-%m-%d %H:%M}"))
        return 0
    if args.keys_command == "revoke":
        with _open_engine(args) as engine:
            info = engine.api_keys.revoke(args.key_id)
        print(_plain(f"Revoked key {info.id} ({info.name})."))
        return 0
    raise InvalidRequest("Choose an action: keys create|list|revoke, or keys set-provider|delete-provider NAME.")


def _progress_bar(done: int, total: int, message: str) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // total if total else width
    name = _plain(message)[-40:]
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} files  {name:<40}")
    sys.stderr.flush()


def cmd_ingest(args: argparse.Namespace) -> int:
    from workbench.engine.schemas import IngestFinished, Progress

    request = {"paths": args.paths, "collection": args.collection, "pinned": args.pin,
               "max_chars": args.max_chars, "overlap_chars": args.overlap}
    with _open_engine(args) as engine:
        report = None
        for event in engine.ingest(request):
            if isinstance(event, Progress):
                _progress_bar(event.done, event.total, event.message)
            elif isinstance(event, IngestFinished):
                report = event.report
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    if args.json:
        print(report.model_dump_json(indent=2))
        return 0
    print(f"Collection {report.collection}: {report.added} added, {report.updated} updated, "
          f"{report.unchanged} unchanged, {report.removed} removed; {report.chunks_written} chunks "
          f"in {report.seconds:.1f} s.")
    for item in report.duplicates:
        print(_plain(f"  duplicate  {item.path}: {item.reason}"))
    for item in report.skipped:
        print(_plain(f"  skipped    {item.path}: {item.reason}"))
    return 0


def _score(value: float | None, rank: int | None) -> str:
    return "-" if value is None else f"{value:.3f} (#{rank})"


def cmd_search(args: argparse.Namespace) -> int:
    request = {"query": args.query, "collection": args.collection, "top_k": args.top_k, "mode": args.mode}
    request.update({k: v for k, v in (("fusion", args.fusion), ("bm25_weight", args.bm25_weight),
                                      ("vector_weight", args.vector_weight)) if v is not None})
    with _open_engine(args) as engine:
        response = engine.search(request)
    if args.json:
        print(response.model_dump_json(indent=2))
        return 0
    if not response.hits:
        print("No matches.")
    for hit in response.hits:
        where = f"{hit.path}:{hit.start_line}-{hit.end_line}" + (f"  § {hit.heading}" if hit.heading else "")
        pin = "  [pinned]" if hit.pinned else ""
        print(_plain(f"{hit.rank:>2}. {where}{pin}"))
        print(f"    fused {hit.fused_score:.4f}   bm25 {_score(hit.bm25_score, hit.bm25_rank)}   "
              f"vector {_score(hit.vector_score, hit.vector_rank)}")
        snippet = " ".join(hit.text.split())
        print(_plain(f"    {snippet[:200]}{'...' if len(snippet) > 200 else ''}"))
    print(f"({response.latency_ms:.1f} ms)")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    request = {"question": args.question, "collection": args.collection, "top_k": args.top_k, "model": args.model,
               "max_tokens": args.max_tokens}
    with _open_engine(args) as engine:
        response = engine.answer(request)
    if args.json:
        print(response.model_dump_json(indent=2))
        return 0
    if response.mode == "extractive":
        # Said first and plainly: this is a quote chosen by matching, not the model's answer.
        print("[extract] The model's answer was unusable; the passages' best-matching sentence:")
    print(_terminal_safe(response.text, sys.stdout))
    if response.citations:
        print()
    for c in response.citations:
        heading = f" § {c.heading}" if c.heading else ""
        print(_plain(f"[{c.n}] {c.source}:{c.start_line}-{c.end_line}{heading} (chunk {c.ordinal})"))
    return 0


def cmd_collections(args: argparse.Namespace) -> int:
    with _open_engine(args) as engine:
        collections = engine.list_collections()
    if args.json:
        print(json.dumps([c.model_dump() for c in collections], indent=2))
        return 0
    if not collections:
        print("No collections yet. Add documents with `workbench ingest PATH`.")
    for c in collections:
        print(_plain(f"{c.name:<24} {c.documents:>6} documents {c.chunks:>8} chunks"))
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    with _open_engine(args) as engine:
        if args.action != "list":
            if not args.path:
                raise InvalidRequest(f"`workbench docs {args.action}` needs the document's PATH.")
            if args.action == "remove":
                engine.remove_document(args.collection, args.path)
                print(f"Removed {_plain(args.path)}.")
            else:
                engine.set_pinned(args.collection, args.path, args.action == "pin")
                print(f"{'Pinned' if args.action == 'pin' else 'Unpinned'} {_plain(args.path)}.")
            return 0
        docs = engine.list_documents(args.collection)
    if args.json:
        print(json.dumps([d.model_dump(mode="json") for d in docs], indent=2))
        return 0
    if not docs:
        print(f"No documents in {args.collection}.")
    for d in docs:
        pin = " [pinned]" if d.pinned else ""
        print(_plain(f"{d.path}  {d.kind}  {d.chunk_count} chunks{pin}"))
    return 0


def cmd_remember(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    raw = sys.stdin.read() if args.value == "-" else args.value
    value: Any = raw
    if args.json_value or args.kind == "knowledge":
        try:
            value = json.loads(raw, parse_constant=_reject_constant)
        except ValueError as exc:
            raise InvalidRequest(f"VALUE is not valid JSON: {exc}.") from None
    metadata: dict[str, Any] = {}
    if args.category:
        metadata["category"] = args.category
    if args.tags:
        metadata["tags"] = args.tags
    request = {"key": args.key, "value": value, "metadata": metadata, "ttl_seconds": args.ttl,
               "namespace": args.namespace, "kind": args.kind}
    with _open_engine(args) as engine:
        result = engine.remember(request)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        expiry = f", expires {result.expires_at:%Y-%m-%d %H:%M} UTC" if result.expires_at else ""
        print(_plain(f"{result.status.capitalize()} {result.namespace}/{result.key} ({result.vector_id}{expiry})."))
    return 0


def cmd_recall(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    if (args.key is None) == (args.query is None):
        raise InvalidRequest("Give a KEY to recall, or --query TEXT to search memories (not both).")
    with _open_engine(args) as engine:
        if args.key is not None:
            record = engine.recall(args.key, args.namespace)
            if args.json:
                print(record.model_dump_json(indent=2))
            else:
                value = record.value if isinstance(record.value, str) else json.dumps(record.value, ensure_ascii=False)
                print(_terminal_safe(value, sys.stdout))
            return 0
        flt: dict[str, Any] = {"tags": args.tags}
        if args.category:
            flt["category"] = args.category
        response = engine.rag_retrieve({"query": args.query, "top_k": args.top_k, "score_threshold": args.threshold,
                                        "filter": flt, "answer": args.answer})
    if args.json:
        print(response.model_dump_json(indent=2))
        return 0
    if response.answer:
        print(_terminal_safe(response.answer, sys.stdout) + "\n")
    if not response.results:
        print("No memories match.")
    for r in response.results:
        value = r.value if isinstance(r.value, str) else json.dumps(r.value, ensure_ascii=False)
        print(_plain(f"{r.rank:>2}. {r.score:.3f}  {r.namespace}/{r.key}: {value[:160]}"))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    with _open_engine(args) as engine:
        engine.forget(args.key, args.namespace)
    print(f"Forgot {_plain(args.namespace)}/{_plain(args.key)}.")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    action = args.graph_command
    if action is None:
        raise InvalidRequest("Choose an action: fact, facts, relate, neighbours or search (see `workbench graph --help`).")
    with _open_engine(args) as engine:
        if action == "fact":
            fact = engine.store_fact(args.entity, args.attribute, args.value, source=args.source,
                                     confidence=args.confidence)
            print(_plain(f"{fact.entity} · {fact.attribute} = {fact.value}"))
        elif action == "facts":
            for fact in engine.retrieve_facts(args.entity, args.attribute):
                source = f"  ({fact.source})" if fact.source else ""
                print(_plain(f"{fact.attribute}: {fact.value}  [{fact.confidence:.2f}]{source}"))
        elif action == "relate":
            rel = engine.create_relationship(args.source, args.target, args.relation)
            print(_plain(f"{rel.source} -[{rel.relation_type}]-> {rel.target}"))
        elif action == "neighbours":
            for n in engine.neighbours(args.entity, args.hops, args.relation):
                print(_plain(f"{n.hops}  {n.entity.name} ({n.entity.type})  via {' > '.join(n.via)}"))
        else:
            for hit in engine.search_entities(args.query, args.limit):
                print(_plain(f"{hit.score:.3f}  {hit.entity.name} ({hit.entity.type})"))
    return 0


def cmd_knowledge(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    corpus = ""
    if args.corpus:
        try:
            corpus = open(args.corpus, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"Cannot read the corpus file {args.corpus}: {exc}.") from None
    with _open_engine(args) as engine:
        if args.cycles == 0:
            items = engine.list_knowledge(args.identifier)
        else:
            result = engine.generate_knowledge({
                "identifier": args.identifier, "entity_type": args.entity_type, "deepening_cycles": args.cycles,
                "corpus": corpus, "collection": args.collection, "model": args.model,
            })
            items = result.items
    if args.json:
        print(json.dumps([i.model_dump() for i in items], indent=2))
        return 0
    if not items:
        print("No knowledge items.")
    for item in items:
        print(_plain(f"{item.knowledge_id}  [{item.entity.type}] {item.entity.text}  ({item.source}, {item.confidence:.2f})"))
    return 0


COMMANDS = {
    "ask": cmd_ask,
    "chat": cmd_chat,
    "models": cmd_models,
    "sessions": cmd_sessions,
    "providers": cmd_providers,
    "keys": cmd_keys,
    "ingest": cmd_ingest,
    "search": cmd_search,
    "answer": cmd_answer,
    "collections": cmd_collections,
    "docs": cmd_docs,
    "remember": cmd_remember,
    "recall": cmd_recall,
    "forget": cmd_forget,
    "graph": cmd_graph,
    "knowledge": cmd_knowledge,
}


def _run_tui(args: argparse.Namespace) -> int:
    """`workbench` with no command: the Textual TUI (engine opened by the app, in the background)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(f"{PROG}: error: the TUI needs a terminal; see `workbench --help` for the commands.", file=sys.stderr)
        return 2
    from workbench.tui.app import run_tui

    return run_tui(lambda: _open_engine(args), serve=[args.serve] if args.serve else None)


def _undecodable_argument(argv: list[str]) -> str | None:
    """One sentence about the first argument that is not valid UTF-8 (Python hands such bytes over as
    lone surrogates, which nothing downstream can store or print), or None."""
    for number, value in enumerate(argv, 1):
        if re.search("[\ud800-\udfff]", value):
            shown = _plain(re.sub("[\ud800-\udfff]", "\ufffd", value))
            return f"argument {number} ({shown!r}) is not valid UTF-8 text; check the terminal's encoding."
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(argv if argv is not None else sys.argv[1:])
    problem = _undecodable_argument(argv)
    if problem is not None:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    server_command = None
    if "--" in argv and "mcp" in argv[: argv.index("--")]:
        # `workbench mcp add NAME [OPTIONS] -- COMMAND ...`: the command is the server's, untouched.
        cut = argv.index("--")
        argv, server_command = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if getattr(args, "mcp_command", None) == "add":
        args.server_command = server_command
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from workbench.engine.errors import WorkbenchError

    if args.command is None:
        return _run_tui(args)
    if args.serve is not None:
        parser.error("--serve goes with the TUI (no command); use `workbench serve` to serve without it")

    try:
        from workbench import cli_agents, cli_eval

        return {**COMMANDS, **cli_agents.COMMANDS, **cli_eval.COMMANDS}[args.command](args)
    except WorkbenchError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": {"code": exc.code, "message": str(exc)}}))
        print(f"{PROG}: error: {_plain(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `workbench ask ... | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
