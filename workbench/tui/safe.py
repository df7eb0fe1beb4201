"""Untrusted text (model output, tool output, file names, anything from the store) for widgets.

Textual and Rich read `[...]` in plain strings as markup in many places: a
`Label`/`Static` with markup on, a `DataTable` cell given a `str`, an
`OptionList` prompt, a notification. Model and tool output is data, so it goes
through `plain()` first: control characters (terminal escape sequences
included) are removed and the result is a `rich.text.Text`, which no widget
parses as markup.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls except tab and newline, DEL, and C1 controls (ESC, CSI, OSC ... all start here).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """`text` as a string without control characters (newlines and tabs kept)."""
    return CONTROL.sub("", "" if text is None else str(text))


def plain(text: Any, style: str = "") -> Any:
    """A `rich.text.Text` of `text`, cleaned: displayed literally, never parsed as markup."""
    from rich.text import Text

    return Text(clean(text), style=style)


def one_line(text: Any, limit: int = 80) -> str:
    """`text` cleaned, on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join(clean(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
