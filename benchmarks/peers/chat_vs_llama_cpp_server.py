"""Our OpenAI-compatible streaming chat against llama-cpp-python's own server, same GGUF.

    .venv/bin/python benchmarks/peers/chat_vs_llama_cpp_server.py [--rounds 2] [--runs 3] [--max-tokens 128]
                                                                 [--n-ctx 2048] [--threads N] [--quick]
                                                                 [--bench-python .bench-venv/bin/python]

Two servers, each a subprocess on 127.0.0.1 on a free port, never both at once
(2 cores): `workbench serve` on a temporary home (config.json sets `n_ctx` and
`n_threads`; an API key made with `workbench keys create`) and `python -m
llama_cpp.server` from the benchmark environment (`make bench-peers-env`:
`llama-cpp-python[server]` from the registry, the version the product pins),
on the same GGUF (the default model) with the same `n_ctx` and `n_threads`
(`n_threads_batch` too). Both are asked the same prompt through the official
`openai` client, `stream=True`, greedy (temperature 0, top_p 0.95, top_k 40,
repetition penalty 1.1 under both spellings), the same `max_tokens`.

Each server start runs two scenarios: `fresh_prompt`, every request opening
with a line no earlier one had (the headline: neither server can reuse a cached
prompt prefix), and `repeated_prompt`, the same request again and again
(llama-cpp-python reuses the whole cached prefix; Workbench reuses only whole
64-token blocks, so that greedy output does not depend on earlier requests:
see `_evaluate_prompts_in_blocks` in workbench/engine/inference/llama.py).

Per request, measured in the client: TTFT = first chunk with text - call;
tokens/s = completion tokens / (end of stream - first text), the completion
tokens counted by the model's own tokenizer on the streamed text (the same
definition as `benchmarks/inference.py`). Each server gets one untimed warm-up
request (it loads the model), then `--runs` timed ones; `--rounds` alternates
the servers (ours, peer, ours, peer) so drift on a shared machine hits both.
Medians; ratios ours/peer (tokens/s, goal >= 1.0) and peer/ours (TTFT, > 1
means ours answers first). One JSON object on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import cpu_model, package_version  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_vs_chromadb import cpu_busy, other_load  # noqa: E402  (counting waited children as ours)

DEFAULT_BENCH_PYTHON = ROOT / ".bench-venv" / "bin" / "python"
PROMPT = (
    "Explain how a bicycle's gears make it easier to ride up a hill. "
    "Give a short, clear answer in plain words for a beginner."
)
SYSTEM = "You are a helpful assistant."
#: fresh-prompt requests start with a different line, so no server can reuse an earlier prompt's KV cache
OPENERS = (
    "Request {n}.",
    "Note {n}: answer briefly.",
    "Session {n}.",
    "Ticket {n}, from a reader.",
    "Question number {n}.",
    "Entry {n} of the series.",
)


def log(message: str) -> None:
    print(f"[chat_vs_llama_cpp_server] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_model_path() -> Path:
    """The default GGUF, as the engine resolves it (`workbench models` marks it with *)."""
    from workbench.engine.inference.registry import ModelRegistry

    with tempfile.TemporaryDirectory(prefix="workbench-bench-models-") as home:
        from workbench.engine.config import WorkbenchConfig

        registry = ModelRegistry(Path(home), WorkbenchConfig())
        return Path(registry.resolve(None).location)


class Server:
    """One server subprocess: started, waited for, stopped (its log kept for errors)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], ready_path: str, log_path: Path) -> None:
        self.name, self.command, self.env, self.ready_path, self.log_path = name, command, env, ready_path, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        import httpx

        self.port = free_port()
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        handle = self.log_path.open("ab")
        self.proc = subprocess.Popen(command, env=self.env, stdout=handle, stderr=subprocess.STDOUT)
        handle.close()
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.base_url}{self.ready_path}", timeout=2).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not answer within 180 s:\n{self.log_tail()}")
            time.sleep(0.2)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def messages(n: int | None) -> list[dict[str, str]]:
    """The request's messages: the fixed prompt, or (n given) one no earlier request began with."""
    system = SYSTEM if n is None else f"{OPENERS[n % len(OPENERS)].format(n=n)} {SYSTEM}"
    return [{"role": "system", "content": system}, {"role": "user", "content": PROMPT}]


def ask(client: Any, prompt: list[dict[str, str]], args: argparse.Namespace, tokenizer: Any) -> dict[str, Any]:
    """One streamed request, timed in the client."""
    t0 = time.perf_counter()
    stream = client.chat.completions.create(
        model="default",
        messages=prompt,  # type: ignore[arg-type]
        stream=True,
        temperature=0.0,
        top_p=0.95,
        max_tokens=args.max_tokens,
        seed=1,
        extra_body={"top_k": 40, "repetition_penalty": 1.1, "repeat_penalty": 1.1},
    )
    first = None
    parts: list[str] = []
    finish = None
    chunks = 0
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        if choice.delta and choice.delta.content:
            if first is None:
                first = time.perf_counter()
            parts.append(choice.delta.content)
            chunks += 1
        if choice.finish_reason:
            finish = choice.finish_reason
    end = time.perf_counter()
    text = "".join(parts)
    tokens = len(tokenizer.tokenize(text.encode(), add_bos=False, special=False)) if text else 0
    if first is None:
        raise SystemExit("a stream carried no text")
    return {
        "ttft_ms": (first - t0) * 1000,
        "tokens": tokens,
        "text_chunks": chunks,
        "tokens_per_s": tokens / (end - first) if end > first else None,
        "total_s": end - t0,
        "finish_reason": finish,
        "text": text,
    }


def ours_server(args: argparse.Namespace, home: Path, log_path: Path) -> tuple[Server, str]:
    (home / "config.json").write_text(json.dumps({"n_ctx": args.n_ctx, "n_threads": args.threads}))
    env = {**os.environ, "WORKBENCH_HOME": str(home)}
    made = subprocess.run(
        [sys.executable, "-m", "workbench", "keys", "create", "--name", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = made.stdout.split()[0]
    command = [sys.executable, "-m", "workbench", "serve", "--listen", "127.0.0.1:{port}", "--rate-limit", "100000"]
    return Server("workbench serve", command, env, "/health", log_path), key


def peer_server(args: argparse.Namespace, model: Path, log_path: Path) -> Server:
    command = [
        str(args.bench_python),
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        "default",
        "--n_ctx",
        str(args.n_ctx),
        "--n_threads",
        str(args.threads),
        "--n_threads_batch",
        str(args.threads),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--verbose",
        "False",
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return Server("llama_cpp.server", command, env, "/v1/models", log_path)


def run_side(
    server: Server, key: str, args: argparse.Namespace, tokenizer: Any, round_: int
) -> dict[str, list[dict[str, Any]]]:
    """One server start: a warm-up, `runs` fresh prompts, then the fixed prompt `runs` times (after one unmeasured)."""
    from openai import OpenAI

    with server:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key=key, timeout=600, max_retries=0)
        ask(client, messages(10_000), args, tokenizer)  # warm-up: loads the model
        first = round_ * args.runs
        fresh = [ask(client, messages(n), args, tokenizer) for n in range(first, first + args.runs)]
        ask(client, messages(None), args, tokenizer)  # puts the fixed prompt in the KV cache
        repeated = [ask(client, messages(None), args, tokenizer) for _ in range(args.runs)]
    return {"fresh_prompt": fresh, "repeated_prompt": repeated}


def med(runs: list[dict[str, Any]], field: str) -> float:
    return round(statistics.median(r[field] for r in runs), 3)


def main(argv: list[str] | None = None) -> int:
    from workbench.engine.inference.llama import default_threads

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="ours-then-peer rounds (default 2; --quick 1)")
    parser.add_argument("--runs", type=int, default=None, help="timed requests per server per round (default 3)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=default_threads(), help="n_threads (default: the product's)")
    parser.add_argument("--model", type=Path, default=None, help="GGUF (default: the default model)")
    parser.add_argument("--quick", action="store_true", help="one round of 2 requests per server, 64 tokens")
    parser.add_argument("--bench-python", type=Path, default=DEFAULT_BENCH_PYTHON, help="python with llama_cpp.server")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.runs = args.runs or (2 if args.quick else 3)
    if args.quick:
        args.max_tokens = min(args.max_tokens, 64)
    if not args.bench_python.exists():
        print(f"{args.bench_python} does not exist: run `make bench-peers-env` first.", file=sys.stderr)
        return 2

    started = time.perf_counter()
    model = args.model or default_model_path()
    from llama_cpp import Llama

    tokenizer = Llama(model_path=str(model), vocab_only=True, verbose=False)
    peer_version = subprocess.run(
        [str(args.bench_python), "-c", "import llama_cpp; print(llama_cpp.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        side: {"fresh_prompt": [], "repeated_prompt": []} for side in ("ours", "peer")
    }
    busy = cpu_busy()
    with tempfile.TemporaryDirectory(prefix="workbench-bench-peer-chat-") as folder:
        home = Path(folder) / "home"
        home.mkdir()
        ours, key = ours_server(args, home, Path(folder) / "ours.log")
        peer = peer_server(args, model, Path(folder) / "peer.log")
        for round_ in range(args.rounds):
            for side, server, side_key in (("ours", ours, key), ("peer", peer, "unused")):
                log(f"round {round_ + 1}/{args.rounds}: {server.name}")
                for scenario, done in run_side(server, side_key, args, tokenizer, round_).items():
                    runs[side][scenario] += done

    def summarise(done: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "tokens_per_s": med(done, "tokens_per_s"),
            "ttft_ms": med(done, "ttft_ms"),
            "total_s": med(done, "total_s"),
            "completion_tokens": [r["tokens"] for r in done],
            "finish_reasons": sorted({str(r["finish_reason"]) for r in done}),
            "chunks_per_token": round(sum(r["text_chunks"] for r in done) / max(1, sum(r["tokens"] for r in done)), 3),
            "runs": [
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "text"} for r in done
            ],
        }

    scenarios: dict[str, Any] = {}
    for scenario in ("fresh_prompt", "repeated_prompt"):
        o, p = summarise(runs["ours"][scenario]), summarise(runs["peer"][scenario])
        scenarios[scenario] = {
            "ours": o,
            "llama_cpp_server": p,
            # request i of each side had the same prompt: greedy decoding should give the same text
            "texts_match": [r["text"] for r in runs["ours"][scenario]] == [r["text"] for r in runs["peer"][scenario]],
            "tokens_per_s_ours_over_peer": round(o["tokens_per_s"] / p["tokens_per_s"], 3),
            "ttft_peer_over_ours": round(p["ttft_ms"] / o["ttft_ms"], 3),
        }
    fresh = scenarios["fresh_prompt"]
    report: dict[str, Any] = {
        "benchmark": "chat_vs_llama_cpp_server",
        "quick": args.quick,
        "model": model.name,
        "llama_cpp_python_peer": peer_version,
        "parameters": {
            "prompt": PROMPT,
            "system": SYSTEM,
            "fresh_prompt_openers": list(OPENERS),
            "max_tokens": args.max_tokens,
            "temperature": 0.0,
            "top_p": 0.95,
            "top_k": 40,
            "repetition_penalty": 1.1,
            "n_ctx": args.n_ctx,
            "n_threads": args.threads,
            "rounds": args.rounds,
            "runs_per_round": args.runs,
        },
        # headline: every request a new prompt (neither server can reuse a cached prefix)
        "ours": {k: fresh["ours"][k] for k in ("tokens_per_s", "ttft_ms")},
        "llama_cpp_server": {k: fresh["llama_cpp_server"][k] for k in ("tokens_per_s", "ttft_ms")},
        "comparison": {
            "tokens_per_s_ours_over_peer": fresh["tokens_per_s_ours_over_peer"],
            "ttft_peer_over_ours": fresh["ttft_peer_over_ours"],
            "repeated_prompt_ttft_peer_over_ours": scenarios["repeated_prompt"]["ttft_peer_over_ours"],
        },
        "scenarios": scenarios,
        "sample_text": runs["ours"]["repeated_prompt"][0]["text"][:300],
    }
    report["met"] = {
        "tokens_per_s_ratio_at_least_1": fresh["tokens_per_s_ours_over_peer"] >= 1.0,
        "ttft_ratio_at_least_1": fresh["ttft_peer_over_ours"] >= 1.0,
    }
    report["machine"] = {
        "cpu_count": os.cpu_count(),
        "processor": cpu_model(),
        "llama_cpp_python": package_version("llama-cpp-python"),
        "openai": package_version("openai"),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        # CPUs kept busy by processes other than this one and its servers (0 = quiet machine)
        "other_processes_busy_cpus": other_load(busy),
    }
    report["runtime_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
