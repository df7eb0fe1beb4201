"""`workbench agents`, `run` and `runs`: define agents, run them on a task, read their runs.

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
    print(plain(f"{agent.id}  {agent.name}  [{agent.role}, {agent.status}]"))
    if agent.occupation:
        print(plain(f"  occupation: {agent.occupation}"))
    print(plain(f"  model: {agent.model or '(default)'}   max steps: {agent.max_steps}   template: {agent.template}"))
    print(plain(f"  tools: {', '.join(agent.tools) or '(none)'}"))
    print(plain(f"  collections: {', '.join(agent.knowledge_collections) or '(none)'}"))
    print(plain(f"  approvals for: {', '.join(agent.approvals.require) or '(none)'}"))
    if agent.instructions:
        print(plain("  instructions: " + " ".join(agent.instructions.split())[:300]))
    for skill in agent.generated_skills:
        print(plain(f"  skill: {skill.name} ({skill.category}) - {skill.description}"))
    for item in agent.generated_knowledge:
        print(plain(f"  knows: [{item.entity.type}] {item.entity.text}"))
    if agent.metadata.get("build_error"):
        print(plain(f"  build error: {agent.metadata['build_error']}"))


def cmd_agents(args: argparse.Namespace) -> int:
    from workbench.engine.errors import InvalidRequest

    action = args.agents_command or "list"
    if action == "list" and not hasattr(args, "page"):
        args = argparse.Namespace(
            **vars(args), page=1, per_page=20, sort="-created_at", role=None, query=None, json=False
        )
    with open_engine(args) as engine:
        if action == "create":
            fields = _definition_fields(args)
            fields.setdefault("name", args.agent_id)
            if args.occupation:
                corpus = _text_arg("@" + args.corpus) if args.corpus else ""
                name = fields.pop("name")
                print(
                    plain(
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
                    plain(
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
            print(plain(f"Imported agent {agent.id}."))
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
    print(plain(f"\nApproval needed: {approval.tool} ({approval.permission})\n{args}"), file=sys.stderr)
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
    with open_engine(args) as engine:
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
        print(plain(f"run {event.run_id} · {event.agent_id} on {event.model}"), file=err)
    elif kind == "step_started":
        offered = ", ".join(event.offered_tools) or "none"
        print(plain(f"step {event.step} · tools offered: {offered}"), file=err)
    elif kind == "tool_call_proposed":
        args = json.dumps(event.arguments, ensure_ascii=False)
        print(plain(f"  → {event.tool} {args[:500]}"), file=err)
    elif kind == "tool_result":
        ex = event.execution
        text = ex.output if ex.ok else ex.error
        snippet = " ".join((text or "").split())[:300]
        print(plain(f"  ← {ex.status} ({ex.duration_ms:.0f} ms) {snippet}"), file=err)
    elif kind == "approval_requested" and err is out:  # while running, the prompt shows it
        args = json.dumps(event.approval.arguments, ensure_ascii=False)
        print(plain(f"  ? approval requested: {event.approval.tool} {args[:500]}"), file=err)
    elif kind == "approval_resolved":
        print(plain(f"  approval {event.approval.status}"), file=err)
    elif kind == "guardrail":
        v = event.violation
        print(plain(f"  ! {v.stage} {v.rule} ({v.action}): {v.detail}"), file=err)
    elif kind == "agent_run_finished":
        run = event.run
        if run.answer:
            print(terminal_safe(run.answer, out), file=out)
        tokens = run.prompt_tokens + run.completion_tokens
        summary = f"[{run.status} · {run.steps} step(s) · {tokens} tokens · {(run.duration_ms or 0) / 1000:.1f} s]"
        print(plain(summary + (f" {run.error}" if run.error else "")), file=err)


def cmd_runs(args: argparse.Namespace) -> int:
    action = args.runs_command or "list"
    with open_engine(args) as engine:
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
            print(plain(f"{run.id}  {run.agent_id}  {run.status}  {run.steps} step(s)  {run.model}"))
            print(plain(f"task: {run.task}"))
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
                plain(
                    f"{run.id}  {run.agent_id:16} {run.status:11} {run.steps:>2} steps {seconds:>7}  "
                    f"{' '.join(run.task.split())[:50]}"
                )
            )
    return 0


COMMANDS = {"agents": cmd_agents, "run": cmd_run, "runs": cmd_runs}
