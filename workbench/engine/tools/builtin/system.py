"""`system_metrics`: a snapshot of CPU, memory, disk and process counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from workbench.engine.errors import ToolError
from workbench.engine.tools.base import Tool, ToolContext, object_schema


def _disk(path: Path) -> dict[str, Any]:
    import psutil

    usage = psutil.disk_usage(str(path))
    return {
        "path": str(path),
        "total_bytes": usage.total,
        "used_bytes": usage.used,
        "free_bytes": usage.free,
        "percent": usage.percent,
    }


def _system_metrics(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    try:
        import psutil
    except ImportError:
        raise ToolError("System metrics need the psutil package, which is not installed.") from None
    try:
        load = list(os.getloadavg())
    except (AttributeError, OSError):
        load = None
    memory = psutil.virtual_memory()
    targets: list[Path] = []
    for root in ctx.roots or [Path("/")]:
        real = Path(os.path.realpath(root))
        if real.exists() and real not in targets:
            targets.append(real)
    disks = []
    for target in targets:
        try:
            disks.append(_disk(target))
        except OSError:
            continue
    return {
        "cpu_percent": psutil.cpu_percent(interval=0.2),
        "cpu_count": psutil.cpu_count(logical=True),
        "load_average": load,
        "memory": {
            "total_bytes": memory.total,
            "used_bytes": memory.used,
            "available_bytes": memory.available,
            "percent": memory.percent,
        },
        "disks": disks,
        "process_count": len(psutil.pids()),
    }


def tools() -> list[Tool]:
    return [
        Tool(
            name="system_metrics",
            description="Report this computer's current CPU load, memory use, free disk space and number of processes.",
            parameters=object_schema({}, required=[]),
            permission="read",
            run=_system_metrics,
            examples=[
                "how busy is the CPU right now?",
                "how much memory is free?",
                "is the disk getting full?",
                "show system load",
            ],
        )
    ]
