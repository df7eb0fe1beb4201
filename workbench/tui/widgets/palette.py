"""Command-palette entries for a screen's own actions: one provider for every screen.

Set `COMMANDS = {ScreenCommands}` on a screen and either list
`PALETTE = [(title, help, action), ...]` (actions run through the screen, like
its key bindings) or define `palette_commands()` returning
`(title, help, callback)` tuples. The palette offers them while that screen is
active; the app's own commands stay available.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

PaletteCommand = tuple[str, str, Callable[[], Any]]


class ScreenCommands(Provider):
    def _commands(self) -> list[PaletteCommand]:
        screen = self.screen
        commands: list[PaletteCommand] = [
            (title, help_text, partial(screen.run_action, action))
            for title, help_text, action in getattr(screen, "PALETTE", [])
        ]
        dynamic = getattr(screen, "palette_commands", None)
        if dynamic is not None:
            commands.extend(dynamic())
        return commands

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
