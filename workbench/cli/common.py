"""Helpers every CLI command module shares: the engine a command works with, and safe printing.

Standard library only at module level (`workbench --help` must stay fast).
The command modules (`chat.py`, `models.py`, ..., one per command group)
import from here, never from each other, so they form no import cycle.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from workbench.engine.api import EngineAPI

PROG = "workbench"

# C0/C1 control characters other than tab and newline: model output printed to a
# terminal must not be able to move the cursor, retitle the window, etc.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str, stream: Any) -> str:
    """Model output: control characters removed on a terminal, untouched in a pipe."""
    return CONTROL.sub("", text) if stream.isatty() else text


def plain(text: str) -> str:
    """Text from outside (errors, titles, provider fields): never control characters."""
    return CONTROL.sub("", text)


def reject_constant(name: str) -> Any:
    """`parse_constant` for `json.loads`: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def open_engine(args: argparse.Namespace) -> EngineAPI:
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
    from workbench.engine.config import resolve_home
    from workbench.engine.errors import InvalidRequest

    serving = args.command == "serve" or bool(getattr(args, "serve", None))
    local_only = serving or (
        args.command == "keys" and getattr(args, "keys_command", None) in ("create", "list", "revoke")
    )
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
    log_to(engine.home / "workbench.log")
    return engine


def log_to(path: Any) -> None:
    """Send the engine's log (e.g. tracebacks of unexpected failures) to a file, not the terminal."""
    import logging

    from workbench.engine.config import make_private

    logger = logging.getLogger("workbench")
    if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
        handler = logging.FileHandler(path, encoding="utf-8")
        make_private(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.handleError = lambda record: None  # a full disk must not print logging tracebacks
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
