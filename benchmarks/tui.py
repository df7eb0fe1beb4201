"""TUI benchmark: cold start to first paint and to interactive, against a bare Textual app.

Both apps are started the same way, in a fresh process on a pseudo-terminal
(120x36), and watched from outside through what they write to the terminal:

* first paint: from spawning the process until its first screen is on the
  terminal (the bare app's label; the header of Workbench's Chat screen);
* interactive: from spawning until the app has answered a key press sent right
  after the first paint (the bare app changes its label; Workbench switches to
  its Settings screen).

Workbench opens its database and loads the models on a background thread
after the first paint; `ready_s` reports how long that took (the status line
saying "Ready"), which is not part of the target. Runs alternate between the two
apps; the report gives medians. Target: Workbench's first paint and
interactive times are each <= 1.5x the bare app's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_busy, cpu_model, other_load, package_version  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BARE_APP = """
from textual.app import App
from textual.widgets import Label


class Bare(App):
    BINDINGS = [("f6", "press", "Press")]

    def compose(self):
        yield Label("bare-first-paint", id="label")

    def action_press(self):
        self.query_one("#label", Label).update("bare-key-handled")


Bare().run()
"""
ANSI = re.compile(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-_]")
F6 = b"\x1b[17~"
#: Workbench's markers: the first screen's header, the Settings screen's header, the status line
WB_FIRST, WB_ANSWERED, WB_READY = "Workbench — Chat", "Workbench — Settings", "Ready ·"
CTRL_Q = b"\x11"


def screen_text(raw: bytes) -> str:
    """What the program has written, escape sequences removed (good enough to find words)."""
    return ANSI.sub("", raw.decode("utf-8", "replace"))


def measure(
    argv: list[str], env: dict[str, str], first: str, answered: str, ready: str | None, timeout: float
) -> dict[str, float | None]:
    """Spawn `argv` on a pty; seconds until `first` shows, until `answered` shows after F6, until `ready`."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True, start_new_session=True
    )
    os.close(slave)
    raw = b""
    marks: dict[str, float | None] = {"first_paint_s": None, "interactive_s": None, "ready_s": None}
    try:
        while time.perf_counter() - started < timeout:
            readable, _, _ = select.select([master], [], [], 0.01)
            if readable:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                raw += chunk
                text = screen_text(raw)
                now = time.perf_counter() - started
                if marks["first_paint_s"] is None and first in text:
                    marks["first_paint_s"] = now
                    raw_at_paint = len(raw)
                    os.write(master, F6)
                if (
                    marks["first_paint_s"] is not None
                    and marks["interactive_s"] is None
                    and answered in screen_text(raw[raw_at_paint:])
                ):
                    marks["interactive_s"] = now
                if ready is not None and marks["ready_s"] is None and ready in text:
                    marks["ready_s"] = now
                if marks["interactive_s"] is not None and (ready is None or marks["ready_s"] is not None):
                    break
    finally:
        try:
            os.write(master, CTRL_Q)
            process.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        os.close(master)
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each app (default 5)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a run is given up")
    args = parser.parse_args()

    load_before = cpu_busy()
    with tempfile.TemporaryDirectory() as tmp:
        bare_script = Path(tmp) / "bare.py"
        bare_script.write_text(BARE_APP)
        env = dict(
            os.environ,
            TERM="xterm-256color",
            COLUMNS="120",
            LINES="36",
            WORKBENCH_HOME=str(Path(tmp) / "home"),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
        )
        env.setdefault("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
        workbench = [str(Path(sys.executable).parent / "workbench")]
        bare = [sys.executable, str(bare_script)]
        results: dict[str, list[dict[str, float | None]]] = {"bare": [], "workbench": []}
        # One unmeasured run each: the first start of a Python program pays for cold .pyc files.
        measure(bare, env, "bare-first-paint", "bare-key-handled", None, args.timeout)
        measure(workbench, env, WB_FIRST, WB_ANSWERED, WB_READY, args.timeout)
        for run in range(args.runs):
            print(f"run {run + 1}/{args.runs}", file=sys.stderr)
            results["bare"].append(measure(bare, env, "bare-first-paint", "bare-key-handled", None, args.timeout))
            results["workbench"].append(measure(workbench, env, WB_FIRST, WB_ANSWERED, WB_READY, args.timeout))

    def median(app: str, key: str) -> float | None:
        values = [r[key] for r in results[app] if r[key] is not None]
        return round(statistics.median(values), 3) if values else None

    report: dict[str, object] = {"runs": args.runs}
    for key in ("first_paint_s", "interactive_s"):
        ours, base = median("workbench", key), median("bare", key)
        report[key] = {
            "workbench": ours,
            "bare_textual": base,
            "ratio": round(ours / base, 2) if ours and base else None,
            "target_ratio": 1.5,
        }
    report["workbench_ready_s"] = median("workbench", "ready_s")
    report["missed"] = {app: sum(1 for r in rs if r["interactive_s"] is None) for app, rs in results.items()}
    report["machine"] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "other_load_cpus": other_load(load_before),
        "textual": package_version("textual"),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
