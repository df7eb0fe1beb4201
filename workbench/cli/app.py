"""The `workbench` command line: the parser, with each command group's module
registering its own commands, and `main`, which runs the chosen command.

Only argparse and the standard library are imported at module level (the
command modules too), so that `workbench --help` answers at once; the engine
loads inside each command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from workbench.cli import (
    agents,
    chat,
    evaluation,
    knowledge,
    memory,
    models,
    providers,
    serve,
    sessions,
    tools,
    workflows,
    workspace,
)
from workbench.cli.common import PROG, open_engine, plain

# In the order `workbench --help` lists their commands.
GROUPS = (chat, models, sessions, providers, knowledge, memory, agents, tools, workflows, serve, workspace, evaluation)

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    name: handler for group in GROUPS for name, handler in group.COMMANDS.items()
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A local-first agent workbench: chat with local or remote models, give them memory, knowledge and tools, and run agents, from the terminal.",
        epilog="With no command, opens the TUI. Run `workbench COMMAND --help` for a command's options.",
    )
    parser.add_argument(
        "--home", metavar="DIR", help="workbench data folder (default: $WORKBENCH_HOME or the user data dir)"
    )
    parser.add_argument(
        "--connect",
        "--remote",
        dest="connect",
        metavar="URL",
        help="use the Workbench server at URL (e.g. http://127.0.0.1:8765) instead of the data "
        "folder; the API key comes from $WORKBENCH_API_KEY. Without --connect, a server already "
        "running on the data folder is used automatically.",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    parser.add_argument(
        "--serve",
        nargs="?",
        const="127.0.0.1:8765",
        metavar="HOST:PORT",
        help="with the TUI: also serve the local API from the same process (default 127.0.0.1:8765)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    for group in GROUPS:
        group.register(commands)
    _accept_globals_everywhere(parser)
    return parser


def _accept_globals_everywhere(parser: argparse.ArgumentParser) -> None:
    """Let `--home` and `--connect` follow any command too (`workbench sessions list --home DIR`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--home", metavar="DIR", default=argparse.SUPPRESS, help="workbench data folder")
                sub.add_argument(
                    "--connect",
                    "--remote",
                    dest="connect",
                    metavar="URL",
                    default=argparse.SUPPRESS,
                    help="use the Workbench server at URL (key from $WORKBENCH_API_KEY)",
                )
                _accept_globals_everywhere(sub)


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
            build = json.loads((Path(__file__).parent.parent / "BUILD.json").read_text(encoding="utf-8"))
            return (
                f"{__version__} (offline bundle, commit {build['commit']}, built {build['built']}, "
                f"Python {build['python']}, {build['platform']}, {build['glibc']})"
            )
        except (OSError, ValueError, KeyError):
            return f"{__version__} (offline bundle)"

    return __version__


def _run_tui(args: argparse.Namespace) -> int:
    """`workbench` with no command: the Textual TUI (engine opened by the app, in the background)."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(f"{PROG}: error: the TUI needs a terminal; see `workbench --help` for the commands.", file=sys.stderr)
        return 2
    from workbench.tui.app import run_tui

    return run_tui(lambda: open_engine(args), serve=[args.serve] if args.serve else None)


def _undecodable_argument(argv: list[str]) -> str | None:
    """One sentence about the first argument that is not valid UTF-8 (Python hands such bytes over as
    lone surrogates, which nothing downstream can store or print), or None."""
    for number, value in enumerate(argv, 1):
        if re.search("[\ud800-\udfff]", value):
            shown = plain(re.sub("[\ud800-\udfff]", "\ufffd", value))
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
        argv, server_command = argv[:cut], argv[cut + 1 :]
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
        return COMMANDS[args.command](args)
    except WorkbenchError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": {"code": exc.code, "message": str(exc)}}))
        print(f"{PROG}: error: {plain(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `workbench ask ... | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
