"""`workbench tools` and `workbench mcp`: list and run tools, read the audit log, configure MCP servers.

Standard library only at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.cli.common import open_engine, plain, terminal_safe

PERMISSIONS = ["read", "write", "exec", "network"]


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    tools = commands.add_parser("tools", help="list tools, run one, or read the audit log")
    tools_actions = tools.add_subparsers(dest="tools_command", metavar="ACTION")
    tools_list = tools_actions.add_parser("list", help="list built-in and MCP tools")
    tools_list.add_argument("--json", action="store_true", help="print JSON")
    tools_run = tools_actions.add_parser("run", help="run one tool now (audited)")
    tools_run.add_argument("name")
    tools_run.add_argument("--args", default="{}", metavar="JSON", help="the arguments object")
    tools_run.add_argument("--json", action="store_true", help="print JSON")
    audit = tools_actions.add_parser("audit", help="recorded tool executions, newest first")
    audit.add_argument("--run", metavar="RUN")
    audit.add_argument("--agent", metavar="ID")
    audit.add_argument("--tool")
    audit.add_argument("--limit", type=int, default=20)
    audit.add_argument("--json", action="store_true", help="print JSON")

    mcp = commands.add_parser(
        "mcp",
        help="configure MCP servers (tools over stdio)",
        description="MCP servers run over stdio; their tools appear as mcp.SERVER.TOOL.",
    )
    mcp_actions = mcp.add_subparsers(dest="mcp_command", metavar="ACTION")
    mcp_add = mcp_actions.add_parser(
        "add",
        help="add a server: workbench mcp add NAME [OPTIONS] -- COMMAND [ARGS...]",
        usage="workbench mcp add NAME [OPTIONS] -- COMMAND [ARGS...]",
        description="Add an MCP server. Everything after the first `--` is the server's command, passed as is.",
    )
    mcp_add.add_argument("name")
    # filled by `app.main` from everything after the first `--` (argparse would take options there as ours)
    mcp_add.set_defaults(server_command=None)
    mcp_add.add_argument(
        "--permission",
        choices=PERMISSIONS,
        default="exec",
        help="permission class of its tools (default exec: asks approval)",
    )
    mcp_add.add_argument(
        "--tool-permission",
        action="append",
        default=[],
        metavar="TOOL=PERM",
        help="permission of one tool (repeatable)",
    )
    mcp_add.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="environment (repeatable)")
    mcp_actions.add_parser("list", help="list servers and their tools")
    mcp_remove = mcp_actions.add_parser("remove", help="remove a server")
    mcp_remove.add_argument("name")
    mcp_accept = mcp_actions.add_parser("accept", help="accept changed tool descriptions after review")
    mcp_accept.add_argument("name")
    mcp_accept.add_argument("--tool")


def cmd_tools(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    action = args.tools_command or "list"
    with open_engine(args) as engine:
        if action == "run":
            try:
                arguments = json.loads(args.args)
            except ValueError as exc:
                raise InvalidRequest(f"--args is not valid JSON: {exc}.") from None
            result = engine.execute_tool({"tool": args.name, "arguments": arguments})
            if args.json:
                print(result.model_dump_json(indent=2))
            elif result.ok:
                print(terminal_safe(result.output or "", sys.stdout))
            else:
                print(plain(f"{result.status}: {result.error}"), file=sys.stderr)
            return 0 if result.ok else 1
        if action == "audit":
            records = engine.tool_audit(run_id=args.run, agent_id=args.agent, tool=args.tool, limit=args.limit)
            if args.json:
                print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
                return 0
            for r in records:
                arguments = json.dumps(r.arguments, ensure_ascii=False)
                print(
                    plain(
                        f"{r.created_at:%Y-%m-%d %H:%M:%S}  {r.tool:20} {r.status:8} {r.duration_ms:8.1f} ms  "
                        f"{r.agent_id or '-':12} {arguments[:80]}"
                    )
                )
            if not records:
                print("No tool executions recorded.")
            return 0
        tools = engine.list_tools()
        if getattr(args, "json", False):
            print(json.dumps([t.model_dump() for t in tools], indent=2))
            return 0
        for tool in tools:
            flag = f"  ! {tool.warning}" if tool.warning else ""
            print(plain(f"{tool.name:28} {tool.permission:8} {tool.description}{flag}"))
    return 0


def _pairs(values: list[str], what: str) -> dict[str, str]:
    from workbench.engine.errors import InvalidRequest

    pairs = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"{what} must look like KEY=VALUE (got {value!r}).")
        pairs[key] = rest
    return pairs


def cmd_mcp(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    action = args.mcp_command or "list"
    with open_engine(args) as engine:
        if action == "add":
            command = args.server_command or []
            if not command:
                raise InvalidRequest(
                    "Give the server's command after --, e.g. `workbench mcp add time -- uvx mcp-server-time`."
                )
            tool_permissions = _pairs(args.tool_permission, "--tool-permission")
            bad = {p for p in tool_permissions.values() if p not in PERMISSIONS}
            if bad:
                raise InvalidRequest(f"Permissions are {', '.join(PERMISSIONS)} (got {', '.join(sorted(bad))}).")
            info = engine.add_mcp_server(
                args.name,
                command,
                env=_pairs(args.env, "--env") or None,
                permission=args.permission,
                tool_permissions=tool_permissions or None,
            )
            print(plain(f"Added MCP server {info.name}: {' '.join(info.command)} (tools: {info.permission})."))
            return 0
        if action == "remove":
            engine.remove_mcp_server(args.name)
            print(f"Removed MCP server {args.name}.")
            return 0
        if action == "accept":
            engine.accept_mcp_changes(args.name, args.tool)
            print("Accepted the current tool descriptions.")
            return 0
        servers = engine.list_mcp_servers()
        if not servers:
            print("No MCP servers. Add one with `workbench mcp add NAME -- COMMAND ...`.")
            return 0
        tools = {t.name: t for t in engine.list_tools() if t.source.startswith("mcp:")}
        for server in engine.list_mcp_servers():
            state = "running" if server.running else "stopped"
            print(plain(f"{server.name}  [{state}, {server.permission}]  {' '.join(server.command)}"))
            if server.error:
                print(plain(f"  error: {server.error}"))
            for name, tool in sorted(tools.items()):
                if tool.source == f"mcp:{server.name}":
                    print(plain(f"  {name} ({tool.permission}): {tool.description}"))
                    if tool.warning:
                        print(plain(f"    ! {tool.warning}"))
    return 0


COMMANDS = {"tools": cmd_tools, "mcp": cmd_mcp}
