"""Measures of the offline executable (issue 16), printed as one JSON object.

* `size_bytes`: dist/workbench/ on disk (st_blocks, symlinks not followed);
* with `--times`: cold process starts of `--help` and of `ask` (to the first
  streamed byte and to exit), and the TUI's first paint, first answered key
  and "Ready" on a pseudo-terminal (benchmarks/tui.py's probe), from the
  bundle and from the venv, run in turn
  (bundle, venv, bundle, venv, ...) so a drifting machine hits both alike;
  medians and the bundle/venv ratio of the medians. "Cold" = a new process
  each run (the OS file cache stays warm: that is what a user's second
  start sees too).

Each run gets a fresh WORKBENCH_HOME and the file keyring, like the smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE_DIR = ROOT / "dist" / "workbench"
ASK = ["ask", "Name one colour of the sky.", "--temperature", "0", "--seed", "1", "--max-tokens", "8", "--no-save"]


def size_on_disk(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        total += path.lstat().st_blocks * 512
    return total


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds to the first byte on stdout, seconds to exit) of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    first_at = time.perf_counter() - start
    proc.stdout.read()
    code = proc.wait()
    total = time.perf_counter() - start
    if code != 0 or not first:
        raise SystemExit(f"{' '.join(command[:2])} failed (exit {code})")
    return first_at, total


def env_for(home: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        WORKBENCH_HOME=home,
        PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
        XDG_DATA_HOME=os.path.join(home, "xdg"),
        PYTHONPATH=str(ROOT),
    )
    return env


def compare(args: list[str], runs: int) -> dict[str, object]:
    bundle = [str(BUNDLE_DIR / "workbench"), *args]
    venv = [str(Path(sys.executable).parent / "workbench"), *args]
    figures: dict[str, list[tuple[float, float]]] = {"bundle": [], "venv": []}
    for _ in range(runs):
        for name, command in (("bundle", bundle), ("venv", venv)):
            with tempfile.TemporaryDirectory() as home:
                figures[name].append(timed(command, env_for(home)))
    out: dict[str, object] = {"runs": runs}
    for name, values in figures.items():
        out[f"{name}_first_byte_s"] = round(statistics.median(v[0] for v in values), 3)
        out[f"{name}_exit_s"] = round(statistics.median(v[1] for v in values), 3)
    out["ratio_first_byte"] = round(out["bundle_first_byte_s"] / out["venv_first_byte_s"], 2)  # type: ignore[operator]
    out["ratio_exit"] = round(out["bundle_exit_s"] / out["venv_exit_s"], 2)  # type: ignore[operator]
    return out


def compare_tui(runs: int) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from benchmarks.tui import WB_ANSWERED, WB_FIRST, WB_READY, measure

    commands = {"bundle": [str(BUNDLE_DIR / "workbench")], "venv": [str(Path(sys.executable).parent / "workbench")]}
    marks: dict[str, list[dict[str, float | None]]] = {"bundle": [], "venv": []}
    for _ in range(runs):
        for name, command in commands.items():
            with tempfile.TemporaryDirectory() as home:
                env = dict(env_for(home), TERM="xterm-256color", COLUMNS="120", LINES="36")
                marks[name].append(measure(command, env, WB_FIRST, WB_ANSWERED, WB_READY, 120.0))
    out: dict[str, object] = {"runs": runs}
    for key in ("first_paint_s", "interactive_s", "ready_s"):
        medians = {}
        for name, values in marks.items():
            found = [v[key] for v in values if v[key] is not None]
            medians[name] = round(statistics.median(found), 3) if found else None
            out[f"{name}_{key}"] = medians[name]
        if medians["bundle"] and medians["venv"]:
            out[f"ratio_{key}"] = round(medians["bundle"] / medians["venv"], 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", action="store_true", help="also time --help and ask, bundle vs venv")
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (default 3)")
    args = parser.parse_args()
    if not (BUNDLE_DIR / "workbench").is_file():
        print("dist/workbench/workbench is missing: run `make dist` first.", file=sys.stderr)
        return 1
    result: dict[str, object] = {
        "bundle": str(BUNDLE_DIR),
        "size_bytes": size_on_disk(BUNDLE_DIR),
    }
    result["size_mb"] = round(result["size_bytes"] / 1e6, 1)  # type: ignore[operator]
    if args.times:
        result["help"] = compare(["--help"], args.runs)
        result["ask"] = compare(ASK, args.runs)
        result["tui"] = compare_tui(args.runs)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
