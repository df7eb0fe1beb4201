"""Confine a path to the configured workspace roots.

Every file, shell, git and python tool goes through `confine` before touching
the file system. The rule is simple: resolve the path with every symlink
followed (`os.path.realpath`), then require the result to sit inside one of the
resolved roots, comparing whole path components (so `/root-evil/x` is not
inside `/root`). Relative paths are taken against the first root.

Whatever the roots, the workbench's own files are out of reach: its home
(settings, `mcp.json`, the database, logs) and the keyring's files. A root
that contains them (a user who adds `~`) still refuses every path that
resolves into them, symlinks included (`ToolContext.protected`,
`protected_paths`).

Error messages name the path the caller gave, never anything read from disk
and never where a symlink points.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.engine.errors import ToolError

if TYPE_CHECKING:  # pragma: no cover
    from workbench.engine.tools.base import ToolContext

NO_ROOTS_MESSAGE = "File tools need a workspace root: add a folder to `workspace_roots` in the workbench config."


def _shown(path: str) -> str:
    """The caller's own path, shortened for an error message."""
    return path if len(path) <= 200 else path[:197] + "..."


def resolved_roots(roots: list[Path]) -> list[Path]:
    """The roots with symlinks followed, in their configured order."""
    if not roots:
        raise ToolError(NO_ROOTS_MESSAGE)
    out: list[Path] = []
    for root in roots:
        text = os.fspath(root)
        if not text or "\x00" in text:
            raise ToolError("A configured workspace root is not a valid path.")
        out.append(Path(os.path.realpath(text)))
    return out


def is_inside(path: Path, roots: list[Path]) -> bool:
    """True when the (already resolved) `path` is one of `roots` or below one of them."""
    return any(path == root or path.is_relative_to(root) for root in roots)


def protected_paths(home: Path | str | None) -> list[Path]:
    """What no tool may touch whatever the roots: the workbench home and the keyring's files (resolved)."""
    found = [Path(os.path.realpath(home))] if home else []
    return found + [Path(p) for p in _keyring_files()]


@functools.lru_cache(maxsize=1)
def _keyring_files() -> tuple[str, ...]:
    # File keyrings (keyrings.alt) keep every stored secret in one file: `file_path`.
    try:
        import keyring

        backend = keyring.get_keyring()
    except Exception:  # no keyring at all: nothing on disk to protect
        return ()
    backends = list(getattr(backend, "backends", None) or [backend])
    files = []
    for one in backends:
        try:
            file_path = getattr(one, "file_path", None)
        except Exception:
            file_path = None
        if isinstance(file_path, str) and file_path:
            files.append(os.path.realpath(file_path))
    return tuple(files)


def is_protected(path: Path, protected: list[Path]) -> bool:
    """True when the (already resolved) `path` is a protected path or lies below one."""
    return any(path == p or path.is_relative_to(p) for p in protected)


def refuse_protected(path: Path, protected: list[Path], shown: str) -> None:
    if is_protected(path, protected):
        raise ToolError(
            f"The path {_shown(shown)!r} is in the workbench's own files (its home or the keyring), "
            "which tools never touch."
        )


def working_dir(cwd: str | None, ctx: ToolContext) -> Path:
    """A subprocess tool's working folder: `cwd` confined, else the first root; never a protected one."""
    if cwd is None:
        real = resolved_roots(ctx.roots)[0]
        refuse_protected(real, ctx.protected, "the first workspace root")
    else:
        real = confine(cwd, ctx.roots, must_exist=True, protected=ctx.protected)
    if not real.is_dir():
        raise ToolError("The working directory is not an existing folder.")
    return real


def confine(path: str, roots: list[Path], *, must_exist: bool, protected: list[Path] | None = None) -> Path:
    """Resolve `path` and return it if it lies inside one of `roots` and outside `protected`.

    Raises `ToolError` for empty paths, NUL bytes, paths that resolve (through
    `..` or symlinks) outside every root or into a protected path, missing paths
    when `must_exist`, and when no root is configured at all.
    """
    if not isinstance(path, str):
        raise ToolError("The path must be a string.")
    if "\x00" in path:
        raise ToolError("The path contains a NUL byte.")
    if not path.strip():
        raise ToolError("The path is empty.")
    real_roots = resolved_roots(roots)
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = real_roots[0] / candidate
    real = Path(os.path.realpath(candidate))
    if not is_inside(real, real_roots):
        raise ToolError(f"The path {_shown(path)!r} is outside the workspace roots.")
    refuse_protected(real, protected or [], path)
    if must_exist and not real.exists():
        raise ToolError(f"The path {_shown(path)!r} does not exist.")
    return real


def display_path(path: Path, roots: list[Path]) -> str:
    """`path` relative to the root that holds it (the root itself shows as '.')."""
    try:
        real_roots = resolved_roots(roots)
    except ToolError:
        return str(path)
    best: Path | None = None
    for root in real_roots:
        if path == root or path.is_relative_to(root):
            if best is None or len(root.parts) > len(best.parts):
                best = root
    if best is None:
        return str(path)
    rel = path.relative_to(best)
    text = rel.as_posix()
    if text in ("", "."):
        return "."
    # with several roots, say which one when it is not the first
    if len(real_roots) > 1 and best != real_roots[0]:
        return str(path)
    return text
