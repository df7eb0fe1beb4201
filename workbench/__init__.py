"""Workbench: a local-first agent workbench for the terminal."""

__version__ = "0.1.0"
