"""Agent benchmark: tool-call validity, tool selection and the runner's overhead.

On the 50 tasks of data/tool_tasks.json, with the default model and every
built-in tool allowed, it measures in one run:

* the schema-valid tool-call rate of the first step with constrained decoding
  (the step grammar) and without it (the same prompt, free text parsed as JSON),
* the tool-selection accuracy with routing (the agent's default settings) and
  without it (all 16 tools offered), plus the router's own top-1 accuracy,
* the runner's overhead per step excluding model time (prompt building,
  routing bookkeeping, guardrails, validation, persistence), from full runs,
* end-to-end success (`end_to_end`): the tasks of `end_to_end` in the same
  file (list a folder, summarise a file, write a file, find a fact in a
  collection) run to their end, write approvals given through the engine's
  approval path, and each outcome checked (tests/agent_e2e.py): on the default
  model, and through the OpenAI wire fake (tests/wire_servers.py) with one
  scripted call per task (`remote_call`): the fake measures the harness (the
  call routed, approved, executed, its result sent back and the answer
  recorded), not a model.

Prints one JSON document. Targets: constrained validity 100%; routing at least
doubles accuracy and reaches >= 80%; overhead p50 <= 5 ms; end-to-end >= 60%
on the default model. `--e2e-only` runs only the end-to-end section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The wire fake's key goes to a throwaway file keyring, never the user's.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="wb-bench-keyring-")
os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"

from benchmarks.machine import cpu_busy, cpu_model, other_load, package_version  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "data" / "tool_tasks.json"
BUILTINS = [
    "read_file",
    "write_file",
    "list_dir",
    "search_files",
    "run_command",
    "http_fetch",
    "git_status",
    "git_log",
    "git_diff",
    "git_add",
    "git_commit",
    "run_python",
    "system_metrics",
    "search_knowledge",
    "remember",
    "recall",
]
#: read-only tasks for the overhead runs (no approval needed)
OVERHEAD_TASKS = [
    "Open the file notes/todo.md and tell me what is on it.",
    "List the files in the docs folder.",
    "Find every file that mentions TODO.",
    "How busy is the CPU right now?",
    "Show me the contents of README.md.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def workspace(root: Path) -> None:
    (root / "notes").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "notes" / "todo.md").write_text("- buy milk\n- call Bob\n- TODO: renew the domain\n")
    (root / "README.md").write_text("# Demo project\nA small project for the agent benchmark.\n")
    (root / "docs" / "guide.md").write_text("Install with make. TODO: write the usage section.\n")


def end_to_end(remote: bool) -> dict:
    """The end-to-end tasks on the default model, or through the scripted OpenAI wire fake."""
    from tests import agent_e2e
    from tests.wire_servers import WireServer, add_model
    from workbench.engine.engine import Engine

    base = Path(tempfile.mkdtemp(prefix="wb-bench-e2e-"))
    items = agent_e2e.spec()["tasks"]
    outcomes, seconds = [], []
    with Engine(base / "home") as engine, WireServer() as wire:
        workspace = agent_e2e.prepare(engine, base)
        model = add_model(engine, wire, "openai") if remote else None
        engine.create_agent(agent_e2e.agent(BUILTINS))
        for item in items:
            if remote:
                call = item["remote_call"]
                wire.tool_calls = [(call["tool"], call["arguments"])]
            started = time.perf_counter()
            outcomes.append(agent_e2e.run_task(engine, "e2e", item, workspace, model=model))
            seconds.append(time.perf_counter() - started)
            done = outcomes[-1]
            print(
                f"e2e {'remote' if remote else 'local'}: {done.ok} {item['task']} {done.problems} "
                f"{(done.answer or '')[:120]!r}",
                file=sys.stderr,
            )
    report = agent_e2e.summary(outcomes)
    report["run_s_p50"] = round(statistics.median(seconds), 2)
    report["model"] = (
        "wireai:gpt-wire (scripted wire fake: measures the harness, not a model)"
        if remote
        else "SmolLM2-135M-Instruct (package default)"
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="first 10 tasks only, 2 overhead runs")
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end section")
    args = parser.parse_args(argv)

    if args.e2e_only:
        report = {
            "end_to_end": {
                "default_model": end_to_end(remote=False),
                "remote_wire_fake": end_to_end(remote=True),
                "target_default_model": 0.6,
            }
        }
        print(json.dumps(report, indent=2))
        return 0

    from workbench.engine.engine import Engine

    tasks = json.loads(TASKS.read_text())["tasks"]
    overhead_tasks = OVERHEAD_TASKS
    if args.quick:
        tasks, overhead_tasks = tasks[:10], OVERHEAD_TASKS[:2]
    load_before = cpu_busy()
    home = Path(tempfile.mkdtemp(prefix="wb-bench-agents-"))
    ws = home / "workspace"
    workspace(ws)
    report: dict = {"tasks": len(tasks)}
    with Engine(home) as engine:
        engine.add_workspace_root(str(ws))
        routed = engine.create_agent(
            {"id": "routed", "name": "Routed", "tools": BUILTINS, "memory": {"enabled": False}}
        )
        unrouted = engine.create_agent(
            {
                "id": "unrouted",
                "name": "Unrouted",
                "tools": BUILTINS,
                "memory": {"enabled": False},
                "routing": {"enabled": False},
            }
        )
        # warm up: model, embedder, grammar caches
        engine.runner.plan_step(routed, tasks[0]["task"])

        def measure(agent, constrained: bool) -> dict:
            correct = valid = calls = valid_calls = 0
            model_ms, route_ms, offered = [], [], []
            picks = []
            for item in tasks:
                plan = engine.runner.plan_step(agent, item["task"], constrained=constrained)
                is_call = plan.proposal.action not in ("final_answer", "invalid")
                calls += is_call
                valid += plan.valid
                valid_calls += is_call and plan.valid
                correct += plan.proposal.action == item["tool"]
                model_ms.append(plan.model_ms - plan.route_ms)
                route_ms.append(plan.route_ms)
                offered.append(len(plan.offered))
                picks.append(plan.proposal.action)
            n = len(tasks)
            return {
                "selection_accuracy": round(correct / n, 3),
                # share of proposed tool calls that parse and fit the chosen tool's schema
                "call_valid_rate": round(valid_calls / calls, 3) if calls else None,
                # share of all step outputs that parse and fit the step schema
                "output_valid_rate": round(valid / n, 3),
                "tool_call_rate": round(calls / n, 3),
                "model_ms_p50": round(statistics.median(model_ms), 1),
                "route_ms_p50": round(statistics.median(route_ms), 2),
                "tools_offered_mean": round(statistics.mean(offered), 2),
                "picks": picks,
            }

        with_routing = measure(routed, True)
        without_routing = measure(unrouted, True)
        unconstrained = measure(unrouted, False)
        unconstrained_routed = measure(routed, False)

        tools = engine.tools.allowed(BUILTINS)
        router_top1 = sum(engine.tool_router.rank(t["task"], tools)[0][0].name == t["tool"] for t in tasks) / len(tasks)

        # Overhead: full runs of read-only tasks; approvals off explicitly for them.
        runner_agent = engine.create_agent(
            {
                "id": "bench",
                "name": "Bench",
                "tools": BUILTINS,
                "max_steps": 3,
                "memory": {"enabled": False},
                "approvals": {"require": []},
            }
        )
        overhead, model_step_ms, statuses = [], [], []
        for task in overhead_tasks:
            for event in engine.run_agent({"agent_id": runner_agent.id, "task": task}):
                if event.type == "step_finished":
                    overhead.append(event.overhead_ms)
                    model_step_ms.append(event.model_ms)
                elif event.type == "agent_run_finished":
                    statuses.append(event.run.status)

    for block in (with_routing, without_routing, unconstrained, unconstrained_routed):
        block.pop("picks")
    accuracy_ratio = (
        with_routing["selection_accuracy"] / without_routing["selection_accuracy"]
        if without_routing["selection_accuracy"]
        else None
    )
    report.update(
        {
            "constrained": {"with_routing": with_routing, "without_routing": without_routing},
            "unconstrained": {"with_routing": unconstrained_routed, "without_routing": unconstrained},
            "router_top1_accuracy": round(router_top1, 3),
            "schema_valid_tool_calls": {
                "constrained": {
                    "with_routing": with_routing["call_valid_rate"],
                    "without_routing": without_routing["call_valid_rate"],
                },
                "unconstrained": {
                    "with_routing": unconstrained_routed["call_valid_rate"],
                    "without_routing": unconstrained["call_valid_rate"],
                },
                "outputs_valid": {
                    "constrained": without_routing["output_valid_rate"],
                    "unconstrained": unconstrained["output_valid_rate"],
                },
                "target_constrained": 1.0,
            },
            "selection": {
                "with_routing": with_routing["selection_accuracy"],
                "without_routing": without_routing["selection_accuracy"],
                "ratio": round(accuracy_ratio, 2) if accuracy_ratio else None,
                "targets": {"ratio": 2.0, "with_routing": 0.8},
            },
            "runner_overhead_ms": {
                "steps": len(overhead),
                "p50": round(statistics.median(overhead), 3) if overhead else None,
                "p90": round(percentile(overhead, 0.9), 3) if overhead else None,
                "model_ms_p50": round(statistics.median(model_step_ms), 1) if model_step_ms else None,
                "overhead_to_model_ratio": round(statistics.median(overhead) / statistics.median(model_step_ms), 4)
                if overhead and model_step_ms
                else None,
                "run_statuses": statuses,
                "target_p50": 5.0,
            },
            "machine": {
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
                "other_load_cpus": other_load(load_before),
                "llama_cpp_python": package_version("llama-cpp-python"),
            },
            "model": "SmolLM2-135M-Instruct (package default)",
        }
    )
    report["end_to_end"] = {
        "default_model": end_to_end(remote=False),
        "remote_wire_fake": end_to_end(remote=True),
        "target_default_model": 0.6,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
