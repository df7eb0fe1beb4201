"""Run every benchmark, collect their JSON, and write the report `make bench` produces.

    .venv/bin/python benchmarks/run_all.py [--only NAME]... [--skip NAME]... [--quick] [--no-readme]
                                           [--render-only] [--add NAME FILE]... [--list]

Each script in `BENCHMARKS` runs in a subprocess with its declared flags (the
list `make bench` used to spell out); its stdout is its JSON report, its stderr
(progress) goes to the terminal. The peer comparisons (`benchmarks/peers/`)
need the benchmark environment `.bench-venv/` (`make bench-peers-env`).

Written, from the new outputs merged over the previous `latest.json` (a script
not run this time, e.g. under `--only`, keeps its last output and date):

* `benchmarks/results/latest.json`: machine facts (benchmarks/machine.py), the
  date, each script's output with its flags, date and run time, and a flat list
  of figures `{measure, script, value, value_text, baseline, target, met}`.
* `benchmarks/results/latest.md`: the figures as a Markdown table, each beside
  its baseline from the same run and its target.
* README.md: the same table, between `<!-- bench:start -->` and
  `<!-- bench:end -->` in its "Performance" section (nothing else is touched).

The figures are declared once, in `FIGURES`: script, measure, a value template
(`{json.path:format}` over the script's output), a baseline template, the
target, and where `met` comes from. A figure whose script has no output yet is
shown with the text it had in the README's hand-written table (`known`),
marked as such. Exit status: 1 if any script failed (its previous output is
kept), else 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_busy, cpu_model, other_load, package_version  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
BENCH_PYTHON = ROOT / ".bench-venv" / "bin" / "python"


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: tuple[str, ...] = ()
    #: the flags under --quick (None: the script has no quicker form; it runs as usual)
    quick: tuple[str, ...] | None = None
    #: runs in the benchmark environment's peers (needs .bench-venv)
    peer: bool = False


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("inference", "benchmarks/inference.py", quick=("--rounds", "3", "--chat-rounds", "2", "--no-breakdown")),
    Benchmark("memory", "benchmarks/memory.py", quick=("--quick",)),
    Benchmark("agents", "benchmarks/agents.py", quick=("--quick",)),
    Benchmark("server", "benchmarks/server.py", quick=("--seconds", "3", "--rounds", "100")),
    Benchmark("tui", "benchmarks/tui.py", quick=("--runs", "2")),
    Benchmark("cold_cli", "benchmarks/cold_cli.py", quick=("--runs", "3", "--skip-threads")),
    Benchmark("retrieval_eval", "benchmarks/retrieval_eval.py"),
    Benchmark(
        "embedder",
        "benchmarks/embedder.py",
        quick=("--texts", "200", "--load-runs", "2", "--rounds", "1", "--skip-retrieval"),
    ),
    Benchmark(
        "quality",
        "benchmarks/quality.py",
        ("--only", "generation", "--only", "cited_answers", "--only", "loop_guard_cost", "--only", "agents_end_to_end"),
        quick=("--only", "generation", "--only", "cited_answers", "--only", "loop_guard_cost", "--stride", "5"),
    ),
    Benchmark(
        "chat_vs_llama_cpp_server", "benchmarks/peers/chat_vs_llama_cpp_server.py", quick=("--quick",), peer=True
    ),
    Benchmark("memory_vs_chromadb", "benchmarks/peers/memory_vs_chromadb.py", quick=("--quick",), peer=True),
)

Getter = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Figure:
    """One row of the table: where its value, baseline, target and verdict come from."""

    script: str
    measure: str
    #: `{path:format}` template over the script's JSON, or a function of it
    value: str | Getter
    #: the number behind the value (JSON path or function), for latest.json
    number: str | Getter | None = None
    baseline: str | Getter = ""
    target: str = ""
    #: JSON path of a bool, or a function returning a bool (None: no target to meet)
    met: str | Getter | None = None
    #: (value, baseline) as the README's hand-written table had them, shown until the script has run here
    known: tuple[str, str] | None = None
    notes: dict[str, str] = field(default_factory=dict)


def _passed(r: dict[str, Any], path: str) -> str:
    part = lookup(r, path)
    return f"{sum(part['passed'])} / {part['tasks']}"


def _above_both(corpus: dict[str, Any]) -> bool:
    modes = corpus["after"]["all"]
    return all(modes["hybrid"][m] >= max(modes["bm25"][m], modes["vector"][m]) for m in ("hit@k", "mrr"))


def _retrieval(name: str) -> tuple[str, str]:
    p = f"{name}.after.all"
    return (
        f"hybrid {{{p}.hybrid.hit@k:.3f}} / {{{p}.hybrid.mrr:.3f}}",
        f"vector {{{p}.vector.hit@k:.3f}} / {{{p}.vector.mrr:.3f}}, BM25 {{{p}.bm25.hit@k:.3f}} / {{{p}.bm25.mrr:.3f}}",
    )


def _ann_case(r: dict[str, Any], n: int) -> dict[str, Any]:
    return next(c for c in r["ann"]["cases"] if c["dataset"] == "clustered" and c["n"] == n)


FIGURES: tuple[Figure, ...] = (
    Figure(
        "cold_cli",
        "Cold `workbench recall KEY` (fresh process)",
        lambda r: f"{r['cold_cli']['recall_key_ms'] / 1000:.2f} s",
        "cold_cli.recall_key_ms",
        lambda r: (
            f"`python -c pass` {r['cold_cli']['python_pass_ms'] / 1000:.2f} s, "
            f"`workbench --help` {r['cold_cli']['help_ms'] / 1000:.2f} s"
        ),
        "≤ 1.5 s",
        "cold_cli.recall_target_met",
        known=("1.14 s", "`python -c pass` 0.08 s, `workbench --help` 0.15 s"),
    ),
    Figure(
        "quality",
        "30 everyday prompts that ran to max_tokens",
        "{generation.new.hit_max_tokens} / {generation.prompts}",
        "generation.new.hit_max_tokens",
        "old sampling defaults {generation.old.hit_max_tokens} / {generation.prompts}",
        "0",
        lambda r: r["generation"]["new"]["hit_max_tokens"] == 0,
        known=("0 / 30", "old sampling defaults 9 / 30"),
    ),
    Figure(
        "quality",
        "Median time for one of those answers",
        "{generation.new.median_latency_s:.2f} s",
        "generation.new.median_latency_s",
        "old defaults {generation.old.median_latency_s:.2f} s",
        known=("0.70 s", "old defaults 0.94 s"),
    ),
    Figure(
        "quality",
        "Cited answers that fell back to an extract",
        lambda r: f"{r['cited_answers']['modes'].get('extractive', 0)} / {r['cited_answers']['questions']}",
        "cited_answers.extractive_rate",
        known=("0 / 6", ""),
    ),
    Figure(
        "quality",
        "Agent tasks done end to end, default 135M model",
        lambda r: _passed(r, "agents_end_to_end.default_model"),
        "agents_end_to_end.default_model.success_rate",
        lambda r: f"remote provider (wire fake) {_passed(r, 'agents_end_to_end.remote_wire_fake')}",
        "≥ 60 %",
        lambda r: r["agents_end_to_end"]["default_model"]["success_rate"] >= 0.6,
        known=("12 / 12", "7 / 12 before the agent hints of 2026-12-03; remote provider (wire fake) 12 / 12"),
    ),
    Figure(
        "retrieval_eval",
        "Retrieval hit@5 / MRR, handbook (46 questions)",
        _retrieval("handbook")[0],
        "handbook.after.all.hybrid.mrr",
        _retrieval("handbook")[1],
        "hybrid above both",
        lambda r: _above_both(r["handbook"]),
        known=("hybrid 0.978 / 0.939", "vector 0.978 / 0.949, BM25 0.891 / 0.821"),
    ),
    Figure(
        "retrieval_eval",
        "Retrieval hit@5 / MRR, package docs (34 questions)",
        _retrieval("packages")[0],
        "packages.after.all.hybrid.mrr",
        _retrieval("packages")[1],
        "hybrid above both",
        lambda r: _above_both(r["packages"]),
        known=("hybrid 0.882 / 0.769", "vector 0.824 / 0.618, BM25 0.794 / 0.691"),
    ),
    Figure(
        "embedder",
        "Default embedder load, fresh process (ONNX Runtime, no torch)",
        "{load.lean.load_s:.2f} s",
        "load.lean.load_s",
        "sentence-transformers (torch) {load.st.load_s:.2f} s",
        "≤ 1 s",
        "load.target_met",
    ),
    Figure(
        "embedder",
        "Default embedder throughput, varied texts",
        "{throughput.ratio:.2f} × ({throughput.lean_texts_per_s:.1f} texts/s)",
        "throughput.ratio",
        "sentence-transformers 1.0 × ({throughput.st_texts_per_s:.1f} texts/s)",
        "≥ 1.0 ×",
        "throughput.target_met",
    ),
    Figure(
        "embedder",
        "Default embedder parity with sentence-transformers, lowest cosine",
        "{parity.min_cosine:.7f} over {parity.texts} texts",
        "parity.min_cosine",
        "",
        "≥ 0.999 each",
        "parity.target_met",
    ),
    Figure(
        "inference",
        "Streaming tokens/s, `workbench ask` path",
        "{stream.throughput_ratio:.2f} × ({stream.ours.median_tokens_per_s:.1f} tokens/s)",
        "stream.throughput_ratio",
        "raw `llama_cpp` stream 1.0 × ({stream.raw.median_tokens_per_s:.1f} tokens/s)",
        "≥ 0.95 ×",
        "stream.targets_met.throughput_ratio",
        known=("0.96 ×", "raw `llama_cpp` stream 1.0 ×"),
    ),
    Figure(
        "inference",
        "Second chat turn's time to first token, after 1,000 tokens of history",
        "{chat_prefix_reuse.second_turn_ttft_ratio:.2f} × the first turn's",
        "chat_prefix_reuse.second_turn_ttft_ratio",
        "first turn {chat_prefix_reuse.median_turn1_ttft_ms:.0f} ms",
        "≤ 0.3 ×",
        "chat_prefix_reuse.target_met",
        known=("0.11 × the first turn's", ""),
    ),
    Figure(
        "memory",
        "Memory `recall` p50 / `rag_retrieve` p50 at 100k memories",
        "{memory.recall.p50_ms:.2f} ms / {memory.rag_retrieve.p50_ms:.1f} ms",
        "memory.rag_retrieve.p50_ms",
        "query embedding alone {memory.query_embedding_only.p50_ms:.1f} ms",
        "≤ 1 ms / ≤ 20 ms",
        lambda r: all(r["memory"]["met"].values()),
    ),
    Figure(
        "memory",
        "HNSW recall@10 / search p50 at 1M clustered vectors",
        lambda r: f"{_ann_case(r, 1_000_000)['recall_at_10']:.3f} / {_ann_case(r, 1_000_000)['search_p50_ms']:.2f} ms",
        lambda r: _ann_case(r, 1_000_000)["search_p50_ms"],
        lambda r: f"exact search p50 {_ann_case(r, 1_000_000)['exact']['p50_ms']:.1f} ms",
        "≥ 0.98 / ≤ 2 ms",
        lambda r: bool(r["ann"]["met"]["recall_at_10"] and r["ann"]["met"]["search_p50_ms_at_1m"]),
    ),
    Figure(
        "agents",
        "Tool selection with routing (50 tasks)",
        "{selection.with_routing:.2f} ({selection.ratio} ×)",
        "selection.ratio",
        "without routing {selection.without_routing:.2f}",
        "≥ 0.8, ≥ 2 ×",
        lambda r: r["selection"]["with_routing"] >= 0.8 and (r["selection"]["ratio"] or 0) >= 2.0,
    ),
    Figure(
        "server",
        "`RemoteEngine` overhead on `recall`, p50",
        "{remote_engine_overhead.recall.overhead_p50_ms:.1f} ms",
        "remote_engine_overhead.recall.overhead_p50_ms",
        "in-process engine {remote_engine_overhead.recall.in_process_p50_ms:.2f} ms",
        "≤ 2 ms",
        lambda r: r["remote_engine_overhead"]["recall"]["overhead_p50_ms"] <= 2.0,
        known=("1.9 ms", "in-process engine"),
    ),
    Figure(
        "tui",
        "TUI first paint",
        "{first_paint_s.workbench:.2f} s",
        "first_paint_s.workbench",
        "bare Textual app {first_paint_s.bare_textual:.2f} s ({first_paint_s.ratio} ×)",
        "≤ 1.5 ×",
        lambda r: (r["first_paint_s"]["ratio"] or 99) <= 1.5,
        known=("0.38 s", "bare Textual app 0.17 s (2.2 ×)"),
    ),
    Figure(
        "chat_vs_llama_cpp_server",
        "Streaming chat tokens/s over HTTP (`openai` client), fresh prompts",
        "{ours.tokens_per_s:.1f} tokens/s ({comparison.tokens_per_s_ours_over_peer:.2f} ×)",
        "comparison.tokens_per_s_ours_over_peer",
        "`llama_cpp.server` {llama_cpp_server.tokens_per_s:.1f} tokens/s",
        "≥ 1.0 ×",
        "met.tokens_per_s_ratio_at_least_1",
    ),
    Figure(
        "chat_vs_llama_cpp_server",
        "Streaming chat time to first token over HTTP, fresh prompts",
        "{ours.ttft_ms:.0f} ms (peer/ours {comparison.ttft_peer_over_ours:.2f} ×)",
        "comparison.ttft_peer_over_ours",
        "`llama_cpp.server` {llama_cpp_server.ttft_ms:.0f} ms",
        "≥ 1.0 × (ours first)",
        "met.ttft_ratio_at_least_1",
    ),
    Figure(
        "chat_vs_llama_cpp_server",
        "Same, the identical request repeated (peer reuses its cached prompt)",
        "{scenarios.repeated_prompt.ours.ttft_ms:.0f} ms (peer/ours "
        "{scenarios.repeated_prompt.ttft_peer_over_ours:.2f} ×)",
        "scenarios.repeated_prompt.ttft_peer_over_ours",
        "`llama_cpp.server` {scenarios.repeated_prompt.llama_cpp_server.ttft_ms:.0f} ms",
        "≥ 1.0 × (ours first)",
        lambda r: r["scenarios"]["repeated_prompt"]["ttft_peer_over_ours"] >= 1.0,
    ),
    Figure(
        "memory_vs_chromadb",
        "Memory store query p50, k=10, 100k vectors",
        "{ours.query_ms.p50:.2f} ms, recall@10 {ours.recall_at_k:.3f} (index alone {ours.index_search_ms.p50:.2f} ms)",
        "comparison.query_p50_chroma_over_ours",
        "ChromaDB {chromadb.query_ms.p50:.2f} ms, recall@10 {chromadb.recall_at_k:.3f}; "
        "numpy exact {exact_numpy_query_ms.p50:.1f} ms",
        "faster at equal or better recall",
        "met.query_p50_ahead_at_equal_or_better_recall",
    ),
    Figure(
        "memory_vs_chromadb",
        "Memory store inserts, 100k vectors (batches of 1,000)",
        "{ours.insert_per_s:,.0f} /s ({ours.insert_s:.0f} s)",
        "comparison.insert_per_s_ours_over_chroma",
        "ChromaDB {chromadb.insert_per_s:,.0f} /s ({chromadb.insert_s:.0f} s)",
    ),
)

_FIELD = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")


def lookup(data: Any, path: str) -> Any:
    """`a.b.c` in nested dicts (keys may hold any character but '.')."""
    for key in path.split("."):
        data = data[key]
    return data


def render(spec: str | Getter | None, output: dict[str, Any]) -> Any:
    if spec is None:
        return None
    if callable(spec):
        return spec(output)
    if "{" not in spec:
        return lookup(output, spec) if spec and "." in spec and " " not in spec else spec
    return _FIELD.sub(lambda m: format(lookup(output, m.group(1)), m.group(2) or ""), spec)


def figure_row(fig: Figure, entry: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"measure": fig.measure, "script": fig.script, "target": fig.target}
    if entry is None:
        value, baseline = fig.known or ("not measured yet", "")
        source = "readme" if fig.known else "none"
        return {**row, "value": None, "value_text": value, "baseline": baseline, "met": None, "source": source}
    output = entry["output"]
    try:
        row["value_text"] = render(fig.value, output)
        row["value"] = render(fig.number, output) if fig.number is not None else None
        row["baseline"] = render(fig.baseline, output)
        row["met"] = bool(render(fig.met, output)) if fig.met is not None else None
        row["source"] = "run"
    except (KeyError, TypeError, ValueError, StopIteration, IndexError) as exc:
        row.update(value=None, value_text=f"missing in output ({type(exc).__name__}: {exc})", baseline="", met=None)
        row["source"] = "error"
    row["date"] = entry["date"]
    row["quick"] = entry.get("quick", False)
    return row


def run_one(bench: Benchmark, quick: bool) -> dict[str, Any] | None:
    args = list(bench.quick if quick and bench.quick is not None else bench.args)
    command = [sys.executable, str(ROOT / bench.script), *args]
    print(f"\n== {bench.name}: {' '.join([bench.script, *args])}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        print(f"== {bench.name} failed (exit {done.returncode}) after {seconds} s", file=sys.stderr)
        return None
    try:
        output = json.loads(done.stdout[done.stdout.index("{") :])
    except ValueError:
        print(f"== {bench.name} printed no JSON object", file=sys.stderr)
        return None
    print(f"== {bench.name} done in {seconds} s", file=sys.stderr)
    return {
        "script": bench.script,
        "args": args,
        "quick": quick and bench.quick is not None,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "runtime_s": seconds,
        "output": output,
    }


def machine_facts() -> dict[str, Any]:
    bench_versions = None
    if BENCH_PYTHON.exists():
        probe = subprocess.run(
            [
                str(BENCH_PYTHON),
                "-c",
                "import json,importlib.metadata as m;"
                "print(json.dumps({d: m.version(d) for d in ('chromadb', 'llama_cpp_python')}))",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        bench_versions = json.loads(probe.stdout) if probe.returncode == 0 else None
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {
            d: package_version(d)
            for d in ("llama_cpp_python", "torch", "sentence-transformers", "duckdb", "hnswlib", "textual", "fastapi")
        },
        "bench_env_packages": bench_versions,
    }


def markdown_table(figures: list[dict[str, Any]]) -> str:
    lines = ["| Measure | Workbench | Baseline, same run | Target | Met | Script |", "|---|---|---|---|---|---|"]
    for f in figures:
        if f["source"] == "none":
            continue  # never measured here and no earlier figure: named below the table instead
        met = {True: "yes", False: "**no**", None: ""}[f["met"]]
        script = next(b.script for b in BENCHMARKS if b.name == f["script"]).removeprefix("benchmarks/")
        value = f["value_text"] + (" (quick)" if f.get("quick") else "") + (" †" if f["source"] == "readme" else "")
        lines.append(f"| {f['measure']} | {value} | {f['baseline']} | {f['target']} | {met} | `{script}` |")
    return "\n".join(lines)


#: where each script reports how many CPUs other processes kept busy while it ran
LOAD_PATHS = (
    "machine.other_processes_busy_cpus",
    "machine.other_load_cpus",
    "machine.other_load",
    "other_processes_busy_cpus",
    "ours.other_processes_busy_cpus",
)


def other_busy(output: dict[str, Any]) -> float | None:
    for path in LOAD_PATHS:
        try:
            value = lookup(output, path)
        except (KeyError, TypeError):
            continue
        if isinstance(value, int | float):
            return value
    return None


def markdown(report: dict[str, Any]) -> str:
    scripts = report["scripts"]
    dates = ", ".join(f"`{name}` {entry['date'][:10]}" for name, entry in scripts.items())
    machine = report["machine"]
    out = [
        markdown_table(report["figures"]),
        f"Generated by `benchmarks/run_all.py` on {report['date'][:16].replace('T', ' ')} UTC, "
        f"{machine['cpu_count']} × {machine['cpu']}. Outputs from: {dates or 'none yet'}.",
    ]
    loads = {name: other_busy(entry["output"]) for name, entry in scripts.items()}
    if any(v is not None for v in loads.values()):
        out.append(
            "CPUs kept busy by other processes while each ran (of "
            f"{machine['cpu_count']}; above about 0.3 the figures are contaminated): "
            + ", ".join(f"`{name}` {v:.2f}" for name, v in loads.items() if v is not None)
            + "."
        )
    missing = sorted({f["script"] for f in report["figures"] if f["source"] == "none"})
    if missing:
        out.append(
            "Not measured here yet (no row until they run: `make bench BENCH_ARGS='--only NAME'`): "
            + ", ".join(f"`{name}`" for name in missing)
            + "."
        )
    if any(f["source"] == "readme" for f in report["figures"]):
        out.append(
            "† Not yet re-measured by `run_all.py`: the figure of the earlier hand-written table "
            "(2026-12-03), kept until the script runs here."
        )
    if any(f.get("quick") for f in report["figures"]):
        out.append("(quick): a smoke run with fewer rounds or a smaller size; not comparable to a full run.")
    return "\n\n".join(out) + "\n"


def update_readme(table: str) -> bool:
    text = README.read_text(encoding="utf-8")
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        print(f"README.md has no {START} ... {END} region: left unchanged", file=sys.stderr)
        return False
    README.write_text(text[: start + len(START)] + "\n" + table + text[end:], encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [b.name for b in BENCHMARKS]
    parser.add_argument(
        "--only", action="append", choices=names, metavar="NAME", help=f"run only NAME (repeatable): {', '.join(names)}"
    )
    parser.add_argument(
        "--skip", action="append", choices=names, metavar="NAME", default=[], help="do not run NAME (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="each script's smoke flags, where it has them")
    parser.add_argument("--no-readme", action="store_true", help="write benchmarks/results/ only")
    parser.add_argument("--render-only", action="store_true", help="run nothing: rewrite the report from latest.json")
    parser.add_argument(
        "--add",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "FILE"),
        help="take FILE as NAME's output (the JSON the script printed when run by hand, e.g. a long run); "
        "runs nothing unless --only is given",
    )
    parser.add_argument("--list", action="store_true", help="print the benchmarks and their flags, and exit")
    args = parser.parse_args(argv)
    if args.list:
        for b in BENCHMARKS:
            quick = " ".join(b.quick) if b.quick is not None else "(none)"
            print(f"{b.name:<26} {b.script} {' '.join(b.args)}   --quick: {quick}")
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    previous: dict[str, Any] = json.loads(latest.read_text(encoding="utf-8")) if latest.exists() else {}
    scripts: dict[str, Any] = dict(previous.get("scripts", {}))
    # --add alone only merges; with --only it merges and runs those
    run_nothing = args.render_only or (args.add and not args.only)
    selected = [] if run_nothing else [b for b in BENCHMARKS if (not args.only or b.name in args.only)]
    selected = [b for b in selected if b.name not in args.skip]
    if any(b.peer for b in selected) and not BENCH_PYTHON.exists():
        print(f"{BENCH_PYTHON} is missing: run `make bench-peers-env` first (or --skip the peers).", file=sys.stderr)
        return 2

    for name, path in args.add:
        if name not in names:
            parser.error(f"--add: unknown benchmark {name!r}; one of {', '.join(names)}")
        file = Path(path)
        try:
            output = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            parser.error(f"--add: cannot read {path} as JSON ({exc})")
        scripts[name] = {
            "script": next(b.script for b in BENCHMARKS if b.name == name),
            "args": "run by hand (--add)",
            "quick": bool(output.get("quick", False)),
            "date": dt.datetime.fromtimestamp(file.stat().st_mtime, dt.UTC).isoformat(timespec="seconds"),
            "runtime_s": output.get("runtime_s"),
            "output": output,
        }

    failed = []
    started = time.perf_counter()
    busy = cpu_busy()
    for bench in selected:
        entry = run_one(bench, args.quick)
        if entry is None:
            failed.append(bench.name)
        else:
            scripts[bench.name] = entry
    report = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        # nothing ran (--render-only, --add): the last run's facts stay
        "this_run": previous.get("this_run")
        if not selected
        else {
            "ran": [b.name for b in selected if b.name not in failed],
            "failed": failed,
            "quick": args.quick,
            "runtime_s": round(time.perf_counter() - started, 1),
            # CPUs other processes kept busy during the whole run (0 = quiet machine)
            "other_processes_busy_cpus": other_load(busy) if selected else None,
        },
        "scripts": {b.name: scripts[b.name] for b in BENCHMARKS if b.name in scripts},
        "figures": [figure_row(f, scripts.get(f.script)) for f in FIGURES],
    }
    latest.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    text = markdown(report)
    (RESULTS / "latest.md").write_text("# Benchmark results\n\n" + text, encoding="utf-8")
    if not args.no_readme:
        update_readme(text)
    print(text)
    if failed:
        print(f"failed: {', '.join(failed)} (their previous outputs were kept)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
