"""Quality benchmark: what a new user gets from the default model, before and after our defaults.

    .venv/bin/python benchmarks/quality.py [--only SECTION]... [--max-tokens N]

Sections are independent functions (`SECTIONS`), each returning a dict; the
script prints one JSON object with a key per section run.

* `generation`: the 30 prompts of data/everyday_prompts.json (facts,
  arithmetic, short writing, few-turn chats that must remember a name), run
  with the OLD defaults (llama-cpp-python's sampling: temperature 0.2, top_p
  0.95, top_k 40, no repetition penalty, one fixed seed, no loop guard; set
  explicitly) and with the NEW defaults (no parameters: our small-model
  defaults, a fresh seed, the loop guard on), and the old sampling with the
  guard alone (`old_with_guard`). Counts the runs that hit
  max_tokens, the runs the guard stopped, the answers containing the expected
  word, and the median latency. A chat's last turn is what is counted.
* `cited_answers`: `Engine.answer` on a handful of questions over the shipped
  docs (README.md and data/*.md, ingested into a temporary home): how often
  the model's answer was unusable and the extract was used (mode
  "extractive"), and the median latency.
* `retrieval`: hit@5 / MRR / nDCG@5 per mode on the two corpora of
  data/corpus/, earlier fusion vs current, with the per-question best of
  bm25 and vector as the reference for hybrid (benchmarks/retrieval_eval.py).
* `agents_end_to_end`: the checked end-to-end tasks on the default model and
  through the scripted OpenAI wire fake (benchmarks/agents.py).
* `cold_recall`: a fresh process's `workbench recall KEY` (target <= 1.5 s)
  beside `python -c pass` and `workbench --help` (benchmarks/cold_cli.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchmarks.machine import cpu_busy, cpu_model, other_load  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "data" / "everyday_prompts.json"
#: llama-cpp-python's sampling when nothing is set, as Workbench used it before:
#: its first call in a process reseeds with random.Random(0xFFFFFFFF).randint(0, 2**32)
OLD_DEFAULTS: dict[str, Any] = {
    "temperature": 0.2,
    "top_p": 0.95,
    "top_k": 40,
    "repetition_penalty": 1.0,
    "seed": 872_737_089,
}
QUESTIONS = [
    "What is the default chat model?",
    "How do I start the local API server?",
    "Where are provider API keys stored?",
    "What does the loop guard do?",
    "How do I ingest documents into a collection?",
    "Which embedder does Workbench use?",
]


def _engine(home: str) -> Any:
    from workbench.engine.engine import Engine

    return Engine(home)


def _run_prompt(engine: Any, turns: list[str], params: dict[str, Any]) -> tuple[Any, float]:
    """Run a prompt's turns in one session; the last turn's result and latency."""
    session_id = None
    result = None
    elapsed = 0.0
    for turn in turns:
        started = time.perf_counter()
        result = engine.generate(
            {"messages": [{"role": "user", "content": turn}], "session_id": session_id, "params": params}
        )
        elapsed = time.perf_counter() - started
        session_id = result.session_id
    return result, elapsed


def generation(args: argparse.Namespace) -> dict[str, Any]:
    prompts = json.loads(PROMPTS.read_text(encoding="utf-8"))["prompts"]
    if args.stride > 1:
        prompts = prompts[:: args.stride]  # a spread over every kind, for a quick look on a busy machine
    if args.limit:
        prompts = prompts[: args.limit]
    out: dict[str, Any] = {"prompts": len(prompts), "max_tokens": args.max_tokens}
    with tempfile.TemporaryDirectory() as home:
        engine = _engine(home)
        model = engine.models.chat_model(None)
        # "old_with_guard": the old sampling with the loop guard alone, to show what the guard does by itself
        configs = (("old", False, OLD_DEFAULTS), ("old_with_guard", True, OLD_DEFAULTS), ("new", True, {}))
        tallies: dict[str, dict[str, Any]] = {
            label: {"latencies": [], "hit_max": 0, "guarded": 0, "expected": 0, "expectations": 0, "examples": []}
            for label, _, _ in configs
        }
        try:
            # Prompt by prompt, old then new: both see the same machine load.
            for item in prompts:
                for label, guard, params in configs:
                    model.loop_guard = guard  # the old behaviour had no guard
                    tally = tallies[label]
                    result, elapsed = _run_prompt(engine, item["turns"], {"max_tokens": args.max_tokens, **params})
                    tally["latencies"].append(elapsed)
                    tally["hit_max"] += result.finish_reason == "length"
                    tally["guarded"] += result.finish_reason == "repetition"
                    if "expect" in item:
                        tally["expectations"] += 1
                        tally["expected"] += item["expect"].lower() in result.text.lower()
                    if result.finish_reason != "stop" and len(tally["examples"]) < 3:
                        tally["examples"].append(
                            {
                                "prompt": item["turns"][-1],
                                "finish_reason": result.finish_reason,
                                "tokens": result.usage.completion_tokens,
                                "text": result.text[:160],
                            }
                        )
                    print(
                        f"[generation {label}] {result.finish_reason:<10} {result.usage.completion_tokens:>4} "
                        f"tokens {elapsed:6.1f} s  {item['turns'][-1][:50]}",
                        file=sys.stderr,
                    )
            for label, guard, params in configs:
                tally = tallies[label]
                out[label] = {
                    "params": params or "defaults",
                    "loop_guard": guard,
                    "hit_max_tokens": tally["hit_max"],
                    "stopped_by_guard": tally["guarded"],
                    "expected_word_found": f"{tally['expected']}/{tally['expectations']}",
                    "median_latency_s": round(statistics.median(tally["latencies"]), 2),
                    "total_s": round(sum(tally["latencies"]), 1),
                    "examples": tally["examples"],
                }
        finally:
            model.loop_guard = True
            engine.close()
    return out


def cited_answers(args: argparse.Namespace) -> dict[str, Any]:
    docs = [str(ROOT / "README.md"), *sorted(str(p) for p in (ROOT / "data").glob("*.md"))]
    with tempfile.TemporaryDirectory() as home:
        engine = _engine(home)
        try:
            for _ in engine.ingest({"paths": docs, "collection": "docs"}):
                pass
            modes: dict[str, int] = {}
            latencies, answers = [], []
            for question in QUESTIONS[: args.limit or None]:
                started = time.perf_counter()
                response = engine.answer({"question": question, "collection": "docs"})
                latencies.append(time.perf_counter() - started)
                modes[response.mode] = modes.get(response.mode, 0) + 1
                answers.append({"question": question, "mode": response.mode, "text": response.text[:200]})
                print(f"[cited_answers] {response.mode:<10} {latencies[-1]:6.1f} s  {question}", file=sys.stderr)
        finally:
            engine.close()
    return {
        "documents": [Path(d).relative_to(ROOT).as_posix() for d in docs],
        "questions": len(answers),
        "modes": modes,
        "extractive_rate": round(modes.get("extractive", 0) / max(1, len(answers)), 3),
        "median_latency_s": round(statistics.median(latencies), 2) if latencies else None,
        "answers": answers,
    }


def loop_guard_cost(args: argparse.Namespace) -> dict[str, Any]:
    """The guard's cost per streamed delta, on ordinary text (the README in 4-character deltas)."""
    from workbench.engine.inference.loop_guard import RepetitionGuard

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    deltas = [text[i : i + 4] for i in range(0, len(text), 4)]
    runs = []
    for _ in range(5):
        guard = RepetitionGuard()
        started = time.perf_counter()
        for delta in deltas:
            guard.feed(delta)
        runs.append((time.perf_counter() - started) / len(deltas))
    return {
        "deltas": len(deltas),
        "tripped": guard.tripped,
        "median_us_per_delta": round(statistics.median(runs) * 1e6, 2),
        "note": "a streamed token of the default model takes ~15 ms on 2 idle cores",
    }


def retrieval(args: argparse.Namespace) -> dict[str, Any]:
    """hit@5, MRR and nDCG@5 per mode on both shipped corpora, old fusion vs new (benchmarks/retrieval_eval.py)."""
    from benchmarks import retrieval_eval

    return retrieval_eval.run(k=5)


def agents_end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    """End-to-end task success on the default model and through the scripted wire fake (benchmarks/agents.py)."""
    from benchmarks import agents

    report: dict[str, Any] = {}
    for name, remote in (("default_model", False), ("remote_wire_fake", True)):
        started = time.perf_counter()
        report[name] = agents.end_to_end(remote=remote)
        # the whole harness: engine, workspace and collection set up, every task run and checked
        report[name]["harness_s"] = round(time.perf_counter() - started, 1)
    report["target_default_model"] = 0.6
    return report


def cold_recall(args: argparse.Namespace) -> dict[str, Any]:
    """A cold `workbench recall KEY` against `python -c pass` and `--help` (benchmarks/cold_cli.py)."""
    from benchmarks import cold_cli

    return cold_cli.cold_cli(runs=5)


SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "generation": generation,
    "loop_guard_cost": loop_guard_cost,
    "cited_answers": cited_answers,
    "retrieval": retrieval,
    "agents_end_to_end": agents_end_to_end,
    "cold_recall": cold_recall,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=sorted(SECTIONS), action="append", help="run only this section (repeatable); default: all"
    )
    parser.add_argument("--max-tokens", type=int, default=512, help="max_tokens of every generation (default 512)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N prompts/questions (a quick look)")
    parser.add_argument("--stride", type=int, default=1, help="only every Nth prompt of the generation section")
    args = parser.parse_args()
    before = cpu_busy()
    report: dict[str, Any] = {"machine": {"cpu": cpu_model()}}
    for name in args.only or list(SECTIONS):
        started = time.perf_counter()
        report[name] = SECTIONS[name](args)
        report[name]["section_s"] = round(time.perf_counter() - started, 1)
    # other processes' share of the CPU while this ran: figures on a busy machine are slower, not different
    report["machine"]["other_load"] = other_load(before)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
