"""The owner lock of a workbench home.

DuckDB lets one process own a database file. Before opening it we take an
exclusive `flock` on `workbench.lock` and write who we are (pid, command, and,
once serving, the API port). The kernel drops the lock when the process dies,
even by `kill -9`, so a stale file never blocks anyone; a live owner is named
in the error, with how to reach it instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from workbench.engine.errors import StoreError, StoreLocked

LOCK_FILE = "workbench.lock"


class OwnerLock:
    """An exclusive, crash-safe lock on a home directory."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_FILE
        self._fd: int | None = None
        self._info: dict[str, Any] = {}

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except IsADirectoryError:
            raise StoreError(f"{self.path} is a folder, not the home's lock file; remove it and try again.") from None
        except OSError as exc:
            raise StoreError(f"Cannot open the lock file {self.path}: {exc.strerror or exc}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(self._held_message(read_owner(self.path))) from None
        self._fd = fd
        self._info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200],
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "port": None,
        }
        self._write()

    def set_port(self, port: int | None) -> None:
        """Record the port of this process's API server, for other processes to find."""
        self._info["port"] = port
        self._write()

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def _write(self) -> None:
        assert self._fd is not None
        data = json.dumps(self._info).encode()
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)
            os.fsync(self._fd)
        except OSError:
            # The flock is what excludes others; who holds it is only a courtesy
            # for their error message, not worth failing over (e.g. on a full disk).
            pass

    def _held_message(self, owner: dict[str, Any] | None) -> str:
        home = self.path.parent
        if not owner:
            return f"The workbench home {home} is in use by another process; close it and try again."
        who = f"process {owner.get('pid')} ({owner.get('command') or 'workbench'}"
        who += f", started {owner['started_at']})" if owner.get("started_at") else ")"
        if owner.get("port"):
            how = (
                f"connect to it instead with `workbench --remote http://127.0.0.1:{owner['port']}`, "
                "or close it and try again"
            )
        else:
            how = "it is not serving the API, so close it and try again"
        return f"The workbench home {home} is in use by {who}: {how}."


def read_owner(path: Path) -> dict[str, Any] | None:
    """The owner recorded in a lock file, or None when unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8")
        owner = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None
