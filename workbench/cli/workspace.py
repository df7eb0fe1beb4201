"""`workbench workspace`: the folders the file, shell, git and python tools may use.

Standard library only at module level.
"""

from __future__ import annotations

import argparse
from typing import Any

from workbench.cli.common import open_engine, plain


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    workspace = commands.add_parser("workspace", help="folders the file, shell, git and python tools may use")
    ws_actions = workspace.add_subparsers(dest="workspace_command", metavar="ACTION")
    ws_actions.add_parser("list", help="list workspace roots")
    ws_add = ws_actions.add_parser("add", help="add a folder")
    ws_add.add_argument("path")
    ws_remove = ws_actions.add_parser("remove", help="remove a folder")
    ws_remove.add_argument("path")


def cmd_workspace(args: argparse.Namespace) -> int:
    action = args.workspace_command or "list"
    with open_engine(args) as engine:
        if action == "add":
            roots = engine.add_workspace_root(args.path)
        elif action == "remove":
            roots = engine.remove_workspace_root(args.path)
        else:
            roots = engine.workspace_roots()
    if not roots:
        print(
            "No workspace roots: file, shell, git and python tools refuse to run. "
            "Add one with `workbench workspace add DIR`."
        )
    for root in roots:
        print(plain(root))
    return 0


COMMANDS = {"workspace": cmd_workspace}
