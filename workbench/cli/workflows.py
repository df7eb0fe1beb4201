"""`workbench workflows`: validate, run, watch, resume and answer durable workflows.

Standard library only at module level (DBOS loads only for `run` and `resume`).
`run` and `resume` execute the workflow in this process and stay until it ends;
`status`, `list`, `approve` and `decide` work from any other terminal meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from workbench.cli.common import open_engine, plain

FINAL = ("completed", "failed", "stopped")


def register(commands: Any) -> None:
    """Add this group's commands, with their options, to `commands` (the `workbench` subparsers)."""
    flows = commands.add_parser(
        "workflows",
        help="durable workflows: run YAML steps that survive a crash, approve, decide",
        description="Durable workflows (DBOS, in <home>/workflows.sqlite): completed steps never run again after "
        "a crash; a side-effecting step caught mid-way waits for your decision.",
    )
    actions = flows.add_subparsers(dest="workflows_command", metavar="ACTION")
    validate = actions.add_parser("validate", help="check a workflow file without running it")
    validate.add_argument("file", metavar="FILE")
    validate.add_argument("--json", action="store_true", help="print JSON")
    run = actions.add_parser("run", help="run a workflow file here until it ends (Ctrl-C leaves it resumable)")
    run.add_argument("file", metavar="FILE")
    run.add_argument("--input", action="append", default=[], metavar="NAME=VALUE", help="an input (repeatable)")
    run.add_argument("--json", action="store_true", help="print the final status as JSON")
    listing = actions.add_parser("list", help="workflows, newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--json", action="store_true", help="print JSON")
    status = actions.add_parser("status", help="a workflow's state and its steps'")
    status.add_argument("workflow_id", metavar="ID")
    status.add_argument("--json", action="store_true", help="print JSON")
    resume = actions.add_parser("resume", help="continue an interrupted workflow from its last completed step")
    resume.add_argument("workflow_id", metavar="ID")
    resume.add_argument("--json", action="store_true", help="print the final status as JSON")
    approve = actions.add_parser("approve", help="answer a waiting approval step (approve, or --deny)")
    approve.add_argument("workflow_id", metavar="ID")
    approve.add_argument("step", metavar="STEP")
    approve.add_argument("--deny", action="store_true", help="deny instead of approving")
    approve.add_argument("--approve", dest="deny", action="store_false", help="approve (the default)")
    approve.add_argument("--reason", metavar="TEXT")
    decide = actions.add_parser("decide", help="retry, skip or fail a step that was in flight at a crash")
    decide.add_argument("workflow_id", metavar="ID")
    decide.add_argument("step", metavar="STEP")
    decide.add_argument("choice", choices=["retry", "skip", "fail"])


def _service(args: argparse.Namespace, engine: Any = None) -> Any:
    from workbench.engine.config import resolve_home
    from workbench.engine.workflows.durable import WorkflowService

    return WorkflowService(engine.home if engine is not None else resolve_home(args.home), engine)


def _local_engine(args: argparse.Namespace) -> Any:
    from workbench.engine.errors import InvalidRequest

    engine = open_engine(args)
    if not hasattr(engine, "home"):
        engine.close()
        raise InvalidRequest(
            "Workflows run in the process that owns the data folder, and a Workbench server owns it now; "
            "stop the server, or run workflows without --connect."
        )
    return engine


def _inputs(pairs: list[str]) -> dict[str, str]:
    from workbench.engine.errors import InvalidRequest

    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidRequest(f"--input takes NAME=VALUE, not {pair!r}.")
        out[name.strip()] = value
    return out


def _line(step: Any) -> str:
    extra = f" (attempt {step.attempt})" if step.attempt > 1 else ""
    text = f"  {step.id:<20} {step.kind:<10} {step.status}{extra}"
    if step.error:
        text += f": {plain(step.error)[:200]}"
    return text


def _print_status(status: Any) -> None:
    print(f"{status.id}  {status.name}  {status.status}  (updated {status.updated_at:%Y-%m-%d %H:%M:%S})")
    if status.error:
        print(f"  {plain(status.error)}")
    for step in status.steps:
        print(_line(step))
    _print_waiting(status)
    if not status.active and status.status not in FINAL:
        print(f"  No process runs it now: `workbench workflows resume {status.id}` continues it.")


def _print_waiting(status: Any) -> None:
    for step in status.steps:
        if step.status == "waiting_approval":
            prompt = plain(str(step.detail.get("prompt", "")))[:300]
            print(
                f"  {step.id} waits for approval: {prompt}\n"
                f"    `workbench workflows approve {status.id} {step.id}` (or --deny); "
                f"after {step.detail.get('timeout_seconds'):g} s it takes its default, {step.detail.get('default')}.",
                flush=True,
            )
        elif step.status == "needs_decision":
            about = json.dumps({k: step.detail.get(k) for k in ("tool", "arguments")}, ensure_ascii=False)[:400]
            print(
                f"  {step.id} was in flight at a crash (audit: {step.detail.get('audit', 'unknown')}): {plain(about)}\n"
                f"    `workbench workflows decide {status.id} {step.id} retry|skip|fail`",
                flush=True,
            )


def _watch(service: Any, workflow_id: str, as_json: bool) -> int:
    seen: dict[str, tuple[str, int]] = {}

    def show(status: Any) -> None:
        if as_json:
            return
        for step in status.steps:
            if seen.get(step.id) != (step.status, step.attempt):
                seen[step.id] = (step.status, step.attempt)
                print(_line(step), flush=True)
                if step.status in ("waiting_approval", "needs_decision"):
                    _print_waiting(status.model_copy(update={"steps": [step]}))

    try:
        final = service.wait(workflow_id, on_change=show)
    except KeyboardInterrupt:
        print(
            f"\nStopped; {workflow_id} is resumable with `workbench workflows resume {workflow_id}`.",
            file=sys.stderr,
            flush=True,
        )
        # Leave as a crash would (that is what workflows survive): a step thread may be mid-call, and
        # closing the engine or DBOS under it could record a failure the step never had.
        sys.stdout.flush()
        os._exit(130)
    if as_json:
        print(final.model_dump_json(indent=2))
    else:
        print(f"{workflow_id} {final.status}" + (f": {plain(final.error)}" if final.error else "."))
    return 0 if final.status == "completed" else 1


def cmd_workflows(args: argparse.Namespace) -> int:
    action = args.workflows_command or "list"
    as_json = getattr(args, "json", False)
    if action == "validate":
        from workbench.engine.workflows.definition import load
        from workbench.engine.workflows.durable import EngineCatalog

        engine = open_engine(args)
        try:
            definition = load(args.file, EngineCatalog(engine))
        finally:
            engine.close()
        if as_json:
            print(json.dumps(definition.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2))
        else:
            print(f"{args.file}: workflow {definition.name!r} is valid ({len(definition.all_steps())} steps).")
        return 0
    if action in ("run", "resume"):
        engine = _local_engine(args)
        try:
            with _service(args, engine) as service:
                if action == "run":
                    status = service.start({"path": args.file, "inputs": _inputs(args.input)})
                else:
                    status = service.resume(args.workflow_id)
                if not as_json:
                    print(f"{status.id} {'started' if action == 'run' else 'resumed'}: {status.name}", flush=True)
                return _watch(service, status.id, as_json)
        finally:
            engine.close()
    service = _service(args)
    if action == "list":
        flows = service.list(limit=args.limit)
        if as_json:
            print(json.dumps([f.model_dump(mode="json") for f in flows], indent=2))
        elif not flows:
            print("No workflows yet; `workbench workflows run FILE` starts one.")
        for flow in [] if as_json else flows:
            waiting = f"  waiting on {', '.join(flow.waiting_on)}" if flow.waiting_on else ""
            print(f"{flow.id}  {flow.updated_at:%Y-%m-%d %H:%M}  {flow.status:<16} {plain(flow.name)}{waiting}")
    elif action == "status":
        status = service.status(args.workflow_id)
        if as_json:
            print(status.model_dump_json(indent=2))
        else:
            _print_status(status)
    elif action == "approve":
        service.approve(
            {"workflow_id": args.workflow_id, "step": args.step, "approve": not args.deny, "reason": args.reason}
        )
        print(f"{'Denied' if args.deny else 'Approved'} {args.step} of {args.workflow_id}.")
    elif action == "decide":
        service.decide({"workflow_id": args.workflow_id, "step": args.step, "choice": args.choice})
        print(f"Decided {args.choice} for {args.step} of {args.workflow_id}.")
    return 0


COMMANDS = {"workflows": cmd_workflows}
