"""The `workbench` command line, one module per command group (see `app.py`).

`workbench.cli:main` is the console script's entry point.
"""

from __future__ import annotations

from workbench.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
