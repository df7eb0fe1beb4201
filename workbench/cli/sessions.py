"""`workbench sessions`: list, show or delete chat sessions.

Standard library only at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.cli.common import open_engine, plain, terminal_safe


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    sessions = commands.add_parser(
        "sessions", help="list, show or delete chat sessions", description="List, show or delete chat sessions."
    )
    sessions_commands = sessions.add_subparsers(dest="sessions_command", metavar="ACTION")
    listing = sessions_commands.add_parser("list", help="list sessions, most recent first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sessions_commands.add_parser("show", help="print a session's messages")
    show.add_argument("session_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    delete = sessions_commands.add_parser("delete", help="delete a session and its messages")
    delete.add_argument("session_id", metavar="ID")


def cmd_sessions(args: argparse.Namespace) -> int:
    action = args.sessions_command or "list"
    with open_engine(args) as engine:
        if action == "list":
            sessions = engine.list_sessions(limit=getattr(args, "limit", 20))
            if getattr(args, "json", False):
                print(json.dumps([s.model_dump(mode="json") for s in sessions], indent=2))
            for s in [] if getattr(args, "json", False) else sessions:
                print(f"{s.id}  {s.updated_at:%Y-%m-%d %H:%M}  {s.message_count:>4} msgs  {plain(s.title)}")
        elif action == "show":
            messages = engine.session_messages(args.session_id)
            if args.json:
                print(json.dumps([m.model_dump(mode="json") for m in messages], indent=2))
            else:
                for m in messages:
                    print(f"{m.role}> {terminal_safe(m.content, sys.stdout)}")
        elif action == "delete":
            engine.delete_session(args.session_id)
            print(f"Deleted {args.session_id}.")
    return 0


COMMANDS = {"sessions": cmd_sessions}
