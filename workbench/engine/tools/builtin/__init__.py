"""The built-in tools: files, shell, HTTP, git, Python, system metrics, knowledge and memory."""

from __future__ import annotations

from workbench.engine.tools.base import Tool

_MODULES = ("files", "shell", "http", "git", "python", "system", "knowledge")
_CACHE: list[Tool] | None = None


def builtin_tools() -> list[Tool]:
    """Every built-in tool (built once; tools are stateless)."""
    global _CACHE
    if _CACHE is None:
        from importlib import import_module

        found: list[Tool] = []
        for name in _MODULES:
            found.extend(import_module(f"workbench.engine.tools.builtin.{name}").tools())
        _CACHE = found
    return list(_CACHE)
