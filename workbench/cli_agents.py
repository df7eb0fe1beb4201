"""CLI commands for agents, runs, tools, MCP servers and workspace roots.

Kept apart from `cli.py` (chat, memory, knowledge); `cli.py` registers them.
Standard library only at module level.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from workbench.cli_common import open_engine as _open_engine
from workbench.cli_common import plain as _plain
from workbench.cli_common import terminal_safe as _terminal_safe

PERMISSIONS = ["read", "write", "exec", "network"]


def add_commands(commands: Any) -> None:
    agents = commands.add_parser(
        "agents",
        help="create, list, show, edit, delete, export and import agents",
        description="Agents: instructions, model, allowed tools, knowledge collections, limits. "
        "`agents create ID --occupation X` builds one from a role model (generated knowledge and skills).",
    )
    actions = agents.add_subparsers(dest="agents_command", metavar="ACTION")
    create = actions.add_parser("create", help="create an agent (from a role model with --occupation)")
    create.add_argument("agent_id", metavar="ID", help="letters, digits, '.', '_' or '-' (max 64)")
    create.add_argument("--name", help="display name (default: the id)")
    _definition_options(create)
    create.add_argument("--occupation", help="build from a role model: generate knowledge and skills for it")
    create.add_argument("--cycles", type=int, default=1, help="deepening cycles of the role-model build (0 to 5)")
    create.add_argument("--corpus", metavar="FILE", help="text about the role model to ground the build")
    create.add_argument("--json", action="store_true", help="print JSON")
    listing = actions.add_parser("list", help="list agents")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--per-page", type=int, default=20)
    listing.add_argument(
        "--sort",
        default="-created_at",
        help="created_at, updated_at, name or id; a leading '-' sorts descending (write --sort=-name)",
    )
    listing.add_argument("--role", choices=["parent", "child", "micro"])
    listing.add_argument("--query", "-q", help="filter by name or id")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = actions.add_parser("show", help="show an agent with its skills and knowledge")
    show.add_argument("agent_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    edit = actions.add_parser("edit", help="change fields of an agent")
    edit.add_argument("agent_id", metavar="ID")
    edit.add_argument("--name")
    _definition_options(edit)
    edit.add_argument("--patch", metavar="JSON|@FILE", help="a JSON object of fields to change (nested ones merge)")
    edit.add_argument("--json", action="store_true", help="print JSON")
    delete = actions.add_parser("delete", help="delete an agent")
    delete.add_argument("agent_id", metavar="ID")
    export = actions.add_parser("export", help="write an agent, its skills, knowledge and template as YAML")
    export.add_argument("agent_id", metavar="ID")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    imp = actions.add_parser("import", help="create an agent from an exported YAML file")
    imp.add_argument("file", metavar="FILE", help="'-' reads standard input")
    imp.add_argument("--replace", action="store_true", help="overwrite an existing agent with the same id")
    enrich = actions.add_parser("enrich", help="generate more knowledge and skills for an agent")
    enrich.add_argument("agent_id", metavar="ID")
    enrich.add_argument("--cycles", type=int, default=1, help="additional cycles (1 to 5)")

    run = commands.add_parser(
        "run",
        help="run an agent on a task (streams steps, asks approvals)",
        description="Run an agent on a task. Each step is printed; write, exec and network tool calls "
        "(per the agent's policy) wait for y/N at the prompt (without a terminal: one line read from standard "
        "input). No answer means denied.",
    )
    run.add_argument("agent_id", metavar="AGENT")
    run.add_argument("task", help="the task; '-' reads it from standard input")
    run.add_argument("--model", "-m", help="use this model instead of the agent's")
    run.add_argument("--max-steps", type=int, metavar="N", help="override the agent's step limit")
    run.add_argument(
        "--session",
        metavar="ID",
        help="continue this chat session: its latest turns are the run's context, and the task and "
        "the outcome are added to it (`workbench sessions list` shows the ids)",
    )
    run.add_argument("--json", action="store_true", help="print every event as one JSON line")

    runs = commands.add_parser("runs", help="list agent runs or show one run's events")
    runs_actions = runs.add_subparsers(dest="runs_command", metavar="ACTION")
    runs_list = runs_actions.add_parser("list", help="list runs, newest first")
    runs_list.add_argument("--agent", metavar="ID")
    runs_list.add_argument("--limit", type=int, default=20)
    runs_list.add_argument("--json", action="store_true", help="print JSON")
    runs_show = runs_actions.add_parser("show", help="print a run's events")
    runs_show.add_argument("run_id", metavar="RUN")
    runs_show.add_argument("--json", action="store_true", help="print JSON")

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
    # filled by `cli.main` from everything after the first `--` (argparse would take options there as ours)
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

    workspace = commands.add_parser("workspace", help="folders the file, shell, git and python tools may use")
    ws_actions = workspace.add_subparsers(dest="workspace_command", metavar="ACTION")
    ws_actions.add_parser("list", help="list workspace roots")
    ws_add = ws_actions.add_parser("add", help="add a folder")
    ws_add.add_argument("path")
    ws_remove = ws_actions.add_parser("remove", help="remove a folder")
    ws_remove.add_argument("path")


def _definition_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instructions", "-i", metavar="TEXT|@FILE", help="the agent's instructions")
    parser.add_argument("--model", "-m", help="model id")
    parser.add_argument(
        "--tool",
        dest="tools",
        action="append",
        metavar="NAME",
        help="an allowed tool or pattern like 'mcp.time.*' (repeatable; replaces the list)",
    )
    parser.add_argument(
        "--collection",
        dest="collections",
        action="append",
        metavar="NAME",
        help="a knowledge collection to draw on (repeatable; replaces the list)",
    )
    parser.add_argument("--max-steps", type=int, metavar="N")
    parser.add_argument("--role", choices=["parent", "child", "micro"])
    parser.add_argument("--parent", metavar="ID")
    parser.add_argument("--template", help="prompt template: basic, xml, cot, or a YAML/JSON file")


def _text_arg(value: str) -> str:
    from workbench.engine.errors import InvalidRequest

    if not value.startswith("@"):
        return value
    try:
        with open(value[1:], encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"Cannot read {value[1:]}: {exc}.") from None


def _definition_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if getattr(args, "name", None):
        fields["name"] = args.name
    if args.instructions is not None:
        fields["instructions"] = _text_arg(args.instructions)
    for key, value in (
        ("model", args.model),
        ("tools", args.tools),
        ("knowledge_collections", args.collections),
        ("max_steps", args.max_steps),
        ("role", args.role),
        ("parent", args.parent),
        ("template", args.template),
    ):
        if value is not None:
            fields[key] = value
    return fields


def _print_agent(agent: Any) -> None:
    print(_plain(f"{agent.id}  {agent.name}  [{agent.role}, {agent.status}]"))
    if agent.occupation:
        print(_plain(f"  occupation: {agent.occupation}"))
    print(_plain(f"  model: {agent.model or '(default)'}   max steps: {agent.max_steps}   template: {agent.template}"))
    print(_plain(f"  tools: {', '.join(agent.tools) or '(none)'}"))
    print(_plain(f"  collections: {', '.join(agent.knowledge_collections) or '(none)'}"))
    print(_plain(f"  approvals for: {', '.join(agent.approvals.require) or '(none)'}"))
    if agent.instructions:
        print(_plain("  instructions: " + " ".join(agent.instructions.split())[:300]))
    for skill in agent.generated_skills:
        print(_plain(f"  skill: {skill.name} ({skill.category}) - {skill.description}"))
    for item in agent.generated_knowledge:
        print(_plain(f"  knows: [{item.entity.type}] {item.entity.text}"))
    if agent.metadata.get("build_error"):
        print(_plain(f"  build error: {agent.metadata['build_error']}"))


def cmd_agents(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    action = args.agents_command or "list"
    if action == "list" and not hasattr(args, "page"):
        args = argparse.Namespace(
            **vars(args), page=1, per_page=20, sort="-created_at", role=None, query=None, json=False
        )
    with _open_engine(args) as engine:
        if action == "create":
            fields = _definition_fields(args)
            fields.setdefault("name", args.agent_id)
            if args.occupation:
                corpus = _text_arg("@" + args.corpus) if args.corpus else ""
                name = fields.pop("name")
                print(
                    _plain(
                        f"Building {args.agent_id} from the role model {name} ({args.occupation}), "
                        f"{args.cycles} cycle(s)..."
                    ),
                    file=sys.stderr,
                )
                agent = engine.create_agent_from_role_model(
                    {
                        "agent_id": args.agent_id,
                        "role_model": {"name": name, "occupation": args.occupation},
                        "deepening_cycles": args.cycles,
                        "corpus_text": corpus,
                        "model": fields.get("model"),
                        "overrides": fields,
                    }
                )
            else:
                agent = engine.create_agent({"id": args.agent_id, **fields})
            _show(agent, args.json)
            return 0 if agent.status != "failed" else 1
        if action == "list":
            page = engine.list_agents(
                page=args.page, per_page=args.per_page, sort=args.sort, role=args.role, query=args.query
            )
            if args.json:
                print(page.model_dump_json(indent=2))
                return 0
            if not page.items:
                print("No agents. Create one with `workbench agents create ID`.")
            for agent in page.items:
                print(
                    _plain(
                        f"{agent.id:24} {agent.name[:30]:30} {agent.role:7} {agent.status:9} tools: {len(agent.tools)}"
                    )
                )
            if page.total > page.page * page.per_page:
                print(f"... page {page.page} of {(page.total + page.per_page - 1) // page.per_page} (--page N)")
            return 0
        if action == "show":
            _show(engine.get_agent(args.agent_id), args.json)
            return 0
        if action == "edit":
            changes = _definition_fields(args)
            if args.patch:
                try:
                    patch = json.loads(_text_arg(args.patch))
                except ValueError as exc:
                    raise InvalidRequest(f"--patch is not valid JSON: {exc}.") from None
                if not isinstance(patch, dict):
                    raise InvalidRequest("--patch must be a JSON object.")
                changes.update(patch)
            if not changes:
                raise InvalidRequest("Nothing to change: give options such as --name or --patch.")
            _show(engine.update_agent(args.agent_id, changes), args.json)
            return 0
        if action == "delete":
            engine.delete_agent(args.agent_id)
            print(f"Deleted agent {args.agent_id}.")
            return 0
        if action == "export":
            text = engine.export_agent(args.agent_id)
            if args.output:
                with open(args.output, "w", encoding="utf-8") as handle:
                    handle.write(text)
                print(f"Wrote {args.output}.", file=sys.stderr)
            else:
                sys.stdout.write(text)
            return 0
        if action == "import":
            text = sys.stdin.read() if args.file == "-" else _text_arg("@" + args.file)
            agent = engine.import_agent(text, replace=args.replace)
            print(_plain(f"Imported agent {agent.id}."))
            return 0
        if action == "enrich":
            agent = engine.enrich_agent(args.agent_id, args.cycles)
            _show(agent, False)
            return 0 if agent.status != "failed" else 1
    return 2


def _show(agent: Any, as_json: bool) -> None:
    if as_json:
        print(agent.model_dump_json(indent=2))
    else:
        _print_agent(agent)


def _ask_approval(approval: Any) -> tuple[bool, str | None]:
    """Show the exact call and read y/N from the terminal; no terminal means no."""
    args = json.dumps(approval.arguments, ensure_ascii=False, indent=2)
    print(_plain(f"\nApproval needed: {approval.tool} ({approval.permission})\n{args}"), file=sys.stderr)
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            print("No terminal to ask: denied.", file=sys.stderr)
            return False, "no one was there to approve"
    else:
        try:
            line = input("Approve this call? [y/N] ")
        except EOFError:
            return False, "no answer"
    answer = line.strip().lower()
    return answer in ("y", "yes"), None if answer in ("y", "yes") else "denied at the prompt"


def cmd_run(args: argparse.Namespace) -> int:
    task = sys.stdin.read() if args.task == "-" else args.task
    status = "failed"
    with _open_engine(args) as engine:
        events = engine.run_agent(
            {
                "agent_id": args.agent_id,
                "task": task,
                "model": args.model,
                "max_steps": args.max_steps,
                "session_id": args.session,
            }
        )
        try:
            for event in events:
                if args.json:
                    print(event.model_dump_json(), flush=True)
                else:
                    _print_event(event)
                if event.type == "approval_requested":
                    approve, reason = _ask_approval(event.approval)
                    engine.resolve_approval(event.approval.id, approve, reason)
                elif event.type == "agent_run_finished":
                    status = event.run.status
        except KeyboardInterrupt:
            events.close()
            print("\n[cancelled]", file=sys.stderr)
            return 130
    return 0 if status == "finished" else 1


def _print_event(event: Any, err: Any = None) -> None:
    """Print one run event: progress to `err` (stderr while running), the answer to stdout."""
    out = sys.stdout
    err = err or sys.stderr
    kind = event.type
    if kind == "agent_run_started":
        print(_plain(f"run {event.run_id} · {event.agent_id} on {event.model}"), file=err)
    elif kind == "step_started":
        offered = ", ".join(event.offered_tools) or "none"
        print(_plain(f"step {event.step} · tools offered: {offered}"), file=err)
    elif kind == "tool_call_proposed":
        args = json.dumps(event.arguments, ensure_ascii=False)
        print(_plain(f"  → {event.tool} {args[:500]}"), file=err)
    elif kind == "tool_result":
        ex = event.execution
        text = ex.output if ex.ok else ex.error
        snippet = " ".join((text or "").split())[:300]
        print(_plain(f"  ← {ex.status} ({ex.duration_ms:.0f} ms) {snippet}"), file=err)
    elif kind == "approval_requested" and err is out:  # while running, the prompt shows it
        args = json.dumps(event.approval.arguments, ensure_ascii=False)
        print(_plain(f"  ? approval requested: {event.approval.tool} {args[:500]}"), file=err)
    elif kind == "approval_resolved":
        print(_plain(f"  approval {event.approval.status}"), file=err)
    elif kind == "guardrail":
        v = event.violation
        print(_plain(f"  ! {v.stage} {v.rule} ({v.action}): {v.detail}"), file=err)
    elif kind == "agent_run_finished":
        run = event.run
        if run.answer:
            print(_terminal_safe(run.answer, out), file=out)
        tokens = run.prompt_tokens + run.completion_tokens
        summary = f"[{run.status} · {run.steps} step(s) · {tokens} tokens · {(run.duration_ms or 0) / 1000:.1f} s]"
        print(_plain(summary + (f" {run.error}" if run.error else "")), file=err)


def cmd_runs(args: argparse.Namespace) -> int:
    action = args.runs_command or "list"
    with _open_engine(args) as engine:
        if action == "show":
            run = engine.get_run(args.run_id)
            events = engine.run_events(args.run_id)
            if args.json:
                print(
                    json.dumps(
                        {"run": run.model_dump(mode="json"), "events": [e.model_dump(mode="json") for e in events]},
                        indent=2,
                    )
                )
                return 0
            print(_plain(f"{run.id}  {run.agent_id}  {run.status}  {run.steps} step(s)  {run.model}"))
            print(_plain(f"task: {run.task}"))
            for record in events:
                from pydantic import TypeAdapter

                from workbench.engine.schemas import AgentEvent

                _print_event(TypeAdapter(AgentEvent).validate_python(record.payload), err=sys.stdout)
            return 0
        runs = engine.list_runs(agent_id=getattr(args, "agent", None), limit=getattr(args, "limit", 20))
        if getattr(args, "json", False):
            print(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
            return 0
        if not runs:
            print("No runs yet.")
        for run in runs:
            seconds = f"{(run.duration_ms or 0) / 1000:.1f}s"
            print(
                _plain(
                    f"{run.id}  {run.agent_id:16} {run.status:11} {run.steps:>2} steps {seconds:>7}  "
                    f"{' '.join(run.task.split())[:50]}"
                )
            )
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    action = args.tools_command or "list"
    with _open_engine(args) as engine:
        if action == "run":
            try:
                arguments = json.loads(args.args)
            except ValueError as exc:
                raise InvalidRequest(f"--args is not valid JSON: {exc}.") from None
            result = engine.execute_tool({"tool": args.name, "arguments": arguments})
            if args.json:
                print(result.model_dump_json(indent=2))
            elif result.ok:
                print(_terminal_safe(result.output or "", sys.stdout))
            else:
                print(_plain(f"{result.status}: {result.error}"), file=sys.stderr)
            return 0 if result.ok else 1
        if action == "audit":
            records = engine.tool_audit(run_id=args.run, agent_id=args.agent, tool=args.tool, limit=args.limit)
            if args.json:
                print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
                return 0
            for r in records:
                arguments = json.dumps(r.arguments, ensure_ascii=False)
                print(
                    _plain(
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
            print(_plain(f"{tool.name:28} {tool.permission:8} {tool.description}{flag}"))
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
    with _open_engine(args) as engine:
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
            print(_plain(f"Added MCP server {info.name}: {' '.join(info.command)} (tools: {info.permission})."))
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
            print(_plain(f"{server.name}  [{state}, {server.permission}]  {' '.join(server.command)}"))
            if server.error:
                print(_plain(f"  error: {server.error}"))
            for name, tool in sorted(tools.items()):
                if tool.source == f"mcp:{server.name}":
                    print(_plain(f"  {name} ({tool.permission}): {tool.description}"))
                    if tool.warning:
                        print(_plain(f"    ! {tool.warning}"))
    return 0


def cmd_workspace(args: argparse.Namespace) -> int:
    action = args.workspace_command or "list"
    with _open_engine(args) as engine:
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
        print(_plain(root))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from workbench.server.run import DEFAULT_LISTEN, serve

    def ready(addresses: list[str]) -> None:
        print(_plain(f"Serving on {', '.join('http://' + v for v in addresses)} (Ctrl-C stops)."), file=sys.stderr)

    def stopping(reason: str) -> None:
        print(f"Stopping the server ({reason})…", file=sys.stderr, flush=True)

    if args.read_timeout is not None and not 0.1 <= args.read_timeout <= 3600:
        print("workbench: error: --read-timeout takes 0.1 to 3600 seconds.", file=sys.stderr)
        return 2
    with _open_engine(args) as engine:
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


COMMANDS = {
    "serve": cmd_serve,
    "agents": cmd_agents,
    "run": cmd_run,
    "runs": cmd_runs,
    "tools": cmd_tools,
    "mcp": cmd_mcp,
    "workspace": cmd_workspace,
}
