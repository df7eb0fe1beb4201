"""Machine facts shared by the benchmark scripts: package versions, CPU model,
and how busy other processes kept the CPUs (figures are noisy on a shared box)."""

from __future__ import annotations

import os
import platform
import time


def package_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def cpu_busy() -> tuple[float, float, float] | None:
    """(wall seconds, CPU seconds busy on the whole machine, CPU seconds of this process and its waited children).

    The benchmark's own children (servers, CLI processes, a peer's interpreter) count as its own work.
    """
    try:
        with open("/proc/stat", encoding="utf-8") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        tick = os.sysconf("SC_CLK_TCK")
        times = os.times()
        own = times.user + times.system + times.children_user + times.children_system
        return time.perf_counter(), (sum(fields[:8]) - idle) / tick, own
    except (OSError, ValueError, IndexError):
        return None


def other_load(before: tuple[float, float, float] | None) -> float | None:
    """Average number of CPUs that other processes kept busy since `before`."""
    after = cpu_busy()
    if before is None or after is None or after[0] <= before[0]:
        return None
    other = (after[1] - before[1]) - (after[2] - before[2])
    return round(max(0.0, other) / (after[0] - before[0]), 3)


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None
