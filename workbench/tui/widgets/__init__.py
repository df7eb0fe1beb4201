"""Reusable widgets of the TUI."""

from __future__ import annotations


class FormError(ValueError):
    """A form field is empty or its text is not a value; the message says which and what to enter."""
