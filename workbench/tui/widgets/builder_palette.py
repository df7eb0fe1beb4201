"""Command-palette entries of one screen: `ScreenCommands` lists what `screen.palette_commands()` returns.

Set `COMMANDS = {ScreenCommands}` on a screen and give it a `palette_commands()`
method yielding `(title, help, callback)`; the palette offers those commands
while that screen is active (the app's own commands stay available).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

PaletteCommand = tuple[str, str, Callable[[], Any]]


class ScreenCommands(Provider):
    def _commands(self) -> Iterable[PaletteCommand]:
        commands = getattr(self.screen, "palette_commands", None)
        return list(commands()) if commands is not None else []

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, partial(callback), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(callback), help=help_text)
