"""`workbench serve`: serve the API on localhost.

Standard library only at module level (the server loads inside the command).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.cli.common import open_engine, plain


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    serve = commands.add_parser(
        "serve",
        help="serve the API on localhost (OpenAI-compatible and more)",
        description="Serve the Workbench API. Every route but /health needs an API key (`workbench keys create`). "
        "Loopback only unless --allow-remote.",
    )
    serve.add_argument(
        "--listen",
        action="append",
        metavar="HOST:PORT",
        help="address to listen on (repeatable; default 127.0.0.1:8765)",
    )
    serve.add_argument(
        "--rate-limit",
        type=int,
        metavar="N",
        help="requests per minute per API key (default 100; the server's own local-session key, "
        "used by your TUI and CLI, is not limited)",
    )
    serve.add_argument(
        "--allow-remote", action="store_true", help="allow non-loopback addresses (needs an existing API key)"
    )
    serve.add_argument(
        "--read-timeout",
        type=float,
        metavar="SECONDS",
        help="a client must send a request's head within this time, and may not pause longer "
        "while sending its body (default 10)",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from workbench.server.run import DEFAULT_LISTEN, serve

    def ready(addresses: list[str]) -> None:
        print(plain(f"Serving on {', '.join('http://' + v for v in addresses)} (Ctrl-C stops)."), file=sys.stderr)

    def stopping(reason: str) -> None:
        print(f"Stopping the server ({reason})…", file=sys.stderr, flush=True)

    if args.read_timeout is not None and not 0.1 <= args.read_timeout <= 3600:
        print("workbench: error: --read-timeout takes 0.1 to 3600 seconds.", file=sys.stderr)
        return 2
    with open_engine(args) as engine:
        serve(
            engine,
            args.listen or [DEFAULT_LISTEN],
            args.allow_remote,
            on_ready=ready,
            rate_limit=args.rate_limit,
            read_timeout_s=args.read_timeout,
            on_stopping=stopping,
        )
    return 0


COMMANDS = {"serve": cmd_serve}
