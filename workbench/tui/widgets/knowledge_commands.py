"""Command-palette entries for a screen's own actions (used by the Knowledge and Memory screens).

A screen lists `PALETTE = [(title, help, action), ...]`; `ScreenCommands` in the
screen's `COMMANDS` offers them in the command palette while that screen is
active, and runs `action` through the screen like its key binding does.
"""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class ScreenCommands(Provider):
    def _commands(self) -> list[tuple[str, str, str]]:
        return list(getattr(self.screen, "PALETTE", []))

    async def _run(self, action: str) -> None:
        await self.screen.run_action(action)

    async def discover(self) -> Hits:
        for title, help_text, action in self._commands():
            yield DiscoveryHit(title, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._commands():
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, action), help=help_text)
