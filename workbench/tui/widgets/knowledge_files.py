"""What the upload wizard shows about files: the preview scan, sizes, short paths.

The preview applies the knowledge base's own rules (`iter_files` walks folders
the way ingestion does, `detect_kind` says which types have a loader) so that
what the wizard promises is what ingestion does. Nothing here touches the
engine's state; it only reads the local file system.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workbench.engine.knowledge.loaders import MAX_BYTES, SUPPORTED, detect_kind, iter_files

#: a preview stops listing after this many files (the ingest still takes them all)
PREVIEW_LIMIT = 5000


@dataclass(frozen=True)
class PreviewFile:
    """One file the ingest would see: its size, kind, and whether it is ingested or why not."""

    path: str
    size: int | None
    kind: str | None
    skip_reason: str | None

    @property
    def supported(self) -> bool:
        return self.skip_reason is None


@dataclass(frozen=True)
class Preview:
    files: list[PreviewFile]
    truncated: bool

    @property
    def ingested(self) -> list[PreviewFile]:
        return [f for f in self.files if f.supported]

    @property
    def skipped(self) -> list[PreviewFile]:
        return [f for f in self.files if not f.supported]

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.ingested)


def scan(paths: list[str]) -> Preview:
    """The files under `paths` as ingestion would walk them, each judged by its type and size."""
    roots = [Path(os.path.abspath(os.path.expanduser(p))) for p in paths]
    files: list[PreviewFile] = []
    for file in iter_files(roots):
        if len(files) >= PREVIEW_LIMIT:
            return Preview(files, truncated=True)
        files.append(_judge(file))
    return Preview(files, truncated=False)


def _judge(file: Path) -> PreviewFile:
    try:
        size: int | None = file.stat().st_size
    except OSError:
        return PreviewFile(str(file), None, None, "missing or unreadable")
    kind = detect_kind(file)
    if kind is None:
        suffix = file.suffix.lower()
        return PreviewFile(str(file), size, None, f"unsupported type {suffix}" if suffix else "no extension")
    if not file.is_file():
        return PreviewFile(str(file), size, kind, "not a regular file")
    if size == 0:
        return PreviewFile(str(file), size, kind, "empty file")
    if size > MAX_BYTES:
        return PreviewFile(str(file), size, kind, f"larger than {human_size(MAX_BYTES)}")
    return PreviewFile(str(file), size, kind, None)


def supported_types() -> str:
    """The supported extensions, for the wizard's hint line."""
    return " ".join(sorted(SUPPORTED))


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def common_root(paths: list[str]) -> str:
    """The folder every path lies under (the paths' own folder for one path), or ''."""
    folders = [os.path.dirname(p) for p in paths if p]
    if not folders:
        return ""
    try:
        return os.path.commonpath(folders)
    except ValueError:  # mixed drives or relative and absolute
        return ""


def short_path(path: str, root: str) -> str:
    """`path` relative to `root` when it lies under it, else the path as given."""
    if root and (path == root or path.startswith(root.rstrip(os.sep) + os.sep)):
        return os.path.relpath(path, root)
    return path
